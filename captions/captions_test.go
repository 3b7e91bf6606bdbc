package captions

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/transcribe"
	"github.com/greffier/greffier/transcribe/kyutaitest"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

func setup(t *testing.T) (*Hub, *Captioner, *kyutaitest.Server) {
	t.Helper()
	srv := kyutaitest.NewServer(kyutaitest.Options{})
	t.Cleanup(srv.Close)
	k, err := transcribe.NewKyutai(transcribe.KyutaiConfig{URL: srv.URL()})
	require.NoError(t, err)
	hub := NewHub()
	return hub, NewCaptioner(hub, Kyutai{k}, slog.New(slog.NewTextHandler(io.Discard, nil))), srv
}

// speech is alice's fixture sentence as 16 kHz tone speech, in 20 ms frames.
func speech(t *testing.T) [][]int16 {
	t.Helper()
	script, err := transcribetest.ReadScript(filepath.Join("..", "testdata", "meeting", "script.json"))
	require.NoError(t, err)
	pcm, err := transcribetest.Synthesize(script.Words("alice")[:4], 16000)
	require.NoError(t, err)
	pcm = append(pcm, make([]int16, 16000)...)
	var frames [][]int16
	for i := 0; i+320 <= len(pcm); i += 320 {
		frames = append(frames, pcm[i:i+320])
	}
	return frames
}

func TestCaptionsOnlyWhenEnabled(t *testing.T) {
	t.Parallel()
	hub, c, srv := setup(t)
	sub := hub.Subscribe("m1")
	defer sub.Close()

	off := c.Open(Track{MeetingID: "m1", Speaker: "alice", Name: "Alice", StartMS: 1000})
	for _, f := range speech(t) {
		off.Frame(f)
	}
	off.Close()
	require.Zero(t, srv.Handshakes(), "captions off: the backend is not even asked")
	require.Empty(t, sub.C)

	hub.SetEnabled("m1", true)
	on := c.Open(Track{MeetingID: "m1", Speaker: "alice", Name: "Alice", StartMS: 1000,
		ClockZero: time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)})
	for _, f := range speech(t) {
		on.Frame(f)
	}
	on.Close()
	var finals []Caption
	for len(sub.C) > 0 {
		if c := <-sub.C; c.Final {
			finals = append(finals, c)
		}
	}
	require.Len(t, finals, 4)
	require.Equal(t, "alpha", finals[0].Text)
	require.Equal(t, "Alice", finals[0].Name)
	// alpha starts 1.0 s into alice's audio, which starts 1 s into the meeting.
	require.InDelta(t, 2000, finals[0].StartMS, 100)
	require.Equal(t, time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC).Add(time.Duration(finals[0].StartMS)*time.Millisecond), finals[0].At)
	require.Greater(t, finals[1].Seq, finals[0].Seq)
}

func TestSlowSubscriberIsDroppedNotTheMeeting(t *testing.T) {
	t.Parallel()
	hub := NewHub()
	slow := hub.Subscribe("m1")
	fast := hub.Subscribe("m1")
	for range subscriberQueue + 10 {
		hub.publish(Caption{MeetingID: "m1", Text: "w"})
		<-fast.C // keeps up: one read per caption
	}
	select {
	case <-slow.Done():
	default:
		t.Fatal("a subscriber that never reads is dropped")
	}
	select {
	case <-fast.Done():
		t.Fatal("a subscriber that keeps up stays")
	default:
	}
	hub.Forget("m1")
	<-fast.Done()
}
