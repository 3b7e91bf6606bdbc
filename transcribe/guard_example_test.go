package transcribe_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/greffier/greffier/transcribe"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

// A Guard around a backend that is still loading its model: the 503 is
// retried and the call completes. A job worker maps ErrBackendDown to a
// snooze until BackendDownError.Until, and a Temporary *HTTPError with
// RetryAfter to a snooze of that long, so that neither uses an attempt.
func ExampleGuard() {
	srv := transcribetest.NewServer(transcribetest.Options{FailFirst: 1, FailStatus: 503})
	defer srv.Close()
	backend, err := transcribe.NewOpenAI(transcribe.OpenAIConfig{BaseURL: srv.BaseURL()})
	if err != nil {
		fmt.Println(err)
		return
	}
	guard := transcribe.NewGuard(backend, transcribe.GuardConfig{
		Name:        "whisper",
		Concurrency: 2,
		BackoffBase: 10 * time.Millisecond,
	})
	pcm, err := transcribetest.Synthesize(transcribetest.Layout(0, "alpha", "bravo"), 16000)
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := guard.Transcribe(context.Background(), transcribe.Request{Audio: transcribetest.EncodeWAV(pcm, 16000), ExpectSpeech: true})
	if down, ok := errors.AsType[*transcribe.BackendDownError](err); ok {
		fmt.Println("snooze until", down.Until)
		return
	} else if err != nil {
		fmt.Println(err)
		return
	}
	s := guard.Stats()
	fmt.Println(res.Text)
	fmt.Println("attempts:", s.Attempts, "breaker:", s.State)
	// Output:
	// alpha bravo
	// attempts: 2 breaker: closed
}
