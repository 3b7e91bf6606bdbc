package sfu_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/token"
	"github.com/greffier/greffier/sfu"
	"github.com/greffier/greffier/sfu/sfutest"
)

// eventLog is an Observer keeping every event.
type eventLog struct {
	mu     sync.Mutex
	events []sfu.Event
}

func (l *eventLog) Observe(ev sfu.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, ev)
}

// of returns the kinds of identity's events, in order.
func (l *eventLog) of(identity string) []sfu.EventKind {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []sfu.EventKind
	for _, ev := range l.events {
		if ev.Identity == identity {
			out = append(out, ev.Kind)
		}
	}
	return out
}

func (l *eventLog) all() []sfu.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]sfu.Event(nil), l.events...)
}

func TestObserverSeesJoinsSpeakingAndLeaves(t *testing.T) {
	t.Parallel()
	obs := &eventLog{}
	b := setup(t, sfu.Config{Observer: obs, SwitchHold: 300 * time.Millisecond})
	lis := b.listen(t, "loud") // listens first: one join for two sessions
	loud, err := sfutest.Publish(t.Context(), sfutest.PublishOptions{WHIPURL: b.whip, OggPath: tone(t, 440, 1),
		Token: b.token(t, "m1", "loud", token.RightPublish), HTTPClient: b.srv.Client(),
		Level: sfutest.LevelFixed, FixedLevel: 20})
	require.NoError(t, err)
	quiet, err := sfutest.Publish(t.Context(), sfutest.PublishOptions{WHIPURL: b.whip, OggPath: tone(t, 660, 1),
		Token: b.token(t, "m1", "quiet", token.RightPublish), HTTPClient: b.srv.Client(),
		Level: sfutest.LevelFixed, FixedLevel: 90})
	require.NoError(t, err)
	waitClosed(t, loud.Done(), "loud's file")
	waitClosed(t, quiet.Done(), "quiet's file")
	// The file ended: once quiet for SwitchHold, loud's turn stops.
	require.Eventually(t, func() bool {
		return len(obs.of("loud")) == 3
	}, 5*time.Second, 10*time.Millisecond, "events: %+v", obs.all())
	require.Equal(t, []sfu.EventKind{sfu.EventJoined, sfu.EventSpeakingStarted, sfu.EventSpeakingStopped}, obs.of("loud"))

	require.NoError(t, loud.Close(t.Context()))
	require.NoError(t, quiet.Close(t.Context()))
	require.NoError(t, lis.Close(t.Context()))
	require.Eventually(t, func() bool { return len(obs.of("loud")) == 4 && len(obs.of("quiet")) == 2 },
		5*time.Second, 10*time.Millisecond, "events: %+v", obs.all())
	require.Equal(t, sfu.EventLeft, obs.of("loud")[3], "left once, after both sessions closed")
	require.Equal(t, []sfu.EventKind{sfu.EventJoined, sfu.EventLeft}, obs.of("quiet"), "level 90 is not speech")

	zero := b.meetings.zero("m1")
	var started, stopped time.Time
	for _, ev := range obs.all() {
		require.Equal(t, "m1", ev.MeetingID)
		require.Equal(t, zero, ev.ClockZero)
		require.False(t, ev.At.Before(zero), "%+v happened before the meeting's zero", ev)
		if ev.Identity == "loud" && ev.Kind == sfu.EventSpeakingStarted {
			started = ev.At
		}
		if ev.Identity == "loud" && ev.Kind == sfu.EventSpeakingStopped {
			stopped = ev.At
		}
	}
	// One second of tone: the turn is about that long (the stop is when
	// the silence began, not when the hold ran out).
	require.InDelta(t, 1.0, stopped.Sub(started).Seconds(), 0.5)
	require.Less(t, started.Sub(loud.Started()), 600*time.Millisecond, "speaking is noticed within a few ticks")
}

// srTap keeps the sender reports it is given next to the packets.
type srTap struct {
	recTap
	mu      sync.Mutex
	reports []sr
}

type sr struct {
	ntp     time.Time
	rtpTime uint32
}

func (t *srTap) OpenTrack(ctx context.Context, info sfu.TrackInfo) (sfu.TrackTap, error) {
	tr, err := t.recTap.OpenTrack(ctx, info)
	return &srTrack{recTrack: tr.(*recTrack), tap: t}, err
}

type srTrack struct {
	*recTrack
	tap *srTap
}

func (t *srTrack) WriteSenderReport(ntp time.Time, rtpTime uint32) {
	t.tap.mu.Lock()
	defer t.tap.mu.Unlock()
	t.tap.reports = append(t.tap.reports, sr{ntp, rtpTime})
}

func (t *srTap) rec() *recTap { return &t.recTap }

func (t *srTap) snapshot() []sr {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]sr(nil), t.reports...)
}

func TestSenderReportsReachTheTap(t *testing.T) {
	t.Parallel()
	tap := &srTap{recTap: recTap{opened: make(chan *recTrack, 4)}}
	b := setupTap(t, sfu.Config{}, tap)
	pub := b.publish(t, "alice", tone(t, 440, 3))
	// pion's sender-report interceptor reports every second.
	require.Eventually(t, func() bool { return len(tap.snapshot()) >= 2 }, 5*time.Second, 10*time.Millisecond)
	first := pub.Sent()[0]
	for _, r := range tap.snapshot() {
		// The report pins rtpTime to the sender's clock: the packet with
		// that timestamp was sent at ntp.
		want := pub.Started().Add(time.Duration(r.rtpTime-first.Timestamp) * time.Second / 48000)
		require.InDelta(t, 0, r.ntp.Sub(want).Seconds(), 0.05, "report %+v", r)
	}
	require.NoError(t, pub.Close(t.Context()))
}

func TestVanishedPeerIsNoticedByICETimeout(t *testing.T) {
	t.Parallel()
	obs := &eventLog{}
	b := setup(t, sfu.Config{Observer: obs})
	pub, err := sfutest.Publish(t.Context(), sfutest.PublishOptions{WHIPURL: b.whip, OggPath: tone(t, 440, 10),
		Token: b.token(t, "m1", "alice", token.RightPublish), HTTPClient: b.srv.Client(), Vanishable: true})
	require.NoError(t, err)
	tr := b.nextTrack(t)
	require.Eventually(t, func() bool { p, _ := tr.snapshot(); return len(p) > 5 }, 5*time.Second, 10*time.Millisecond)
	vanished := time.Now()
	require.NoError(t, pub.Vanish())
	// No DELETE, no DTLS close: only the ICE timeouts (1 s + 1 s here) tell.
	waitClosed(t, tr.closed, "the tap of a silent peer to close")
	took := time.Since(vanished)
	require.Less(t, took, 5*time.Second)
	require.Greater(t, took, 900*time.Millisecond, "closed before any timeout could fire: something else closed it")
	require.Eventually(t, func() bool { return len(b.meetings.left()) == 1 }, 5*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { k := obs.of("alice"); return len(k) > 0 && k[len(k)-1] == sfu.EventLeft },
		5*time.Second, 10*time.Millisecond)
	require.NoError(t, pub.CloseWithoutDelete())
}

func TestOversizedAndFloodingPacketsAreDropped(t *testing.T) {
	t.Parallel()
	b := setup(t, sfu.Config{MaxPacketSize: 200, MaxPacketRate: 20})
	// 24 kbit/s Opus makes ~80-byte packets: under the size limit, but
	// 50 a second is over the rate limit of 20.
	pub := b.publish(t, "alice", tone(t, 440, 2))
	tr := b.nextTrack(t)
	waitClosed(t, pub.Done(), "alice's file")
	sending := time.Since(pub.Started()).Seconds() // about 2 s; more on a loaded machine
	sent := len(pub.Sent())
	require.Eventually(t, func() bool { st := b.sfu.Stats(); return st.PacketsReceived == uint64(sent) },
		5*time.Second, 10*time.Millisecond)
	st := b.sfu.Stats()
	got, _ := tr.snapshot()
	require.Equal(t, uint64(sent), st.PacketsReceived)
	require.Equal(t, uint64(sent-len(got)), st.DroppedRate, "every packet is either recorded or dropped")
	// One packet, one second of burst (20), then 20 a second.
	require.InDelta(t, 21+20*sending, len(got), 8)
	require.Zero(t, st.DroppedTooLarge)
	require.NoError(t, pub.Close(t.Context()))

	loud := tone(t, 440, 0.5, "-b:a", "256k")
	pub = b.publish(t, "bob", loud)
	waitClosed(t, pub.Done(), "bob's file")
	require.Eventually(t, func() bool { return b.sfu.Stats().DroppedTooLarge > 0 }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, pub.Close(t.Context()))
}
