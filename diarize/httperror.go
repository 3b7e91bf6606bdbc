package diarize

import (
	"net/http"
	"time"

	"github.com/greffier/greffier/internal/backend"
)

// HTTPError is a failed exchange with the diarization backend: an error
// status, or no answer at all (StatusCode 0: refused connection, reset,
// timeout). Op names the call ("submit", "poll", "upload", "test"). It is
// the type transcribe and summarize use too, so the job layer treats every
// backend alike.
type HTTPError = backend.HTTPError

// backendName starts every HTTPError message of this package
// ("diarization backend submit: ...").
const backendName = "diarization"

// newStatusError describes an error status of the call op from its answer.
func newStatusError(op string, status int, header http.Header, body []byte, now time.Time) *HTTPError {
	// The same keys as errorMessage.
	he := backend.NewStatusError(status, header, body, now, "message", "error", "detail")
	he.Backend, he.Op = backendName, op
	return he
}

// newTransportError describes a call op that got no answer.
func newTransportError(op string, err error, deadlinePassed bool) *HTTPError {
	he := backend.NewTransportError(err, deadlinePassed)
	he.Backend, he.Op = backendName, op
	return he
}

// errorMessage finds the message in the shapes pyannoteAI and the servers
// copying it use (NestJS {"message"}, {"error"}, FastAPI {"detail"}).
func errorMessage(body []byte) string {
	return backend.ErrorMessage(body, "message", "error", "detail")
}
