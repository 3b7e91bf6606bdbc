package transcribe_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/greffier/greffier/transcribe"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

// A backend pointed at the test double, hearing tone speech. Against a
// real server only BaseURL (and APIKey, Model, Path) change.
func ExampleOpenAI() {
	srv := transcribetest.NewServer(transcribetest.Options{})
	defer srv.Close()
	tr, err := transcribe.NewOpenAI(transcribe.OpenAIConfig{BaseURL: srv.BaseURL()})
	if err != nil {
		fmt.Println(err)
		return
	}
	pcm, err := transcribetest.Synthesize(transcribetest.Layout(time.Second, "hotel", "echo", "lima", "lima", "oscar"), 16000)
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := tr.Transcribe(context.Background(), transcribe.Request{Audio: transcribetest.EncodeWAV(pcm, 16000), Language: "en"})
	if he, ok := errors.AsType[*transcribe.HTTPError](err); ok && he.Temporary() {
		fmt.Println("try again in", he.RetryAfter)
		return
	} else if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Text)
	for _, w := range res.Words {
		fmt.Printf("%-6s %.1fs-%.1fs\n", w.Text, w.Start.Seconds(), w.End.Seconds())
	}
	// Output:
	// hotel echo lima lima oscar
	// hotel  1.0s-1.3s
	// echo   1.4s-1.7s
	// lima   1.8s-2.1s
	// lima   2.2s-2.5s
	// oscar  2.6s-2.9s
}
