package diarizetest

import (
	"fmt"
	"math"
	"time"
)

// Voices are pure tones: one voice, one pitch. The analysis works on 20 ms
// frames of 16 kHz audio, whose DFT bins are 50 Hz apart, so a voice on a
// multiple of 50 Hz falls on a bin centre. Two voices are told apart when
// their pitches differ by more than MinPitchGap.
const (
	// SampleRate is the only rate the double hears, as pyannote models
	// take 16 kHz mono.
	SampleRate = 16000
	// LowestPitch and HighestPitch bound the pitches the double hears.
	LowestPitch  = 100.0
	HighestPitch = 1000.0
	// PitchStep is the analysis' resolution; pitches of voices should be
	// multiples of it.
	PitchStep = 50.0
	// MinPitchGap is the least difference between two voices' pitches:
	// closer pitches are heard as one voice.
	MinPitchGap = 100.0

	amplitude = 0.3 // of full scale
	rampTime  = 10 * time.Millisecond
)

// Speech is one voice speaking from Start to End: a tone at Pitch Hz.
type Speech struct {
	Pitch      float64
	Start, End time.Duration
}

// Synthesize renders speech as 16 kHz mono PCM16, as long as the last
// stretch's end. Stretches should not overlap (overlapped frames are heard
// as nobody). Each has 10 ms raised-cosine edges, so no clicks.
func Synthesize(speech []Speech) ([]int16, error) {
	var last time.Duration
	for i, s := range speech {
		if s.Pitch < LowestPitch || s.Pitch > HighestPitch {
			return nil, fmt.Errorf("synthesize: speech %d at %v Hz, want %v to %v Hz", i, s.Pitch, LowestPitch, HighestPitch)
		}
		if s.Start < 0 || s.End <= s.Start {
			return nil, fmt.Errorf("synthesize: speech %d has times %v-%v, want 0 <= start < end", i, s.Start, s.End)
		}
		last = max(last, s.End)
	}
	out := make([]int16, samplesAt(last))
	ramp := samplesAt(rampTime)
	for _, s := range speech {
		from, to := samplesAt(s.Start), samplesAt(s.End)
		n := to - from
		step := 2 * math.Pi * s.Pitch / SampleRate
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

func samplesAt(d time.Duration) int {
	return int((int64(d)*SampleRate + int64(time.Second)/2) / int64(time.Second))
}

// Turn is one stretch of one voice, as the double hears it.
type Turn struct {
	Speaker    string
	Start, End time.Duration
}

const (
	frameSamples = SampleRate / 50  // 20 ms
	hopSamples   = SampleRate / 100 // 10 ms
	// minFramePower is the mean square (full scale = 1) below which a
	// frame is silence: -40 dBFS.
	minFramePower = 1e-4
	// minPurity is the share of a frame's energy one pitch must hold: a
	// voice filling half the frame scores about one half.
	minPurity = 0.5
	// A voice's run may be broken by this many unheard frames and go on.
	maxHoleFrames = 2
	// Runs shorter than this are noise, not speech.
	minRunFrames = 6
)

// Hear labels the voices in 16 kHz mono samples: each frame's dominant
// pitch, found with Goertzel filters on the 50 Hz grid, joins the first
// voice within MinPitchGap/2 of it or starts a new one. Voices are
// SPEAKER_00, SPEAKER_01... in order of first appearance, as pyannote
// numbers them. Edges are within 5 ms of the synthesized ones.
func Hear(samples []int16) []Turn {
	nBins := int((HighestPitch-LowestPitch)/PitchStep) + 1
	coeffs := make([]float64, nBins)
	for k := range coeffs {
		coeffs[k] = 2 * math.Cos(2*math.Pi*(LowestPitch+PitchStep*float64(k))/SampleRate)
	}
	var voices []int // each voice's bin
	voiceOf := func(bin int) int {
		for v, b := range voices {
			if math.Abs(float64(bin-b))*PitchStep < MinPitchGap/2+1 {
				return v
			}
		}
		voices = append(voices, bin)
		return len(voices) - 1
	}

	n := 0
	if len(samples) >= frameSamples {
		n = (len(samples)-frameSamples)/hopSamples + 1
	}
	labels := make([]int, n)
	const scale = 1.0 / 32768
	for i := range n {
		x := samples[i*hopSamples : i*hopSamples+frameSamples]
		labels[i] = -1
		var energy float64
		for _, s := range x {
			v := float64(s) * scale
			energy += v * v
		}
		if energy/frameSamples < minFramePower {
			continue
		}
		best, bestPower := -1, 0.0
		for k, c := range coeffs {
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
		if best >= 0 && bestPower/(energy*frameSamples/2) >= minPurity {
			labels[i] = voiceOf(best)
		}
	}

	var turns []Turn
	run, first, last := -1, 0, 0
	flush := func() {
		if run >= 0 && last-first+1 >= minRunFrames {
			turns = append(turns, Turn{
				Speaker: fmt.Sprintf("SPEAKER_%02d", run),
				Start:   at(first*hopSamples + frameSamples/2 - hopSamples/2),
				End:     at(last*hopSamples + frameSamples/2 + hopSamples/2),
			})
		}
		run = -1
	}
	for i, l := range labels {
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
	// Voices were numbered as frames were heard; a voice whose first run
	// was too short to keep would leave a gap in the labels: renumber.
	return renumber(turns)
}

func renumber(turns []Turn) []Turn {
	names := map[string]string{}
	for i, t := range turns {
		n, ok := names[t.Speaker]
		if !ok {
			n = fmt.Sprintf("SPEAKER_%02d", len(names))
			names[t.Speaker] = n
		}
		turns[i].Speaker = n
	}
	return turns
}

func at(sample int) time.Duration {
	return time.Duration(int64(sample) * int64(time.Second) / SampleRate)
}
