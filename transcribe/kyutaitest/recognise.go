package kyutaitest

import (
	"math"
	"time"

	"github.com/greffier/greffier/transcribe/transcribetest"
)

// event is a Word (final false) or EndWord (final true) due to be sent.
type event struct {
	text  string
	final bool
	time  float64 // seconds, quantised to model steps, model delay added
}

const (
	// endMargin is how far a word's detected end must lie before the end
	// of the audio processed so far for the word to count as finished: the
	// Detector's last labelled frame is within 10 ms of where audio stops.
	endMargin = 40 * SampleRate / 1000
	// keepHistory bounds the audio kept once nothing is pending in it.
	keepHistory = SampleRate / 2
	// silentPower is the mean square under which a frame counts as a pause.
	silentPower = 1e-4
)

// recogniser is the double's "model": tone speech found by
// transcribetest's Detector over the audio processed so far, reported as
// a streaming model does, each word once its start (Word) and end
// (EndWord) lie the model delay behind the audio processed.
type recogniser struct {
	det   *transcribetest.Detector
	delay int64 // samples
	pcm   []int16
	base  int64 // stream sample index of pcm[0]
	win   int64 // stream sample index where the next detection starts
	open  bool  // a Word was sent, its EndWord not yet
	text  string
	pause float32 // this step's pause probability
}

func newRecogniser(delay time.Duration) (*recogniser, error) {
	det, err := transcribetest.NewDetector(SampleRate)
	if err != nil {
		return nil, err
	}
	return &recogniser{det: det, delay: int64(delay.Seconds() * SampleRate)}, nil
}

// step takes one frame and returns the events it makes due.
func (r *recogniser) step(frame []float32) []event {
	var energy float64
	for _, v := range frame {
		energy += float64(v) * float64(v)
		r.pcm = append(r.pcm, int16(max(-32768, min(32767, math.Round(float64(v)*32768)))))
	}
	r.pause = 0
	if energy/float64(len(frame)) < silentPower {
		r.pause = 1
	}
	n := r.base + int64(len(r.pcm)) // samples processed
	words := r.det.Detect(r.pcm[r.win-r.base:])
	var out []event
	for _, w := range words {
		start := r.win + samples(w.Start)
		end := r.win + samples(w.End)
		if !r.open {
			if start+r.delay > n {
				break
			}
			r.open, r.text = true, w.Text
			out = append(out, event{text: w.Text, time: r.stamp(start)})
		}
		if end+endMargin > n || end+r.delay > n {
			break
		}
		out = append(out, event{text: r.text, final: true, time: r.stamp(end)})
		r.open, r.win = false, end
	}
	if len(words) == 0 && n-r.win > 2*keepHistory {
		r.win = n - keepHistory // nothing in the window: it was silence
	}
	if drop := r.win - r.base; drop > 4*SampleRate {
		r.pcm = r.pcm[:copy(r.pcm, r.pcm[drop:])]
		r.base = r.win
	}
	return out
}

// stamp is a sample index as the model reports it: at its 80 ms step's
// resolution, the model's delay later.
func (r *recogniser) stamp(sample int64) float64 {
	steps := math.Round(float64(sample) / FrameSize)
	return steps*FrameSize/SampleRate + float64(r.delay)/SampleRate
}

func samples(d time.Duration) int64 {
	return int64(math.Round(d.Seconds() * SampleRate))
}
