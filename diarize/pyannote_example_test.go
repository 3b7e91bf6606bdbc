package diarize_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/greffier/greffier/diarize"
	"github.com/greffier/greffier/diarize/diarizetest"
	"github.com/greffier/greffier/internal/audio"
)

// Two people share one microphone on Ada's track. The recording is
// uploaded (a presigned https GET would do as well), diarized, and the
// anonymous voices named after the track's owner: the voice that speaks
// most is Ada. Times are relative to the audio sent; the caller adds the
// track's offset on the meeting clock.
func Example_pyannote() {
	ctx := context.Background()
	server := diarizetest.NewServer(diarizetest.Options{APIKey: "key"})
	defer server.Close()
	client := &http.Client{}
	defer client.CloseIdleConnections()

	p, err := diarize.NewPyannote(diarize.PyannoteConfig{
		BaseURL: server.URL(), APIKey: "key", HTTPClient: client,
		PollInterval: 10 * time.Millisecond, // no webhook here: poll
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	samples, _ := diarizetest.Synthesize([]diarizetest.Speech{
		{Pitch: 300, Start: 1 * time.Second, End: 2 * time.Second},
		{Pitch: 200, Start: 2500 * time.Millisecond, End: 5 * time.Second},
	})
	var wav bytes.Buffer
	_ = audio.WriteWAV(&wav, samples)
	length := time.Duration(len(samples)) * time.Second / audio.SampleRate

	url, err := p.Upload(ctx, "tracks/t1.wav", bytes.NewReader(wav.Bytes()), int64(wav.Len()))
	if err != nil {
		fmt.Println(err)
		return
	}
	turns, err := p.Diarize(ctx, url, length)
	if err != nil {
		fmt.Println(err)
		return
	}
	names := diarize.Names(turns, "Ada")
	for _, t := range turns {
		fmt.Printf("%-8s %.1f-%.1f s\n", names[t.Label], float64(t.StartMS)/1000, float64(t.EndMS)/1000)
	}
	// Output:
	// Ada (2)  1.0-2.0 s
	// Ada      2.5-5.0 s
}
