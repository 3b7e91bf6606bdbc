package transcribe

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestResamplerKeepsTonesAndTime checks the 16->24 kHz path on a 1 kHz
// tone: same amplitude and phase (no delay added), whatever the chunking.
func TestResamplerKeepsTonesAndTime(t *testing.T) {
	t.Parallel()
	const f, amp = 1000.0, 0.5
	in := make([]int16, inputRate) // 1 s
	for i := range in {
		in[i] = int16(math.Round(amp * 32767 * math.Sin(2*math.Pi*f*float64(i)/inputRate)))
	}
	taps := newResampleTaps()
	for _, chunk := range []int{1, 7, 320, 1280, len(in)} {
		r := newResampler(taps)
		var out []float32
		for from := 0; from < len(in); from += chunk {
			out = r.process(out, in[from:min(from+chunk, len(in))])
		}
		require.InDelta(t, outputFor(int64(len(in))), len(out), resampleHalf*2, "chunk %d", chunk)
		var worst float64
		for n := 100; n < len(out)-100; n++ { // away from the zero-padded start
			want := amp * math.Sin(2*math.Pi*f*float64(n)/kyutaiRate)
			worst = max(worst, math.Abs(float64(out[n])-want))
		}
		require.Less(t, worst, 0.01, "chunk %d: worst error %v of full scale", chunk, worst)
	}
}

func TestKyutaiWireRoundTrip(t *testing.T) {
	t.Parallel()
	b := appendKyutaiAudio(nil, []float32{0, 0.5, -1})
	require.Equal(t, byte(0x82), b[0], "a two-entry map")
	var m kyutaiMsg
	require.NoError(t, decodeKyutai(appendKyutaiMarker(nil, 7), &m))
	require.Equal(t, kyutaiMsg{kind: kyutaiMarker, markerID: 7}, m)
	require.Error(t, decodeKyutai([]byte{0x92, 0x01, 0x02}, &m), "an array is not a frame")
	require.Error(t, decodeKyutai(stepFrame(3)[:10], &m), "truncated")
	require.NoError(t, decodeKyutai(stepFrame(3), &m))
	require.Equal(t, kyutaiMsg{kind: kyutaiStep, stepIdx: 3, buffered: 4321}, m)
}

// stepFrame is a Step as moshi-server writes it, prs included.
func stepFrame(idx uint64) []byte {
	b := []byte{0x84}
	b = appendStr(b, "type")
	b = appendStr(b, "Step")
	b = appendStr(b, "step_idx")
	b = append(b, 0xcf, 0, 0, 0, 0, 0, 0, 0, byte(idx))
	b = appendStr(b, "prs")
	b = append(b, 0x92, 0xca, 0x3f, 0x00, 0x00, 0x00, 0xca, 0, 0, 0, 0)
	b = appendStr(b, "buffered_pcm")
	return append(b, 0xcd, 0x10, 0xe1) // 4321
}

func appendStr(b []byte, s string) []byte { return append(append(b, 0xa0|byte(len(s))), s...) }

// TestKyutaiPerChunkPathAllocatesNothing covers what runs every 80 ms:
// resampling a chunk, encoding its Audio frame, decoding a Step.
// Not parallel: AllocsPerRun counts every goroutine's allocations.
func TestKyutaiPerChunkPathAllocatesNothing(t *testing.T) {
	in := make([]int16, 1280)
	for i := range in {
		in[i] = int16(i * 25)
	}
	r := newResampler(newResampleTaps())
	var pcm []float32
	var out []byte
	step := stepFrame(1)
	var m kyutaiMsg
	run := func() {
		pcm = r.process(pcm[:0], in)
		out = appendKyutaiAudio(out[:0], pcm)
		if err := decodeKyutai(step, &m); err != nil {
			t.Fatal(err)
		}
	}
	run() // size the buffers once
	require.Zero(t, testing.AllocsPerRun(100, run))
}

func BenchmarkKyutaiResample80ms(b *testing.B) {
	in := make([]int16, 1280)
	r := newResampler(newResampleTaps())
	var pcm []float32
	b.ReportAllocs()
	b.SetBytes(2 * int64(len(in)))
	for b.Loop() {
		pcm = r.process(pcm[:0], in)
	}
}

func BenchmarkKyutaiEncodeAudio80ms(b *testing.B) {
	pcm := make([]float32, kyutaiFrame)
	var out []byte
	b.ReportAllocs()
	for b.Loop() {
		out = appendKyutaiAudio(out[:0], pcm)
	}
}

func BenchmarkKyutaiDecodeStep(b *testing.B) {
	step := stepFrame(1)
	var m kyutaiMsg
	b.ReportAllocs()
	for b.Loop() {
		if err := decodeKyutai(step, &m); err != nil {
			b.Fatal(err)
		}
	}
}

// TestKyutaiInputOggOpus checks that Ogg Opus goes to the session decoded
// straight to 24 kHz, its pre-skip dropped and its end trimmed: alice's
// "alpha" starts at 1.0 s of her 9 s file.
func TestKyutaiInputOggOpus(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "meeting", "alice.opus"))
	require.NoError(t, err)
	in, err := kyutaiInput(b)
	require.NoError(t, err)
	require.Nil(t, in.pcm16k)
	require.Len(t, in.pcm24k, 9*kyutaiRate)
	require.Equal(t, 9*time.Second, in.duration())
	onset := slices.IndexFunc(in.pcm24k, func(v float32) bool { return math.Abs(float64(v)) > 0.05 })
	require.InDelta(t, kyutaiRate, onset, kyutaiRate/200, "within 5 ms of 1 s")

	wav, err := audioAsWAV(b)
	require.NoError(t, err)
	in, err = kyutaiInput(wav)
	require.NoError(t, err)
	require.Nil(t, in.pcm24k)
	require.Len(t, in.pcm16k, 9*inputRate)
	require.Equal(t, 9*time.Second, in.duration())
}
