package summarize

import (
	"encoding/json"
	"fmt"
)

// Transcript is what a summary is made from: a meeting's turns in time
// order. It mirrors the fields of minutes.Document that a summary needs,
// because minutes holds the Summary and so cannot be imported from here
// (see the package comment for the conversion).
type Transcript struct {
	// Language is the meeting's ISO-639-1 code ("en", "fr"). Empty means:
	// write in the transcript's own language, and report it.
	Language string
	// Title is the meeting's title, given to the model as context. Optional.
	Title string
	// Turns are the speakers' turns, in time order.
	Turns []Turn
}

// Turn is one speaker's uninterrupted speech.
type Turn struct {
	// Speaker is the speaker's identity (the join token's), copied into
	// the citations.
	Speaker string
	// Name is the display name shown to the model; Speaker when empty.
	Name string
	// Start and End are on the meeting clock.
	Start, End Seconds
	Text       string
}

// Summary is a meeting's summary. Every point carries citations to the
// turns it came from, with those turns' real times: times are never taken
// from the model, only turn ids, which are checked.
type Summary struct {
	// Language is the summary's ISO-639-1 code: the transcript's Language,
	// or the one the model reported when that was empty.
	Language string `json:"language"`
	// Abstract is a short paragraph on the whole meeting.
	Abstract    Point        `json:"abstract"`
	Topics      []Point      `json:"topics"`
	Decisions   []Point      `json:"decisions"`
	ActionItems []ActionItem `json:"action_items"`
	// Model is the model that wrote the summary, as the server named it.
	Model string `json:"model"`
	// Parts is how many parts the transcript was summarised in; above 1,
	// a combining call merged them.
	Parts int `json:"parts"`
	// Notes say what was dropped from the model's answer and why
	// (citations to turns that do not exist, points left with none).
	Notes []string `json:"notes,omitempty"`
}

// Point is one statement of a summary and where in the meeting it came from.
type Point struct {
	Text string `json:"text"`
	// Citations are in time order, one per cited turn. Only the abstract
	// may have none (when the model cited nothing that exists); other
	// points without a valid citation are dropped and noted.
	Citations []Citation `json:"citations"`
}

// Citation is one turn a point came from.
type Citation struct {
	// Turn is the turn's index in Transcript.Turns (the model sees it as
	// "T<index>").
	Turn int `json:"turn"`
	// Start and End are the turn's times on the meeting clock.
	Start   Seconds `json:"start"`
	End     Seconds `json:"end"`
	Speaker string  `json:"speaker"`
}

// ActionItem is something someone is to do.
type ActionItem struct {
	Point
	// Owner is who is to do it, as stated in the meeting; empty when no
	// one was named.
	Owner string `json:"owner,omitempty"`
	// OwnerSpeaker is the identity of the participant whose name is Owner,
	// when one matches (case aside).
	OwnerSpeaker string `json:"owner_speaker,omitempty"`
	// Due is the due date as stated ("Friday", "2025-06-30"); empty when
	// none was.
	Due string `json:"due,omitempty"`
}

// Seconds is a time on the meeting clock in milliseconds, written to JSON
// as seconds with three decimals: the same encoding as minutes.Seconds,
// which converts to it directly (Seconds(t.Start)).
type Seconds int64

// MS returns the time in milliseconds.
func (s Seconds) MS() int64 { return int64(s) }

// MarshalJSON writes seconds with millisecond precision.
func (s Seconds) MarshalJSON() ([]byte, error) {
	v := int64(s)
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	return fmt.Appendf(nil, "%s%d.%03d", sign, v/1000, v%1000), nil
}

// UnmarshalJSON reads seconds, rounding to the millisecond.
func (s *Seconds) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("seconds: %w", err)
	}
	if f < 0 {
		*s = Seconds(int64(f*1000 - 0.5))
	} else {
		*s = Seconds(int64(f*1000 + 0.5))
	}
	return nil
}
