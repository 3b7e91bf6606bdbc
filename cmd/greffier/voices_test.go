package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/diarize/diarizetest"
	"github.com/greffier/greffier/minutes"
	"github.com/greffier/greffier/sfu/sfutest"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

// roomFixture is two people at one microphone: the owner says "alpha"
// (a 300 Hz voice) at 1 s and 5.5 s, a guest says "golf" (900 Hz) at 3.5 s.
func roomFixture(t *testing.T) string {
	t.Helper()
	var words []transcribetest.TimedWord
	words = append(words, transcribetest.Layout(time.Second, "alpha", "alpha", "alpha")...)
	words = append(words, transcribetest.Layout(3500*time.Millisecond, "golf", "golf")...)
	words = append(words, transcribetest.Layout(5500*time.Millisecond, "alpha", "alpha")...)
	pcm, err := transcribetest.Synthesize(words, 48000)
	require.NoError(t, err)
	pcm = append(pcm, make([]int16, 48000)...)
	dir := t.TempDir()
	wav := filepath.Join(dir, "room.wav")
	require.NoError(t, os.WriteFile(wav, transcribetest.EncodeWAV(pcm, 48000), 0o600))
	out := filepath.Join(dir, "room.opus")
	msg, err := exec.Command("opusenc", "--quiet", "--bitrate", "32", "--framesize", "20", wav, out).CombinedOutput()
	require.NoError(t, err, "opusenc (opus-tools, installed by scripts/test.sh): %s", msg)
	return out
}

// A participant whose microphone several people share: the diarization
// backend tells their voices apart, and the minutes show each, named after
// the participant.
func TestSharedMicrophoneVoicesToldApart(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{diarize: &diarizetest.Options{}})
	ogg := roomFixture(t)

	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"participants": []map[string]any{{"identity": "room", "display_name": "Salle du conseil", "shared_microphone": true}},
	}, &m))
	ctx := context.Background()
	pub, err := sfutest.Publish(ctx, sfutest.PublishOptions{WHIPURL: b.url + "/v1/whip", Token: m.Join[0].Token, OggPath: ogg})
	require.NoError(t, err)
	<-pub.Done()
	require.NoError(t, pub.Close(ctx))
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, nil))
	var now meetingAnswer
	require.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &now)
		return now.State == "ready" || now.State == "failed"
	}, 60*time.Second, 100*time.Millisecond)
	require.Equal(t, "ready", now.State, "%+v", now.Pipeline)
	require.Empty(t, now.Pipeline.Failures)

	var doc minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &doc))
	require.Len(t, doc.Turns, 3, "%+v", doc.Turns)
	owner, guest := doc.Turns[0], doc.Turns[1]
	require.Equal(t, "alpha alpha alpha", owner.Text)
	require.Equal(t, "Salle du conseil", owner.Name, "the main voice is the participant")
	require.Equal(t, "golf golf", guest.Text)
	require.Equal(t, "Salle du conseil (2)", guest.Name)
	require.NotEqual(t, owner.Speaker, guest.Speaker)
	require.Equal(t, owner.Speaker, doc.Turns[2].Speaker, "the owner again")
	offset := pub.Started().Sub(*now.StartedAt).Seconds()
	require.InDelta(t, offset+3.5, float64(guest.Start.MS())/1000, 0.3)
}
