package summarize

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// messageOverhead is what chat templates add around each message (role
// markers, separators): a few tokens, rounded up.
const messageOverhead = 8

// EstimateTokens estimates how many tokens s costs a model: four ASCII
// bytes per token (English runs about 4 characters per token with GPT-style
// tokenizers), and one token per non-ASCII character, which over-counts
// accented and Cyrillic text somewhat and is about right for CJK. Erring
// high only makes parts smaller; erring low would overflow the context.
// It allocates nothing.
func EstimateTokens(s string) int { return estimate(s) }

func estimate[T string | []byte](s T) int {
	ascii, other := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c < utf8.RuneSelf:
			ascii++
		case c&0xC0 != 0x80: // first byte of a multi-byte character
			other++
		}
	}
	return (ascii+3)/4 + other
}

// appendTurnLine appends one transcript line, e.g.
// "[T12 00:03:14–00:03:40] Alice Martin: text\n". Newlines in names and
// text become spaces, so each turn is exactly one line and nobody's words
// can forge another turn's header.
func appendTurnLine(b []byte, id int, t Turn, text string) []byte {
	b = append(b, "[T"...)
	b = strconv.AppendInt(b, int64(id), 10)
	b = append(b, ' ')
	b = appendClock(b, t.Start)
	b = append(b, "–"...)
	b = appendClock(b, t.End)
	b = append(b, "] "...)
	name := t.Name
	if name == "" {
		name = t.Speaker
	}
	b = appendOneLine(b, name)
	b = append(b, ": "...)
	b = appendOneLine(b, text)
	return append(b, '\n')
}

// appendClock appends hh:mm:ss of a meeting-clock time.
func appendClock(b []byte, s Seconds) []byte {
	v := max(int64(s), 0) / 1000
	b = append2(b, v/3600)
	b = append(b, ':')
	b = append2(b, v/60%60)
	b = append(b, ':')
	return append2(b, v%60)
}

func append2(b []byte, v int64) []byte {
	if v < 10 {
		b = append(b, '0')
	}
	return strconv.AppendInt(b, v, 10)
}

func appendOneLine(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\n', '\r', '\t':
			b = append(b, ' ')
		default:
			b = append(b, c)
		}
	}
	return b
}

// line is one transcript line of a part: a whole turn, or a piece of a
// turn too long for any part.
type line struct {
	turn int
	text string
}

// part is a run of consecutive lines that fits one call.
type part struct {
	lines []line
	first int // first and last turn index shown
	last  int
}

// splitParts cuts the transcript into parts whose lines cost at most
// budget tokens each. A turn longer than budget is cut between words into
// pieces that each keep the turn's id and times.
func splitParts(turns []Turn, budget int) []part {
	var (
		parts []part
		cur   part
		used  int
		buf   []byte
	)
	flush := func() {
		if len(cur.lines) > 0 {
			parts = append(parts, cur)
		}
		cur, used = part{}, 0
	}
	add := func(l line, cost int) {
		if len(cur.lines) > 0 && used+cost > budget {
			flush()
		}
		if len(cur.lines) == 0 {
			cur.first = l.turn
		}
		cur.lines = append(cur.lines, l)
		cur.last = l.turn
		used += cost
	}
	for i, t := range turns {
		buf = appendTurnLine(buf[:0], i, t, t.Text)
		cost := estimate(buf)
		if cost <= budget {
			add(line{turn: i, text: t.Text}, cost)
			continue
		}
		header := cost - EstimateTokens(t.Text)
		for _, piece := range cutText(t.Text, max(budget-header, 16)) {
			add(line{turn: i, text: piece}, header+EstimateTokens(piece))
		}
	}
	flush()
	return parts
}

// cutText cuts s into pieces of at most budget estimated tokens, between
// words when it can.
func cutText(s string, budget int) []string {
	var out []string
	for s != "" {
		if EstimateTokens(s) <= budget {
			out = append(out, s)
			break
		}
		// Walk forward counting as EstimateTokens does, up to the budget.
		end, ascii, other := 0, 0, 0
		for end < len(s) {
			r, size := utf8.DecodeRuneInString(s[end:])
			a, o := ascii, other
			if r < utf8.RuneSelf {
				a++
			} else {
				o++
			}
			if (a+3)/4+o > budget {
				break
			}
			end, ascii, other = end+size, a, o
		}
		if end == 0 {
			_, end = utf8.DecodeRuneInString(s)
		}
		if sp := strings.LastIndexByte(s[:end], ' '); sp > end/2 {
			end = sp + 1
		}
		out = append(out, strings.TrimSpace(s[:end]))
		s = strings.TrimLeft(s[end:], " ")
	}
	return out
}

// languageInstruction says which language to write in.
func languageInstruction(lang string) string {
	if lang == "" {
		return `Write every text in the language the transcript is spoken in, and set "language" to that language's ISO-639-1 code.`
	}
	return fmt.Sprintf(`Write every text in the language with ISO-639-1 code %q, and set "language" to %q.`, lang, lang)
}

// answerShape is the JSON the model is asked for.
const answerShape = `{"language": "<ISO-639-1 code>",
 "abstract": {"text": "<3 to 5 sentences on the whole>", "turns": ["T<id>", ...]},
 "topics": [{"text": "<a topic discussed, one sentence>", "turns": ["T<id>", ...]}],
 "decisions": [{"text": "<a decision taken>", "turns": ["T<id>", ...]}],
 "action_items": [{"text": "<what is to be done>", "owner": "<who, as named, or empty>", "due": "<due date as stated, or empty>", "turns": ["T<id>", ...]}]}`

// partSystemPrompt instructs a call over transcript lines.
func partSystemPrompt(lang string) string {
	return `You write the minutes of a meeting from its transcript. Each transcript line is one speaker's turn: ` +
		`[T<id> <start>–<end>] <speaker>: <words>, with times on the meeting clock (hh:mm:ss).
Answer with one JSON object and nothing else, of this shape:
` + answerShape + `
Rules: every point cites, in "turns", the ids of the turns it comes from (only ids that appear in the transcript). ` +
		`Decisions are only what the participants agreed or decided. Action items are only tasks someone is to do; ` +
		`give the owner and due date only when the transcript states them. Use empty lists when there is nothing. ` +
		languageInstruction(lang)
}

// combineSystemPrompt instructs a call that merges partial summaries.
func combineSystemPrompt(lang string) string {
	return `You merge the summaries of consecutive parts of one meeting into one summary of the whole meeting. ` +
		`Each part's points cite transcript turns by id ("T<id>").
Answer with one JSON object and nothing else, of this shape:
` + answerShape + `
Rules: keep every decision and action item (merge only true duplicates); merge topics that are the same; ` +
		`write one abstract for the whole meeting. Every point keeps the turn ids of the points it comes from ` +
		`(only ids that appear in the parts). ` + languageInstruction(lang)
}

// partUserPrompt renders the lines of part i of n.
func partUserPrompt(title string, turns []Turn, p part, i, n int) string {
	var b []byte
	b = appendHeader(b, title)
	if n > 1 {
		b = fmt.Appendf(b, "This is part %d of %d of the meeting (turns T%d to T%d); the other parts are summarised separately.\n",
			i+1, n, p.first, p.last)
	}
	b = append(b, "Transcript:\n"...)
	for _, l := range p.lines {
		b = appendTurnLine(b, l.turn, turns[l.turn], l.text)
	}
	return string(b)
}

func appendHeader(b []byte, title string) []byte {
	if title != "" {
		b = append(b, "Meeting: "...)
		b = appendOneLine(b, title)
		b = append(b, '\n')
	}
	return b
}

// combineUserPrompt renders partial summaries as the JSON the model
// answered them in, turn ids included.
func combineUserPrompt(title string, drafts []draft) (string, error) {
	type shown struct {
		Turns string `json:"turns"`
		answer
	}
	in := struct {
		Parts []shown `json:"parts"`
	}{Parts: make([]shown, len(drafts))}
	for i, d := range drafts {
		in.Parts[i] = shown{Turns: fmt.Sprintf("T%d–T%d", d.first, d.last), answer: d.toAnswer()}
	}
	js, err := json.Marshal(in)
	if err != nil {
		return "", fmt.Errorf("render partial summaries: %w", err)
	}
	b := appendHeader(nil, title)
	b = fmt.Appendf(b, "Summaries of the %d consecutive parts of the meeting, in order, as JSON:\n", len(drafts))
	b = append(b, js...)
	b = append(b, '\n')
	return string(b), nil
}
