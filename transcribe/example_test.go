package transcribe_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// Ogg Opus goes to servers that read it (OpenAI, speaches, vLLM) as it
// is, named .ogg; whisper.cpp's (a Path ending in /inference) or any
// server configured with SendWAV gets it decoded to a 16 kHz WAV. Here,
// a stretch of a meeting fixture re-muxed as Greffier writes a segment.
func ExampleOpenAI_oggOpus() {
	srv := transcribetest.NewServer(transcribetest.Options{})
	defer srv.Close()
	tr, err := transcribe.NewOpenAI(transcribe.OpenAIConfig{BaseURL: srv.BaseURL()})
	if err != nil {
		fmt.Println(err)
		return
	}
	src, err := os.ReadFile(filepath.Join("..", "testdata", "meeting", "alice.opus"))
	if err != nil {
		fmt.Println(err)
		return
	}
	// The packets from 5 s to 7 s, pre-skip 3840: the audio starts at
	// start on the fixture's timeline.
	ogg, start, err := transcribetest.CutOggOpus(src, 5*time.Second, 7*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := tr.Transcribe(context.Background(), transcribe.Request{Audio: ogg})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(srv.Received()[0].Filename, res.Duration)
	for _, w := range res.Words {
		fmt.Printf("%-7s %.1fs-%.1fs\n", w.Text, (start + w.Start).Seconds(), (start + w.End).Seconds())
	}
	// Output:
	// audio.ogg 2s
	// india   5.5s-5.8s
	// juliett 5.9s-6.2s
	// kilo    6.3s-6.6s
}
