// Command tonespeech writes one speaker of a tone-speech script as a mono
// PCM16 WAV file, for testdata/meeting/generate.sh to encode with opusenc.
//
//	go run ./transcribe/transcribetest/cmd/tonespeech -script script.json -speaker alice -out alice.wav
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/greffier/greffier/transcribe/transcribetest"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "tonespeech:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("tonespeech", flag.ContinueOnError)
	scriptPath := fs.String("script", "script.json", "script file")
	speaker := fs.String("speaker", "", "speaker whose words to render (required)")
	out := fs.String("out", "", "WAV file to write (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *speaker == "" || *out == "" {
		return fmt.Errorf("set -speaker and -out")
	}
	script, err := transcribetest.ReadScript(*scriptPath)
	if err != nil {
		return err
	}
	words := script.Words(*speaker)
	if len(words) == 0 {
		return fmt.Errorf("speaker %q says nothing in %s (speakers: %v)", *speaker, *scriptPath, script.Speakers())
	}
	pcm, err := transcribetest.Synthesize(words, script.SampleRate)
	if err != nil {
		return err
	}
	// Pad with silence to the script's length so every speaker's file
	// starts and ends together.
	total := int(script.Length * float64(script.SampleRate))
	if len(pcm) < total {
		pcm = append(pcm, make([]int16, total-len(pcm))...)
	}
	if err := os.WriteFile(*out, transcribetest.EncodeWAV(pcm, script.SampleRate), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	return nil
}
