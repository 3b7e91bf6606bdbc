package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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

// keysDouble speaks the API keys contract of the keys branch (POST, GET
// with cursor pagination, DELETE /v1/keys), which this branch's server
// does not serve yet.
type keysDouble struct {
	mu   sync.Mutex
	keys []apiKey
	next int
	seen []string // method path?query of each request
}

func (d *keysDouble) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seen = append(d.seen, r.Method+" "+r.URL.RequestURI())
	if r.Header.Get("Authorization") != "Bearer admin-key" {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":{"code":"unauthorized","message":"bad key"}}`)
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/keys":
		var req struct {
			Name        string     `json:"name"`
			Role        string     `json:"role"`
			AllMeetings bool       `json:"all_meetings"`
			ExpiresAt   *time.Time `json:"expires_at"`
		}
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || req.Name == "" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":{"code":"bad_request","message":"bad body"}}`)
			return
		}
		if req.Role != "admin" && req.Role != "host" && req.Role != "archivist" && req.Role != "agent" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":{"code":"bad_role","message":"role must be admin, host, archivist or agent"}}`)
			return
		}
		d.next++
		k := apiKey{ID: fmt.Sprintf("key_%d", d.next), Name: req.Name, Role: req.Role, AllMeetings: req.AllMeetings,
			CreatedAt: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC), ExpiresAt: req.ExpiresAt}
		d.keys = append(d.keys, k)
		k.Key = "gk_secret_" + k.ID
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(k)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/keys":
		// Pages of two, the cursor being the index of the next key.
		start := 0
		if c := r.URL.Query().Get("cursor"); c != "" {
			_, _ = fmt.Sscan(c, &start)
		}
		end := min(start+2, len(d.keys))
		page := map[string]any{"keys": d.keys[start:end], "next_cursor": nil}
		if end < len(d.keys) {
			page["next_cursor"] = fmt.Sprint(end)
		}
		_ = json.NewEncoder(w).Encode(page)
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/v1/keys/"):
		id := strings.TrimPrefix(r.URL.Path, "/v1/keys/")
		for i, k := range d.keys {
			if k.ID == id {
				d.keys = append(d.keys[:i], d.keys[i+1:]...)
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":{"code":"not_found","message":"no such key"}}`)
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":{"code":"not_found","message":"no route"}}`)
	}
}

// TestKeysCommandSpeaksTheKeysContract: `greffier keys` against a double
// of the documented /v1/keys contract (the keys API is built on another
// branch): create with a role and an expiry, list across pages, revoke,
// and the API's refusals as errors.
func TestKeysCommandSpeaksTheKeysContract(t *testing.T) {
	t.Parallel()
	d := &keysDouble{}
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	env := cliEnv{"GREFFIER_URL": srv.URL, "GREFFIER_API_KEY": "admin-key"}

	out := env.must(t, "keys", "create", "archive-bot", "--role", "archivist", "--all-meetings", "--expires", "2027-01-31T00:00:00Z")
	require.Equal(t, "key key_1 (archive-bot, role archivist) created; its secret, shown only now:\ngk_secret_key_1\n", out)
	var k apiKey
	require.NoError(t, json.Unmarshal([]byte(env.must(t, "keys", "create", "host-1", "--role", "host", "--json")), &k))
	require.Equal(t, "key_2", k.ID)
	require.Equal(t, "gk_secret_key_2", k.Key)
	require.False(t, k.AllMeetings)
	require.Nil(t, k.ExpiresAt)
	env.must(t, "keys", "create", "agent-1", "--role", "agent", "--expires", "720h")
	d.mu.Lock()
	require.True(t, d.keys[0].AllMeetings)
	require.Equal(t, time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC), d.keys[0].ExpiresAt.UTC())
	require.WithinDuration(t, time.Now().Add(720*time.Hour), *d.keys[2].ExpiresAt, time.Minute)
	d.seen = nil
	d.mu.Unlock()

	list := env.must(t, "keys")
	require.Regexp(t, `(?m)^ID\s+NAME\s+ROLE\s+ALL MEETINGS\s+CREATED\s+EXPIRES\s+LAST USED$`, list)
	for _, want := range []string{`key_1\s+archive-bot\s+archivist\s+true`, `key_2\s+host-1\s+host\s+false\s+\S+ \S+\s+never\s+never`, `key_3\s+agent-1\s+agent`} {
		require.Regexp(t, `(?m)^`+want, list)
	}
	d.mu.Lock()
	require.Equal(t, []string{"GET /v1/keys", "GET /v1/keys?cursor=2"}, d.seen, "the list follows next_cursor")
	d.mu.Unlock()
	var all struct{ Keys []apiKey }
	require.NoError(t, json.Unmarshal([]byte(env.must(t, "keys", "--json")), &all))
	require.Len(t, all.Keys, 3)
	for _, k := range all.Keys {
		require.Empty(t, k.Key, "a listed key has no secret")
	}

	require.Equal(t, "key key_2 revoked\n", env.must(t, "keys", "revoke", "key_2"))
	_, err := env.run(t, "keys", "revoke", "key_2")
	var apiErr *client.Error
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusNotFound, apiErr.Status)
	require.Equal(t, "no such key", apiErr.Message)
	_, err = env.run(t, "keys", "create", "x", "--role", "owner")
	require.ErrorContains(t, err, "role must be admin, host, archivist or agent")
	_, err = env.run(t, "keys", "create", "x")
	require.ErrorContains(t, err, "--role")
	_, err = env.run(t, "keys", "create", "x", "--role", "host", "--expires", "someday")
	require.ErrorContains(t, err, "--expires")
	_, err = cliEnv{"GREFFIER_URL": srv.URL, "GREFFIER_API_KEY": "other"}.run(t, "keys")
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusUnauthorized, apiErr.Status)
	require.Len(t, strings.Split(strings.TrimSpace(env.must(t, "keys")), "\n"), 3, "header and two keys left")
}
