package summarize

import (
	"net/http"
	"time"

	"github.com/greffier/greffier/internal/backend"
)

// HTTPError is a failed exchange with the chat backend: an error status, or
// no answer at all (StatusCode 0: refused connection, reset, timeout). The
// job layer branches on Temporary and waits RetryAfter when it is set. It
// is the type transcribe and diarize use too, shared through a leaf
// package so that this one stays a leaf.
type HTTPError = backend.HTTPError

// backendName starts every HTTPError message of this package
// ("chat backend: ...").
const backendName = "chat"

// timeoutHint is what to do when the model answered too late: a long
// transcript on a slow model needs more than the default.
const timeoutHint = "raise Timeout if the model is slow"

// newStatusError describes an error status from its answer.
func newStatusError(status int, header http.Header, body []byte, now time.Time) *HTTPError {
	he := backend.NewStatusError(status, header, body, now)
	he.Backend, he.TimeoutHint = backendName, timeoutHint
	return he
}

// newTransportError describes an exchange that got no answer.
func newTransportError(err error, deadlinePassed bool) *HTTPError {
	he := backend.NewTransportError(err, deadlinePassed)
	he.Backend, he.TimeoutHint = backendName, timeoutHint
	return he
}
