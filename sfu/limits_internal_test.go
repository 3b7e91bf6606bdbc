package sfu

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestEndedListForgetsOldAndStaysBounded(t *testing.T) {
	t.Parallel()
	now := time.Unix(5000, 0)
	s := &SFU{cfg: Config{EndedMeetingTTL: time.Hour}.WithDefaults(), ended: map[string]time.Time{},
		now: func() time.Time { return now }, maxEnded: 3}
	s.mu.Lock()
	s.markEnded("a")
	now = now.Add(10 * time.Minute)
	s.markEnded("b")
	s.markEnded("c")
	require.True(t, s.isEnded("a"))
	now = now.Add(time.Minute)
	s.markEnded("d") // a fourth: the oldest (a) goes
	require.False(t, s.isEnded("a"))
	require.True(t, s.isEnded("b"))
	now = now.Add(2 * time.Hour) // b, c, d have all expired
	require.False(t, s.isEnded("b"), "an expired meeting is no longer refused by the SFU (the store still refuses it)")
	s.markEnded("e")
	s.mu.Unlock()
	require.Equal(t, 1, s.endedCount(), "expired entries are pruned")
}

func TestRateLimitAllowsOneSecondBurstThenTheRate(t *testing.T) {
	t.Parallel()
	tr := &publishedTrack{}
	tr.setRate(50)
	t0 := time.Unix(100, 0).UnixNano()
	allowed := 0
	for range 200 { // a backlog arriving at once
		if tr.allow(t0) {
			allowed++
		}
	}
	require.Equal(t, 51, allowed, "one packet plus one second's worth")
	// Then exactly the rate: 50 packets over the next second at 100/s.
	allowed = 0
	for i := range 100 {
		if tr.allow(t0 + int64(i+1)*int64(10*time.Millisecond)) {
			allowed++
		}
	}
	require.Equal(t, 50, allowed)
}

func TestNTPTime(t *testing.T) {
	t.Parallel()
	// 2026-01-01T00:00:00.5Z in NTP: seconds since 1900, half a second.
	want := time.Date(2026, 1, 1, 0, 0, 0, 500_000_000, time.UTC)
	ntp := uint64(want.Unix()+ntpEpochOffset)<<32 | 1<<31
	require.True(t, want.Equal(ntpTime(ntp)), "%v", ntpTime(ntp))
}

type eventSink struct{ events []Event }

func (e *eventSink) Observe(ev Event) { e.events = append(e.events, ev) }

func TestSpeakingTurnSurvivesABreath(t *testing.T) {
	t.Parallel()
	sink := &eventSink{}
	r := newRoom("m", Config{Observer: sink, SwitchHold: time.Second}.WithDefaults(), slog.New(slog.DiscardHandler))
	a := speaker(r, "a", 1)
	t0 := time.Unix(1000, 0)
	speak(a, 20, t0)
	r.selectOnce(t0)
	require.Len(t, sink.events, 1)
	require.Equal(t, EventSpeakingStarted, sink.events[0].Kind)
	// Half a second of near-silence: a breath, no new turn.
	speak(a, 120, t0.Add(100*time.Millisecond))
	r.selectOnce(t0.Add(100 * time.Millisecond))
	speak(a, 20, t0.Add(600*time.Millisecond))
	r.selectOnce(t0.Add(600 * time.Millisecond))
	require.Len(t, sink.events, 1)
	// Then silence for longer than the hold: the turn stops when it began.
	quiet := t0.Add(700 * time.Millisecond)
	speak(a, 127, quiet)
	r.selectOnce(quiet)
	r.selectOnce(quiet.Add(500 * time.Millisecond))
	require.Len(t, sink.events, 1)
	speak(a, 127, quiet.Add(time.Second))
	r.selectOnce(quiet.Add(time.Second))
	require.Len(t, sink.events, 2)
	require.Equal(t, EventSpeakingStopped, sink.events[1].Kind)
	require.Equal(t, quiet, sink.events[1].At)
	require.Equal(t, "a", sink.events[1].Identity)
	// A track that ends mid-turn stops its turn.
	speak(a, 20, quiet.Add(2*time.Second))
	r.selectOnce(quiet.Add(2 * time.Second))
	r.removeTrack(a)
	require.Len(t, sink.events, 4)
	require.Equal(t, EventSpeakingStopped, sink.events[3].Kind)
}
