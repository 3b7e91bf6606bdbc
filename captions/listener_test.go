package captions

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/audio"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

// fixturePackets returns alice's fixture as the recorder writes it: Opus
// packets at their times on the track's clock.
func fixturePackets(t *testing.T) []audio.TimedPacket {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatal("ffmpeg is needed: run scripts/test.sh, which installs it")
	}
	webm := filepath.Join(t.TempDir(), "alice.webm")
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", filepath.Join("..", "testdata", "meeting", "alice.opus"),
		"-c", "copy", webm).CombinedOutput()
	require.NoError(t, err, string(out))
	f, err := os.Open(webm)
	require.NoError(t, err)
	defer f.Close()
	var ps []audio.TimedPacket
	_, err = audio.ReadWebMPackets(context.Background(), f, func(ms int64, p []byte) error {
		ps = append(ps, audio.TimedPacket{MS: ms, Data: append([]byte(nil), p...)})
		return nil
	})
	require.NoError(t, err)
	return ps
}

// A track's captions come from the packets the recorder writes, decoded
// on the way: every word its speaker says, at its place on the meeting
// clock.
func TestAListenerCaptionsATrackFromItsRecordedPackets(t *testing.T) {
	t.Parallel()
	hub, c, _ := setup(t)
	hub.SetEnabled("m1", true)
	sub := hub.Subscribe("m1")
	defer sub.Close()
	script, err := transcribetest.ReadScript(filepath.Join("..", "testdata", "meeting", "script.json"))
	require.NoError(t, err)

	l := c.Listen(Track{MeetingID: "m1", Speaker: "alice", Name: "Alice Martin", StartMS: 700}, 0)
	for _, p := range fixturePackets(t) {
		l.Block(p.MS, p.Data, -1)
	}
	l.Close(true)
	l.Close(true) // a second Close does nothing

	finals := map[string]Caption{}
	for len(sub.C) > 0 {
		if c := <-sub.C; c.Final {
			finals[c.Text] = c
		}
	}
	words := script.Words("alice")
	require.Len(t, finals, len(words), "got %v", finals)
	for _, w := range words {
		c, ok := finals[w.Text]
		require.True(t, ok, "no caption for %q", w.Text)
		require.Equal(t, "Alice Martin", c.Name)
		require.InDelta(t, 700+w.Start.Milliseconds(), c.StartMS, 300, "%q", w.Text)
	}
}
