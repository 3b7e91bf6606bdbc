package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// childEnv makes the test binary, started again by run as the backend's
// process, run main instead of the tests.
const childEnv = "PIPEBENCH_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// TestShortMeetingBecomesMinutes runs the whole benchmark, every pass and
// both processes, on a 20-second meeting of two speakers: every word
// said must reach the minutes, through every backend slot it needed, and
// the report must add up.
func TestShortMeetingBecomesMinutes(t *testing.T) {
	t.Setenv(childEnv, "1")
	o := options{levels: true, duration: 20 * time.Second, speakers: 2, turn: 4 * time.Second, speed: 4, slots: 2, pace: 0,
		fixtures: "../../testdata/meeting", baseline: true, rerun: true, timeout: time.Minute, poll: 50 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := run(ctx, o, slog.New(slog.DiscardHandler))
	require.NoError(t, err)

	require.Equal(t, "ready", rep.State)
	require.Positive(t, rep.Meeting.Words)
	require.Equal(t, rep.Meeting.Words, rep.Words, "every word said is in the minutes")
	require.Equal(t, rep.Segments, rep.Transcribed)
	require.Zero(t, rep.Failed)
	require.Zero(t, rep.Full.Dropped)
	// Every speaker sends a packet every 20 ms without DTX.
	require.Equal(t, int64(2*20*50), rep.Full.Packets)
	require.Equal(t, rep.Full.Packets, rep.Baseline.Packets)
	require.Equal(t, rep.Segments, rep.Backend.Requests, "one request per segment, none retried")
	require.LessOrEqual(t, rep.Backend.MaxInFlight, o.slots)
	// Each request's time at the double is at least audio / speed.
	require.GreaterOrEqual(t, rep.Backend.ServiceSeconds, rep.SegmentAudio.Seconds()/o.speed*0.95)
	require.Positive(t, rep.PipelineCPU)
	require.Greater(t, rep.GreffierCPU, rep.PipelineCPU, "the recorder's share is subtracted")
	require.InDelta(t, 100*rep.PipelineCPU.Seconds()/rep.Backend.ServiceSeconds, rep.OverheadPct, 1e-9)
	// The meeting ends first; the minutes and the uploads follow.
	require.LessOrEqual(t, rep.EndCall, rep.Full.EndWall)
	require.LessOrEqual(t, rep.EndCall, rep.CloseTracks)

	// The batch re-run finds the same speech and words, within the
	// backend's slots (how fully it loads them is a figure for
	// docs/benchmarks.md: on a starved machine it may not fill both).
	rr := rep.Rerun
	require.NotNil(t, rr)
	require.Equal(t, rep.Segments, rr.Segments)
	require.Equal(t, rr.Segments, rr.Transcribed)
	require.Equal(t, rep.Words, rr.Words)
	require.Equal(t, rr.Segments, rr.Backend.Requests)
	require.LessOrEqual(t, rr.Backend.MaxInFlight, o.slots)
	require.Positive(t, rr.Backend.MaxInFlight)

	var out bytes.Buffer
	require.NoError(t, rep.print(&out, false))
	require.Contains(t, out.String(), "END → minutes ready")
}

func TestMeetingScript(t *testing.T) {
	t.Parallel()
	voices, err := loadVoices("../../testdata/meeting")
	require.NoError(t, err)
	require.Len(t, voices, 2)
	for _, v := range voices {
		require.Len(t, v.clips, 2)
		require.GreaterOrEqual(t, len(v.silence), 50, "a second of silence at least")
	}
	m := newMeeting(voices, 3, 2*time.Minute, 10*time.Second)
	require.NotEmpty(t, m.turns)
	// Turns follow one another, speakers in order, all inside the meeting.
	for i, tr := range m.turns {
		require.Equal(t, i%3, tr.speaker)
		if i > 0 {
			prev := m.turns[i-1]
			require.Equal(t, prev.start+len(prev.para.packets), tr.start)
		}
		require.LessOrEqual(t, tr.start+len(tr.para.packets), m.ticks)
	}
	// Only the speaker whose turn it is speaks; the others send silence,
	// or with DTX one packet per 400 ms.
	tr := m.turns[1]
	at := tr.start + ticksOf(200*time.Millisecond)
	require.NotNil(t, m.packet(tr.speaker, at, 1, false))
	other := (tr.speaker + 1) % 3
	require.Contains(t, voices[other%2].silence, m.packet(other, at, 1, false))
	sent := 0
	for tk := tr.start; tk < tr.start+dtxEvery*5; tk++ {
		if m.packet(other, tk, 1, true) != nil {
			sent++
		}
	}
	require.Equal(t, 5, sent)
}
