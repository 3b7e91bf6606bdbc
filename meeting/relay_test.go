package meeting

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/sfu"
)

// media is a node's media server as the relay sees it: it notes what it
// was told to do.
type nodeMedia struct {
	mu    sync.Mutex
	calls []string
	told  chan struct{}
}

func newMedia() *nodeMedia { return &nodeMedia{told: make(chan struct{}, 16)} }

func (m *nodeMedia) note(s string) {
	m.mu.Lock()
	m.calls = append(m.calls, s)
	m.mu.Unlock()
	m.told <- struct{}{}
}

func (m *nodeMedia) EndMeeting(_ context.Context, id string) error { m.note("end " + id); return nil }

func (m *nodeMedia) Disconnect(_ context.Context, id, identity, tok string) (int, error) {
	m.note("disconnect " + id + " " + identity + " " + tok)
	return 1, nil
}

func (m *nodeMedia) SetEnabled(id string, on bool) { m.note(fmt.Sprintf("captions %s %v", id, on)) }

func (m *nodeMedia) EndFollower(id, identity, tok string) int {
	m.note("end captions of " + id + " " + identity + " " + tok)
	return 1
}

func (m *nodeMedia) noted() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.calls...)
}

// TestHostControlsReachTheNodeHoldingTheMedia: ending a meeting,
// disconnecting a participant or switching captions on one node acts on that node's media and is
// told to every other node over Postgres, whose media acts on it; a node
// without media only tells.
func TestHostControlsReachTheNodeHoldingTheMedia(t *testing.T) {
	t.Parallel()
	st := openStore(t, store.Postgres)
	ctx := context.Background()
	start := func(local *nodeMedia, node string) *Relay {
		var (
			lm  LocalMedia
			hub Captions
		)
		if local != nil {
			lm, hub = local, local
		}
		r, err := NewRelay(st.PgxPool(), lm, hub, nil, node, discard())
		require.NoError(t, err)
		require.NoError(t, r.Start(ctx))
		t.Cleanup(r.Stop)
		return r
	}
	a, b := newMedia(), newMedia()
	ra := start(a, "node_a")
	start(b, "node_b")
	api := start(nil, "node_api")

	require.NoError(t, ra.EndMeeting(ctx, "mtg_1"))
	<-a.told
	<-b.told
	n, err := api.Disconnect(ctx, "mtg_2", "bob", "tok_1")
	require.NoError(t, err)
	require.Zero(t, n, "a node without media closes nothing itself")
	for range 2 {
		<-a.told
		<-b.told
	}
	require.NoError(t, api.SetCaptions(ctx, "mtg_2", true))
	<-a.told
	<-b.told
	want := []string{"end mtg_1", "end captions of mtg_2 bob tok_1", "disconnect mtg_2 bob tok_1", "captions mtg_2 true"}
	require.Equal(t, want, a.noted(), "its own end, then the API node's disconnect and captions")
	require.Equal(t, want, b.noted())
}

// TestSwitchesReachTheNodeHoldingTheTracks: a recording stop, a
// participant declining and a restart, each sent to a node that holds no
// track of the meeting, are stored there and applied by the node that
// holds the tracks: after a stop nothing more of the meeting reaches its
// spool or its bucket, and each stretch kept is the one the switches say.
func TestSwitchesReachTheNodeHoldingTheTracks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := setupGateOn(t, store.Postgres)
	ra, err := NewRelay(a.st.PgxPool(), newMedia(), nil, a.tap, "node_a", discard())
	require.NoError(t, err)
	require.NoError(t, ra.Start(ctx))
	t.Cleanup(ra.Stop)
	// Node B shares the database and holds none of the meeting's tracks.
	tapB := NewTap(a.rec, a.st, nil, discard())
	tapB.now = a.clock.Now
	rb, err := NewRelay(a.st.PgxPool(), newMedia(), nil, tapB, "node_b", discard())
	require.NoError(t, err)
	require.NoError(t, rb.Start(ctx))
	t.Cleanup(rb.Stop)
	b := RelayedSwitches{Switcher: tapB, Relay: rb}

	alice, bob := a.open(t, "alice", 1), a.open(t, "bob", 2)
	applied := func(tt sfu.TrackTap, on bool, what string) {
		t.Helper()
		require.Eventually(t, func() bool { return (tt.(*gatedTrack).Recording() != nil) == on },
			30*time.Second, time.Millisecond, "node A applies %s", what)
	}
	var p player
	p.play(a, 2000, alice, bob)

	_, err = b.SetControl(ctx, a.m.ID, store.ControlRecording, "", false)
	require.NoError(t, err)
	applied(alice, false, "the stop")
	applied(bob, false, "the stop")
	p.play(a, 3000, alice, bob)
	stored := func() []string {
		objs, err := a.blobs.List(ctx, "")
		require.NoError(t, err)
		var keys []string
		for _, o := range objs {
			keys = append(keys, o.Key)
		}
		return keys
	}
	// The stopped stretches are stored in the background: once they are,
	// the spool is empty though packets keep coming.
	require.Eventually(t, func() bool { return len(stored()) == 2 && len(files(t, a.spool)) == 0 }, 30*time.Second, 5*time.Millisecond,
		"the stopped stretches are stored and leave the spool")
	p.play(a, 1000, alice, bob)
	require.Empty(t, files(t, a.spool), "nothing of a stopped meeting reaches node A's spool")

	_, err = b.SetControl(ctx, a.m.ID, store.ControlConsent, "bob", false)
	require.NoError(t, err)
	_, err = b.SetControl(ctx, a.m.ID, store.ControlRecording, "", true)
	require.NoError(t, err)
	applied(alice, true, "the restart")
	p.play(a, 2000, alice, bob)
	require.Nil(t, bob.(*gatedTrack).Recording(), "bob declined: the restart records him not")
	require.NoError(t, alice.Close(ctx))
	require.NoError(t, bob.Close(ctx))

	tracks, err := a.st.Tracks(ctx, a.m.ID)
	require.NoError(t, err)
	var keys []string
	got := map[string][]int64{}
	for _, tr := range tracks {
		require.Equal(t, store.TrackStored, tr.State, tr.Failure)
		got[tr.Identity] = append(got[tr.Identity], tr.DurationMS)
		keys = append(keys, tr.BlobKey)
	}
	require.Len(t, got["alice"], 2, "alice: the stretch before the stop and the one after the restart")
	require.Len(t, got["bob"], 1, "bob: the stretch before the stop only")
	// The test's clock stands still while node A applies a switch: each
	// stretch is exact to the frame.
	require.InDelta(t, 2000, got["alice"][0], 20)
	require.InDelta(t, 2000, got["alice"][1], 20)
	require.InDelta(t, 2000, got["bob"][0], 20)
	require.ElementsMatch(t, keys, stored(), "the bucket holds the recorded stretches and nothing else")
	require.Empty(t, files(t, a.spool))
}
