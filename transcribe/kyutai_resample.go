package transcribe

import "math"

// Resampling from 16 kHz (what Greffier records speech at) to the 24 kHz
// Kyutai models take: a rational 3/2 polyphase windowed-sinc filter. Output
// sample n sits exactly at input time 2n/3, so no delay is added to word
// times; the price is that the last few input samples wait for the next
// ones (or for the end padding) before they come out.
const (
	resampleHalf   = 16    // taps on each side: ~1 ms of look-ahead at 16 kHz
	resampleCutoff = 0.95  // of the 8 kHz input Nyquist: keeps speech, drops images
	kyutaiRate     = 24000 // Hz, what Kyutai models take
	inputRate      = 16000 // Hz, a Request's WAV and KyutaiStream.Write
	kyutaiFrame    = 1920  // samples at 24 kHz: one 80 ms model step
	int16Scale     = 1.0 / 32768
)

// resampleTaps holds the filter for the three output phases (input offsets
// 0, 1/3 and 2/3 of a sample). It is read-only once built and shared by
// every stream of a Kyutai.
type resampleTaps [3][2 * resampleHalf]float32

func newResampleTaps() *resampleTaps {
	var t resampleTaps
	for p := range 3 {
		frac := float64(p) / 3
		var sum float64
		var h [2 * resampleHalf]float64
		for j := range h {
			x := float64(j-resampleHalf+1) - frac // distance from the output instant
			v := resampleCutoff
			if x != 0 {
				v = math.Sin(math.Pi*resampleCutoff*x) / (math.Pi * x)
			}
			// Blackman window over (-resampleHalf, resampleHalf).
			w := 0.42 + 0.5*math.Cos(math.Pi*x/resampleHalf) + 0.08*math.Cos(2*math.Pi*x/resampleHalf)
			h[j] = v * w
			sum += h[j]
		}
		for j := range h {
			t[p][j] = float32(h[j] / sum) // unity gain at DC in every phase
		}
	}
	return &t
}

// resampler turns a stream of 16 kHz PCM16 into 24 kHz float32 in [-1,1].
// Once its buffer has grown to the largest input it sees, it allocates
// nothing. It is not safe for concurrent use.
type resampler struct {
	taps *resampleTaps
	pend []float32 // input samples from index base on
	base int64     // input index of pend[0]
	next int64     // index of the next output sample
}

func newResampler(taps *resampleTaps) *resampler {
	// Samples before the first are silence: start with the history full of it.
	return &resampler{taps: taps, pend: make([]float32, resampleHalf-1, 4096), base: -(resampleHalf - 1)}
}

// process appends to dst every output sample that in makes computable.
func (r *resampler) process(dst []float32, in []int16) []float32 {
	for _, s := range in {
		r.pend = append(r.pend, float32(s)*int16Scale)
	}
	avail := r.base + int64(len(r.pend)) // input indices below avail are known
	for {
		pos := 2 * r.next
		i0, phase := pos/3, pos%3
		if i0+resampleHalf > avail {
			break
		}
		x := r.pend[i0-resampleHalf+1-r.base:][:2*resampleHalf]
		h := &r.taps[phase]
		var acc float32
		for j, v := range x {
			acc += v * h[j]
		}
		dst = append(dst, max(-1, min(1, acc)))
		r.next++
	}
	// Keep only the history the next output needs.
	keep := (2*r.next)/3 - resampleHalf + 1
	if drop := int(keep - r.base); drop > 0 {
		n := copy(r.pend, r.pend[drop:])
		r.pend = r.pend[:n]
		r.base = keep
	}
	return dst
}

// outputFor is how many output samples n input samples stand for.
func outputFor(n int64) int64 { return n * 3 / 2 }
