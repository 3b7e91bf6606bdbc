package transcribe_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/greffier/greffier/transcribe"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

// A Guard around a backend that is still loading its model: the first
// call gets the 503, which is temporary, and the job layer's next attempt
// completes; the guard itself never retries. A job worker maps
// ErrBackendDown to a snooze until BackendDownError.Until, and a Temporary
// *HTTPError with RetryAfter to a snooze of that long (SnoozeFor), so that
// neither uses an attempt.
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
	})
	pcm, err := transcribetest.Synthesize(transcribetest.Layout(0, "alpha", "bravo"), 16000)
	if err != nil {
		fmt.Println(err)
		return
	}
	req := transcribe.Request{Audio: transcribetest.EncodeWAV(pcm, 16000), ExpectSpeech: true}
	_, err = guard.Transcribe(context.Background(), req)
	if he, ok := errors.AsType[*transcribe.HTTPError](err); ok && he.Temporary() {
		_, snooze := transcribe.SnoozeFor(err, time.Now())
		fmt.Println("attempt 1:", he.StatusCode, "snooze:", snooze)
	}
	// River's next attempt, after its backoff.
	res, err := guard.Transcribe(context.Background(), req)
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
	// attempt 1: 503 snooze: false
	// alpha bravo
	// attempts: 2 breaker: closed
}
