package summarize

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxErrorExcerpt bounds the body kept in an HTTPError: enough for any
// server's message, not a whole HTML error page.
const maxErrorExcerpt = 512

// HTTPError is a failed exchange with the chat backend: an error status, or
// no answer at all (StatusCode 0: refused connection, reset, timeout). It
// mirrors transcribe.HTTPError, which is not imported so that this package
// stays a leaf. The job layer branches on Temporary and waits RetryAfter
// when it is set.
type HTTPError struct {
	// StatusCode is the HTTP status, 0 when no answer came.
	StatusCode int
	// Message is the server's own message ({"error":{"message":...}},
	// {"error":"..."} or {"detail":...}), empty when the body had none.
	Message string
	// Body is the start of the answer's body, at most 512 bytes.
	Body string
	// RetryAfter is the server's Retry-After, 0 when absent.
	RetryAfter time.Duration
	// Timeout is true when the call's deadline passed before an answer.
	Timeout bool
	// Err is the transport error when StatusCode is 0.
	Err error
}

func (e *HTTPError) Error() string {
	var b strings.Builder
	b.WriteString("chat backend: ")
	switch {
	case e.StatusCode == 0 && e.Timeout:
		fmt.Fprintf(&b, "no answer before the deadline (raise Timeout if the model is slow): %v", e.Err)
	case e.StatusCode == 0:
		fmt.Fprintf(&b, "no answer: %v", e.Err)
	default:
		fmt.Fprintf(&b, "HTTP %d %s", e.StatusCode, http.StatusText(e.StatusCode))
		if e.Message != "" {
			fmt.Fprintf(&b, ": %s", e.Message)
		} else if e.Body != "" {
			fmt.Fprintf(&b, ": %q", e.Body)
		}
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %v)", e.RetryAfter)
	}
	return b.String()
}

func (e *HTTPError) Unwrap() error { return e.Err }

// Temporary reports whether the same request may succeed later: no answer
// (server down, restarting, or slow), 408, 425, 429 (rate limit) and 5xx
// but 501 (503 is what servers say while a model loads).
func (e *HTTPError) Temporary() bool {
	switch {
	case e.StatusCode == 0:
		return true
	case e.StatusCode == http.StatusNotImplemented:
		return false
	case e.StatusCode >= 500:
		return true
	}
	switch e.StatusCode {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return false
}

// newStatusError describes an error status from its answer.
func newStatusError(status int, header http.Header, body []byte, now time.Time) *HTTPError {
	excerpt := body
	if len(excerpt) > maxErrorExcerpt {
		excerpt = excerpt[:maxErrorExcerpt]
	}
	return &HTTPError{
		StatusCode: status,
		Message:    errorMessage(body),
		Body:       strings.ToValidUTF8(string(excerpt), "?"),
		RetryAfter: parseRetryAfter(header.Get("Retry-After"), now),
	}
}

// newTransportError describes an exchange that got no answer.
func newTransportError(err error, deadlinePassed bool) *HTTPError {
	var ne net.Error
	timeout := deadlinePassed || (errors.As(err, &ne) && ne.Timeout())
	return &HTTPError{Err: err, Timeout: timeout}
}

// errorMessage finds the message in OpenAI's error shape and the shapes
// self-hosted servers use instead.
func errorMessage(body []byte) string {
	var e struct {
		Error  any `json:"error"`
		Detail any `json:"detail"` // FastAPI servers
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return ""
	}
	for _, v := range []any{e.Error, e.Detail} {
		switch m := v.(type) {
		case string:
			return m
		case map[string]any:
			if s, ok := m["message"].(string); ok {
				return s
			}
		}
	}
	return ""
}

// parseRetryAfter reads delay-seconds or an HTTP date (RFC 9110 10.2.3).
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 || s > 86400 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
