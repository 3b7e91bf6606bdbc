package transcribe

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// timeSlack is how far past the audio's end (or before its start) a time
// may lie and still be trusted, clamped into the audio: whisper servers
// round to 10-20 ms and pad the last segment a little.
const timeSlack = 300 * time.Millisecond

// number is a JSON number that servers may also send as a string (vLLM's
// duration) or null.
type number struct {
	v   float64
	set bool
}

func (n *number) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s = strings.TrimSpace(s); s == "" {
			return nil
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("number in a string: %w", err)
		}
		n.v, n.set = v, true
		return nil
	}
	if err := json.Unmarshal(b, &n.v); err != nil {
		return err
	}
	n.set = true
	return nil
}

type wireWord struct {
	Word  string `json:"word"`
	Start number `json:"start"`
	End   number `json:"end"`
}

type wireSegment struct {
	Start number     `json:"start"`
	End   number     `json:"end"`
	Text  string     `json:"text"`
	Words []wireWord `json:"words"`
}

// wireAnswer is verbose_json as every known server writes it: the fields
// that vary in type are numbers, words may sit at the top or in segments,
// and fields nobody needs (no_speech_prob, tokens) are not decoded.
type wireAnswer struct {
	// Error is whisper.cpp's way to fail: status 200 and
	// {"error":"failed to read audio data"}.
	Error    json.RawMessage `json:"error"`
	Language string          `json:"language"`
	Duration number          `json:"duration"`
	Text     string          `json:"text"`
	Segments []wireSegment   `json:"segments"`
	Words    []wireWord      `json:"words"`
}

// parseAnswer decodes and checks a 2xx body. audio is the length of the
// audio sent: every time must lie within it.
func parseAnswer(body []byte, audio time.Duration, language string) (Result, error) {
	var a wireAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return Result{}, fmt.Errorf("%w: decode verbose_json: %w", ErrBadAnswer, err)
	}
	if msg := answerError(a.Error); msg != "" {
		return Result{}, fmt.Errorf("%w: the backend answered success with an error: %s", ErrBadAnswer, msg)
	}
	res := Result{Language: a.Language, Text: strings.TrimSpace(a.Text), Duration: audio}
	if res.Language == "" {
		res.Language = language
	}
	if a.Duration.set {
		d, err := toDuration(a.Duration.v)
		if err != nil || d < 0 {
			return Result{}, fmt.Errorf("%w: duration %v", ErrBadAnswer, a.Duration.v)
		}
		res.Duration = d
	}
	c := checker{limit: audio}

	for i, s := range a.Segments {
		start, end, err := c.span(s.Start, s.End)
		if err != nil {
			return Result{}, fmt.Errorf("%w: segment %d %q: %w", ErrBadAnswer, i, s.Text, err)
		}
		res.Phrases = append(res.Phrases, Phrase{Text: strings.TrimSpace(s.Text), Start: start, End: end})
	}
	if res.Text == "" {
		parts := make([]string, 0, len(res.Phrases))
		for _, s := range res.Phrases {
			parts = append(parts, s.Text)
		}
		res.Text = strings.Join(parts, " ")
	}

	words := a.Words
	if len(words) == 0 {
		for _, s := range a.Segments {
			words = append(words, mergeTokens(s.Words)...)
		}
	}
	timed := len(words) > 0
	for _, w := range words {
		timed = timed && w.Start.set && w.End.set
	}
	if !timed {
		res.Words = estimateWords(res, audio)
		res.WordsEstimated = len(res.Words) > 0
		return res, nil
	}
	c = checker{limit: audio}
	for i, w := range words {
		text := strings.TrimSpace(w.Word)
		if text == "" {
			continue
		}
		start, end, err := c.span(w.Start, w.End)
		if err != nil {
			return Result{}, fmt.Errorf("%w: word %d %q: %w", ErrBadAnswer, i, text, err)
		}
		res.Words = append(res.Words, Word{Text: text, Start: start, End: end})
	}
	return res, nil
}

// answerError is the message of an "error" member of a 2xx answer, a
// string (whisper.cpp) or an object with a message; empty when there is
// none.
func answerError(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var msg string
	if json.Unmarshal(raw, &msg) == nil {
		return cmp.Or(strings.TrimSpace(msg), "(empty)")
	}
	var obj struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &obj) == nil && strings.TrimSpace(obj.Message) != "" {
		return strings.TrimSpace(obj.Message)
	}
	return string(raw)
}

// checker checks a sequence of spans: finite, within [0, limit] give or take
// timeSlack (and then clamped into it), end not before start, starts never
// going back.
type checker struct {
	limit time.Duration
	last  time.Duration
}

func (c *checker) span(s, e number) (time.Duration, time.Duration, error) {
	if !s.set || !e.set {
		return 0, 0, fmt.Errorf("no start or end")
	}
	start, err := toDuration(s.v)
	if err != nil {
		return 0, 0, fmt.Errorf("start: %w", err)
	}
	end, err := toDuration(e.v)
	if err != nil {
		return 0, 0, fmt.Errorf("end: %w", err)
	}
	switch {
	case start < -timeSlack || end > c.limit+timeSlack:
		return 0, 0, fmt.Errorf("%v-%v is outside the audio's %v", start, end, c.limit)
	case end < start:
		return 0, 0, fmt.Errorf("ends at %v before it starts at %v", end, start)
	}
	start, end = max(0, min(start, c.limit)), max(0, min(end, c.limit))
	if start < c.last {
		return 0, 0, fmt.Errorf("starts at %v, before the previous one at %v", start, c.last)
	}
	c.last = start
	return start, end, nil
}

func toDuration(sec float64) (time.Duration, error) {
	if math.IsNaN(sec) || math.IsInf(sec, 0) || math.Abs(sec) > 1e6 {
		return 0, fmt.Errorf("time %v is not a finite number of seconds", sec)
	}
	return time.Duration(math.Round(sec*1e6)) * time.Microsecond, nil
}

// mergeTokens joins whisper.cpp's per-token entries into words. When a
// segment's entries mark word starts with a leading space, an entry without
// one continues the previous word (" al" + "pha", or a trailing comma);
// otherwise every entry is a word already.
func mergeTokens(tokens []wireWord) []wireWord {
	spaced := false
	for _, t := range tokens {
		if r, _ := utf8.DecodeRuneInString(t.Word); unicode.IsSpace(r) {
			spaced = true
			break
		}
	}
	if !spaced {
		return tokens
	}
	var out []wireWord
	for _, t := range tokens {
		r, _ := utf8.DecodeRuneInString(t.Word)
		if len(out) > 0 && !unicode.IsSpace(r) {
			prev := &out[len(out)-1]
			prev.Word += t.Word
			if t.End.set {
				prev.End = t.End
			}
			continue
		}
		out = append(out, t)
	}
	return out
}

// estimateWords spreads each phrase's words over its time in proportion to
// their length in runes (plus one for the space after each), the best a
// transcript without word times allows. Without phrases the whole text is
// spread over the whole audio.
func estimateWords(res Result, audio time.Duration) []Word {
	phrases := res.Phrases
	if len(phrases) == 0 && res.Text != "" {
		phrases = []Phrase{{Text: res.Text, Start: 0, End: min(res.Duration, audio)}}
	}
	var out []Word
	for _, s := range phrases {
		fields := strings.Fields(s.Text)
		total := len(fields) - 1
		for _, f := range fields {
			total += utf8.RuneCountInString(f)
		}
		span, pos := s.End-s.Start, 0
		for _, f := range fields {
			n := utf8.RuneCountInString(f)
			at := func(p int) time.Duration { return s.Start + span*time.Duration(p)/time.Duration(total) }
			out = append(out, Word{Text: f, Start: at(pos), End: at(pos + n)})
			pos += n + 1
		}
	}
	return out
}
