package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Text analysis for search, done in Go for both databases so that they
// find the same things: a transcript is cut into words, each word folded
// (fold) and stemmed by its segment's index language, and the index
// holds those forms joined by spaces (speech_segments.search_text). Each
// database then only splits that text on spaces: SQLite's FTS5 with its
// unicode61 tokenizer, Postgres with to_tsvector('simple'), which neither
// stems nor drops stop words.

// span is one word of a text: its bytes are text[start:end].
type span struct{ start, end int }

// wordSpans cuts text into words: runs of letters, digits and the marks
// that follow them. Apostrophes, hyphens and punctuation separate words,
// so "l'élection" is "l" and "élection" (the index keeps both).
func wordSpans(text string) []span {
	var out []span
	start := -1
	for i, r := range text {
		in := unicode.IsLetter(r) || unicode.IsNumber(r) || (start >= 0 && unicode.In(r, unicode.Mn, unicode.Mc))
		switch {
		case in && start < 0:
			start = i
		case !in && start >= 0:
			out = append(out, span{start, i})
			start = -1
		}
	}
	if start >= 0 {
		out = append(out, span{start, len(text)})
	}
	return out
}

// word is fold for one word, keeping letters and digits only (a
// compatibility form may bring others: "½" is "1⁄2"). ASCII words, most
// of them, skip the Unicode pipeline.
func (fo *folder) word(w string) string {
	ascii, lower := true, true
	for i := 0; i < len(w); i++ {
		c := w[i]
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
		if 'A' <= c && c <= 'Z' {
			lower = false
		}
	}
	if ascii {
		if lower {
			return w
		}
		return strings.ToLower(w)
	}
	f := fo.fold(w)
	if strings.IndexFunc(f, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) }) < 0 {
		return f
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsNumber(r) {
			return r
		}
		return -1
	}, f)
}

// indexText is what the index holds for a transcript in lang: each word's
// folded, stemmed form, space-separated.
func indexText(text, lang string) string {
	stem := stemmerFor(lang)
	fo := newFolder()
	var b strings.Builder
	for _, sp := range wordSpans(text) {
		f := fo.word(text[sp.start:sp.end])
		if f == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(stem(f))
	}
	return b.String()
}

// Query errors: every error about the query's text is an ErrBadQuery;
// ErrEmptyQuery when it gives nothing to look for. ErrBadCursor: the
// cursor is damaged or belongs to another query.
var (
	ErrBadQuery   = errors.New("bad query")
	ErrEmptyQuery = fmt.Errorf("%w: it has no word to find", ErrBadQuery)
	ErrBadCursor  = errors.New("the cursor does not belong to this query")
)

// Bounds on a query.
const (
	MaxQueryItems = 20 // words, phrases and prefixes
	maxPhraseLen  = 10 // words in one phrase
	minPrefixLen  = 2  // letters before a '*'
)

// queryItem is one thing every hit must contain: a word, a phrase (words
// in a row) or a prefix. A word or phrase is matched in any of the index
// languages' forms, since the query does not say its language.
type queryItem struct {
	alts [][]string // alternative sequences of forms, one per distinct stemming
	// prefixes, set for a prefix item ("électo*"), are the folded prefix
	// and its distinct stems: the index holds stems, so "municipales*"
	// must also look for "municipal…" to find "municipales" itself.
	prefixes []string
}

// parsedQuery is a user's query analysed like the index: a list of items,
// all required.
type parsedQuery struct {
	items []queryItem
	forms map[string]bool // every form of every word, for highlighting
}

// queryLanguages are the stemmings a query word is tried in: each index
// language, and none (segments of other languages).
var queryLanguages = []string{"fr", "en", ""}

// parseQuery reads the query syntax: words (all required), "quoted
// phrases", and word* for a prefix. Anything else is punctuation.
func parseQuery(q string) (parsedQuery, error) {
	p := parsedQuery{forms: map[string]bool{}}
	fo := newFolder()
	addWords := func(text string, phrase bool) error {
		spans := wordSpans(text)
		var folded []string
		for _, sp := range spans {
			f := fo.word(text[sp.start:sp.end])
			if f == "" {
				continue
			}
			if !phrase && sp.end < len(text) && text[sp.end] == '*' {
				if utf8.RuneCountInString(f) < minPrefixLen {
					return fmt.Errorf("%w: a prefix needs at least %d letters before the '*': %q", ErrBadQuery, minPrefixLen, text[sp.start:sp.end+1])
				}
				p.items = append(p.items, prefixItem(f))
				continue
			}
			if phrase {
				folded = append(folded, f)
				continue
			}
			p.items = append(p.items, p.item([]string{f}))
		}
		if phrase && len(folded) > 0 {
			if len(folded) > maxPhraseLen {
				return fmt.Errorf("%w: a phrase may have at most %d words", ErrBadQuery, maxPhraseLen)
			}
			p.items = append(p.items, p.item(folded))
		}
		return nil
	}
	rest := q
	for rest != "" {
		open := strings.IndexByte(rest, '"')
		if open < 0 {
			if err := addWords(rest, false); err != nil {
				return parsedQuery{}, err
			}
			break
		}
		if err := addWords(rest[:open], false); err != nil {
			return parsedQuery{}, err
		}
		rest = rest[open+1:]
		end := strings.IndexByte(rest, '"')
		if end < 0 { // an unclosed quote runs to the end
			end = len(rest)
		}
		if err := addWords(rest[:end], true); err != nil {
			return parsedQuery{}, err
		}
		rest = rest[min(end+1, len(rest)):]
	}
	if len(p.items) == 0 {
		return parsedQuery{}, ErrEmptyQuery
	}
	if len(p.items) > MaxQueryItems {
		return parsedQuery{}, fmt.Errorf("%w: it has %d words, phrases and prefixes: at most %d", ErrBadQuery, len(p.items), MaxQueryItems)
	}
	return p, nil
}

// prefixItem is a prefix and its stems in every query language. A stem
// shorter than a prefix may be (a one-letter "i" of "ies") would match
// nearly everything, so it is left out.
func prefixItem(folded string) queryItem {
	it := queryItem{prefixes: []string{folded}}
	for _, lang := range queryLanguages {
		st := stemmerFor(lang)(folded)
		if utf8.RuneCountInString(st) >= minPrefixLen && !slices.Contains(it.prefixes, st) {
			it.prefixes = append(it.prefixes, st)
		}
	}
	return it
}

// item stems folded words in every query language, keeping distinct
// sequences only.
func (p *parsedQuery) item(folded []string) queryItem {
	var it queryItem
	seen := map[string]bool{}
	for _, lang := range queryLanguages {
		stem := stemmerFor(lang)
		seq := make([]string, len(folded))
		for i, f := range folded {
			seq[i] = stem(f)
			p.forms[seq[i]] = true
		}
		if k := strings.Join(seq, " "); !seen[k] {
			seen[k] = true
			it.alts = append(it.alts, seq)
		}
	}
	return it
}

// fts5 writes the query in SQLite FTS5's syntax. Every form is quoted:
// forms hold only letters and digits, so no quote needs escaping.
func (p parsedQuery) fts5() string {
	parts := make([]string, len(p.items))
	for i, it := range p.items {
		if len(it.prefixes) > 0 {
			alts := make([]string, len(it.prefixes))
			for j, pre := range it.prefixes {
				alts[j] = `"` + pre + `"*`
			}
			parts[i] = strings.Join(alts, " OR ")
			if len(alts) > 1 {
				parts[i] = "(" + parts[i] + ")"
			}
			continue
		}
		alts := make([]string, len(it.alts))
		for j, seq := range it.alts {
			alts[j] = `"` + strings.Join(seq, " ") + `"`
		}
		parts[i] = "(" + strings.Join(alts, " OR ") + ")"
	}
	return strings.Join(parts, " AND ")
}

// tsquery writes the query for Postgres's to_tsquery('simple', ...).
func (p parsedQuery) tsquery() string {
	parts := make([]string, len(p.items))
	for i, it := range p.items {
		if len(it.prefixes) > 0 {
			alts := make([]string, len(it.prefixes))
			for j, pre := range it.prefixes {
				alts[j] = pre + ":*"
			}
			parts[i] = strings.Join(alts, " | ")
			if len(alts) > 1 {
				parts[i] = "(" + parts[i] + ")"
			}
			continue
		}
		alts := make([]string, len(it.alts))
		for j, seq := range it.alts {
			alts[j] = "(" + strings.Join(seq, " <-> ") + ")"
		}
		parts[i] = "(" + strings.Join(alts, " | ") + ")"
	}
	return strings.Join(parts, " & ")
}

// matches says whether a word of a hit in lang is one the query looked
// for: its form is a query form, or it starts with a query prefix.
func (p parsedQuery) matches(fo *folder, word, lang string) bool {
	f := fo.word(word)
	if f == "" {
		return false
	}
	form := stemmerFor(lang)(f)
	if p.forms[form] {
		return true
	}
	for _, it := range p.items {
		for _, pre := range it.prefixes {
			if strings.HasPrefix(form, pre) || strings.HasPrefix(f, pre) {
				return true
			}
		}
	}
	return false
}

// Snippet bounds: a snippet is the whole text up to snippetWords words,
// else a window of them starting a few words before the first match.
const (
	snippetWords  = 30
	snippetBefore = 8
)

// snippet returns an excerpt of text around what the query found, and
// the matched words' places in it as [start, end) offsets in characters
// (Unicode code points) of the excerpt.
func (p parsedQuery) snippet(text, lang string) (string, [][2]int) {
	spans := wordSpans(text)
	first, hit := -1, make([]bool, len(spans))
	fo := newFolder()
	for i, sp := range spans {
		if p.matches(fo, text[sp.start:sp.end], lang) {
			hit[i] = true
			if first < 0 {
				first = i
			}
		}
	}
	from, to, lead, tail := 0, len(text), "", ""
	lo, hi := 0, len(spans)
	if len(spans) > snippetWords {
		lo = max(0, first-snippetBefore)
		hi = min(len(spans), lo+snippetWords)
		lo = max(0, hi-snippetWords)
		if lo > 0 {
			from, lead = spans[lo].start, "… "
		}
		if hi < len(spans) {
			to, tail = spans[hi-1].end, " …"
		}
	}
	var marks [][2]int
	base := utf8.RuneCountInString(lead)
	for i := lo; i < hi; i++ {
		if hit[i] {
			s := base + utf8.RuneCountInString(text[from:spans[i].start])
			marks = append(marks, [2]int{s, s + utf8.RuneCountInString(text[spans[i].start:spans[i].end])})
		}
	}
	return lead + text[from:to] + tail, marks
}
