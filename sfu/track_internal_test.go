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
	events []string
	infos  []TrackInfo
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
	l.infos = append(l.infos, info)
	l.events = append(l.events, "open")
	return &logTrack{l: l}, nil
}

type logTrack struct{ l *logTap }

func (t *logTrack) WriteRTP(p *rtp.Packet) {
	t.l.mu.Lock()
	defer t.l.mu.Unlock()
	t.l.events = append(t.l.events, "pkt")
}

func (t *logTrack) Close(context.Context) error {
	t.l.mu.Lock()
	defer t.l.mu.Unlock()
	t.l.events = append(t.l.events, "close")
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

func TestSSRCChangeStartsNewTapSegment(t *testing.T) {
	t.Parallel()
	tap := &logTap{}
	tr := tapTrack(tap)
	var pkt rtp.Packet
	ctx := t.Context()
	t0 := time.Unix(2000, 0)
	for i := range 3 {
		tr.handle(ctx, &pkt, raw(t, 1, uint16(i)), t0.Add(time.Duration(i)*20*time.Millisecond))
	}
	t1 := t0.Add(time.Second)
	tr.handle(ctx, &pkt, raw(t, 2, 500), t1)
	tr.handle(ctx, &pkt, raw(t, 2, 501), t1.Add(20*time.Millisecond))
	tr.handle(ctx, &pkt, []byte{1, 2}, t1.Add(30*time.Millisecond)) // garbage is dropped
	tr.closeTap(ctx)
	tr.closeTap(ctx) // idempotent: Close exactly once

	require.Equal(t, []string{"open", "pkt", "pkt", "pkt", "close", "open", "pkt", "pkt", "close"}, tap.events)
	require.Equal(t, uint32(1), tap.infos[0].SSRC)
	require.Equal(t, t0, tap.infos[0].FirstPacketAt)
	require.Equal(t, uint32(2), tap.infos[1].SSRC)
	require.Equal(t, t1, tap.infos[1].FirstPacketAt)
	for _, info := range tap.infos {
		require.Equal(t, TrackInfo{MeetingID: "m", Identity: "a", DisplayName: "A", SSRC: info.SSRC, ClockRate: 48000,
			Channels: 2, ClockZero: time.Unix(1000, 0), FirstPacketAt: info.FirstPacketAt}, info)
	}
	require.Equal(t, uint64(1), tr.badPkts)
}

func TestRefusedTapStillForwards(t *testing.T) {
	t.Parallel()
	tap := &logTap{fail: errors.New("disk full")}
	tr := tapTrack(tap)
	s := newSlotTrack("s", "m")
	w := &countWriter{}
	s.w, s.ssrc = w, 5
	s.setSource(tr)
	tr.dests.Store(&[]*slotTrack{s})
	var pkt rtp.Packet
	now := time.Now()
	for i := range 5 {
		tr.handle(t.Context(), &pkt, raw(t, 1, uint16(i)), now)
	}
	require.Equal(t, 5, w.n, "the meeting goes on without its recording")
	require.Equal(t, 1, tap.opens, "a refused track is not retried on every packet")
}
