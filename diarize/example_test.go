package diarize_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"

	"github.com/greffier/greffier/diarize"
	"github.com/greffier/greffier/internal/audio"
)

// A track is decoded frame by frame and fed to a VoiceDetector; each segment
// that closes becomes a WAV for the transcription backend. Memory stays
// bounded by one segment, whatever the track's length.
func Example_track() {
	speechWAVs := func(ctx context.Context, track io.Reader, put func(startMS int64, wav []byte) error) error {
		seg := diarize.NewVoiceDetector(diarize.VoiceDetectorConfig{})
		save := func(segs []diarize.Speech) error {
			for _, sp := range segs {
				var wav bytes.Buffer
				if err := audio.WriteWAV(&wav, sp.PCM); err != nil {
					return err
				}
				// The backend answers in seconds from the start of this
				// WAV: AudioStartMS is what to add to its times.
				if err := put(sp.AudioStartMS, wav.Bytes()); err != nil {
					return err
				}
			}
			return nil
		}
		_, err := audio.DecodeWebM(ctx, track, func(frame []int16) error {
			return save(seg.Write(frame))
		})
		if err != nil {
			return err
		}
		return save(seg.Flush())
	}
	_ = speechWAVs
}

func ExampleVoiceDetector() {
	// Two seconds of quiet, one of a 200 Hz tone, two of quiet.
	pcm := make([]int16, 5*audio.SampleRate)
	for i := 2 * audio.SampleRate; i < 3*audio.SampleRate; i++ {
		pcm[i] = int16(3000 * math.Sin(2*math.Pi*200*float64(i)/audio.SampleRate))
	}
	seg := diarize.NewVoiceDetector(diarize.VoiceDetectorConfig{})
	var found []diarize.Speech
	for i := 0; i < len(pcm); i += audio.FrameSamples {
		found = append(found, seg.Write(pcm[i:i+audio.FrameSamples])...)
	}
	found = append(found, seg.Flush()...)
	for _, sp := range found {
		fmt.Printf("speech %d-%d ms, audio from %d ms, %d ms long\n",
			sp.StartMS, sp.EndMS, sp.AudioStartMS, sp.AudioEndMS-sp.AudioStartMS)
	}
	// Output:
	// speech 2000-3000 ms, audio from 1850 ms, 1300 ms long
}
