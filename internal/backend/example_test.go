package backend_test

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/greffier/greffier/internal/backend"
)

// A client turns an error answer into an HTTPError named after its
// backend; the job layer then asks whether, and when, to try again.
func Example() {
	h := http.Header{}
	h.Set("Retry-After", "20")
	he := backend.NewStatusError(http.StatusTooManyRequests, h, []byte(`{"error":{"message":"rate limited"}}`), time.Now())
	he.Backend = "transcription"
	err := fmt.Errorf("segment 3: %w", he)

	if he, ok := errors.AsType[*backend.HTTPError](err); ok && he.Temporary() {
		fmt.Println(he)
		fmt.Println("retry in", he.RetryAfter)
	}
	// Output:
	// transcription backend: HTTP 429 Too Many Requests: rate limited (retry after 20s)
	// retry in 20s
}
