package api_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/api"
	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/token"
)

// sessionServer serves the API and /v1/session as cmd/greffier mounts
// them, over SQLite, with browser sessions lasting ttl (0: the default).
func sessionServer(t *testing.T, ttl time.Duration, useTLS bool) (*httptest.Server, *store.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{SQLitePath: filepath.Join(t.TempDir(), "g.db")})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	blobs, err := blob.NewDisk(t.TempDir())
	require.NoError(t, err)
	signer, err := token.NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	require.NoError(t, err)
	media := &fakeMedia{store: st, closed: 1}
	a, err := api.New(api.Config{Token: apiToken, SessionTTL: ttl}, api.Deps{Store: st, Blobs: blobs, Ender: media,
		Rerunner: media, Sessions: media, Signer: signer, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/v1/", a.Handler())
	var srv *httptest.Server
	if useTLS {
		srv = httptest.NewTLSServer(mux)
	} else {
		srv = httptest.NewServer(mux)
	}
	t.Cleanup(srv.Close)
	return srv, st
}

type browserReq struct {
	method, path, body string
	cookie             *http.Cookie
	header             map[string]string
}

func send(t *testing.T, srv *httptest.Server, r browserReq) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if r.body != "" {
		rd = strings.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, srv.URL+r.path, rd)
	require.NoError(t, err)
	if r.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.cookie != nil {
		req.AddCookie(r.cookie)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b
}

func sessionCookie(t *testing.T, resp *http.Response) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == "greffier_session" {
			return c
		}
	}
	t.Fatalf("no greffier_session cookie in %v", resp.Header.Values("Set-Cookie"))
	return nil
}

// A browser signs in with the key once and then holds a cookie that is
// not the key: HttpOnly, SameSite=Strict, on the whole site; the cookie
// lets it read and, from our own pages only, change.
func TestSessionSignsInWithACookieThatIsNotTheKey(t *testing.T) {
	t.Parallel()
	srv, _ := sessionServer(t, 0, false)

	resp, body := send(t, srv, browserReq{method: "POST", path: "/v1/session", body: `{"key":"not-the-key"}`})
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s", body)
	require.Contains(t, string(body), `"bad_key"`)
	require.Empty(t, resp.Cookies())

	before := time.Now()
	resp, body = send(t, srv, browserReq{method: "POST", path: "/v1/session", body: `{"key":"` + apiToken + `"}`})
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	var who struct {
		Name, Role  string
		Permissions []string
	}
	require.NoError(t, json.Unmarshal(body, &who))
	require.Equal(t, "admin", who.Role)
	require.ElementsMatch(t, []string{"meetings:create", "meetings:list", "meetings:read", "meetings:control", "minutes:read",
		"recordings:read", "recordings:manage", "recordings:import", "keys:manage", "audit:read"}, who.Permissions)
	c := sessionCookie(t, resp)
	require.True(t, c.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, c.SameSite)
	require.Equal(t, "/", c.Path)
	require.False(t, c.Secure, "plain HTTP: a Secure cookie would never come back")
	require.NotContains(t, c.Value, apiToken, "the cookie is never the key")
	require.WithinRange(t, c.Expires, before.Add(api.DefaultSessionTTL-time.Minute), before.Add(api.DefaultSessionTTL+time.Minute))

	resp, body = send(t, srv, browserReq{method: "GET", path: "/v1/session", cookie: c})
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	require.Contains(t, string(body), `"role": "admin"`)
	resp, _ = send(t, srv, browserReq{method: "GET", path: "/v1/session"})
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _ = send(t, srv, browserReq{method: "GET", path: "/v1/session", header: map[string]string{"Authorization": "Bearer " + apiToken}})
	require.Equal(t, http.StatusOK, resp.StatusCode, "who am I works with the bearer key too")

	// Reading with the cookie.
	resp, body = send(t, srv, browserReq{method: "GET", path: "/v1/meetings", cookie: c})
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)

	// Changing with the cookie: only with the header other sites cannot
	// send, and from this origin when the browser names one.
	create := `{"title":"T","participants":[{"identity":"a"}]}`
	resp, body = send(t, srv, browserReq{method: "POST", path: "/v1/meetings", body: create, cookie: c})
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "%s", body)
	require.Contains(t, string(body), `"csrf"`)
	resp, body = send(t, srv, browserReq{method: "POST", path: "/v1/meetings", body: create, cookie: c,
		header: map[string]string{"X-Greffier": "1", "Origin": "https://evil.example"}})
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "%s", body)
	resp, body = send(t, srv, browserReq{method: "POST", path: "/v1/meetings", body: create, cookie: c,
		header: map[string]string{"X-Greffier": "1", "Origin": srv.URL}})
	require.Equal(t, http.StatusCreated, resp.StatusCode, "%s", body)
	// API clients with the bearer key need no such header.
	resp, body = send(t, srv, browserReq{method: "POST", path: "/v1/meetings", body: create,
		header: map[string]string{"Authorization": "Bearer " + apiToken}})
	require.Equal(t, http.StatusCreated, resp.StatusCode, "%s", body)

	// A forged or altered cookie is nobody.
	payload, sig, ok := strings.Cut(c.Value, ".")
	require.True(t, ok)
	forged := &http.Cookie{Name: c.Name, Value: strings.Replace(payload, payload[:4], "eyJr", 1) + "x." + sig}
	resp, _ = send(t, srv, browserReq{method: "GET", path: "/v1/meetings", cookie: forged})
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	// Signing out clears the cookie, from our pages only.
	resp, _ = send(t, srv, browserReq{method: "DELETE", path: "/v1/session", cookie: c})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, _ = send(t, srv, browserReq{method: "DELETE", path: "/v1/session", cookie: c, header: map[string]string{"X-Greffier": "1"}})
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	cleared := sessionCookie(t, resp)
	require.Empty(t, cleared.Value)
	require.Negative(t, cleared.MaxAge)
}

// Sessions end on their own, and a session over TLS is a Secure cookie.
func TestSessionExpiresAndIsSecureOverTLS(t *testing.T) {
	t.Parallel()
	srv, _ := sessionServer(t, time.Second, true)
	srv.Client().Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the test's own server
	resp, body := send(t, srv, browserReq{method: "POST", path: "/v1/session", body: `{"key":"` + apiToken + `"}`})
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	c := sessionCookie(t, resp)
	require.True(t, c.Secure)
	resp, _ = send(t, srv, browserReq{method: "GET", path: "/v1/meetings", cookie: c})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Eventually(t, func() bool {
		resp, _ := send(t, srv, browserReq{method: "GET", path: "/v1/meetings", cookie: c})
		return resp.StatusCode == http.StatusUnauthorized
	}, 20*time.Second, 100*time.Millisecond, "the session outlived its lifetime")
}

// roomEvent is one Server-Sent Event of the room stream.
type roomEvent struct {
	name string
	data string
}

func followRoom(t *testing.T, url string, header map[string]string) (*http.Response, <-chan roomEvent) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	require.NoError(t, err)
	ch := make(chan roomEvent, 100)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var ev roomEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			case line == "" && ev.name != "":
				ch <- ev
				ev = roomEvent{}
			}
		}
	}()
	return resp, ch
}

func nextEvent(t *testing.T, ch <-chan roomEvent, want func(roomEvent) bool, what string) roomEvent {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			require.True(t, ok, "the stream closed before %s", what)
			if want(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s in 20 s", what)
		}
	}
}

// The room stream tells every participant's page who is here and who
// speaks, and that the meeting ended, at once; join tokens of other
// meetings, revoked ones and no token at all are refused.
func TestRoomStreamFollowsPeopleAndTheEnd(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		m := decode[meetingAnswer](t, b.call(t, "POST", "/v1/meetings", `{"title":"Room","participants":[
			{"identity":"alice","display_name":"Alice"},{"identity":"bob","display_name":"Bob","rights":["listen"]}]}`), http.StatusCreated)
		other := decode[meetingAnswer](t, b.call(t, "POST", "/v1/meetings", `{"participants":[{"identity":"eve"}]}`), http.StatusCreated)
		roomURL := b.srv.URL + "/v1/meetings/" + m.ID + "/room"

		for _, bad := range []map[string]string{nil, {"Authorization": "Bearer " + other.Join[0].Token}, {"Authorization": "Bearer junk"}} {
			resp, _ := followRoom(t, roomURL, bad)
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "header %v", bad)
		}
		revoked := decode[joinAnswer](t, b.call(t, "POST", "/v1/meetings/"+m.ID+"/tokens", `{"identity":"bob"}`), http.StatusCreated)
		b.call(t, "DELETE", "/v1/meetings/"+m.ID+"/tokens/"+revoked.TokenID, "")
		resp, _ := followRoom(t, roomURL+"?token="+revoked.Token, nil)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a revoked token")

		// Bob (listen only) follows with his join token, as EventSource does.
		resp, events := followRoom(t, roomURL+"?token="+m.Join[1].Token, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
		type room struct {
			State        string `json:"state"`
			Participants []struct {
				Identity, Name string
				Here, Speaking bool
			} `json:"participants"`
		}
		first := nextEvent(t, events, func(e roomEvent) bool { return e.name == "room" }, "the first room event")
		var r room
		require.NoError(t, json.Unmarshal([]byte(first.data), &r))
		require.Equal(t, "created", r.State)
		require.Empty(t, r.Participants, "nobody has joined yet")

		// Alice joins (the SFU records her, then tells her arrival).
		_, err := b.store.Join(ctx, m.ID, "alice", "Alice")
		require.NoError(t, err)
		for _, kind := range []string{"joined", "speaking_started"} {
			require.NoError(t, b.store.AddEvent(ctx, store.Event{MeetingID: m.ID, AtMS: 100, Kind: kind, Identity: "alice"}))
		}
		nextEvent(t, events, func(e roomEvent) bool {
			var r room
			return e.name == "room" && json.Unmarshal([]byte(e.data), &r) == nil && len(r.Participants) == 1 &&
				r.Participants[0].Name == "Alice" && r.Participants[0].Here && r.Participants[0].Speaking && r.State == "live"
		}, "alice speaking")
		require.NoError(t, b.store.AddEvent(ctx, store.Event{MeetingID: m.ID, AtMS: 900, Kind: "speaking_stopped", Identity: "alice"}))
		nextEvent(t, events, func(e roomEvent) bool {
			var r room
			return e.name == "room" && json.Unmarshal([]byte(e.data), &r) == nil && len(r.Participants) == 1 && r.Participants[0].Here && !r.Participants[0].Speaking
		}, "alice silent")

		// The host (bearer key) follows too; the end reaches both.
		hresp, hostEvents := followRoom(t, roomURL, map[string]string{"Authorization": "Bearer " + apiToken})
		require.Equal(t, http.StatusOK, hresp.StatusCode)
		b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", "")
		for _, ch := range []<-chan roomEvent{events, hostEvents} {
			ev := nextEvent(t, ch, func(e roomEvent) bool { return e.name == "ended" }, "the end")
			require.JSONEq(t, `{"state":"ended"}`, ev.data)
			_, open := <-ch
			require.False(t, open, "the stream closes after the end")
		}
	})
}

// A session names its key and checks it on every request: revoking the
// key, or its expiry, ends the sessions it opened; a host's session sees
// only what a host key may.
func TestSessionEndsWithItsKey(t *testing.T) {
	t.Parallel()
	srv, _ := sessionServer(t, 0, false)
	admin := map[string]string{"Authorization": "Bearer " + apiToken}
	newKey := func(body string) (id, key string) {
		resp, b := send(t, srv, browserReq{method: "POST", path: "/v1/keys", body: body, header: admin})
		require.Equal(t, http.StatusCreated, resp.StatusCode, "%s", b)
		var k struct{ ID, Key string }
		require.NoError(t, json.Unmarshal(b, &k))
		return k.ID, k.Key
	}
	signIn := func(key string) *http.Cookie {
		resp, b := send(t, srv, browserReq{method: "POST", path: "/v1/session", body: `{"key":"` + key + `"}`})
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
		require.NotContains(t, resp.Header.Get("Set-Cookie"), key, "the cookie is never the key")
		return sessionCookie(t, resp)
	}

	hostID, hostKey := newKey(`{"name":"host","role":"host"}`)
	c := signIn(hostKey)
	resp, body := send(t, srv, browserReq{method: "GET", path: "/v1/session", cookie: c})
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	var who struct {
		Role        string
		Permissions []string
	}
	require.NoError(t, json.Unmarshal(body, &who))
	require.Equal(t, "host", who.Role)
	require.NotContains(t, who.Permissions, "recordings:read")
	resp, _ = send(t, srv, browserReq{method: "GET", path: "/v1/keys", cookie: c})
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "a host's session cannot manage keys")
	resp, body = send(t, srv, browserReq{method: "POST", path: "/v1/meetings", body: `{"title":"T","participants":[{"identity":"a"}]}`,
		cookie: c, header: map[string]string{"X-Greffier": "1"}})
	require.Equal(t, http.StatusCreated, resp.StatusCode, "%s", body)

	resp, body = send(t, srv, browserReq{method: "DELETE", path: "/v1/keys/" + hostID, header: admin})
	require.Equal(t, http.StatusNoContent, resp.StatusCode, "%s", body)
	resp, body = send(t, srv, browserReq{method: "GET", path: "/v1/meetings", cookie: c})
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a revoked key's session ends: %s", body)
	require.Contains(t, string(body), "revoked")
	resp, _ = send(t, srv, browserReq{method: "POST", path: "/v1/session", body: `{"key":"` + hostKey + `"}`})
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a revoked key cannot sign in")

	expires := time.Now().Add(3 * time.Second).UTC().Truncate(time.Second).Add(time.Second)
	_, agentKey := newKey(`{"name":"agent","role":"agent","expires_at":"` + expires.Format(time.RFC3339) + `"}`)
	c = signIn(agentKey)
	resp, _ = send(t, srv, browserReq{method: "GET", path: "/v1/meetings", cookie: c})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Eventually(t, func() bool {
		resp, _ := send(t, srv, browserReq{method: "GET", path: "/v1/meetings", cookie: c})
		return resp.StatusCode == http.StatusUnauthorized
	}, 20*time.Second, 100*time.Millisecond, "the session outlived its key's expiry")
}
