package transcribe

import (
	"net/http"
	"time"

	"github.com/greffier/greffier/internal/backend"
)

// HTTPError is a failed exchange with a transcription backend: an error
// status, or no answer at all (StatusCode 0: refused connection, reset,
// timeout). The job layer branches on Temporary and waits RetryAfter when
// it is set. It is the type summarize and diarize use too.
type HTTPError = backend.HTTPError

// backendName starts every HTTPError message of this package
// ("transcription backend: ...").
const backendName = "transcription"

// maxErrorExcerpt bounds what is read of an error answer's body.
const maxErrorExcerpt = backend.MaxExcerpt

// newStatusError describes an error status from its answer.
func newStatusError(status int, header http.Header, body []byte, now time.Time) *HTTPError {
	he := backend.NewStatusError(status, header, body, now)
	he.Backend = backendName
	return he
}

// newTransportError describes an exchange that got no answer.
func newTransportError(err error, deadlinePassed bool) *HTTPError {
	he := backend.NewTransportError(err, deadlinePassed)
	he.Backend = backendName
	return he
}
