package sfu

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/token"
)

type logTap struct {
	mu     sync.Mutex
	tracks []*logTrack
	fail   error
	opens  int
}

func (l *logTap) OpenTrack(_ context.Context, info TrackInfo) (TrackTap, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.opens++
	if l.fail != nil {
		return nil, l.fail
	}
	tr := &logTrack{l: l, info: info}
	l.tracks = append(l.tracks, tr)
	return tr, nil
}

// logTrack is one opened TrackTap: what it got, in order.
type logTrack struct {
	l      *logTap
	info   TrackInfo
	seqs   []uint16
	closed int
}

func (t *logTrack) WriteRTP(p *rtp.Packet) {
	t.l.mu.Lock()
	defer t.l.mu.Unlock()
	t.seqs = append(t.seqs, p.SequenceNumber)
}

func (t *logTrack) Close(context.Context) error {
	t.l.mu.Lock()
	defer t.l.mu.Unlock()
	t.closed++
	return nil
}

func tapTrack(tap Tap) *publishedTrack {
	r := testRoom()
	sess := &session{
		claims:    token.Claims{MeetingID: "m", Identity: "a", DisplayName: "A"},
		clockZero: time.Unix(1000, 0),
		sfu:       &SFU{tap: tap},
	}
	return &publishedTrack{sess: sess, room: r, identity: "a", rate: 48000, channels: 2, log: slog.New(slog.DiscardHandler),
		stats: &sess.sfu.stats}
}

func raw(t *testing.T, ssrc uint32, seq uint16) []byte {
	t.Helper()
	b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SSRC: ssrc, SequenceNumber: seq,
		Timestamp: uint32(seq) * 960}, Payload: []byte{0xfc, 1, 2}}).Marshal()
	require.NoError(t, err)
	return b
}

// slowTap opens tracks only when told to, as a recorder busy with its
// disk would.
type slowTap struct {
	logTap
	release chan struct{}
}

func (s *slowTap) OpenTrack(ctx context.Context, info TrackInfo) (TrackTap, error) {
	<-s.release
	return s.logTap.OpenTrack(ctx, info)
}

func TestSSRCChangeStartsNewTap(t *testing.T) {
	t.Parallel()
	tap := &slowTap{release: make(chan struct{})}
	tr := tapTrack(tap)
	var pkt rtp.Packet
	t0 := time.Unix(2000, 0)
	for i := range 3 {
		tr.receive(&pkt, raw(t, 1, uint16(i)), t0.Add(time.Duration(i)*20*time.Millisecond), nil)
	}
	t1 := t0.Add(time.Second)
	tr.receive(&pkt, raw(t, 2, 500), t1, nil)
	tr.receive(&pkt, raw(t, 2, 501), t1.Add(20*time.Millisecond), nil)
	tr.receive(&pkt, []byte{1, 2}, t1.Add(30*time.Millisecond), nil) // garbage is dropped
	// Neither tap has opened yet: the packet path did not wait for them.
	close(tap.release)
	tr.finish()
	tr.sess.wg.Wait() // openers and closers

	require.Len(t, tap.tracks, 2)
	bySSRC := map[uint32]*logTrack{}
	for _, lt := range tap.tracks {
		bySSRC[lt.info.SSRC] = lt
		require.Equal(t, 1, lt.closed, "Close exactly once")
		require.Equal(t, TrackInfo{MeetingID: "m", Identity: "a", DisplayName: "A", SSRC: lt.info.SSRC, ClockRate: 48000,
			Channels: 2, ClockZero: time.Unix(1000, 0), FirstPacketAt: lt.info.FirstPacketAt}, lt.info)
	}
	require.Equal(t, []uint16{0, 1, 2}, bySSRC[1].seqs, "held while the tap opened, then given in order")
	require.Equal(t, t0, bySSRC[1].info.FirstPacketAt)
	require.Equal(t, []uint16{500, 501}, bySSRC[2].seqs)
	require.Equal(t, t1, bySSRC[2].info.FirstPacketAt)
	require.Equal(t, uint64(1), tr.badPkts)
}

func TestOpenTapTakesPacketsDirectly(t *testing.T) {
	t.Parallel()
	tap := &logTap{}
	tr := tapTrack(tap)
	var pkt rtp.Packet
	now := time.Unix(3000, 0)
	tr.receive(&pkt, raw(t, 7, 1), now, nil)
	require.Eventually(t, func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return tr.cur.tap != nil
	}, 5*time.Second, time.Millisecond)
	tr.receive(&pkt, raw(t, 7, 2), now.Add(20*time.Millisecond), nil)
	tap.mu.Lock()
	require.Equal(t, []uint16{1, 2}, tap.tracks[0].seqs, "once open, a packet reaches the tap before receive returns")
	tap.mu.Unlock()
	tr.finish()
	require.Equal(t, 1, tap.tracks[0].closed, "finish closes an open tap before it returns")
}

func TestRefusedTapStillForwards(t *testing.T) {
	t.Parallel()
	tap := &logTap{fail: errors.New("disk full")}
	tr := tapTrack(tap)
	s := newSlotTrack("s", "m", nil)
	w := &countWriter{}
	s.w, s.ssrc = w, 5
	s.setSource(tr)
	tr.dests.Store(&[]*slotTrack{s})
	var pkt rtp.Packet
	now := time.Now()
	for i := range 5 {
		tr.receive(&pkt, raw(t, 1, uint16(i)), now, nil)
	}
	tr.sess.wg.Wait() // the refusal has come back
	for i := range 5 {
		tr.receive(&pkt, raw(t, 1, uint16(5+i)), now, nil)
	}
	require.Equal(t, 10, w.n, "the meeting goes on without its recording")
	tap.mu.Lock()
	require.Equal(t, 1, tap.opens, "a refused track is not retried on every packet")
	tap.mu.Unlock()
}

// queueTap is a tap with a bounded queue, as the recorder's writer: a
// packet given while the queue is full is dropped. A goroutine of its own
// writes the queue out, a few packets at a time.
type queueTap struct {
	release chan struct{}
	mu      sync.Mutex
	dropped int
	written []uint16
	pending []uint16
}

const queueTapSize = 16

func (q *queueTap) OpenTrack(ctx context.Context, info TrackInfo) (TrackTap, error) {
	<-q.release
	return &queueTrack{q: q}, nil
}

type queueTrack struct{ q *queueTap }

func (t *queueTrack) WriteRTP(p *rtp.Packet) {
	t.q.mu.Lock()
	defer t.q.mu.Unlock()
	if len(t.q.pending) >= queueTapSize {
		t.q.dropped++
		return
	}
	t.q.pending = append(t.q.pending, p.SequenceNumber)
}

func (t *queueTrack) Free() int {
	t.q.mu.Lock()
	defer t.q.mu.Unlock()
	return queueTapSize - len(t.q.pending)
}

// drain writes out what is queued.
func (q *queueTap) drain() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.written = append(q.written, q.pending...)
	q.pending = q.pending[:0]
}

func (t *queueTrack) Close(context.Context) error {
	t.q.mu.Lock()
	defer t.q.mu.Unlock()
	t.q.written = append(t.q.written, t.q.pending...)
	t.q.pending = nil
	return nil
}

// TestHeldPacketsAreGivenNoFasterThanTheTapTakesThem: a tap that opens
// after 200 packets (ten times its queue) gets every one of them, and
// those that arrive while they are given, in order and without dropping
// any: the SFU waits for the tap's room (BoundedTap), outside the packet
// path.
func TestHeldPacketsAreGivenNoFasterThanTheTapTakesThem(t *testing.T) {
	t.Parallel()
	tap := &queueTap{release: make(chan struct{})}
	tr := tapTrack(tap)
	var pkt rtp.Packet
	t0 := time.Unix(2000, 0)
	const held = 200
	for i := range held {
		tr.receive(&pkt, raw(t, 1, uint16(i)), t0.Add(time.Duration(i)*20*time.Millisecond), nil)
	}
	close(tap.release)
	stop := make(chan struct{})
	drained := make(chan struct{})
	go func() { // the tap's writer
		defer close(drained)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
				tap.drain()
			}
		}
	}()
	// The packet path goes on meanwhile: its packets follow the held ones.
	// Once none is held, they go to the tap directly, which never waits:
	// they come slower than its writer drains (a queue's worth per 32 ms),
	// as a recorder keeps up with its network, so any drop is the replay's.
	for i := held; i < held+100; i++ {
		tr.receive(&pkt, raw(t, 1, uint16(i)), t0.Add(time.Duration(i)*20*time.Millisecond), nil)
		time.Sleep(2 * time.Millisecond)
	}
	require.Eventually(t, func() bool {
		tap.mu.Lock()
		defer tap.mu.Unlock()
		return len(tap.written) == held+100
	}, 30*time.Second, time.Millisecond)
	close(stop)
	<-drained
	tr.finish()
	tr.sess.wg.Wait()
	tap.mu.Lock()
	defer tap.mu.Unlock()
	require.Zero(t, tap.dropped, "no packet given to a full queue")
	for i, seq := range tap.written {
		require.Equal(t, uint16(i), seq, "in order")
	}
}
