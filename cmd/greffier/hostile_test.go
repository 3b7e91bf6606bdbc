package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/faulttest"
	"github.com/greffier/greffier/internal/store"
)

// Slow and idle clients cannot hold the server's connections: a body or
// headers trickled a byte at a time, with or without a token, and a
// kept-alive connection left idle are all closed by the server, and the
// server keeps answering meanwhile.
func TestFaultSlowAndIdleClientsAreCutOff(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{configure: func(c *Config) {
		c.HTTPReadHeaderTimeout = 500 * time.Millisecond
		c.HTTPReadTimeout = time.Second
		c.HTTPWriteTimeout = time.Second
		c.HTTPIdleTimeout = time.Second
	}})
	addr := strings.TrimPrefix(b.url, "http://")
	kinds := map[string]struct {
		head    string
		trickle string // sent one byte at a time after head
	}{
		"body without token": {"POST /v1/meetings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n",
			strings.Repeat(" ", 100000)},
		"body with token": {"POST /v1/meetings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b.token +
			"\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n", strings.Repeat(" ", 100000)},
		"whip offer": {"POST /v1/whip HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: 100000\r\n\r\n",
			strings.Repeat("v", 100000)},
		"headers":         {"GET /v1/meetings HTTP/1.1\r\n", strings.Repeat("X-Slow: yes\r\n", 10000)},
		"idle keep-alive": {"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	}
	const perKind = 20
	var (
		wg     sync.WaitGroup
		closed atomic.Int64
		stop   = make(chan struct{})
	)
	defer close(stop)
	for name, k := range kinds {
		for range perKind {
			conn, err := net.Dial("tcp", addr)
			require.NoError(t, err, name)
			t.Cleanup(func() { conn.Close() })
			_, err = io.WriteString(conn, k.head)
			require.NoError(t, err)
			wg.Add(1)
			go func() {
				defer wg.Done()
				// The fault itself: one byte every 100 ms, until the
				// server closes the connection.
				for i := 0; i < len(k.trickle); i++ {
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
					}
					if _, err := conn.Write([]byte{k.trickle[i]}); err != nil {
						return
					}
				}
			}()
			go func() {
				_, _ = io.Copy(io.Discard, conn) // returns once the server closes
				closed.Add(1)
			}()
		}
	}
	total := int64(perKind * len(kinds))
	// The server still answers while they hang on.
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/healthz", nil, nil))
	ok := assert.Eventually(t, func() bool { return closed.Load() == total }, 20*time.Second, 50*time.Millisecond)
	require.True(t, ok, "%d of %d slow or idle connections still open after 20 s", total-closed.Load(), total)
	faulttest.Report(t, faulttest.FaultsInjected, float64(total))
}

// Hostile input over every route, on SQLite and on Postgres: NUL bytes and
// control characters in ids, names and queries, huge strings, bodies with
// trailing data, bad languages, wrong methods, unknown paths and odd
// Authorization headers. Nothing answers 5xx; every refusal is the
// documented JSON error; and what must work (any-case Bearer scheme, join
// tokens in the captions URL) works.
func TestFaultHostileInputsOverEveryRoute(t *testing.T) {
	t.Parallel()
	for name, scaleOut := range map[string]bool{"sqlite": false, "postgres": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testHostileInputs(t, setup(t, setupOptions{scaleOut: scaleOut}))
		})
	}
}

type hostileCase struct {
	method, path string
	auth         string // the whole Authorization header; "api" means the API token
	contentType  string
	body         string
	want         int // the status expected; 0: any that is not 5xx
}

func testHostileInputs(t *testing.T, b *testBundle) {
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{"title": "Conseil",
		"participants": []map[string]any{{"identity": "alice"}}}, &m))
	id, join := m.ID, m.Join[0].Token
	// One transcribed stretch, so that searches compare real text (SQLite
	// only refuses an overlong LIKE pattern when a row is there to match).
	ctx := context.Background()
	st := b.app.store
	tr := store.Track{ID: store.NewID("trk"), MeetingID: id, Identity: "alice"}
	require.NoError(t, st.CreateTrack(ctx, tr))
	require.NoError(t, st.UpsertSpeechSegment(ctx, store.SpeechSegment{MeetingID: id, TrackID: tr.ID, Identity: "alice",
		EndMS: 900, AudioKey: "k"}))
	require.NoError(t, st.SaveTranscript(ctx, tr.ID, 0, "Les ÉLECTIONS de l'École", "fr", nil))
	nul, esc := "%00", "%1B%5B2J"
	huge := strings.Repeat("a", 100000)
	ids := map[string]int{
		"mtg" + nul + "x": http.StatusBadRequest, "mtg" + esc: http.StatusBadRequest, "mtg%FF%FE": http.StatusBadRequest,
		huge: http.StatusBadRequest, "mtg_unknown": http.StatusNotFound,
	}
	var cases []hostileCase
	add := func(c hostileCase) { cases = append(cases, c) }

	// Ids in every route that takes one.
	for bad, want := range ids {
		for _, r := range []struct{ method, suffix string }{
			{"GET", ""}, {"PATCH", ""}, {"POST", "/end"}, {"POST", "/tokens"}, {"GET", "/participants"},
			{"GET", "/events"}, {"PATCH", "/participants/alice"}, {"POST", "/rerun"}, {"GET", "/tracks"},
			{"GET", "/tracks/trk_x.webm"}, {"GET", "/archive.webm"}, {"GET", "/mix.flac"}, {"GET", "/minutes"},
			{"GET", "/minutes.vtt"}, {"GET", "/minutes.srt"}, {"GET", "/minutes.md"}, {"GET", "/minutes.txt"},
			{"GET", "/minutes.json"}, {"GET", "/captions"},
		} {
			body := ""
			if r.method != "GET" {
				body = `{"identity":"bob","display_name":"Bob"}`
				if r.suffix == "" || r.suffix == "/participants/alice" {
					body = `{"display_name":"Bob"}`
				}
				if r.suffix == "" {
					body = `{"captions":false}`
				}
			}
			w := want
			if r.suffix == "/captions" {
				w = 0 // 401: a caller with neither token learns nothing of ids
			}
			add(hostileCase{method: r.method, path: "/v1/meetings/" + bad + r.suffix, auth: "api", body: body, want: w})
		}
	}
	for _, bad := range []string{"al" + nul + "ice", "al" + esc, huge} {
		add(hostileCase{method: "PATCH", path: "/v1/meetings/" + id + "/participants/" + bad, auth: "api",
			body: `{"display_name":"Bob"}`, want: http.StatusBadRequest})
	}
	add(hostileCase{method: "GET", path: "/v1/meetings/" + id + "/tracks/trk" + nul + ".webm", auth: "api", want: http.StatusBadRequest})

	// Queries.
	for _, q := range []string{"q=budget" + nul, "q=" + esc, "q=" + huge, "q=" + strings.Repeat("ab+", 600),
		"q=budget&speaker=al" + nul, "q=budget&meeting=mtg" + nul, "q=budget&limit=" + nul, "q=%FF", "q=", "q=budget&limit=-1"} {
		add(hostileCase{method: "GET", path: "/v1/search?" + q, auth: "api", want: http.StatusBadRequest})
	}
	add(hostileCase{method: "GET", path: "/v1/search?q=" + url.QueryEscape("100% _ Élection ÉCOLE"), auth: "api", want: http.StatusOK})
	for _, q := range []string{strings.Repeat("é", 20000), strings.Repeat("a", 600), strings.Repeat("%_", 300)} {
		add(hostileCase{method: "GET", path: "/v1/search?q=" + url.QueryEscape(q), auth: "api", want: http.StatusBadRequest})
	}
	add(hostileCase{method: "GET", path: "/v1/meetings?limit=" + nul, auth: "api", want: http.StatusBadRequest})
	add(hostileCase{method: "GET", path: "/v1/meetings/" + id + "/minutes?version=" + nul, auth: "api", want: http.StatusBadRequest})
	add(hostileCase{method: "GET", path: "/v1/meetings/" + id + "/minutes?format=" + esc, auth: "api", want: http.StatusBadRequest})

	// Bodies.
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	for _, body := range []string{
		js(map[string]any{"title": "Conseil\x00"}), js(map[string]any{"title": "\x1b[2JConseil"}),
		js(map[string]any{"title": strings.Repeat("t", 501)}),
		js(map[string]any{"participants": []any{map[string]any{"identity": "al\x00ice"}}}),
		js(map[string]any{"participants": []any{map[string]any{"identity": "alice", "display_name": "Alice\x1b[31m"}}}),
		js(map[string]any{"participants": []any{map[string]any{"identity": huge}}}),
		js(map[string]any{"language": "fr\x00"}), js(map[string]any{"language": "french!"}),
		js(map[string]any{"language": "en_US"}), js(map[string]any{"language": huge}),
		js(map[string]any{"language": "'; DROP TABLE meetings; --"}),
		js(map[string]any{"webhook_url": "https://example.org/\x00"}),
		`{"title":"a"} {"title":"b"}`, `{"title":"a"}garbage`, `{"title":"a"}}`, `{"title":"a"`, `[]`, `"x"`,
		`{"title":"a","nope":1}`,
	} {
		add(hostileCase{method: "POST", path: "/v1/meetings", auth: "api", body: body, want: http.StatusBadRequest})
	}
	add(hostileCase{method: "POST", path: "/v1/meetings", auth: "api", body: `{"title":"` + strings.Repeat("x", 2<<20) + `"}`,
		want: http.StatusRequestEntityTooLarge})
	// Invalid UTF-8 in a JSON string is read as U+FFFD: stored safely.
	add(hostileCase{method: "POST", path: "/v1/meetings", auth: "api", body: `{"title":"` + "\xff\xfe" + `"}`})
	add(hostileCase{method: "POST", path: "/v1/meetings", auth: "api", contentType: "text/plain", body: `{}`,
		want: http.StatusUnsupportedMediaType})
	for _, lang := range []string{"fr", "fr-FR", "zh-Hant-TW", ""} {
		add(hostileCase{method: "POST", path: "/v1/meetings", auth: "api", body: js(map[string]any{"language": lang}),
			want: http.StatusCreated})
	}
	for _, body := range []string{js(map[string]any{"identity": "b\x00b"}), js(map[string]any{"identity": "bob", "display_name": "B\x07b"}),
		`{"identity":"bob"} {}`} {
		add(hostileCase{method: "POST", path: "/v1/meetings/" + id + "/tokens", auth: "api", body: body, want: http.StatusBadRequest})
	}
	for _, body := range []string{js(map[string]any{"display_name": "A\x00"}), js(map[string]any{"display_name": "\x1b]0;x\x07"}),
		`{"display_name":"A"}{}`} {
		add(hostileCase{method: "PATCH", path: "/v1/meetings/" + id + "/participants/alice", auth: "api", body: body, want: http.StatusBadRequest})
	}
	for _, body := range []string{js(map[string]any{"webhook_url": "http://x/\x00"}), `{"captions":false} x`} {
		add(hostileCase{method: "PATCH", path: "/v1/meetings/" + id, auth: "api", body: body, want: http.StatusBadRequest})
	}

	// Wrong methods and unknown paths, on every part of the server.
	for _, c := range []struct{ method, path string }{
		{"PUT", "/v1/meetings/" + id}, {"PUT", "/v1/meetings"}, {"DELETE", "/v1/search"}, {"GET", "/v1/meetings/" + id + "/end"},
		{"POST", "/v1/meetings/" + id + "/minutes"}, {"POST", "/v1/meetings/" + id + "/captions"}, {"GET", "/v1/whip"},
		{"PUT", "/v1/whep/x"}, {"POST", "/healthz"}, {"POST", "/join/"},
	} {
		add(hostileCase{method: c.method, path: c.path, auth: "api", want: http.StatusMethodNotAllowed})
	}
	for _, p := range []string{"/nope", "/v1", "/v1/nope", "/v1/meetings/" + id + "/nope", "/v1/meetings/" + id + "/minutes.exe",
		"/join/nope", "/" + nul, "/v1/hooks/diarize"} {
		add(hostileCase{method: "GET", path: p, auth: "api", want: http.StatusNotFound})
	}

	// Authorization.
	for _, h := range []string{"bearer " + b.token, "BEARER " + b.token, "Bearer  " + b.token + " "} {
		add(hostileCase{method: "GET", path: "/v1/meetings/" + id, auth: h, want: http.StatusOK})
	}
	for _, h := range []string{"", "Basic " + b.token, "Bearer", "Bearer" + b.token, "Token " + b.token, "Bearer " + join} {
		add(hostileCase{method: "GET", path: "/v1/meetings/" + id, auth: h, want: http.StatusUnauthorized})
	}
	add(hostileCase{method: "POST", path: "/v1/whip", auth: "bearer " + join, contentType: "application/sdp", body: "not sdp",
		want: http.StatusBadRequest})
	add(hostileCase{method: "POST", path: "/v1/whip", auth: "Basic " + join, contentType: "application/sdp", body: "not sdp",
		want: http.StatusUnauthorized})
	add(hostileCase{method: "POST", path: "/v1/whip", auth: "Bearer " + join, contentType: "application/sdp", body: "v=0\x00\x1b",
		want: http.StatusBadRequest})
	// The API token never rides in a URL; join tokens may (EventSource).
	add(hostileCase{method: "GET", path: "/v1/meetings/" + id + "/captions?token=" + b.token, want: http.StatusUnauthorized})
	add(hostileCase{method: "GET", path: "/v1/meetings/" + id + "/captions?token=" + join, want: http.StatusNotFound}) // no captions backend here

	fives := 0
	for _, c := range cases {
		status, ctype, raw := b.send(t, c)
		desc := fmt.Sprintf("%s %.120q (auth %.20q, body %.80q): %d %.300s", c.method, c.path, c.auth, c.body, status, raw)
		if status >= 500 {
			fives++
		}
		assert.Less(t, status, 500, desc)
		if c.want != 0 {
			assert.Equal(t, c.want, status, desc)
		}
		if status >= 400 && c.method != "HEAD" {
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			assert.Equal(t, "application/json", ctype, desc)
			if assert.NoError(t, json.Unmarshal(raw, &e), desc) {
				assert.NotEmpty(t, e.Error.Code, desc)
				assert.NotEmpty(t, e.Error.Message, desc)
			}
		}
		if status == http.StatusMethodNotAllowed {
			// Allow is checked on the answer itself in send.
			assert.NotContains(t, string(raw), "Method Not Allowed\n", desc)
		}
	}
	faulttest.Report(t, faulttest.FaultsInjected, float64(len(cases)))
	faulttest.Report(t, faulttest.BadInput5xx, float64(fives))
	// The meeting is untouched and still takes well-formed requests, and
	// search finds accented capitals whatever the case and accents typed.
	var now meetingAnswer
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+id, nil, &now))
	require.Equal(t, "created", now.State)
	for _, q := range []string{"élections", "ecole", "ÉCOLE élection"} {
		var found struct {
			Hits []struct{ MeetingID, Text string } `json:"hits"`
		}
		require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/search?q="+url.QueryEscape(q), nil, &found))
		require.Len(t, found.Hits, 1, q)
	}
}

// send sends one hostile request as is and returns the status, the
// Content-Type and the body. A 405 must say which methods are allowed.
func (b *testBundle) send(t *testing.T, c hostileCase) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(c.method, b.url+c.path, bytes.NewReader([]byte(c.body)))
	require.NoError(t, err, c.path)
	switch {
	case c.auth == "api":
		req.Header.Set("Authorization", "Bearer "+b.token)
	case c.auth != "":
		req.Header.Set("Authorization", c.auth)
	}
	ct := c.contentType
	if ct == "" && c.body != "" {
		ct = "application/json"
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err, c.path)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if resp.StatusCode == http.StatusMethodNotAllowed {
		assert.NotEmpty(t, resp.Header.Get("Allow"), "%s %s: 405 without Allow", c.method, c.path)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), raw
}
