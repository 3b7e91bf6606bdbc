package audio

import (
	"bytes"
	"context"
	"testing"
)

// BenchmarkDecodeWebM reports how many times faster than real time one core
// decodes a track (x_realtime), in the two modes WebRTC voice uses.
func BenchmarkDecodeWebM(b *testing.B) {
	for _, bc := range []struct {
		name string
		args []string
	}{
		{"celt_32k_stereo", []string{"-ac", "2", "-b:a", "32k"}},
		{"silk_16k_mono", []string{"-ac", "1", "-b:a", "16k", "-application", "voip"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			// Pink noise under a tone keeps the encoder busy, like a voice.
			data := ffmpegWebM(b, "anoisesrc=c=pink:a=0.05:d=30[n];sine=f=220:d=30[s];[n][s]amix", bc.args...)
			var audio float64
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				st, err := DecodeWebM(context.Background(), bytes.NewReader(data), func([]int16) error { return nil })
				if err != nil {
					b.Fatal(err)
				}
				audio += st.Duration.Seconds()
			}
			b.ReportMetric(audio/b.Elapsed().Seconds(), "x_realtime")
		})
	}
}
