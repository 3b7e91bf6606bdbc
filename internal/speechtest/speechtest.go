// Package speechtest makes real speech for tests: espeak-ng saying a
// text, as mono PCM at the rate a test asks for. The conformance suites
// of transcribe and diarize send it to real speech servers, which cannot
// judge the double's tone speech.
//
// It is for _test.go files only and must not be imported by production
// code. It imports internal/audio (to read espeak-ng's WAV) and nothing
// else of ours.
package speechtest

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/greffier/greffier/internal/audio"
)

// Espeak says text with espeak-ng's voice (e.g. "en-us", "en-us+f3") at
// wpm words a minute, and returns it as mono PCM at rate Hz, with the
// silence espeak-ng puts around it. When espeak-ng is not installed the
// error wraps exec.ErrNotFound, so that callers can fall back to other
// audio or skip.
func Espeak(ctx context.Context, voice, text string, wpm, rate int) ([]int16, error) {
	bin, err := exec.LookPath("espeak-ng")
	if err != nil {
		return nil, fmt.Errorf("espeak-ng is not installed (apt-get install espeak-ng): %w", err)
	}
	dir, err := os.MkdirTemp("", "speechtest")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	out := filepath.Join(dir, "speech.wav")
	if msg, err := exec.CommandContext(ctx, bin, "-v", voice, "-s", fmt.Sprint(wpm), "-w", out, text).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("espeak-ng failed: %w: %s", err, msg)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	pcm, from, err := audio.ReadWAV(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("espeak-ng's WAV: %w", err)
	}
	return Resample(pcm, from, rate), nil
}

// Resample converts in from one rate to another by linear interpolation:
// plenty for speech models, which filter far below 8 kHz. It returns in
// itself when the rates are the same.
func Resample(in []int16, from, to int) []int16 {
	if from == to || len(in) == 0 {
		return in
	}
	out := make([]int16, int(int64(len(in))*int64(to)/int64(from)))
	step := float64(from) / float64(to)
	for i := range out {
		x := float64(i) * step
		j := int(x)
		if j+1 >= len(in) {
			out[i] = in[len(in)-1]
			continue
		}
		f := x - float64(j)
		out[i] = int16(math.Round(float64(in[j])*(1-f) + float64(in[j+1])*f))
	}
	return out
}

// Quiet is the |sample| up to which TrimSilence counts espeak-ng's own
// edges as silence.
const Quiet = 200

// TrimSilence cuts the quiet (|sample| <= Quiet) that espeak-ng puts
// around its speech, so that the speech is where the samples are.
func TrimSilence(pcm []int16) []int16 {
	loud := func(s int16) bool { return s > Quiet || s < -Quiet }
	from, to := 0, len(pcm)
	for from < to && !loud(pcm[from]) {
		from++
	}
	for to > from && !loud(pcm[to-1]) {
		to--
	}
	return pcm[from:to]
}
