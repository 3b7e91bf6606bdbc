package summarize

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxPointText bounds one point's text: a model that rambles does not get
// to fill the minutes.
const maxPointText = 2000

// answer is the JSON the model is asked to write (see answerShape). Its
// citations are turn ids ("T12"), never times.
type answer struct {
	Language    string        `json:"language"`
	Abstract    answerPoint   `json:"abstract"`
	Topics      []answerPoint `json:"topics"`
	Decisions   []answerPoint `json:"decisions"`
	ActionItems []answerItem  `json:"action_items"`
}

type answerPoint struct {
	Text  string  `json:"text"`
	Turns turnIDs `json:"turns"`
}

// UnmarshalJSON also takes a bare string: models often write the abstract
// as one.
func (p *answerPoint) UnmarshalJSON(b []byte) error {
	if s, ok := bareString(b); ok {
		*p = answerPoint{Text: s}
		return nil
	}
	type plain answerPoint
	var v plain
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = answerPoint(v)
	return nil
}

type answerItem struct {
	Text  string  `json:"text"`
	Owner string  `json:"owner,omitempty"`
	Due   string  `json:"due,omitempty"`
	Turns turnIDs `json:"turns"`
}

// turnIDs takes the forms models write ids in: ["T12", "T13"], [12, 13],
// or one string "T12, T13".
type turnIDs []string

func (t *turnIDs) UnmarshalJSON(b []byte) error {
	if s, ok := bareString(b); ok {
		*t = strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == ';' })
		return nil
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("turns: %w", err)
	}
	out := make(turnIDs, 0, len(raw))
	for _, r := range raw {
		if s, ok := bareString(r); ok {
			out = append(out, s)
			continue
		}
		var n json.Number
		if err := json.Unmarshal(r, &n); err != nil {
			return fmt.Errorf("turn id %s: %w", r, err)
		}
		out = append(out, n.String())
	}
	*t = out
	return nil
}

func bareString(b []byte) (string, bool) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(b, &s) != nil {
		return "", false
	}
	return s, true
}

// parseAnswer finds the JSON object in a model's reply. Servers that ignore
// response_format wrap it in prose or a ``` fence; the first object that
// decodes is the answer.
func parseAnswer(content string) (answer, error) {
	var a answer
	first := strings.IndexByte(content, '{')
	if first < 0 {
		return a, fmt.Errorf("%w: no JSON object in the reply %q", ErrBadAnswer, excerpt(content))
	}
	// Decoding stops at the end of the first value, so trailing prose is
	// fine; prose with a brace before the object is not, so a few later
	// braces are tried too.
	var err error
	for i, tries := first, 0; i >= 0 && tries < 16; tries++ {
		var b answer
		dec := json.NewDecoder(strings.NewReader(content[i:]))
		if e := dec.Decode(&b); e == nil {
			return b, nil
		} else if err == nil {
			err = e
		}
		next := strings.IndexByte(content[i+1:], '{')
		if next < 0 {
			break
		}
		i += 1 + next
	}
	return a, fmt.Errorf("%w: reply is not the JSON asked for: %w (reply starts %q)", ErrBadAnswer, err, excerpt(content))
}

func excerpt(s string) string {
	if len(s) <= 200 {
		return s
	}
	return strings.ToValidUTF8(s[:200], "") + "…"
}

// draft is a checked answer: citations are turn indexes that the model was
// shown.
type draft struct {
	language    string
	abstract    dpoint
	topics      []dpoint
	decisions   []dpoint
	items       []ditem
	first, last int // turn range the draft covers
	notes       []string
}

type dpoint struct {
	text  string
	turns []int
}

type ditem struct {
	dpoint
	owner, due string
}

// check turns an answer into a draft: ids the model was not shown (shown
// reports which it was) are dropped, and so is any point but the abstract
// left with no citation; both are noted. An answer without an abstract is
// a bad answer.
func check(a answer, shown func(int) bool, where string) (draft, error) {
	d := draft{language: strings.ToLower(strings.TrimSpace(a.Language))}
	if len(d.language) > 16 {
		d.language = ""
	}
	var unknown []string
	point := func(text string, ids turnIDs) dpoint {
		p := dpoint{text: clip(strings.TrimSpace(text))}
		for _, id := range ids {
			n, ok := parseTurnID(id)
			if !ok || !shown(n) {
				unknown = append(unknown, strings.TrimSpace(id))
				continue
			}
			p.turns = append(p.turns, n)
		}
		slices.Sort(p.turns)
		p.turns = slices.Compact(p.turns)
		return p
	}
	var dropped []string
	keep := func(kind string, p dpoint) bool {
		switch {
		case p.text == "":
			dropped = append(dropped, "an empty "+kind)
			return false
		case len(p.turns) == 0:
			dropped = append(dropped, fmt.Sprintf("%s %q, which cites no turn of the transcript", kind, p.text))
			return false
		}
		return true
	}
	d.abstract = point(a.Abstract.Text, a.Abstract.Turns)
	if d.abstract.text == "" {
		return draft{}, fmt.Errorf("%w: %s: the reply has no abstract", ErrBadAnswer, where)
	}
	for _, t := range a.Topics {
		if p := point(t.Text, t.Turns); keep("topic", p) {
			d.topics = append(d.topics, p)
		}
	}
	for _, t := range a.Decisions {
		if p := point(t.Text, t.Turns); keep("decision", p) {
			d.decisions = append(d.decisions, p)
		}
	}
	for _, t := range a.ActionItems {
		if p := point(t.Text, t.Turns); keep("action item", p) {
			d.items = append(d.items, ditem{dpoint: p, owner: clip(strings.TrimSpace(t.Owner)), due: clip(strings.TrimSpace(t.Due))})
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		unknown = slices.Compact(unknown)
		if len(unknown) > 10 {
			unknown = append(unknown[:10], "…")
		}
		d.notes = append(d.notes, fmt.Sprintf("%s: dropped citations of turns the model was not shown: %s", where, strings.Join(unknown, ", ")))
	}
	if len(d.abstract.turns) == 0 {
		d.notes = append(d.notes, where+": the abstract cites no turn of the transcript")
	}
	for _, x := range dropped {
		d.notes = append(d.notes, where+": dropped "+x)
	}
	return d, nil
}

// parseTurnID reads "T12", "t12", "12" or "[T12]".
func parseTurnID(id string) (int, bool) {
	id = strings.Trim(strings.TrimSpace(id), "[]")
	id = strings.TrimPrefix(strings.TrimPrefix(id, "T"), "t")
	n, err := strconv.Atoi(id)
	return n, err == nil && n >= 0
}

func clip(s string) string {
	if len(s) <= maxPointText {
		return s
	}
	s = s[:maxPointText]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// toAnswer renders a draft back into the model's shape, for a combining
// call.
func (d draft) toAnswer() answer {
	ids := func(turns []int) turnIDs {
		out := make(turnIDs, len(turns))
		for i, t := range turns {
			out[i] = "T" + strconv.Itoa(t)
		}
		return out
	}
	pts := func(ps []dpoint) []answerPoint {
		out := make([]answerPoint, len(ps))
		for i, p := range ps {
			out[i] = answerPoint{Text: p.text, Turns: ids(p.turns)}
		}
		return out
	}
	a := answer{
		Language:    d.language,
		Abstract:    answerPoint{Text: d.abstract.text, Turns: ids(d.abstract.turns)},
		Topics:      pts(d.topics),
		Decisions:   pts(d.decisions),
		ActionItems: make([]answerItem, len(d.items)),
	}
	for i, it := range d.items {
		a.ActionItems[i] = answerItem{Text: it.text, Owner: it.owner, Due: it.due, Turns: ids(it.turns)}
	}
	return a
}

// cited is every turn a draft cites.
func (d draft) cited() []int {
	var out []int
	out = append(out, d.abstract.turns...)
	for _, ps := range [][]dpoint{d.topics, d.decisions} {
		for _, p := range ps {
			out = append(out, p.turns...)
		}
	}
	for _, it := range d.items {
		out = append(out, it.turns...)
	}
	return out
}

// summary maps a final draft's turn indexes to the turns' real times.
func (d draft) summary(tr Transcript, model string, parts int, notes []string) *Summary {
	cite := func(p dpoint) Point {
		out := Point{Text: p.text, Citations: make([]Citation, 0, len(p.turns))}
		for _, i := range p.turns {
			t := tr.Turns[i]
			out.Citations = append(out.Citations, Citation{Turn: i, Start: t.Start, End: t.End, Speaker: t.Speaker})
		}
		return out
	}
	s := &Summary{
		Language:    tr.Language,
		Abstract:    cite(d.abstract),
		Topics:      make([]Point, 0, len(d.topics)),
		Decisions:   make([]Point, 0, len(d.decisions)),
		ActionItems: make([]ActionItem, 0, len(d.items)),
		Model:       model,
		Parts:       parts,
		Notes:       notes,
	}
	if s.Language == "" {
		s.Language = d.language
	}
	for _, p := range d.topics {
		s.Topics = append(s.Topics, cite(p))
	}
	for _, p := range d.decisions {
		s.Decisions = append(s.Decisions, cite(p))
	}
	for _, it := range d.items {
		s.ActionItems = append(s.ActionItems, ActionItem{Point: cite(it.dpoint), Owner: it.owner,
			OwnerSpeaker: ownerSpeaker(it.owner, tr.Turns), Due: it.due})
	}
	return s
}

// ownerSpeaker finds the participant an owner names: a full name, or a
// first name only one participant has.
func ownerSpeaker(owner string, turns []Turn) string {
	if owner == "" {
		return ""
	}
	byFirst := ""
	ambiguous := false
	seen := map[string]bool{}
	for _, t := range turns {
		if t.Name == "" || seen[t.Speaker] {
			continue
		}
		seen[t.Speaker] = true
		if strings.EqualFold(t.Name, owner) {
			return t.Speaker
		}
		if first, _, _ := strings.Cut(t.Name, " "); strings.EqualFold(first, owner) {
			if byFirst != "" {
				ambiguous = true
			}
			byFirst = t.Speaker
		}
	}
	if ambiguous {
		return ""
	}
	return byFirst
}

// ErrBadAnswer is wrapped by errors when the chat backend answered, but not
// with a usable summary (no JSON object, no abstract, cut off at the token
// limit). A model may do better on another try.
var ErrBadAnswer = errors.New("chat backend gave an unusable answer")
