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
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Get(srv.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// Every page and asset is embedded and served under a strict Content
// Security Policy: scripts and styles from this origin only, nothing
// inline, nothing from elsewhere.
func TestServesPagesAndAssetsLockedDown(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(web.Handler())
	defer srv.Close()

	for path, want := range map[string]string{
		"/join/":             `<script type="module" src="/assets/room.js"></script>`,
		"/app/":              `<script type="module" src="/assets/app.js"></script>`,
		"/assets/room.js":    "'/v1/whip'",
		"/assets/app.js":     "'/v1/session'",
		"/assets/i18n.js":    "const fr",
		"/assets/minutes.js": "export function minutesView",
		"/assets/style.css":  "@media (max-width",
	} {
		resp, body := get(t, srv, path)
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		require.Contains(t, body, want, path)
		csp := resp.Header.Get("Content-Security-Policy")
		require.Contains(t, csp, "default-src 'none'", path)
		require.Contains(t, csp, "script-src 'self'", path)
		require.Contains(t, csp, "style-src 'self'", path)
		require.Contains(t, csp, "connect-src 'self'", "the pages talk to their own origin only")
		require.NotContains(t, csp, "unsafe-inline")
		require.NotContains(t, csp, "unsafe-eval")
		require.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"))
		require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
		require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"), "no CORS: same origin only")
		if strings.HasSuffix(path, "/") {
			require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
			// No inline script or style anywhere: the CSP would block it.
			require.NotRegexp(t, `<script(?:\s+type="module")?>|<style|\sstyle=|\son[a-z]+=`, body, path)
		}
	}
	_, room := get(t, srv, "/assets/room.js")
	require.Contains(t, room, "location.hash", "the join token is read from the fragment, never sent in a URL")

	resp, _ := get(t, srv, "/")
	require.Equal(t, http.StatusFound, resp.StatusCode)
	require.Equal(t, "/app/", resp.Header.Get("Location"))
	for _, path := range []string{"/join/nothing", "/assets/nothing.js", "/assets/../web.go", "/assets/web.go", "/elsewhere"} {
		resp, body := get(t, srv, path)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, path)
		require.Contains(t, body, `"error"`, path)
	}
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/join/", nil)
	require.NoError(t, err)
	presp, err := srv.Client().Do(req)
	require.NoError(t, err)
	presp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, presp.StatusCode)
}
