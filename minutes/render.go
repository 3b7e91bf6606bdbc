package minutes

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/greffier/greffier/internal/usertext"
	"github.com/greffier/greffier/summarize"
)

// Cue limits keep subtitles readable: a long turn becomes several cues cut
// between words.
const (
	maxCueDuration = 7 * time.Second
	maxCueChars    = 84
)

type cue struct {
	name       string
	start, end Seconds
	text       string
}

// cues cuts each turn into subtitle-sized pieces at word boundaries; the
// stretches when the meeting was not recorded are cues of their own, with
// no speaker, so a player says so instead of showing nothing.
func (d Document) cues() []cue {
	out := d.speechCues()
	n := len(out)
	for _, g := range d.NotRecorded {
		if g.Speaker == "" {
			out = append(out, cue{start: g.Start, end: g.End, text: "[" + g.Reason + "]"})
		}
	}
	if len(out) > n {
		sort.SliceStable(out, func(i, j int) bool { return out[i].start < out[j].start })
	}
	return out
}

func (d Document) speechCues() []cue {
	var out []cue
	for _, t := range d.Turns {
		if len(t.Words) == 0 {
			out = append(out, cue{t.Name, t.Start, t.End, t.Text})
			continue
		}
		var (
			words []string
			start Seconds
			chars int
		)
		for i, w := range t.Words {
			if len(words) == 0 {
				start = w.Start
			}
			words = append(words, w.Word)
			chars += len(w.Word) + 1
			last := i == len(t.Words)-1
			if last || int64(t.Words[i+1].End-start) > maxCueDuration.Milliseconds() ||
				chars+len(t.Words[i+1].Word) > maxCueChars {
				out = append(out, cue{t.Name, start, w.End, joinWords(words)})
				words, chars = words[:0], 0
			}
		}
	}
	return out
}

// clock formats ms as hh:mm:ss plus a fraction separator and milliseconds.
func clock(ms Seconds, sep byte) string {
	v := max(int64(ms), 0)
	return fmt.Sprintf("%02d:%02d:%02d%c%03d", v/3600000, v/60000%60, v/1000%60, sep, v%1000)
}

// WriteVTT writes WebVTT with one voice tag per cue (MIME text/vtt).
func (d Document) WriteVTT(w io.Writer) error {
	var b strings.Builder
	b.WriteString("WEBVTT\n")
	for _, g := range d.NotRecorded {
		if g.Speaker != "" {
			// A cue would cover the others' speech: a note says it.
			fmt.Fprintf(&b, "\nNOTE %s %s to %s: %s\n", vttNote.Replace(usertext.Clean(g.Name)),
				clock(g.Start, '.'), clock(g.End, '.'), vttNote.Replace(g.Reason))
		}
	}
	for _, c := range d.cues() {
		if c.name == "" {
			fmt.Fprintf(&b, "\n%s --> %s\n%s\n", clock(c.start, '.'), clock(c.end, '.'), vttText.Replace(c.text))
			continue
		}
		fmt.Fprintf(&b, "\n%s --> %s\n<v %s>%s</v>\n", clock(c.start, '.'), clock(c.end, '.'),
			vttName.Replace(usertext.Clean(c.name)), vttText.Replace(usertext.Clean(c.text)))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

var (
	vttText = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\n", " ")
	vttName = strings.NewReplacer("&", "&amp;", ">", "&gt;", "\n", " ")
	vttNote = strings.NewReplacer("-->", "->", "\n", " ")
)

// WriteSRT writes SubRip; it has no speaker field, so each cue starts with
// "Name: ".
func (d Document) WriteSRT(w io.Writer) error {
	var b strings.Builder
	for i, c := range d.cues() {
		if c.name == "" {
			fmt.Fprintf(&b, "%d\n%s --> %s\n%s\n\n", i+1, clock(c.start, ','), clock(c.end, ','), oneLine(c.text))
			continue
		}
		fmt.Fprintf(&b, "%d\n%s --> %s\n%s: %s\n\n", i+1, clock(c.start, ','), clock(c.end, ','),
			oneLine(c.name), oneLine(c.text))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// oneLine keeps s on its line, and keeps control characters (NUL, ESC)
// out of files that terminals and players show.
func oneLine(s string) string { return usertext.Clean(s) }

// WriteMarkdown writes the minutes for people to read.
func (d Document) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	title := d.Title
	if title == "" {
		title = "Meeting " + d.MeetingID
	}
	fmt.Fprintf(&b, "# %s\n\n", mdEscape(title))
	if !d.StartedAt.IsZero() {
		fmt.Fprintf(&b, "- Started: %s\n", d.StartedAt.Format(time.RFC3339))
	}
	names := make([]string, len(d.Speakers))
	for i, s := range d.Speakers {
		names[i] = mdEscape(s.Name)
	}
	fmt.Fprintf(&b, "- Speakers: %s\n", strings.Join(names, ", "))
	fmt.Fprintf(&b, "- Minutes version %d: %s\n", d.Version, contentNote(d))
	writeSummary(&b, d)
	b.WriteString("\n## Transcript\n\n")
	for _, t := range d.Turns {
		overlap := ""
		if t.Overlap {
			overlap = " (overlapping)"
		}
		fmt.Fprintf(&b, "**[%s] %s**%s: %s\n\n", clock(t.Start, '.')[:8]+wall(d, t.Start), mdEscape(t.Name), overlap, mdEscape(t.Text))
	}
	if len(d.Missing) > 0 {
		b.WriteString("## Missing from this transcript\n\n")
		for _, g := range d.Missing {
			fmt.Fprintf(&b, "- %s, %s to %s: %s\n", mdEscape(g.Name), clock(g.Start, '.')[:8], clock(g.End, '.')[:8], mdEscape(g.Reason))
		}
	}
	if len(d.NotRecorded) > 0 {
		b.WriteString("## Not recorded\n\n")
		for _, g := range d.NotRecorded {
			fmt.Fprintf(&b, "- %s, %s to %s: %s\n", mdEscape(whose(g)), clock(g.Start, '.')[:8], clock(g.End, '.')[:8], mdEscape(g.Reason))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeSummary writes the summary, each point followed by the times of the
// turns it came from.
func writeSummary(b *strings.Builder, d Document) {
	s := d.Summary
	if s == nil {
		if d.SummaryError != "" {
			fmt.Fprintf(b, "\n_No summary: %s_\n", mdEscape(d.SummaryError))
		}
		return
	}
	cites := func(cs []summarize.Citation) string {
		if len(cs) == 0 {
			return ""
		}
		parts := make([]string, len(cs))
		for i, c := range cs {
			parts[i] = clock(Seconds(c.Start), '.')[:8]
		}
		return " (" + strings.Join(parts, ", ") + ")"
	}
	b.WriteString("\n## Summary\n\n")
	fmt.Fprintf(b, "%s%s\n", mdEscape(s.Abstract.Text), cites(s.Abstract.Citations))
	section := func(title string, ps []summarize.Point) {
		if len(ps) == 0 {
			return
		}
		fmt.Fprintf(b, "\n### %s\n\n", title)
		for _, p := range ps {
			fmt.Fprintf(b, "- %s%s\n", mdEscape(p.Text), cites(p.Citations))
		}
	}
	section("Topics", s.Topics)
	section("Decisions", s.Decisions)
	if len(s.ActionItems) > 0 {
		b.WriteString("\n### Action items\n\n")
		for _, a := range s.ActionItems {
			who := ""
			if a.Owner != "" {
				who = " — " + mdEscape(a.Owner)
			}
			if a.Due != "" {
				who += ", due " + mdEscape(a.Due)
			}
			fmt.Fprintf(b, "- %s%s%s\n", mdEscape(a.Text), who, cites(a.Citations))
		}
	}
}

func contentNote(d Document) string {
	note := "transcript only, no summary"
	if d.Content != "transcript" {
		note = d.Content
	}
	if !d.Complete {
		note += "; incomplete, see Missing"
	}
	return note
}

var mdEscaper = strings.NewReplacer("\\", "\\\\", "*", "\\*", "_", "\\_", "`", "\\`", "[", "\\[", "]", "\\]",
	"<", "&lt;", ">", "&gt;", "#", "\\#", "\n", " ")

func mdEscape(s string) string { return mdEscaper.Replace(usertext.Clean(s)) }

// WriteText writes one line per turn: "[hh:mm:ss.mmm] Name: text".
func (d Document) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, t := range d.Turns {
		fmt.Fprintf(&b, "[%s%s] %s: %s\n", clock(t.Start, '.'), wall(d, t.Start), oneLine(t.Name), oneLine(t.Text))
	}
	for _, g := range d.Missing {
		fmt.Fprintf(&b, "[%s] %s: (missing: %s)\n", clock(g.Start, '.'), oneLine(g.Name), oneLine(g.Reason))
	}
	for _, g := range d.NotRecorded {
		fmt.Fprintf(&b, "[%s] %s: (%s until %s)\n", clock(g.Start, '.'), oneLine(whose(g)), oneLine(g.Reason), clock(g.End, '.'))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// wall is " · hh:mm:ssZ", the wall-clock time of s, when known.
func wall(d Document, s Seconds) string {
	at := d.WallClock(s)
	if at.IsZero() {
		return ""
	}
	return " · " + at.Format("15:04:05Z")
}

// whose names who a not-recorded stretch is of.
func whose(g Gap) string {
	switch {
	case g.Speaker == "":
		return "Everyone"
	case g.Name == "":
		return g.Speaker
	}
	return g.Name
}
