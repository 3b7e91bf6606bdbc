package transcribetest

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Voices of tone speech, for diarized_json: a word's voice is its tone
// band, so the double can tell speakers apart from the audio alone, as a
// diarizing model does from timbre.
const (
	// LowVoice says Vocabulary[:16] ("alpha" to "papa", 300-1800 Hz).
	LowVoice = 0
	// HighVoice says Vocabulary[16:] ("quebec" to "five", 1900-3400 Hz).
	HighVoice = 1
)

// Voice returns the voice that says word, and false for a word outside
// Vocabulary.
func Voice(word string) (int, bool) {
	f, ok := Frequency(word)
	if !ok {
		return 0, false
	}
	if f < lowestTone+toneStep*16 {
		return LowVoice, true
	}
	return HighVoice, true
}

// Limits of gpt-4o-transcribe-diarize that the double enforces.
const (
	// ChunkingRequiredOver is the audio length above which
	// chunking_strategy must be sent.
	ChunkingRequiredOver = 30 * time.Second
	// MaxKnownSpeakers is how many known speakers a request may name.
	MaxKnownSpeakers = 4
	// MinReference and MaxReference bound a known speaker's clip.
	MinReference = 2 * time.Second
	MaxReference = 10 * time.Second
)

// diarizeRequest checks a diarized_json request's own fields as
// gpt-4o-transcribe-diarize does, and returns the names the known
// speakers' clips give to each voice.
func diarizeRequest(r *http.Request, rec Received, duration time.Duration) (map[int]string, error) {
	if len(rec.Granularities) > 0 {
		return nil, fmt.Errorf("timestamp_granularities is not supported with response_format diarized_json")
	}
	if rec.Prompt != "" {
		return nil, fmt.Errorf("prompt is not supported with response_format diarized_json")
	}
	if duration > ChunkingRequiredOver && rec.ChunkingStrategy == "" {
		return nil, fmt.Errorf("chunking_strategy is required for diarization when the audio is longer than %v", ChunkingRequiredOver)
	}
	if rec.ChunkingStrategy != "" && rec.ChunkingStrategy != "auto" && !strings.HasPrefix(rec.ChunkingStrategy, "{") {
		return nil, fmt.Errorf("chunking_strategy must be \"auto\" or a server_vad object, not %q", rec.ChunkingStrategy)
	}
	refs := r.MultipartForm.Value["known_speaker_references[]"]
	if len(rec.KnownSpeakerNames) != len(refs) {
		return nil, fmt.Errorf("known_speaker_names[] (%d) and known_speaker_references[] (%d) must pair up", len(rec.KnownSpeakerNames), len(refs))
	}
	if len(refs) > MaxKnownSpeakers {
		return nil, fmt.Errorf("at most %d known speakers, got %d", MaxKnownSpeakers, len(refs))
	}
	voices := map[int]string{}
	for i, ref := range refs {
		name := rec.KnownSpeakerNames[i]
		pcm, rate, err := decodeDataURL(ref)
		if err != nil {
			return nil, fmt.Errorf("known_speaker_references[%d]: %w", i, err)
		}
		if d := time.Duration(len(pcm)) * time.Second / time.Duration(rate); d < MinReference || d > MaxReference {
			return nil, fmt.Errorf("known_speaker_references[%d] lasts %v, want %v to %v", i, d, MinReference, MaxReference)
		}
		det, err := NewDetector(rate)
		if err != nil {
			return nil, fmt.Errorf("known_speaker_references[%d]: %w", i, err)
		}
		var count [2]int
		for _, w := range det.Detect(pcm) {
			v, _ := Voice(w.Text)
			count[v]++
		}
		switch {
		case count[LowVoice] > count[HighVoice]:
			voices[LowVoice] = name
		case count[HighVoice] > count[LowVoice]:
			voices[HighVoice] = name
		default:
			return nil, fmt.Errorf("known_speaker_references[%d] (%s): no clear voice in the clip", i, name)
		}
	}
	return voices, nil
}

// decodeDataURL reads "data:audio/wav;base64,..." or an Ogg Opus clip's
// "data:audio/ogg;base64,...".
func decodeDataURL(ref string) ([]int16, int, error) {
	meta, data, ok := strings.Cut(ref, ",")
	if !ok || !strings.HasPrefix(meta, "data:audio/") || !strings.HasSuffix(meta, ";base64") {
		return nil, 0, fmt.Errorf("want a data URL such as data:audio/wav;base64,..., got %.40q", ref)
	}
	b, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return nil, 0, fmt.Errorf("base64: %w", err)
	}
	return DecodeAudio(b)
}

type wireDiarizedSegment struct {
	Type    string  `json:"type"`
	ID      string  `json:"id"`
	Start   float64 `json:"start"`
	End     float64 `json:"end"`
	Text    string  `json:"text"`
	Speaker string  `json:"speaker"`
}

type wireDiarized struct {
	Task     string                `json:"task"`
	Duration float64               `json:"duration"`
	Text     string                `json:"text"`
	Segments []wireDiarizedSegment `json:"segments"`
	Usage    map[string]any        `json:"usage"`
}

// diarized groups the words into segments at pauses and at changes of
// voice, labelled by the known speakers' names or else A, B, ... in order
// of first appearance.
func (a answer) diarized(known map[int]string) wireDiarized {
	d := wireDiarized{
		Task: "transcribe", Duration: round2(a.duration), Text: a.text(),
		Segments: []wireDiarizedSegment{},
		Usage:    map[string]any{"type": "duration", "seconds": int(a.duration + 0.999)},
	}
	labels := map[int]string{}
	label := func(v int) string {
		if name, ok := known[v]; ok {
			return name
		}
		if l, ok := labels[v]; ok {
			return l
		}
		l := string(rune('A' + len(labels)))
		labels[v] = l
		return l
	}
	for i := 0; i < len(a.words); {
		v, _ := Voice(a.words[i].Text)
		j := i + 1
		for j < len(a.words) && a.words[j].Start-a.words[j-1].End <= SegmentPause {
			if vj, _ := Voice(a.words[j].Text); vj != v {
				break
			}
			j++
		}
		group := a.words[i:j]
		texts := make([]string, len(group))
		for k, w := range group {
			texts[k] = w.Text
		}
		d.Segments = append(d.Segments, wireDiarizedSegment{
			Type: "transcript.text.segment", ID: fmt.Sprintf("seg_%d", len(d.Segments)),
			Start: seconds(group[0].Start), End: seconds(group[len(group)-1].End),
			Text: " " + strings.Join(texts, " "), Speaker: label(v),
		})
		i = j
	}
	return d
}
