package main

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/minutes"
	"github.com/greffier/greffier/sfu/sfutest"
)

// TestMeetingThatKeepsOnlyItsWords: a meeting created with
// "keep_audio": false is transcribed live and keeps only the words, on
// SQLite with disk and on Postgres with S3. Once its minutes are ready
// they hold what alice said, and neither the bucket (or disk) nor the
// spool holds any audio of the meeting: no track, no speech segment, no
// archive; the audio routes and a re-run say why, clearly.
func TestMeetingThatKeepsOnlyItsWords(t *testing.T) {
	t.Parallel()
	for name, scaleOut := range map[string]bool{"sqlite+disk": false, "postgres+s3": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testWordsOnly(t, setup(t, setupOptions{scaleOut: scaleOut}))
		})
	}
}

func testWordsOnly(t *testing.T, b *testBundle) {
	ctx := context.Background()
	var refused struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	require.Equal(t, http.StatusBadRequest, b.call(t, "POST", "/v1/meetings", map[string]any{
		"keep_audio": false, "transcription": false}, &refused))
	require.Equal(t, "bad_keep_audio", refused.Error.Code, "only the words, but no words: refused")

	var m meetingAnswer
	var created struct {
		KeepAudio *bool `json:"keep_audio"`
	}
	body := map[string]any{"title": "Huis clos", "keep_audio": false,
		"participants": []map[string]any{{"identity": "alice", "display_name": "Alice Martin"}}}
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", body, &m))
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &created))
	require.NotNil(t, created.KeepAudio)
	require.False(t, *created.KeepAudio)

	p, err := sfutest.Publish(ctx, sfutest.PublishOptions{WHIPURL: b.url + "/v1/whip", Token: m.Join[0].Token,
		OggPath: filepath.Join(fixtures, "alice.opus")})
	require.NoError(t, err)
	select {
	case <-p.Done():
	case <-time.After(40 * time.Second):
		t.Fatal("publisher did not finish sending its file")
	}
	require.NoError(t, p.Close(ctx))
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, nil))
	now := finished(t, b, m.ID)
	require.Equal(t, "ready", now.State, "pipeline: %+v", now.Pipeline)

	var doc minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &doc))
	require.True(t, doc.Complete, "missing: %+v", doc.Missing)
	var said []string
	for _, turn := range doc.Turns {
		require.Equal(t, "alice", turn.Speaker)
		said = append(said, turn.Text)
	}
	require.Equal(t, []string{"alpha bravo charlie delta", "india juliett kilo"}, said)

	// The minutes are ready: every object of the meeting is of them.
	objects, err := b.app.blobs.List(ctx, "")
	require.NoError(t, err)
	require.NotEmpty(t, objects)
	for _, o := range objects {
		require.True(t, strings.HasPrefix(o.Key, layout.MinutesPrefix(m.ID)), "object %s is not the minutes: no audio is kept", o.Key)
	}
	tracks, err := b.app.store.Tracks(ctx, m.ID)
	require.NoError(t, err)
	require.Len(t, tracks, 1)
	require.Empty(t, tracks[0].BlobKey, "the track row names no stored audio")
	var spooled []string
	require.NoError(t, filepath.WalkDir(filepath.Join(b.cfg.DataDir, "spool"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			spooled = append(spooled, p)
		}
		return err
	}))
	require.Empty(t, spooled, "the spool is emptied when the track closes")

	for _, path := range []string{"/tracks/" + tracks[0].ID + ".webm", "/archive.webm", "/mix.flac", "/speakers/alice.flac"} {
		refused.Error.Code = ""
		require.Equal(t, http.StatusConflict, b.call(t, "GET", "/v1/meetings/"+m.ID+path, nil, &refused), path)
		require.Equal(t, "audio_not_kept", refused.Error.Code, path)
		require.Contains(t, refused.Error.Message, "never stored", path)
	}
	refused.Error.Code = ""
	require.Equal(t, http.StatusConflict, b.call(t, "POST", "/v1/meetings/"+m.ID+"/rerun", nil, &refused))
	require.Equal(t, "audio_not_kept", refused.Error.Code)
	require.Contains(t, refused.Error.Message, "cannot be made again")
}

func TestCommandLineCreatesAMeetingThatKeepsOnlyItsWords(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	env := cliEnv{"GREFFIER_URL": b.url, "GREFFIER_API_KEY": b.token}
	var created struct {
		ID        string `json:"id"`
		KeepAudio bool   `json:"keep_audio"`
	}
	out := env.must(t, "meeting", "create", "--title", "Huis clos", "--keep-audio=false", "--json")
	require.NoError(t, json.Unmarshal([]byte(out), &created), out)
	require.NotEmpty(t, created.ID)
	require.False(t, created.KeepAudio)
	out = env.must(t, "meeting", "create", "--title", "Conseil", "--json")
	require.NoError(t, json.Unmarshal([]byte(out), &created), out)
	require.True(t, created.KeepAudio, "audio is kept by default")
	_, err := env.run(t, "meeting", "create", "--keep-audio=false", "--transcription=false")
	require.ErrorContains(t, err, "needs transcription on")
}
