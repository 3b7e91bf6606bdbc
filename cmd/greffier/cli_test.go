package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/client"
	"github.com/greffier/greffier/sfu/sfutest"
)

// cliEnv runs the greffier command line against a server.
type cliEnv map[string]string

func (e cliEnv) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return e[k] }, &out, &errOut)
	return out.String(), err
}

// runBoth is run that also returns what the command wrote to standard
// error.
func (e cliEnv) runBoth(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return e[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

func (e cliEnv) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := e.run(t, args...)
	require.NoError(t, err, "greffier %s", strings.Join(args, " "))
	return out
}

// TestCommandLineAgainstARealServer drives a whole meeting with the
// command line alone (but for the publisher, which is a WebRTC client):
// create it, end it, list it, read its minutes in every format, search
// them, download its recordings (resuming a cut download) and re-run it,
// in text for people and JSON for scripts.
func TestCommandLineAgainstARealServer(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	env := cliEnv{"GREFFIER_URL": b.url, "GREFFIER_API_KEY": b.token}

	// No key, a wrong key, no server: each says what to do.
	_, err := cliEnv{"GREFFIER_URL": b.url}.run(t, "meetings")
	require.ErrorContains(t, err, "GREFFIER_API_KEY")
	_, err = cliEnv{"GREFFIER_URL": b.url, "GREFFIER_API_KEY": "wrong"}.run(t, "meetings")
	var apiErr *client.Error
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusUnauthorized, apiErr.Status)
	_, err = cliEnv{"GREFFIER_URL": "nope", "GREFFIER_API_KEY": "k"}.run(t, "meetings")
	require.ErrorContains(t, err, "GREFFIER_URL")

	// The key from a file, by flag or variable.
	keyFile := filepath.Join(t.TempDir(), "key")
	require.NoError(t, os.WriteFile(keyFile, []byte(b.token+"\n"), 0o600))
	require.Contains(t, cliEnv{"GREFFIER_URL": b.url}.must(t, "meetings", "--key-file", keyFile), "ID")
	require.Contains(t, cliEnv{"GREFFIER_URL": b.url, "GREFFIER_API_KEY_FILE": keyFile}.must(t, "meetings"), "ID")

	var created struct {
		ID    string `json:"id"`
		Title string `json:"title"`
		State string `json:"state"`
		Join  []struct {
			Identity string `json:"identity"`
			Token    string `json:"token"`
		} `json:"join"`
	}
	out := env.must(t, "meeting", "create", "--title", "Bureau", "--participant", "alice=Alice Martin", "--json")
	require.NoError(t, json.Unmarshal([]byte(out), &created), out)
	require.Equal(t, "created", created.State)
	require.Len(t, created.Join, 1)
	text := env.must(t, "meeting", "create", "--title", "Second", "--participant", "bob")
	require.Regexp(t, `^mtg_\S+\tcreated\tSecond\n  join bob: `+b.url+`/join/#token=\S+\n$`, text)

	ctx := context.Background()
	pub, err := sfutest.Publish(ctx, sfutest.PublishOptions{WHIPURL: b.url + "/v1/whip", Token: created.Join[0].Token,
		OggPath: filepath.Join(fixtures, "alice.opus")})
	require.NoError(t, err)
	select {
	case <-pub.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("publisher did not finish")
	}
	require.NoError(t, pub.Close(ctx))
	require.Regexp(t, `^`+created.ID+`\tended\tBureau\n$`, env.must(t, "meeting", "end", created.ID))
	require.Eventually(t, func() bool {
		var m meetingAnswer
		b.call(t, "GET", "/v1/meetings/"+created.ID, nil, &m)
		return m.State == "ready"
	}, 60*time.Second, 100*time.Millisecond)

	list := env.must(t, "meetings")
	require.Regexp(t, `(?m)^ID\s+STATE\s+CREATED\s+TITLE$`, list)
	require.Regexp(t, `(?m)^`+created.ID+`\s+ready\s+\S+ \S+\s+Bureau$`, list)
	var listed struct {
		Meetings []struct{ ID, State string }
	}
	require.NoError(t, json.Unmarshal([]byte(env.must(t, "meetings", "--json")), &listed))
	require.Len(t, listed.Meetings, 2)

	md := env.must(t, "minutes", created.ID)
	require.Contains(t, md, "# Bureau")
	require.Contains(t, md, "Alice Martin**: alpha bravo charlie delta")
	require.True(t, strings.HasPrefix(env.must(t, "minutes", created.ID, "--format", "vtt"), "WEBVTT\n"))
	require.Contains(t, env.must(t, "minutes", "--format", "srt", created.ID), "Alice Martin: alpha bravo charlie delta")
	require.Contains(t, env.must(t, "minutes", created.ID, "--format", "txt"), "alpha bravo charlie delta")
	var doc struct {
		Version int `json:"version"`
	}
	require.NoError(t, json.Unmarshal([]byte(env.must(t, "minutes", created.ID, "--json")), &doc))
	require.Equal(t, 1, doc.Version)
	_, err = env.run(t, "minutes", created.ID, "--format", "pdf")
	require.ErrorContains(t, err, "md, vtt, srt, txt or json")
	_, err = env.run(t, "minutes", "mtg_nonexistent")
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusNotFound, apiErr.Status)

	found := env.must(t, "search", "bravo", "charlie")
	require.Regexp(t, `^`+created.ID+`  Bureau  \S+  Alice Martin: alpha bravo charlie delta\n$`, found)
	require.Equal(t, "no results\n", env.must(t, "search", "zulu"))
	var hits struct {
		Hits []struct {
			MeetingID string `json:"meeting_id"`
		} `json:"hits"`
	}
	require.NoError(t, json.Unmarshal([]byte(env.must(t, "search", "delta", "--meeting", created.ID, "--json")), &hits))
	require.Len(t, hits.Hits, 1)

	t.Run("download", func(t *testing.T) { testDownload(t, b, env, created.ID) })

	var rerun struct{ State string }
	require.NoError(t, json.Unmarshal([]byte(env.must(t, "meeting", "rerun", created.ID, "--json")), &rerun))
	require.Equal(t, "ended", rerun.State)
	require.Eventually(t, func() bool {
		out, err := env.run(t, "meetings")
		return err == nil && strings.Contains(out, created.ID+"  ready")
	}, 60*time.Second, 100*time.Millisecond, "the re-run made its minutes again")
	_, err = env.run(t, "meeting", "frobnicate", created.ID)
	require.ErrorContains(t, err, "want create, end, rerun, record or transcribe")

	// API keys, against the server's own /v1/keys.
	var k apiKey
	require.NoError(t, json.Unmarshal([]byte(env.must(t, "keys", "create", "agent-cli", "--role", "agent", "--json")), &k))
	require.Equal(t, "agent", k.Role)
	require.NotEmpty(t, k.Key)
	require.Regexp(t, `(?m)^`+k.ID+`\s+agent-cli\s+agent\s`, env.must(t, "keys"))
	agent := cliEnv{"GREFFIER_URL": b.url, "GREFFIER_API_KEY": k.Key}
	require.Contains(t, agent.must(t, "search", "bravo"), "alpha bravo charlie delta", "an agent reads minutes")
	_, err = agent.run(t, "meeting", "create", "--title", "no")
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusForbidden, apiErr.Status)
	require.Equal(t, "key "+k.ID+" revoked\n", env.must(t, "keys", "revoke", k.ID))
	_, err = agent.run(t, "meetings")
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusUnauthorized, apiErr.Status)
}

// rangeRecorder is a proxy in front of the server that remembers the
// Range header of each request.
type rangeRecorder struct {
	mu     sync.Mutex
	ranges []string
}

func testDownload(t *testing.T, b *testBundle, env cliEnv, id string) {
	target, err := url.Parse(b.url)
	require.NoError(t, err)
	rec := &rangeRecorder{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.ranges = append(rec.ranges, r.Header.Get("Range"))
		rec.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	env = cliEnv{"GREFFIER_URL": srv.URL, "GREFFIER_API_KEY": env["GREFFIER_API_KEY"]}

	// The archive is made after the minutes.
	require.Eventually(t, func() bool {
		return b.call(t, "GET", "/v1/meetings/"+id+"/mix.flac", nil, new(string)) == http.StatusOK
	}, 60*time.Second, 100*time.Millisecond)

	dir := t.TempDir()
	var res struct {
		Files []struct {
			Path   string `json:"path"`
			Bytes  int64  `json:"bytes"`
			Status string `json:"status"`
		} `json:"files"`
	}
	require.NoError(t, json.Unmarshal([]byte(env.must(t, "download", id, "--dir", dir, "--json")), &res))
	require.Len(t, res.Files, 3, "alice's track, the archive and the mix")
	var track string
	for _, f := range res.Files {
		require.Equal(t, "downloaded", f.Status)
		fi, err := os.Stat(f.Path)
		require.NoError(t, err)
		require.Equal(t, f.Bytes, fi.Size())
		require.Positive(t, fi.Size())
		if strings.Contains(f.Path, "tracks") {
			track = f.Path
		}
	}
	want, err := os.ReadFile(track)
	require.NoError(t, err)
	var served string
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+id+"/tracks/"+strings.TrimSuffix(filepath.Base(track), ".webm")+".webm", nil, &served))
	require.Equal(t, served, string(want), "the track downloaded is the one served")

	// Again: nothing to do.
	require.Contains(t, env.must(t, "download", id, "tracks", "--dir", dir), "already downloaded")

	// A download cut halfway resumes where it stopped: only the rest is
	// asked for, and the file is whole.
	require.NoError(t, os.Remove(track))
	half := len(want) / 2
	require.NoError(t, os.WriteFile(track+".part", want[:half], 0o644))
	resp, err := (&client.Client{BaseURL: b.url, Key: b.token}).Request(context.Background(), http.MethodGet,
		"/v1/meetings/"+id+"/tracks/"+filepath.Base(track), nil, nil)
	require.NoError(t, err)
	etag := resp.Header.Get("ETag")
	resp.Body.Close()
	require.NotEmpty(t, etag)
	require.NoError(t, os.WriteFile(track+".part.etag", []byte(etag+"\n"), 0o600))
	rec.mu.Lock()
	rec.ranges = nil
	rec.mu.Unlock()
	out := env.must(t, "download", id, "tracks", "--dir", dir)
	require.Contains(t, out, fmt.Sprintf("%d bytes\tdownloaded", len(want)))
	got, err := os.ReadFile(track)
	require.NoError(t, err)
	require.Equal(t, want, got)
	rec.mu.Lock()
	require.Contains(t, rec.ranges, fmt.Sprintf("bytes=%d-", half))
	rec.mu.Unlock()
	_, err = os.Stat(track + ".part")
	require.ErrorIs(t, err, os.ErrNotExist)

	// A part of another version (its ETag differs) is fetched whole again.
	require.NoError(t, os.Remove(track))
	require.NoError(t, os.WriteFile(track+".part", []byte("stale bytes of an older object"), 0o644))
	require.NoError(t, os.WriteFile(track+".part.etag", []byte(`"0000"`), 0o600))
	env.must(t, "download", id, "tracks", "--dir", dir)
	got, err = os.ReadFile(track)
	require.NoError(t, err)
	require.Equal(t, want, got)

	_, err = env.run(t, "download", id, "slides")
	require.ErrorContains(t, err, "tracks, archive or mix")
}

// TestKeysCommandAgainstARealServer: `greffier keys` against a real
// server's /v1/keys: create with a role, all meetings and an expiry, list
// across pages (a proxy in front asks for pages of two), revoke, and the
// API's refusals as errors.
func TestKeysCommandAgainstARealServer(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	target, err := url.Parse(b.url)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var (
		mu    sync.Mutex
		pages []string // the query of each GET /v1/keys
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/v1/keys" {
			q := r.URL.Query()
			q.Set("limit", "2")
			r.URL.RawQuery = q.Encode()
			mu.Lock()
			pages = append(pages, r.URL.RawQuery)
			mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	env := cliEnv{"GREFFIER_URL": srv.URL, "GREFFIER_API_KEY": b.token}

	out := env.must(t, "keys", "create", "archive-bot", "--role", "archivist", "--expires", "2099-01-31T00:00:00Z")
	require.Regexp(t, `^key key_\S+ \(archive-bot, role archivist\) created; its secret, shown only now:\n\S+\n$`, out)
	var host apiKey
	require.NoError(t, json.Unmarshal([]byte(env.must(t, "keys", "create", "host-1", "--role", "host", "--all-meetings", "--json")), &host))
	require.Equal(t, "host", host.Role)
	require.True(t, host.AllMeetings)
	require.Nil(t, host.ExpiresAt)
	require.NotEmpty(t, host.Key)
	env.must(t, "keys", "create", "agent-1", "--role", "agent", "--expires", "720h")
	// The secret shown at creation is a working key.
	hostEnv := cliEnv{"GREFFIER_URL": b.url, "GREFFIER_API_KEY": host.Key}
	require.Contains(t, hostEnv.must(t, "meetings"), "ID")

	mu.Lock()
	pages = nil
	mu.Unlock()
	list := env.must(t, "keys")
	require.Regexp(t, `(?m)^ID\s+NAME\s+ROLE\s+ALL MEETINGS\s+CREATED\s+EXPIRES\s+LAST USED$`, list)
	for _, want := range []string{`key_\S+\s+archive-bot\s+archivist\s+false\s+\S+ \S+\s+2099-01-3`,
		host.ID + `\s+host-1\s+host\s+true\s+\S+ \S+\s+never\s+\S+ \S+`, `key_\S+\s+agent-1\s+agent\s+false`} {
		require.Regexp(t, `(?m)^`+want, list)
	}
	mu.Lock()
	require.Len(t, pages, 2, "the list follows next_cursor: %v", pages)
	require.Equal(t, "limit=2", pages[0])
	require.Contains(t, pages[1], "cursor=")
	mu.Unlock()
	var all struct{ Keys []apiKey }
	require.NoError(t, json.Unmarshal([]byte(env.must(t, "keys", "--json")), &all))
	require.Len(t, all.Keys, 3)
	for _, k := range all.Keys {
		require.Empty(t, k.Key, "a listed key has no secret")
		switch k.Name {
		case "archive-bot":
			require.Equal(t, time.Date(2099, 1, 31, 0, 0, 0, 0, time.UTC), k.ExpiresAt.UTC())
		case "agent-1":
			require.WithinDuration(t, time.Now().Add(720*time.Hour), *k.ExpiresAt, time.Minute)
		}
	}

	require.Equal(t, "key "+host.ID+" revoked\n", env.must(t, "keys", "revoke", host.ID))
	_, err = hostEnv.run(t, "meetings")
	var apiErr *client.Error
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusUnauthorized, apiErr.Status, "a revoked key")
	_, err = env.run(t, "keys", "revoke", host.ID)
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusNotFound, apiErr.Status)
	_, err = env.run(t, "keys", "create", "x", "--role", "owner")
	require.ErrorContains(t, err, "use admin, host, archivist or agent")
	_, err = env.run(t, "keys", "create", "x", "--role", "agent", "--all-meetings")
	require.ErrorContains(t, err, "all_meetings is for host keys")
	_, err = env.run(t, "keys", "create", "x")
	require.ErrorContains(t, err, "--role")
	_, err = env.run(t, "keys", "create", "x", "--role", "host", "--expires", "someday")
	require.ErrorContains(t, err, "--expires")
	var agent apiKey
	require.NoError(t, json.Unmarshal([]byte(env.must(t, "keys", "create", "agent-2", "--role", "agent", "--json")), &agent))
	_, err = cliEnv{"GREFFIER_URL": b.url, "GREFFIER_API_KEY": agent.Key}.run(t, "keys")
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusForbidden, apiErr.Status, "keys are the admins'")
	require.Len(t, strings.Split(strings.TrimSpace(env.must(t, "keys")), "\n"), 4, "header and three keys left")
}

// TestDownloadDrawsAProgressBarOnATerminalOnly: the bar is redrawn in
// place and ends with a new line at 100%; on a file or a pipe, and with
// --json, there is none (nothing to garble a log or a script's output).
func TestDownloadDrawsAProgressBarOnATerminalOnly(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	bar := drawProgress(&buf, "mix.flac")
	bar(0, 200)
	bar(50, 200) // within a tenth of a second of the last: not redrawn
	bar(200, 200)
	require.Equal(t, "\rmix.flac ["+strings.Repeat(" ", 30)+"]   0%"+
		"\rmix.flac ["+strings.Repeat("#", 30)+"] 100%\n", buf.String())
	buf.Reset()
	drawProgress(&buf, "meeting.webm")(4096, -1)
	require.Equal(t, "\rmeeting.webm 4096 bytes", buf.String(), "a size the server did not say")

	file, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	require.NoError(t, err)
	defer file.Close()
	require.Nil(t, (&cli{stderr: file}).progressBar("mix.flac"), "a file is no terminal")
	require.Nil(t, (&cli{stderr: &buf}).progressBar("mix.flac"))
	// A character device, as a terminal is (the test has none of its own).
	dev, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	require.NoError(t, err)
	defer dev.Close()
	require.NotNil(t, (&cli{stderr: dev}).progressBar("mix.flac"), "a terminal")
	require.Nil(t, (&cli{stderr: dev, json: true}).progressBar("mix.flac"), "--json")
}
