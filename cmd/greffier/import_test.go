package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/diarize/diarizetest"
	"github.com/greffier/greffier/minutes"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

type uploadAnswer struct {
	ID       string `json:"id"`
	Size     int64  `json:"size"`
	Offset   int64  `json:"offset"`
	Complete bool   `json:"complete"`
	Format   string `json:"format"`
	Error    struct{ Code, Message string }
}

// patchUpload sends body at offset, and returns the status and answer.
func (b *testBundle) patchUpload(t *testing.T, id string, offset int64, body io.Reader) (int, uploadAnswer, error) {
	t.Helper()
	req, err := http.NewRequest("PATCH", b.url+"/v1/imports/"+id, body)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+b.token)
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, uploadAnswer{}, err
	}
	defer resp.Body.Close()
	var a uploadAnswer
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&a))
	return resp.StatusCode, a, nil
}

// headUpload asks how many bytes of an upload arrived (-1: no such upload).
func (b *testBundle) headUpload(t *testing.T, id string) int64 {
	t.Helper()
	req, err := http.NewRequest("HEAD", b.url+"/v1/imports/"+id, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+b.token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return -1
	}
	require.Equal(t, http.StatusOK, resp.StatusCode)
	n, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	require.NoError(t, err)
	return n
}

// uploadResumed uploads data as a client on a bad line would: its first
// request breaks off part-way, it asks the offset and sends the rest. It
// returns the last answer.
func (b *testBundle) uploadResumed(t *testing.T, data []byte) (int, uploadAnswer) {
	t.Helper()
	var created uploadAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/imports", map[string]any{"size": len(data)}, &created))
	require.Zero(t, created.Offset)
	cut := len(data) * 2 / 5
	_, _, err := b.patchUpload(t, created.ID, 0, io.MultiReader(bytes.NewReader(data[:cut]), iotest.ErrReader(errors.New("line dropped"))))
	require.Error(t, err, "the first request breaks off")
	var offset int64
	require.Eventually(t, func() bool {
		offset = b.headUpload(t, created.ID)
		return offset > 0
	}, 10*time.Second, 20*time.Millisecond, "what arrived before the break is kept")
	require.LessOrEqual(t, offset, int64(cut))
	// The server may still be finishing the broken request: a client
	// asks again until it is done.
	var (
		status int
		a      uploadAnswer
	)
	require.Eventually(t, func() bool {
		offset = b.headUpload(t, created.ID)
		var err error
		status, a, err = b.patchUpload(t, created.ID, offset, bytes.NewReader(data[offset:]))
		require.NoError(t, err)
		return status != http.StatusConflict
	}, 20*time.Second, 50*time.Millisecond)
	return status, a
}

// webmOf remuxes an Ogg Opus file to WebM with ffmpeg, as another tool
// would have written it.
func webmOf(t *testing.T, ogg string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "x.webm")
	msg, err := exec.Command("ffmpeg", "-loglevel", "error", "-i", ogg, "-c:a", "copy", out).CombinedOutput()
	require.NoError(t, err, "ffmpeg: %s", msg)
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	return b
}

func TestImportedSpeakersBecomeMinutes(t *testing.T) {
	t.Parallel()
	for name, scaleOut := range map[string]bool{"sqlite+disk": false, "postgres+s3": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOptions{scaleOut: scaleOut})
			script, err := transcribetest.ReadScript(filepath.Join(fixtures, "script.json"))
			require.NoError(t, err)
			// alice's file as Ogg Opus over a line that breaks; bob's as WebM.
			alice, err := os.ReadFile(filepath.Join(fixtures, "alice.opus"))
			require.NoError(t, err)
			status, up := b.uploadResumed(t, alice)
			require.Equal(t, http.StatusOK, status, "%+v", up)
			require.True(t, up.Complete)
			require.Equal(t, "ogg", up.Format)
			require.Equal(t, int64(len(alice)), up.Offset, "the resumed upload is the whole file")
			bob := webmOf(t, filepath.Join(fixtures, "bob.opus"))
			status, up2 := b.uploadResumed(t, bob)
			require.Equal(t, http.StatusOK, status, "%+v", up2)
			require.Equal(t, "webm", up2.Format)

			var m meetingAnswer
			require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/import", map[string]any{
				"title": "Conseil (enregistré)",
				"speakers": []map[string]any{
					{"upload": up.ID, "identity": "alice", "display_name": "Alice Martin"},
					{"upload": up2.ID, "identity": "bob", "display_name": "Bob Durand"},
				},
			}, &m))
			require.Equal(t, "importing", m.State, "the request records the import; a job reads the files")
			require.Equal(t, int64(-1), b.headUpload(t, up.ID), "an import takes its uploads: nobody may change them")

			now := b.waitFinished(t, m.ID)
			require.Equal(t, "ready", now.State, "%+v", now.Pipeline)
			require.NotNil(t, now.Import)
			require.Equal(t, 2, now.Import.Files)
			require.Equal(t, 2, now.Import.FilesDone)
			left, err := os.ReadDir(filepath.Join(b.cfg.DataDir, "imports"))
			require.NoError(t, err)
			require.Empty(t, left, "an import uses its uploads up")
			var doc minutes.Document
			require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &doc))
			require.True(t, doc.Complete)
			names := map[string]string{"alice": "Alice Martin", "bob": "Bob Durand"}
			require.Len(t, doc.Turns, len(script.Utterances), "%+v", doc.Turns)
			for i, u := range script.Utterances {
				turn := doc.Turns[i]
				require.Equal(t, u.Speaker, turn.Speaker, "turn %d", i)
				require.Equal(t, names[u.Speaker], turn.Name, "turn %d", i)
				require.Equal(t, u.Text, turn.Text, "turn %d", i)
				// Both files start at the meeting's zero.
				require.InDelta(t, u.Start, float64(turn.Start.MS())/1000, 0.3, "turn %d start", i)
			}
		})
	}
}

func TestImportedMixedRecordingIsToldApart(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{diarize: &diarizetest.Options{}})
	room, err := os.ReadFile(roomFixture(t))
	require.NoError(t, err)
	status, up := b.uploadResumed(t, room)
	require.Equal(t, http.StatusOK, status, "%+v", up)
	var m meetingAnswer
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/import", map[string]any{
		"mixed": map[string]any{"upload": up.ID, "display_name": "Salle du conseil"},
	}, &m))
	now := b.waitFinished(t, m.ID)
	require.Equal(t, "ready", now.State, "%+v", now.Pipeline)
	var doc minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &doc))
	require.Len(t, doc.Turns, 3, "%+v", doc.Turns)
	owner, guest := doc.Turns[0], doc.Turns[1]
	require.Equal(t, "alpha alpha alpha", owner.Text)
	require.Equal(t, "Salle du conseil", owner.Name)
	require.Equal(t, "golf golf", guest.Text)
	require.Equal(t, "Salle du conseil (2)", guest.Name)
	require.NotEqual(t, owner.Speaker, guest.Speaker)
	require.InDelta(t, 3.5, float64(guest.Start.MS())/1000, 0.3)
}

func TestUnreadableImportLeavesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	ctx := context.Background()
	bob, err := os.ReadFile(filepath.Join(fixtures, "bob.opus"))
	require.NoError(t, err)
	damaged := bytes.Clone(bob)
	for i := 300; i < len(damaged); i += 101 {
		damaged[i] ^= 0x5a
	}
	wav := transcribetest.EncodeWAV(make([]int16, 16000), 16000)
	// What the first bytes tell is refused at once.
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"wav without an encoder", wav},
		{"not audio", []byte("this is a text file, not a recording")},
	} {
		status, a := b.uploadResumed(t, c.data)
		require.Equal(t, http.StatusUnsupportedMediaType, status, "%s: %+v", c.name, a)
		require.Equal(t, "unsupported_format", a.Error.Code, c.name)
		require.NotEmpty(t, a.Error.Message, c.name)
	}
	// What only reading the whole file tells fails the import: the
	// meeting says which file and why, and nothing else of it stays.
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"damaged ogg", damaged},
		{"cut-short ogg", bob[:len(bob)/3]},
	} {
		status, a := b.uploadResumed(t, c.data)
		require.Equal(t, http.StatusOK, status, "%s: %+v", c.name, a)
		good, err := os.ReadFile(filepath.Join(fixtures, "alice.opus"))
		require.NoError(t, err)
		status, g := b.uploadResumed(t, good)
		require.Equal(t, http.StatusOK, status, "%+v", g)
		var m meetingAnswer
		require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/import", map[string]any{
			"speakers": []map[string]any{{"upload": g.ID, "identity": "alice"}, {"upload": a.ID, "identity": "bob"}}}, &m), c.name)
		now := b.waitFinished(t, m.ID)
		require.Equal(t, "failed", now.State, c.name)
		require.Contains(t, now.Failure, "file 1 (bob)", c.name)
		require.Contains(t, now.Failure, "unreadable audio", c.name)
		var refused struct{ Error struct{ Code string } }
		require.Equal(t, http.StatusConflict, b.call(t, "POST", "/v1/meetings/"+m.ID+"/rerun", nil, &refused), c.name)
		require.Equal(t, "import_failed", refused.Error.Code, "a failed import has nothing to run again")
	}
	// Nothing stays: no upload, no object, no temporary file; the failed
	// meetings say what happened, and nothing more.
	left, err := os.ReadDir(filepath.Join(b.cfg.DataDir, "imports"))
	require.NoError(t, err)
	require.Empty(t, left)
	objects, err := b.app.blobs.List(ctx, "")
	require.NoError(t, err)
	require.Empty(t, objects)
	temps, err := filepath.Glob(filepath.Join(b.cfg.DataDir, "spool", "import-*"))
	require.NoError(t, err)
	require.Empty(t, temps)
	var list struct{ Meetings []meetingAnswer }
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings", nil, &list))
	require.Len(t, list.Meetings, 2)

	// An import naming an upload that is not there changes nothing.
	var refused struct{ Error struct{ Code string } }
	require.Equal(t, http.StatusBadRequest, b.call(t, "POST", "/v1/meetings/import", map[string]any{
		"speakers": []map[string]any{{"upload": "upl_00000000000000000000000000000000", "identity": "x"}}}, &refused))
	require.Equal(t, "bad_upload", refused.Error.Code)
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings", nil, &list))
	require.Len(t, list.Meetings, 2)
}

// toneSpeech writes tone speech (words the transcription double reads)
// starting at start, with a second of silence after, as a 48 kHz WAV.
func toneSpeech(t *testing.T, start time.Duration, words ...string) []byte {
	t.Helper()
	pcm, err := transcribetest.Synthesize(transcribetest.Layout(start, words...), 48000)
	require.NoError(t, err)
	pcm = append(pcm, make([]int16, 48000)...)
	return transcribetest.EncodeWAV(pcm, 48000)
}

func TestImportedWAVAndFLACAreEncoded(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{configure: func(c *Config) { c.ImportOpusEnc = "opusenc" }})
	wav := toneSpeech(t, time.Second, "alpha", "alpha")
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bob.wav"), toneSpeech(t, 3*time.Second, "golf", "golf"), 0o600))
	msg, err := exec.Command("ffmpeg", "-loglevel", "error", "-i", filepath.Join(dir, "bob.wav"), filepath.Join(dir, "bob.flac")).CombinedOutput()
	require.NoError(t, err, "ffmpeg: %s", msg)
	flac, err := os.ReadFile(filepath.Join(dir, "bob.flac"))
	require.NoError(t, err)

	status, upA := b.uploadResumed(t, wav)
	require.Equal(t, http.StatusOK, status, "%+v", upA)
	require.Equal(t, "wav", upA.Format)
	status, upB := b.uploadResumed(t, flac)
	require.Equal(t, http.StatusOK, status, "%+v", upB)
	require.Equal(t, "flac", upB.Format)

	var m meetingAnswer
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/import", map[string]any{
		"speakers": []map[string]any{
			{"upload": upA.ID, "identity": "alice"},
			{"upload": upB.ID, "identity": "bob"},
		},
	}, &m))
	now := b.waitFinished(t, m.ID)
	require.Equal(t, "ready", now.State, "%+v", now.Pipeline)
	var doc minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &doc))
	require.Len(t, doc.Turns, 2, "%+v", doc.Turns)
	require.Equal(t, "alice", doc.Turns[0].Speaker)
	require.Equal(t, "alpha alpha", doc.Turns[0].Text)
	require.InDelta(t, 1, float64(doc.Turns[0].Start.MS())/1000, 0.3)
	require.Equal(t, "bob", doc.Turns[1].Speaker)
	require.Equal(t, "golf golf", doc.Turns[1].Text)
	require.InDelta(t, 3, float64(doc.Turns[1].Start.MS())/1000, 0.3)

	// A WAV the encoder cannot read fails its import, saying so.
	status, bad := b.uploadResumed(t, append([]byte("RIFF\x24\x00\x00\x00WAVEjunk"), make([]byte, 5000)...))
	require.Equal(t, http.StatusOK, status, "%+v", bad)
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/import", map[string]any{
		"speakers": []map[string]any{{"upload": bad.ID, "identity": "carol"}}}, &m))
	now = b.waitFinished(t, m.ID)
	require.Equal(t, "failed", now.State)
	require.Contains(t, now.Failure, "file 0 (carol)")
	require.Contains(t, now.Failure, "unreadable audio")
}

// waitFinished waits for a meeting to leave importing and ended, and
// returns it.
func (b *testBundle) waitFinished(t *testing.T, id string) meetingAnswer {
	t.Helper()
	var now meetingAnswer
	require.Eventually(t, func() bool {
		now = meetingAnswer{}
		b.call(t, "GET", "/v1/meetings/"+id, nil, &now)
		return now.State == "ready" || now.State == "failed" || now.State == "incomplete"
	}, 90*time.Second, 100*time.Millisecond)
	return now
}

// TestFaultKillMidImportFinishesAfterRestart kills the server (SIGKILL)
// while its import job is encoding a file: after the restart the job runs
// again and the meeting gets its minutes, with nothing of the first
// attempt left behind.
func TestFaultKillMidImportFinishesAfterRestart(t *testing.T) {
	t.Parallel()
	bin := buildServe(t)
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			// An encoder that hangs the first time (until the test says
			// go, then fails: it was orphaned by the kill) and works after.
			dir := t.TempDir()
			enc := filepath.Join(dir, "opusenc")
			require.NoError(t, os.WriteFile(enc, []byte(`#!/bin/sh
if [ -e "`+dir+`/go" ]; then exec opusenc "$@"; fi
touch "`+dir+`/started"
while [ ! -e "`+dir+`/go" ]; do sleep 0.05; done
exit 1
`), 0o700))
			double := transcribetest.NewServer(transcribetest.Options{})
			t.Cleanup(double.Close)
			c, b, _ := startKillable(t, bin, dialect, double, "GREFFIER_IMPORT_OPUSENC="+enc)

			status, up := b.uploadResumed(t, toneSpeech(t, time.Second, "alpha", "alpha"))
			require.Equal(t, http.StatusOK, status, "%+v", up)
			var m meetingAnswer
			require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/import", map[string]any{
				"speakers": []map[string]any{{"upload": up.ID, "identity": "alice"}}}, &m))
			require.Eventually(t, func() bool {
				_, err := os.Stat(filepath.Join(dir, "started"))
				return err == nil
			}, 30*time.Second, 20*time.Millisecond, "the import job is encoding")
			var now meetingAnswer
			require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &now))
			require.Equal(t, "importing", now.State)
			require.NotNil(t, now.Import)
			require.Equal(t, 1, now.Import.Files)
			require.Zero(t, now.Import.FilesDone)
			var refused struct{ Error struct{ Code string } }
			require.Equal(t, http.StatusConflict, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, &refused),
				"an import ends its meeting itself")
			require.Equal(t, "importing", refused.Error.Code)

			kill9(t, c)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "go"), nil, 0o600))
			startChild(t, c)

			now = b.waitFinished(t, m.ID)
			require.Equal(t, "ready", now.State, "failure %q, pipeline %+v", now.Failure, now.Pipeline)
			require.Equal(t, 1, now.Import.FilesDone)
			var doc minutes.Document
			require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &doc))
			require.Len(t, doc.Turns, 1, "%+v", doc.Turns)
			require.Equal(t, "alpha alpha", doc.Turns[0].Text)
			var tracks struct{ Tracks []struct{ ID string } }
			require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/tracks", nil, &tracks))
			require.Len(t, tracks.Tracks, 1, "one track, whatever the attempts")
			left, err := os.ReadDir(filepath.Join(c.dataDir, "imports"))
			require.NoError(t, err)
			require.Empty(t, left, "the upload is used up")
			temps, err := filepath.Glob(filepath.Join(c.dataDir, "spool", "import-*"))
			require.NoError(t, err)
			require.Empty(t, temps, "no temporary file of either attempt stays")
		})
	}
}

// TestAnUploadIsItsKeysAlone: an upload is seen, changed, used and
// deleted only with the key that created it; another key, archivist or
// admin, is told there is no such upload, and changes nothing.
func TestAnUploadIsItsKeysAlone(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	keyOf := func(role string) *testBundle {
		var k struct{ Key string }
		require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/keys", map[string]any{"name": role + "-uploads", "role": role}, &k))
		return &testBundle{url: b.url, token: k.Key, cfg: b.cfg, app: b.app}
	}
	owner, other := keyOf("archivist"), keyOf("archivist")
	alice, err := os.ReadFile(filepath.Join(fixtures, "alice.opus"))
	require.NoError(t, err)
	var up uploadAnswer
	require.Equal(t, http.StatusCreated, owner.call(t, "POST", "/v1/imports", map[string]any{"size": len(alice)}, &up))
	half := int64(len(alice) / 2)
	for _, k := range []*testBundle{other, b} {
		require.Equal(t, int64(-1), k.headUpload(t, up.ID), "HEAD with another key")
		status, a, err := k.patchUpload(t, up.ID, 0, bytes.NewReader(alice[:half]))
		require.NoError(t, err)
		require.Equal(t, http.StatusNotFound, status, "PATCH with another key: %+v", a)
		require.Equal(t, http.StatusNotFound, k.call(t, "DELETE", "/v1/imports/"+up.ID, nil, nil), "DELETE with another key")
	}
	require.Zero(t, owner.headUpload(t, up.ID), "nothing was written by the others")
	status, a, err := owner.patchUpload(t, up.ID, 0, bytes.NewReader(alice))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status, "%+v", a)
	require.True(t, a.Complete)
	var refused struct{ Error struct{ Code string } }
	require.Equal(t, http.StatusBadRequest, other.call(t, "POST", "/v1/meetings/import", map[string]any{
		"speakers": []map[string]any{{"upload": up.ID, "identity": "alice"}}}, &refused), "import with another key")
	require.Equal(t, "bad_upload", refused.Error.Code)
	var m meetingAnswer
	require.Equal(t, http.StatusAccepted, owner.call(t, "POST", "/v1/meetings/import", map[string]any{
		"speakers": []map[string]any{{"upload": up.ID, "identity": "alice"}}}, &m))
	require.Equal(t, "ready", owner.waitFinished(t, m.ID).State)
}

// TestARealMeetingsRecordingsAreImportedBack imports recordings a real
// meeting made: the fixtures sent over WebRTC at real pace, as Greffier
// recorded them, downloaded by an archivist (alice's voice on the
// meeting's timing as FLAC, bob's track as the recorder wrote it, WebM
// with its network timing) and imported as a new meeting, whose minutes
// say what the live meeting's say, when it said it.
func TestARealMeetingsRecordingsAreImportedBack(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{configure: func(c *Config) { c.ImportOpusEnc = "opusenc" }})
	names := map[string]string{"alice": "Alice Martin", "bob": "Bob Durand"}
	mt, now := b.holdMeeting(t, names, holdOptions{})
	require.Equal(t, "ready", now.State, "pipeline: %+v", now.Pipeline)
	var live minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+mt.id+"/minutes", nil, &live))
	require.NotEmpty(t, live.Turns)

	var aliceFLAC string
	require.Eventually(t, func() bool {
		return b.call(t, "GET", "/v1/meetings/"+mt.id+"/speakers/alice.flac", nil, &aliceFLAC) == http.StatusOK
	}, 60*time.Second, 100*time.Millisecond, "alice's audio is built after the minutes")
	var tracks struct {
		Tracks []struct {
			Identity string `json:"identity"`
			StartMS  int64  `json:"start_ms"`
			URL      string `json:"url"`
		} `json:"tracks"`
	}
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+mt.id+"/tracks", nil, &tracks))
	var bobWebM string
	var bobStart float64
	for _, tr := range tracks.Tracks {
		if tr.Identity == "bob" {
			require.Empty(t, bobWebM, "bob published once: one track")
			require.Equal(t, http.StatusOK, b.call(t, "GET", tr.URL, nil, &bobWebM))
			bobStart = float64(tr.StartMS) / 1000
		}
	}
	require.NotEmpty(t, bobWebM)

	status, upA := b.uploadResumed(t, []byte(aliceFLAC))
	require.Equal(t, http.StatusOK, status, "%+v", upA)
	require.Equal(t, "flac", upA.Format)
	status, upB := b.uploadResumed(t, []byte(bobWebM))
	require.Equal(t, http.StatusOK, status, "%+v", upB)
	require.Equal(t, "webm", upB.Format)
	var m meetingAnswer
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/import", map[string]any{
		"title": "Conseil municipal (réimporté)",
		"speakers": []map[string]any{
			{"upload": upA.ID, "identity": "alice", "display_name": names["alice"]},
			{"upload": upB.ID, "identity": "bob", "display_name": names["bob"]},
		},
	}, &m))
	imported := b.waitFinished(t, m.ID)
	require.Equal(t, "ready", imported.State, "failure %q, pipeline %+v", imported.Failure, imported.Pipeline)
	var doc minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &doc))
	require.True(t, doc.Complete)

	// Each speaker says the same, in the same order; alice's file is on
	// the meeting's clock, bob's starts when his track did.
	bySpeaker := func(d minutes.Document) map[string][]minutes.Turn {
		out := map[string][]minutes.Turn{}
		for _, turn := range d.Turns {
			out[turn.Speaker] = append(out[turn.Speaker], turn)
		}
		return out
	}
	want, got := bySpeaker(live), bySpeaker(doc)
	require.Len(t, got, 2)
	shift := map[string]float64{"alice": 0, "bob": bobStart}
	for who, turns := range want {
		require.Len(t, got[who], len(turns), "%s: %+v", who, got[who])
		for i, turn := range turns {
			g := got[who][i]
			require.Equal(t, turn.Text, g.Text, "%s's turn %d", who, i)
			require.Equal(t, names[who], g.Name)
			require.InDelta(t, float64(turn.Start.MS())/1000-shift[who], float64(g.Start.MS())/1000, 0.3, "%s's turn %d start", who, i)
		}
	}
}

// TestAHostsImportIsItsOwnMeeting: a host's imported meeting is one it
// created: it lists it, reads its minutes and may end or delete nothing
// else; another host, without all_meetings, is told it does not exist.
func TestAHostsImportIsItsOwnMeeting(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	keyOf := func(name string) *testBundle {
		var k struct{ Key string }
		require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/keys", map[string]any{"name": name, "role": "host"}, &k))
		return &testBundle{url: b.url, token: k.Key, cfg: b.cfg, app: b.app}
	}
	host, other := keyOf("Hélène"), keyOf("Paul")
	alice, err := os.ReadFile(filepath.Join(fixtures, "alice.opus"))
	require.NoError(t, err)
	status, up := host.uploadResumed(t, alice)
	require.Equal(t, http.StatusOK, status, "%+v", up)
	var m meetingAnswer
	require.Equal(t, http.StatusAccepted, host.call(t, "POST", "/v1/meetings/import", map[string]any{
		"speakers": []map[string]any{{"upload": up.ID, "identity": "alice"}}}, &m))
	require.Equal(t, "ready", host.waitFinished(t, m.ID).State)

	var list struct{ Meetings []meetingAnswer }
	require.Equal(t, http.StatusOK, host.call(t, "GET", "/v1/meetings", nil, &list))
	require.Len(t, list.Meetings, 1)
	require.Equal(t, m.ID, list.Meetings[0].ID, "the host lists its import")
	require.Equal(t, http.StatusOK, host.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, nil))

	require.Equal(t, http.StatusOK, other.call(t, "GET", "/v1/meetings", nil, &list))
	require.Empty(t, list.Meetings, "another host does not see it")
	for _, path := range []string{"", "/minutes", "/participants"} {
		require.Equal(t, http.StatusNotFound, other.call(t, "GET", "/v1/meetings/"+m.ID+path, nil, nil), path)
	}
	require.Equal(t, http.StatusNotFound, other.call(t, "POST", "/v1/meetings/"+m.ID+"/rerun", nil, nil))
}
