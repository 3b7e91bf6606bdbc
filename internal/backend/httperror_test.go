package backend_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/backend"
)

func TestErrorMessages(t *testing.T) {
	t.Parallel()
	transport := errors.New("connection refused")
	for want, he := range map[string]*backend.HTTPError{
		`transcription backend: HTTP 503 Service Unavailable: model loading (retry after 2s)`: {
			Backend: "transcription", StatusCode: 503, Message: "model loading", Body: `{"detail":"model loading"}`, RetryAfter: 2 * time.Second,
		},
		`chat backend: HTTP 502 Bad Gateway: "<html>Bad Gateway</html>"`: {
			Backend: "chat", StatusCode: 502, Body: "<html>Bad Gateway</html>",
		},
		`chat backend: no answer before the deadline (raise Timeout): connection refused`: {
			Backend: "chat", Timeout: true, TimeoutHint: "raise Timeout", Err: transport,
		},
		`diarization backend poll: no answer before the deadline: connection refused`: {
			Backend: "diarization", Op: "poll", Timeout: true, Err: transport,
		},
		`diarization backend submit: no answer: connection refused`: {
			Backend: "diarization", Op: "submit", Err: transport,
		},
		`backend: HTTP 404 Not Found`: {StatusCode: 404},
		// A hint is about a passed deadline, not an error status.
		`chat backend: HTTP 401 Unauthorized: bad key`: {
			Backend: "chat", TimeoutHint: "raise Timeout", StatusCode: 401, Message: "bad key",
		},
	} {
		require.Equal(t, want, he.Error())
	}
	he := &backend.HTTPError{Err: transport}
	require.ErrorIs(t, he, transport)
}

func TestTemporary(t *testing.T) {
	t.Parallel()
	for status, want := range map[int]bool{
		0: true, 408: true, 425: true, 429: true, 500: true, 502: true, 503: true, 504: true,
		501: false, 400: false, 401: false, 403: false, 404: false, 413: false, 422: false,
	} {
		require.Equal(t, want, (&backend.HTTPError{StatusCode: status}).Temporary(), "HTTP %d", status)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	require.Equal(t, 7*time.Second, backend.ParseRetryAfter("7", now))
	require.Equal(t, 3*time.Second, backend.ParseRetryAfter(" 3 ", now))
	require.Equal(t, 1500*time.Millisecond, backend.ParseRetryAfter("1.5", now))
	require.Equal(t, 90*time.Second, backend.ParseRetryAfter(now.Add(90*time.Second).Format(http.TimeFormat), now))
	// RFC 850 and asctime dates are HTTP dates too.
	require.Equal(t, time.Minute, backend.ParseRetryAfter(now.Add(time.Minute).Format(time.RFC850), now))
	require.Zero(t, backend.ParseRetryAfter(now.Add(-time.Minute).Format(http.TimeFormat), now))
	require.Zero(t, backend.ParseRetryAfter("", now))
	require.Zero(t, backend.ParseRetryAfter("-3", now))
	require.Zero(t, backend.ParseRetryAfter("0", now))
	require.Zero(t, backend.ParseRetryAfter("86401", now))
	require.Equal(t, 24*time.Hour, backend.ParseRetryAfter("86400", now))
	require.Zero(t, backend.ParseRetryAfter("whenever", now))
	require.Zero(t, backend.ParseRetryAfter("soon", now))
}

func TestErrorMessageShapes(t *testing.T) {
	t.Parallel()
	// OpenAI-compatible servers (the default keys).
	for body, want := range map[string]string{
		`{"error":{"message":"bad key","type":"x"}}`: "bad key",
		`{"error":"Failed to read audio"}`:           "Failed to read audio",
		`{"detail":"model loading"}`:                 "model loading",
		`{"Detail":"case as encoding/json matches"}`: "case as encoding/json matches",
		`{"message":"not an OpenAI shape"}`:          "",
		`{"detail":[{"loc":["body"],"msg":"x"}]}`:    "",
		`upstream connect error`:                     "",
		`["error"]`:                                  "",
		``:                                           "",
	} {
		require.Equal(t, want, backend.ErrorMessage([]byte(body)), body)
	}
	// pyannote-style servers put the message at the top level, next to an
	// "error" that only names the status.
	keys := []string{"message", "error", "detail"}
	for body, want := range map[string]string{
		`{"statusCode":400,"message":["a","b"],"error":"Bad Request"}`:   "a; b",
		`{"statusCode":404,"message":"no such job","error":"Not Found"}`: "no such job",
		`{"message":"","error":"Bad Request"}`:                           "Bad Request",
		`{"detail":"loading"}`:                                           "loading",
		`<html>`:                                                         "",
	} {
		require.Equal(t, want, backend.ErrorMessage([]byte(body), keys...), body)
	}
}

func TestNewStatusError(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	h := http.Header{}
	h.Set("Retry-After", "30")
	he := backend.NewStatusError(http.StatusTooManyRequests, h, []byte(`{"error":{"message":"slow down"}}`), now)
	require.Equal(t, http.StatusTooManyRequests, he.StatusCode)
	require.Equal(t, "slow down", he.Message)
	require.Equal(t, `{"error":{"message":"slow down"}}`, he.Body)
	require.Equal(t, 30*time.Second, he.RetryAfter)
	require.True(t, he.Temporary())

	he = backend.NewStatusError(http.StatusBadGateway, http.Header{}, make([]byte, 4000), now)
	require.Len(t, he.Body, backend.MaxExcerpt)
	require.Zero(t, he.RetryAfter)
	require.True(t, he.Temporary())

	// A cut through a multi-byte character leaves valid UTF-8.
	body := strings.Repeat("a", backend.MaxExcerpt-1) + "é"
	he = backend.NewStatusError(http.StatusBadRequest, http.Header{}, []byte(body), now)
	require.Equal(t, strings.Repeat("a", backend.MaxExcerpt-1)+"?", he.Body)
	require.False(t, he.Temporary())

	he = backend.NewStatusError(http.StatusBadRequest, http.Header{}, []byte(`{"message":"top"}`), now, "message")
	require.Equal(t, "top", he.Message)
}

// TestNewTransportError gets no answer from real servers on loopback: one
// that is not listening, one that never answers.
func TestNewTransportError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedURL := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())

	release := make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(silent.Close)
	t.Cleanup(func() { close(release) })

	get := func(ctx context.Context, c *http.Client, url string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		require.NoError(t, err)
		resp, err := c.Do(req)
		if err == nil {
			_ = resp.Body.Close()
		}
		return err
	}

	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		err := get(t.Context(), http.DefaultClient, closedURL)
		require.Error(t, err)
		he := backend.NewTransportError(err, false)
		require.False(t, he.Timeout)
		require.Zero(t, he.StatusCode)
		require.True(t, he.Temporary())
		require.ErrorIs(t, he, err)
		require.Contains(t, he.Error(), "backend: no answer: ")
	})
	t.Run("client timeout", func(t *testing.T) {
		t.Parallel()
		// The transport says it timed out though the caller's deadline did not pass.
		err := get(t.Context(), &http.Client{Timeout: 50 * time.Millisecond}, silent.URL)
		require.Error(t, err)
		he := backend.NewTransportError(err, false)
		require.True(t, he.Timeout)
		require.True(t, he.Temporary())
	})
	t.Run("caller's deadline", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		err := get(ctx, http.DefaultClient, silent.URL)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		he := backend.NewTransportError(err, errors.Is(ctx.Err(), context.DeadlineExceeded))
		require.True(t, he.Timeout)
		require.Contains(t, he.Error(), "no answer before the deadline")
	})
}
