package transcribetest

import (
	"fmt"
	"math"
	"time"
)

// Tone speech: each vocabulary word is a pure tone burst. The tones sit on
// multiples of 100 Hz so that, with 20 ms analysis frames, every tone falls
// exactly on a DFT bin centre and its neighbours fall on nulls; 100 Hz apart
// survives Opus at 32 kbit/s and resampling to 16 kHz.
const (
	// WordDuration is how long Layout makes each word's tone.
	WordDuration = 300 * time.Millisecond
	// WordGap is the silence Layout leaves between words of one utterance.
	WordGap = 100 * time.Millisecond
	// SegmentPause is the silence above which the double starts a new segment.
	SegmentPause = 500 * time.Millisecond

	lowestTone = 300.0 // Hz, Vocabulary[0]
	toneStep   = 100.0 // Hz between consecutive Vocabulary words
	amplitude  = 0.3   // of full scale: loud but far from clipping after Opus
	rampTime   = 10 * time.Millisecond
)

// Vocabulary is every word tone speech can say, in tone order: word i is a
// tone of 300 + 100*i Hz (300 Hz to 3400 Hz).
var Vocabulary = []string{
	"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
	"india", "juliett", "kilo", "lima", "mike", "november", "oscar", "papa",
	"quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey", "xray",
	"yankee", "zulu", "zero", "one", "two", "three", "four", "five",
}

// Frequency returns the tone of a vocabulary word.
func Frequency(word string) (float64, bool) {
	for i, w := range Vocabulary {
		if w == word {
			return lowestTone + toneStep*float64(i), true
		}
	}
	return 0, false
}

// TimedWord is one word of tone speech, its times from the start of the audio.
type TimedWord struct {
	Text  string
	Start time.Duration
	End   time.Duration
}

// Layout places words one after another from start: WordDuration each,
// WordGap between them.
func Layout(start time.Duration, words ...string) []TimedWord {
	out := make([]TimedWord, len(words))
	t := start
	for i, w := range words {
		out[i] = TimedWord{Text: w, Start: t, End: t + WordDuration}
		t += WordDuration + WordGap
	}
	return out
}

// Synthesize renders words as tone speech: mono PCM16 at sampleRate, as long
// as the last word's end. Each burst has 10 ms raised-cosine edges so that
// an encoder sees no clicks.
func Synthesize(words []TimedWord, sampleRate int) ([]int16, error) {
	if sampleRate < 8000 {
		return nil, fmt.Errorf("synthesize: sample rate %d too low, want at least 8000 (tones reach 3400 Hz)", sampleRate)
	}
	var last time.Duration
	for i, w := range words {
		if _, ok := Frequency(w.Text); !ok {
			return nil, fmt.Errorf("synthesize: word %d %q is not in Vocabulary", i, w.Text)
		}
		if w.Start < 0 || w.End <= w.Start {
			return nil, fmt.Errorf("synthesize: word %d %q has times %v-%v, want 0 <= start < end", i, w.Text, w.Start, w.End)
		}
		last = max(last, w.End)
	}
	out := make([]int16, samplesAt(last, sampleRate))
	ramp := samplesAt(rampTime, sampleRate)
	for _, w := range words {
		f, _ := Frequency(w.Text)
		from, to := samplesAt(w.Start, sampleRate), samplesAt(w.End, sampleRate)
		n := to - from
		step := 2 * math.Pi * f / float64(sampleRate)
		for i := range n {
			g := amplitude
			if edge := min(i, n-1-i); edge < ramp {
				g *= 0.5 - 0.5*math.Cos(math.Pi*float64(edge)/float64(ramp))
			}
			v := float64(out[from+i]) + g*32767*math.Sin(step*float64(i))
			out[from+i] = int16(max(-32768, min(32767, math.Round(v))))
		}
	}
	return out, nil
}

func samplesAt(d time.Duration, rate int) int {
	return int((int64(d)*int64(rate) + int64(time.Second)/2) / int64(time.Second))
}

// Detector finds tone-speech words in PCM. It keeps its analysis buffers, so
// one Detector reused over many calls allocates only the words it returns.
// It is not safe for concurrent use.
type Detector struct {
	rate   int
	frame  int // samples per analysis frame (20 ms)
	hop    int // samples between frame starts (10 ms)
	coeffs []float64
	labels []int16
}

// NewDetector returns a Detector for audio at sampleRate.
func NewDetector(sampleRate int) (*Detector, error) {
	if sampleRate < 8000 || sampleRate%100 != 0 {
		return nil, fmt.Errorf("detector: sample rate %d unsupported, want a multiple of 100 Hz, at least 8000", sampleRate)
	}
	d := &Detector{rate: sampleRate, frame: sampleRate / 50, hop: sampleRate / 100}
	d.coeffs = make([]float64, len(Vocabulary))
	for i := range Vocabulary {
		f := lowestTone + toneStep*float64(i)
		d.coeffs[i] = 2 * math.Cos(2*math.Pi*f/float64(sampleRate))
	}
	return d, nil
}

const (
	// minFramePower is the mean square (full scale = 1) below which a frame
	// is silence: -40 dBFS.
	minFramePower = 1e-4
	// minPurity is the share of a frame's energy one tone must hold. A tone
	// filling a fraction q of the frame scores about q, so a frame is
	// labelled when the word covers at least half of it.
	minPurity = 0.5
	// A run of one word may be broken by this many unlabelled frames (an
	// Opus artefact) and still be one word.
	maxHoleFrames = 2
	// Runs shorter than this are noise, not words (a word is ~30 frames).
	minRunFrames = 6
)

// Detect returns the words heard in samples, with times from the start.
func (d *Detector) Detect(samples []int16) []TimedWord {
	d.label(samples)
	var words []TimedWord
	run, first, last := int16(-1), 0, 0
	flush := func() {
		if run >= 0 && last-first+1 >= minRunFrames {
			words = append(words, TimedWord{
				Text:  Vocabulary[run],
				Start: d.at(first*d.hop + d.frame/2 - d.hop/2),
				End:   d.at(last*d.hop + d.frame/2 + d.hop/2),
			})
		}
		run = -1
	}
	for i, l := range d.labels {
		switch {
		case l < 0:
			if run >= 0 && i-last > maxHoleFrames {
				flush()
			}
		case l == run:
			last = i
		default:
			flush()
			run, first, last = l, i, i
		}
	}
	flush()
	return words
}

// at converts a sample index to time. Word edges come from the first and
// last frames a word fills at least half of. The first such frame's middle
// lies in [onset, onset+hop) and the last one's in (offset-hop, offset], so
// an edge placed half a hop from that middle is within half a hop (5 ms).
func (d *Detector) at(sample int) time.Duration {
	return time.Duration(int64(sample) * int64(time.Second) / int64(d.rate))
}

// label sets d.labels[i] to the Vocabulary index of the tone filling frame i,
// or -1.
func (d *Detector) label(samples []int16) {
	n := 0
	if len(samples) >= d.frame {
		n = (len(samples)-d.frame)/d.hop + 1
	}
	if cap(d.labels) < n {
		d.labels = make([]int16, n)
	}
	d.labels = d.labels[:n]
	const scale = 1.0 / 32768
	for i := range n {
		x := samples[i*d.hop : i*d.hop+d.frame]
		var energy float64
		for _, s := range x {
			v := float64(s) * scale
			energy += v * v
		}
		d.labels[i] = -1
		if energy/float64(d.frame) < minFramePower {
			continue
		}
		best, bestPower := -1, 0.0
		for k, c := range d.coeffs {
			var s1, s2 float64
			for _, s := range x {
				s0 := float64(s)*scale + c*s1 - s2
				s2, s1 = s1, s0
			}
			if p := s1*s1 + s2*s2 - c*s1*s2; p > bestPower {
				best, bestPower = k, p
			}
		}
		// A pure tone of N samples on a bin centre has Goertzel power
		// (A*N/2)^2 and energy A^2*N/2: their ratio is N/2.
		if best >= 0 && bestPower/(energy*float64(d.frame)/2) >= minPurity {
			d.labels[i] = int16(best)
		}
	}
}
