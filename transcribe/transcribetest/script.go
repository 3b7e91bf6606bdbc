package transcribetest

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// Script says who says what when in a multi-speaker fixture such as
// testdata/meeting/script.json. Times are float seconds on the fixture's
// timeline; every speaker's file starts at 0 and lasts Length.
type Script struct {
	Length     float64     `json:"length"`
	SampleRate int         `json:"sample_rate"`
	Utterances []Utterance `json:"utterances"`
}

// Utterance is one speaker's stretch of words.
type Utterance struct {
	Speaker string       `json:"speaker"`
	Start   float64      `json:"start"`
	End     float64      `json:"end"`
	Text    string       `json:"text"`
	Words   []ScriptWord `json:"words"`
}

// ScriptWord is one word of an Utterance.
type ScriptWord struct {
	Text  string  `json:"text"`
	Start float64 `json:"start"`
	End   float64 `json:"end"`
}

// ReadScript reads and checks a script file.
func ReadScript(path string) (Script, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Script{}, fmt.Errorf("read script: %w", err)
	}
	var s Script
	if err := json.Unmarshal(b, &s); err != nil {
		return Script{}, fmt.Errorf("read script %s: %w", path, err)
	}
	if err := s.Validate(); err != nil {
		return Script{}, fmt.Errorf("read script %s: %w", path, err)
	}
	return s, nil
}

// Validate checks that every utterance agrees with its words and that the
// words are speakable and fit in Length.
func (s Script) Validate() error {
	if s.Length <= 0 || s.SampleRate <= 0 {
		return fmt.Errorf("script: length %v and sample_rate %d must be positive", s.Length, s.SampleRate)
	}
	for i, u := range s.Utterances {
		if u.Speaker == "" || len(u.Words) == 0 {
			return fmt.Errorf("script: utterance %d needs a speaker and words", i)
		}
		texts := make([]string, len(u.Words))
		for j, w := range u.Words {
			texts[j] = w.Text
			if _, ok := Frequency(w.Text); !ok {
				return fmt.Errorf("script: utterance %d word %q is not in Vocabulary", i, w.Text)
			}
			if w.End <= w.Start || (j > 0 && w.Start < u.Words[j-1].End) {
				return fmt.Errorf("script: utterance %d word %q at %v-%v overlaps or is empty", i, w.Text, w.Start, w.End)
			}
		}
		if got := strings.Join(texts, " "); got != u.Text {
			return fmt.Errorf("script: utterance %d text %q, but its words say %q", i, u.Text, got)
		}
		if u.Start != u.Words[0].Start || u.End != u.Words[len(u.Words)-1].End || u.End > s.Length {
			return fmt.Errorf("script: utterance %d spans %v-%v, its words %v-%v, the file %v", i, u.Start, u.End, u.Words[0].Start, u.Words[len(u.Words)-1].End, s.Length)
		}
	}
	return nil
}

// Speakers lists the speakers in order of first appearance.
func (s Script) Speakers() []string {
	var out []string
	for _, u := range s.Utterances {
		if !slices.Contains(out, u.Speaker) {
			out = append(out, u.Speaker)
		}
	}
	return out
}

// Words returns a speaker's words in order, with durations.
func (s Script) Words(speaker string) []TimedWord {
	var out []TimedWord
	for _, u := range s.Utterances {
		if u.Speaker != speaker {
			continue
		}
		for _, w := range u.Words {
			out = append(out, TimedWord{Text: w.Text, Start: FromSeconds(w.Start), End: FromSeconds(w.End)})
		}
	}
	slices.SortFunc(out, func(a, b TimedWord) int { return int(a.Start - b.Start) })
	return out
}

// FromSeconds converts float seconds to a Duration rounded to the microsecond.
func FromSeconds(s float64) time.Duration {
	return time.Duration(math.Round(s*1e6)) * time.Microsecond
}
