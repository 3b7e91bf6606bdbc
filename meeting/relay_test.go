package meeting

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/store"
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
		r, err := NewRelay(st.PgxPool(), lm, hub, node, discard())
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
