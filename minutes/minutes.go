// Package minutes turns transcript pieces into one timeline of speaker turns
// and renders it as JSON, WebVTT, SRT, Markdown and plain text. It is pure:
// it touches no database, storage or network, so a re-run over the same
// pieces gives byte-identical minutes.
package minutes

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/greffier/greffier/summarize"
)

// Schema names the JSON document's version.
const Schema = "greffier.minutes/v1"

// DefaultTurnPause is the silence that ends a turn even when the same
// person speaks again afterwards.
const DefaultTurnPause = 1500 * time.Millisecond

// Document is a meeting's minutes. Times are seconds on the meeting clock
// (zero = StartedAt) in the JSON; the *MS fields are the exact values.
type Document struct {
	Schema    string    `json:"schema"`
	MeetingID string    `json:"meeting_id"`
	Title     string    `json:"title"`
	Language  string    `json:"language,omitempty"`
	Version   int       `json:"version"`
	StartedAt time.Time `json:"started_at"`
	Speakers  []Speaker `json:"speakers"`
	Turns     []Turn    `json:"turns"`
	// Missing lists stretches of speech that could not be transcribed;
	// Complete is true only when it is empty.
	Missing  []Gap `json:"missing"`
	Complete bool  `json:"complete"`
	// NotRecorded lists what was not recorded by choice: the stretches
	// the host's recording was off (Speaker "": everyone), and the
	// participants who declined to be recorded. They are not missing:
	// Complete does not count them.
	NotRecorded []Gap `json:"not_recorded,omitempty"`
	// Content says what the minutes hold: "transcript" alone, or
	// "transcript+summary" when a chat backend summarised them.
	Content string `json:"content"`
	// Summary, with a chat backend configured: abstract, topics,
	// decisions and action items, each citing the turns it came from.
	Summary *summarize.Summary `json:"summary,omitempty"`
	// SummaryError says why there is no summary although one was asked for.
	SummaryError string `json:"summary_error,omitempty"`
}

// Transcript is what the summary is made from: the turns, in order.
func (d Document) Transcript() summarize.Transcript {
	tr := summarize.Transcript{Language: d.Language, Title: d.Title}
	for _, t := range d.Turns {
		tr.Turns = append(tr.Turns, summarize.Turn{Speaker: t.Speaker, Name: t.Name,
			Start: summarize.Seconds(t.Start), End: summarize.Seconds(t.End), Text: t.Text})
	}
	return tr
}

// SetSummary attaches a summary, or the reason there is none.
func (d *Document) SetSummary(s *summarize.Summary, err error) {
	d.Summary, d.SummaryError, d.Content = nil, "", "transcript"
	switch {
	case err != nil:
		d.SummaryError = err.Error()
	case s != nil:
		d.Summary, d.Content = s, "transcript+summary"
	}
}

// Speaker is one person in the minutes, keyed by the identity of their
// join token.
type Speaker struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Turn is one speaker's uninterrupted speech.
type Turn struct {
	Speaker string  `json:"speaker"`
	Name    string  `json:"name"`
	Start   Seconds `json:"start"`
	End     Seconds `json:"end"`
	// StartAt is Start as wall-clock time (UTC).
	StartAt time.Time `json:"start_at"`
	Text    string    `json:"text"`
	Words   []Word    `json:"words"`
	// Overlap is true when another speaker talked during this turn.
	Overlap bool `json:"overlap,omitempty"`
}

// Word is one recognised word.
type Word struct {
	Word  string  `json:"word"`
	Start Seconds `json:"start"`
	End   Seconds `json:"end"`
}

// Reasons of the stretches the minutes say were not recorded.
const (
	ReasonNotRecorded = "not recorded"
	ReasonDeclined    = "not recorded: the participant declined to be recorded"
	// ReasonNotTranscribed: recorded, but the host had transcription off.
	ReasonNotTranscribed = "not transcribed: transcription was off"
)

// Gap is a stretch of one speaker's speech missing from the minutes, or
// (in NotRecorded) a stretch not recorded, of everyone when Speaker is "".
type Gap struct {
	Speaker string  `json:"speaker"`
	Name    string  `json:"name"`
	Start   Seconds `json:"start"`
	End     Seconds `json:"end"`
	Reason  string  `json:"reason"`
}

// Seconds is a time on the meeting clock, kept in milliseconds and written
// to JSON as seconds with three decimals.
type Seconds int64

// MS returns the time in milliseconds.
func (s Seconds) MS() int64 { return int64(s) }

// MarshalJSON writes seconds with millisecond precision.
func (s Seconds) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf("%d.%03d", int64(s)/1000, abs(int64(s)%1000))), nil
}

// UnmarshalJSON reads seconds, rounding to the millisecond.
func (s *Seconds) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("seconds: %w", err)
	}
	*s = Seconds(int64(f*1000 + 0.5))
	if f < 0 {
		*s = Seconds(int64(f*1000 - 0.5))
	}
	return nil
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// Piece is the transcript of one speech segment, or its failure.
type Piece struct {
	Speaker        string
	StartMS, EndMS int64
	Text           string
	// Words are on the meeting clock, as the minutes will show them.
	Words []Word
	// Failure, when set, says why this stretch has no transcript.
	Failure string
}

// Input is everything minutes are built from.
type Input struct {
	MeetingID, Title, Language string
	StartedAt                  time.Time
	Speakers                   []Speaker
	Pieces                     []Piece
	// NotRecorded are the stretches not recorded by choice (Name is
	// filled from Speakers).
	NotRecorded []Gap
	// TurnPause overrides DefaultTurnPause.
	TurnPause time.Duration
}

// Build assembles the minutes: pieces split at long pauses, merged into
// turns while the same person keeps the floor, overlaps marked, failures
// listed as missing stretches.
func Build(in Input) Document {
	pause := in.TurnPause
	if pause <= 0 {
		pause = DefaultTurnPause
	}
	names := make(map[string]string, len(in.Speakers))
	for _, s := range in.Speakers {
		names[s.ID] = s.Name
	}
	doc := Document{
		Schema: Schema, MeetingID: in.MeetingID, Title: in.Title, Language: in.Language,
		StartedAt: in.StartedAt.UTC(), Speakers: append([]Speaker{}, in.Speakers...),
		Turns: []Turn{}, Missing: []Gap{}, Content: "transcript",
	}
	var phrases []Turn
	for _, p := range in.Pieces {
		if p.Failure != "" {
			doc.Missing = append(doc.Missing, Gap{Speaker: p.Speaker, Name: names[p.Speaker],
				Start: Seconds(p.StartMS), End: Seconds(p.EndMS), Reason: p.Failure})
			continue
		}
		phrases = append(phrases, split(p, names[p.Speaker], pause.Milliseconds())...)
	}
	sort.SliceStable(phrases, func(i, j int) bool {
		if phrases[i].Start != phrases[j].Start {
			return phrases[i].Start < phrases[j].Start
		}
		return phrases[i].Speaker < phrases[j].Speaker
	})
	for _, ph := range phrases {
		if n := len(doc.Turns); n > 0 {
			last := &doc.Turns[n-1]
			if last.Speaker == ph.Speaker && int64(ph.Start-last.End) < pause.Milliseconds() {
				last.Text += " " + ph.Text
				last.Words = append(last.Words, ph.Words...)
				last.End = max(last.End, ph.End)
				continue
			}
		}
		doc.Turns = append(doc.Turns, ph)
	}
	markOverlaps(doc.Turns)
	for i := range doc.Turns {
		doc.Turns[i].StartAt = doc.WallClock(doc.Turns[i].Start)
	}
	sort.SliceStable(doc.Missing, func(i, j int) bool { return doc.Missing[i].Start < doc.Missing[j].Start })
	doc.Complete = len(doc.Missing) == 0
	for _, g := range in.NotRecorded {
		if g.End > g.Start {
			g.Name = names[g.Speaker]
			doc.NotRecorded = append(doc.NotRecorded, g)
		}
	}
	sort.SliceStable(doc.NotRecorded, func(i, j int) bool {
		a, b := doc.NotRecorded[i], doc.NotRecorded[j]
		if a.Start != b.Start {
			return a.Start < b.Start
		}
		return a.Speaker < b.Speaker
	})
	return doc
}

// split cuts a piece into phrases wherever its words pause for longer than
// pauseMS. A piece without word times is one phrase.
func split(p Piece, name string, pauseMS int64) []Turn {
	text := strings.TrimSpace(p.Text)
	if len(p.Words) == 0 {
		if text == "" {
			return nil
		}
		return []Turn{{Speaker: p.Speaker, Name: name, Start: Seconds(p.StartMS), End: Seconds(p.EndMS),
			Text: text, Words: []Word{}}}
	}
	var out []Turn
	for i, w := range p.Words {
		word := Word{Word: strings.TrimSpace(w.Word), Start: w.Start, End: w.End}
		if word.Word == "" {
			continue
		}
		if i == 0 || len(out) == 0 || w.Start.MS()-out[len(out)-1].End.MS() >= pauseMS {
			out = append(out, Turn{Speaker: p.Speaker, Name: name, Start: word.Start, End: word.End})
		}
		cur := &out[len(out)-1]
		cur.Words = append(cur.Words, word)
		cur.End = max(cur.End, word.End)
	}
	for i := range out {
		ws := make([]string, len(out[i].Words))
		for j, w := range out[i].Words {
			ws[j] = w.Word
		}
		out[i].Text = joinWords(ws)
	}
	return out
}

// joinWords joins words with spaces, except before punctuation that
// backends emit as words of its own.
func joinWords(ws []string) string {
	var b strings.Builder
	for i, w := range ws {
		if i > 0 && !strings.ContainsAny(w[:1], ".,;:!?)") {
			b.WriteByte(' ')
		}
		b.WriteString(w)
	}
	return b.String()
}

func markOverlaps(turns []Turn) {
	for i := range turns {
		for j := i + 1; j < len(turns) && turns[j].Start < turns[i].End; j++ {
			if turns[j].Speaker != turns[i].Speaker {
				turns[i].Overlap, turns[j].Overlap = true, true
			}
		}
	}
}

// WallClock converts a meeting-clock time to wall-clock time (UTC); zero
// when the meeting never started.
func (d Document) WallClock(s Seconds) time.Time {
	if d.StartedAt.IsZero() {
		return time.Time{}
	}
	return d.StartedAt.Add(time.Duration(s) * time.Millisecond).UTC()
}

// Digest identifies the minutes' transcript, version and summary aside: a
// summary is written from the transcript, so the same transcript need not
// be summarised (or versioned) again.
func (d Document) Digest() string {
	d.Version = 0
	d.SetSummary(nil, nil)
	b, _ := json.Marshal(d) // a Document always marshals
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Rename sets every speaker's name from names (identity → display name),
// so a rendering shows names as they are now.
func (d *Document) Rename(names map[string]string) {
	for i, s := range d.Speakers {
		if n, ok := names[s.ID]; ok {
			d.Speakers[i].Name = n
		}
	}
	for i, t := range d.Turns {
		if n, ok := names[t.Speaker]; ok {
			d.Turns[i].Name = n
		}
	}
	for i, g := range d.Missing {
		if n, ok := names[g.Speaker]; ok {
			d.Missing[i].Name = n
		}
	}
	for i, g := range d.NotRecorded {
		if n, ok := names[g.Speaker]; ok {
			d.NotRecorded[i].Name = n
		}
	}
}
