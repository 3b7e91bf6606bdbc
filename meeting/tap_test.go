package meeting

import (
	"context"
	"io/fs"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/recorder"
	"github.com/greffier/greffier/sfu"
)

// testClock is the packets' arrival clock, moved by the test.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type gateBundle struct {
	st    *store.Store
	blobs *blob.Disk
	spool string
	clock *testClock
	tap   *Tap
	rec   *recorder.Recorder
	m     store.Meeting
}

// setupGate gates a real recorder (real store and disk) over a live
// meeting whose clock the test drives.
func setupGate(t *testing.T) *gateBundle { t.Helper(); return setupGateB(t) }

func setupGateB(t testing.TB) *gateBundle { t.Helper(); return setupGateOn(t, store.SQLite) }

// setupGateOn is setupGate over a database of dialect d.
func setupGateOn(t testing.TB, d store.Dialect) *gateBundle {
	t.Helper()
	st := openStore(t, d)
	blobs, err := blob.NewDisk(t.TempDir())
	require.NoError(t, err)
	m := liveMeeting(t, st)
	clock := &testClock{t: m.StartedAt}
	spool := t.TempDir()
	rec, err := recorder.New(recorder.Config{SpoolDir: spool, MinFreeBytes: -1, Now: clock.Now}, blobs, st, discard())
	require.NoError(t, err)
	t.Cleanup(rec.Close)
	tap := NewTap(rec, st, nil, discard())
	tap.now = clock.Now
	return &gateBundle{st: st, blobs: blobs, spool: spool, clock: clock, tap: tap, rec: rec, m: m}
}

func (b *gateBundle) open(t *testing.T, identity string, ssrc uint32) sfu.TrackTap {
	t.Helper()
	tt, err := b.tap.OpenTrack(context.Background(), sfu.TrackInfo{MeetingID: b.m.ID, Identity: identity, SSRC: ssrc,
		ClockRate: 48000, ClockZero: b.m.StartedAt, FirstPacketAt: b.clock.Now()})
	require.NoError(t, err)
	return tt
}

func (b *gateBundle) set(t *testing.T, kind store.ControlKind, identity string, on bool) {
	t.Helper()
	_, err := b.tap.SetControl(context.Background(), b.m.ID, kind, identity, on)
	require.NoError(t, err)
}

// play sends ms of 20 ms packets to every tap, the clock following.
type player struct {
	seq uint16
	ts  uint32
}

func (p *player) play(b *gateBundle, ms int, taps ...sfu.TrackTap) {
	for range ms / 20 {
		for i, tt := range taps {
			pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: p.seq,
				Timestamp: p.ts, SSRC: uint32(i + 1)}, Payload: silence}
			tt.WriteRTP(&pkt)
		}
		p.seq++
		p.ts += 960
		b.clock.advance(20 * time.Millisecond)
		if p.seq%64 == 0 {
			// The clock is the test's, the spool writer's pace is not:
			// let it take the backlog (the 64th packet woke it) before
			// the recorder's queue is full.
			for b.rec.Stats().Queued > 16 {
				time.Sleep(time.Millisecond)
			}
		}
	}
}

// files lists every file under dir.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return err
	}))
	return out
}

func TestTapWritesNothingWhileRecordingIsOffAndOneSegmentPerStretch(t *testing.T) {
	t.Parallel()
	b := setupGate(t)
	ctx := context.Background()
	b.set(t, store.ControlRecording, "", false)
	alice := b.open(t, "alice", 1)
	var p player
	p.play(b, 10000, alice)
	require.Empty(t, files(t, b.spool), "nothing may reach the spool while recording is off")
	tracks, err := b.st.Tracks(ctx, b.m.ID)
	require.NoError(t, err)
	require.Empty(t, tracks)

	b.set(t, store.ControlRecording, "", true)
	p.play(b, 10000, alice)
	b.set(t, store.ControlRecording, "", false)
	p.play(b, 10000, alice)
	b.set(t, store.ControlRecording, "", true)
	p.play(b, 5000, alice)
	require.NoError(t, alice.Close(ctx))

	tracks, err = b.st.Tracks(ctx, b.m.ID)
	require.NoError(t, err)
	require.Len(t, tracks, 2, "one track segment per recorded stretch")
	want := []int64{10000, 30000}
	durations := []int64{10000, 5000}
	var keys []string
	for i, tr := range tracks {
		require.Equal(t, store.TrackStored, tr.State, tr.Failure)
		require.InDelta(t, want[i], tr.StartMS, 20, "segment %d starts when recording started", i)
		require.InDelta(t, durations[i], tr.DurationMS, 20, "segment %d lasts the stretch", i)
		keys = append(keys, tr.BlobKey)
	}
	stored, err := b.blobs.List(ctx, "")
	require.NoError(t, err)
	var got []string
	for _, o := range stored {
		got = append(got, o.Key)
	}
	require.ElementsMatch(t, keys, got, "the bucket holds the recorded stretches and nothing else")
	require.Empty(t, files(t, b.spool), "the spool is emptied once each stretch is stored")

	log, err := b.st.Controls(ctx, b.m.ID)
	require.NoError(t, err)
	require.Equal(t, []store.Interval{{StartMS: 0, EndMS: 10000}, {StartMS: 20000, EndMS: 30000}}, log.Off(store.ControlRecording, "", 35000))
}

func TestTapDoesNotRecordAParticipantWhoDeclined(t *testing.T) {
	t.Parallel()
	b := setupGate(t)
	ctx := context.Background()
	b.set(t, store.ControlConsent, "bob", false)
	alice, bob := b.open(t, "alice", 1), b.open(t, "bob", 2)
	var p player
	p.play(b, 3000, alice, bob)
	// Declining during the meeting ends their recording at once.
	b.set(t, store.ControlConsent, "alice", false)
	p.play(b, 2000, alice, bob)
	require.NoError(t, alice.Close(ctx))
	require.NoError(t, bob.Close(ctx))
	tracks, err := b.st.Tracks(ctx, b.m.ID)
	require.NoError(t, err)
	require.Len(t, tracks, 1)
	require.Equal(t, "alice", tracks[0].Identity)
	require.InDelta(t, 3000, tracks[0].DurationMS, 20)
	log, err := b.st.Controls(ctx, b.m.ID)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"alice", "bob"}, log.Declined())
}

func TestTapRefusesSwitchesOfAnEndedMeeting(t *testing.T) {
	t.Parallel()
	b := setupGate(t)
	ctx := context.Background()
	_, err := b.st.Transition(ctx, b.m.ID, store.MeetingEnded, "")
	require.NoError(t, err)
	_, err = b.tap.SetControl(ctx, b.m.ID, store.ControlRecording, "", false)
	var te *store.TransitionError
	require.ErrorAs(t, err, &te)
	_, err = b.tap.SetControl(ctx, b.m.ID, store.ControlConsent, "", false)
	require.Error(t, err, "a consent names its participant")
}

// The packet path of a track that is not recorded costs one atomic load:
// no allocation.
func TestGatedTrackOffAllocatesNothing(t *testing.T) {
	b := setupGate(t)
	b.set(t, store.ControlRecording, "", false)
	tt := b.open(t, "alice", 1)
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SSRC: 1}, Payload: silence}
	allocs := testing.AllocsPerRun(1000, func() {
		pkt.SequenceNumber++
		pkt.Timestamp += 960
		tt.WriteRTP(&pkt)
	})
	require.Zero(t, allocs)
	require.NoError(t, tt.Close(context.Background()))
}

// The packet path of a recorded track, the gate's atomic load and the
// recorder's WriteRTP behind it (with the RFC 6464 level read), allocates
// nothing either: the recorder's own test covers the spool goroutine's
// side. Not parallel: AllocsPerRun counts every goroutine's allocations,
// the writer's spool goroutine's included.
func TestGatedTrackOnAllocatesNothing(t *testing.T) {
	b := setupGate(t)
	tt := b.open(t, "alice", 1)
	w := tt.(*gatedTrack).Recording()
	require.NotNil(t, w, "recording is on by default")
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SSRC: 1}, Payload: silence}
	var sent int64
	step := func() {
		pkt.SequenceNumber++
		pkt.Timestamp += 960
		b.clock.advance(20 * time.Millisecond)
		tt.WriteRTP(&pkt)
		sent++
		// Packets come far faster than in real time: wait for the spool
		// goroutine (woken by a backlog of 64) rather than overflow the
		// writer's queue, so that the path counted is a packet's usual one.
		for sent-w.Stats().Written > 96 {
			runtime.Gosched()
		}
	}
	for range 500 {
		step()
	}
	// The spool goroutine's first drain (the track's start noted beside
	// the spool) happens before the packets are counted.
	require.Eventually(t, func() bool { return w.Stats().Written > 0 },
		10*time.Second, 10*time.Millisecond)
	require.Zero(t, testing.AllocsPerRun(1000, step))
	require.NoError(t, tt.Close(context.Background()))
	s := w.Stats()
	require.Equal(t, sent, s.Written, "every packet reached the spool")
	require.Zero(t, s.Overflow+s.Late+s.Duplicate+s.Garbage)
}

// BenchmarkGatedTrackWriteRTP is the packet path through the gate: off
// (not recorded: one atomic load), on (the recorder's writer behind it),
// and the writer alone, for the gate's share.
func BenchmarkGatedTrackWriteRTP(b *testing.B) {
	for _, mode := range []string{"off", "on", "writer-alone"} {
		b.Run(mode, func(b *testing.B) {
			g := setupGateB(b)
			if mode == "off" {
				_, err := g.tap.SetControl(context.Background(), g.m.ID, store.ControlRecording, "", false)
				require.NoError(b, err)
			}
			tt, err := g.tap.OpenTrack(context.Background(), sfu.TrackInfo{MeetingID: g.m.ID, Identity: "alice", SSRC: 1,
				ClockRate: 48000, ClockZero: g.m.StartedAt, FirstPacketAt: g.clock.Now()})
			require.NoError(b, err)
			var sink sfu.TrackTap = tt
			if mode == "writer-alone" {
				sink = tt.(*gatedTrack).Recording()
			}
			pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SSRC: 1}, Payload: silence}
			b.ReportAllocs()
			for b.Loop() {
				pkt.SequenceNumber++
				pkt.Timestamp += 960
				g.clock.advance(20 * time.Millisecond)
				sink.WriteRTP(&pkt)
			}
			b.StopTimer()
			require.NoError(b, tt.Close(context.Background()))
		})
	}
}
