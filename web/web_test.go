package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/web"
)

func get(t *testing.T, srv *httptest.Server, path string) (*http.Response, string) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func TestServesPageAndScriptLockedDown(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.Handle("/join/", web.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, body := get(t, srv, "/join/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	require.Contains(t, body, `<script src="join.js" defer></script>`)
	csp := resp.Header.Get("Content-Security-Policy")
	require.Contains(t, csp, "script-src 'self'")
	require.Contains(t, csp, "connect-src 'self'", "the page talks to its own origin only")
	require.NotContains(t, csp, "unsafe-inline")
	require.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"))
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"), "no CORS: same origin only")

	resp, body = get(t, srv, "/join/join.js")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript"))
	require.Contains(t, body, "'/v1/whip'")
	require.Contains(t, body, "location.hash", "the token is read from the fragment, never sent in a URL")

	resp, _ = get(t, srv, "/join/nothing")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/join/", nil)
	require.NoError(t, err)
	presp, err := srv.Client().Do(req)
	require.NoError(t, err)
	presp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, presp.StatusCode)
}
