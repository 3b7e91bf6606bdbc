package backend

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// MaxExcerpt bounds the body kept in an HTTPError: enough for any
// server's message, not a whole HTML error page. Callers that read an
// error body only for the error may stop reading there.
const MaxExcerpt = 512

// HTTPError is a failed exchange with a backend: an error status, or no
// answer at all (StatusCode 0: refused connection, reset, timeout). The job
// layer branches on Temporary and waits RetryAfter when it is set. The
// transcribe, summarize and diarize packages export it under their own
// name; Backend and Op keep their messages apart.
type HTTPError struct {
	// Backend names the kind of backend in the message ("transcription"
	// gives "transcription backend: ..."); empty gives "backend: ...".
	Backend string
	// Op names the call, when a backend has several ("submit", "poll").
	Op string
	// StatusCode is the HTTP status, 0 when no answer came.
	StatusCode int
	// Message is the server's own message (see ErrorMessage), empty when
	// the body had none.
	Message string
	// Body is the start of the answer's body, at most MaxExcerpt bytes.
	Body string
	// RetryAfter is the server's Retry-After, 0 when absent.
	RetryAfter time.Duration
	// Timeout is true when the call's deadline passed before an answer.
	Timeout bool
	// TimeoutHint says what to do about a passed deadline; it is shown in
	// parentheses after "no answer before the deadline".
	TimeoutHint string
	// Err is the transport error when StatusCode is 0.
	Err error
}

func (e *HTTPError) Error() string {
	var b strings.Builder
	if e.Backend != "" {
		b.WriteString(e.Backend)
		b.WriteByte(' ')
	}
	b.WriteString("backend")
	if e.Op != "" {
		b.WriteByte(' ')
		b.WriteString(e.Op)
	}
	b.WriteString(": ")
	switch {
	case e.StatusCode == 0 && e.Timeout:
		b.WriteString("no answer before the deadline")
		if e.TimeoutHint != "" {
			fmt.Fprintf(&b, " (%s)", e.TimeoutHint)
		}
		fmt.Fprintf(&b, ": %v", e.Err)
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

// NewStatusError describes an error status from its answer: the server's
// message found under keys (see ErrorMessage), the body's start, and the
// Retry-After header read at now. The caller sets Backend and Op.
func NewStatusError(status int, header http.Header, body []byte, now time.Time, keys ...string) *HTTPError {
	excerpt := body
	if len(excerpt) > MaxExcerpt {
		excerpt = excerpt[:MaxExcerpt]
	}
	return &HTTPError{
		StatusCode: status,
		Message:    ErrorMessage(body, keys...),
		Body:       strings.ToValidUTF8(string(excerpt), "?"),
		RetryAfter: ParseRetryAfter(header.Get("Retry-After"), now),
	}
}

// NewTransportError describes an exchange that got no answer. It is a
// timeout when the caller saw its deadline pass, or the transport says so
// (a dial or header timeout of the HTTP client). The caller sets Backend
// and Op.
func NewTransportError(err error, deadlinePassed bool) *HTTPError {
	var ne net.Error
	timeout := deadlinePassed || (errors.As(err, &ne) && ne.Timeout())
	return &HTTPError{Err: err, Timeout: timeout}
}
