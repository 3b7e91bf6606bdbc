package minutes

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/faulttest"
)

func words(start int64, ws ...string) []Word {
	out := make([]Word, len(ws))
	for i, w := range ws {
		out[i] = Word{Word: w, Start: Seconds(start + int64(i)*400), End: Seconds(start + int64(i)*400 + 300)}
	}
	return out
}

func testInput() Input {
	return Input{
		MeetingID: "mtg_1", Title: "Budget <2027> & co", StartedAt: time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC),
		Speakers: []Speaker{{ID: "alice", Name: "Alice"}, {ID: "bob", Name: "Bob & Sons"}},
		Pieces: []Piece{
			{Speaker: "alice", StartMS: 1000, EndMS: 2500, Text: "alpha bravo charlie delta", Words: words(1000, "alpha", "bravo", "charlie", "delta")},
			{Speaker: "bob", StartMS: 2200, EndMS: 3700, Text: "echo foxtrot golf hotel", Words: words(2200, "echo", "foxtrot", "golf", "hotel")},
			// Same speaker again after a short pause: one turn; then a long pause: a new turn.
			{Speaker: "bob", StartMS: 4300, EndMS: 4600, Text: "india", Words: words(4300, "india")},
			{Speaker: "bob", StartMS: 8000, EndMS: 8300, Text: "juliett", Words: words(8000, "juliett")},
			{Speaker: "alice", StartMS: 9000, EndMS: 9500, Failure: "backend returned 503 five times"},
			{Speaker: "alice", StartMS: 10000, EndMS: 10300, Text: "", Words: nil},
		},
	}
}

func TestBuild(t *testing.T) {
	t.Parallel()
	d := Build(testInput())
	require.Len(t, d.Turns, 3)

	require.Equal(t, "alice", d.Turns[0].Speaker)
	require.Equal(t, "alpha bravo charlie delta", d.Turns[0].Text)
	require.Equal(t, int64(1000), d.Turns[0].Start.MS())
	require.Equal(t, time.Date(2026, 11, 28, 9, 0, 1, 0, time.UTC), d.Turns[0].StartAt)
	require.Equal(t, int64(2500), d.Turns[0].End.MS())
	require.True(t, d.Turns[0].Overlap, "bob started before alice finished")

	require.Equal(t, "bob", d.Turns[1].Speaker)
	require.Equal(t, "echo foxtrot golf hotel india", d.Turns[1].Text)
	require.Equal(t, int64(4600), d.Turns[1].End.MS())
	require.Len(t, d.Turns[1].Words, 5)
	require.True(t, d.Turns[1].Overlap)

	require.Equal(t, "juliett", d.Turns[2].Text)
	require.False(t, d.Turns[2].Overlap)

	require.False(t, d.Complete)
	require.Len(t, d.Missing, 1)
	require.Equal(t, "Alice", d.Missing[0].Name)
	require.Equal(t, int64(9000), d.Missing[0].Start.MS())
}

func TestLongPauseSplitsAPiece(t *testing.T) {
	t.Parallel()
	p := Piece{Speaker: "a", StartMS: 0, EndMS: 9000, Text: "one two",
		Words: []Word{{"one", 0, 300}, {"two", 5000, 5300}}}
	d := Build(Input{Speakers: []Speaker{{"a", "A"}}, Pieces: []Piece{p}})
	require.Len(t, d.Turns, 2)
	require.Equal(t, "two", d.Turns[1].Text)
}

func TestJSONRoundTripAndDigest(t *testing.T) {
	t.Parallel()
	d := Build(testInput())
	b, err := json.Marshal(d)
	require.NoError(t, err)
	require.Contains(t, string(b), `"start":1.000`)
	require.Contains(t, string(b), `"end":2.500`)
	var back Document
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, d.Turns, back.Turns)
	require.Equal(t, d.Digest(), back.Digest())

	d2 := Build(testInput())
	d2.Version = 7
	require.Equal(t, d.Digest(), d2.Digest(), "the version is not content")
	d2.Turns[0].Text = "changed"
	require.NotEqual(t, d.Digest(), d2.Digest())
}

func TestRenderings(t *testing.T) {
	t.Parallel()
	d := Build(testInput())
	d.Rename(map[string]string{"alice": "Alice Martin"})

	var vtt bytes.Buffer
	require.NoError(t, d.WriteVTT(&vtt))
	require.True(t, strings.HasPrefix(vtt.String(), "WEBVTT\n\n00:00:01.000 --> 00:00:02.500\n<v Alice Martin>alpha bravo charlie delta</v>\n"), vtt.String())
	require.Contains(t, vtt.String(), "<v Bob &amp; Sons>echo")

	var srt bytes.Buffer
	require.NoError(t, d.WriteSRT(&srt))
	require.True(t, strings.HasPrefix(srt.String(), "1\n00:00:01,000 --> 00:00:02,500\nAlice Martin: alpha bravo charlie delta\n\n2\n"), srt.String())

	var md bytes.Buffer
	require.NoError(t, d.WriteMarkdown(&md))
	require.Contains(t, md.String(), "# Budget &lt;2027&gt; & co")
	require.Contains(t, md.String(), "**[00:00:01 · 09:00:01Z] Alice Martin** (overlapping): alpha bravo charlie delta")
	require.Contains(t, md.String(), "## Missing from this transcript")
	require.Contains(t, md.String(), "backend returned 503 five times")

	var txt bytes.Buffer
	require.NoError(t, d.WriteText(&txt))
	require.Contains(t, txt.String(), "[00:00:08.000 · 09:00:08Z] Bob & Sons: juliett\n")
}

func TestLongTurnBecomesSeveralCues(t *testing.T) {
	t.Parallel()
	var ws []string
	for range 40 {
		ws = append(ws, "word")
	}
	p := Piece{Speaker: "a", StartMS: 0, EndMS: 16000, Text: strings.Join(ws, " "), Words: words(0, ws...)}
	d := Build(Input{Speakers: []Speaker{{"a", "A"}}, Pieces: []Piece{p}})
	require.Len(t, d.Turns, 1)
	cues := d.cues()
	require.Greater(t, len(cues), 2)
	for _, c := range cues {
		require.LessOrEqual(t, int64(c.end-c.start), maxCueDuration.Milliseconds())
		require.LessOrEqual(t, len(c.text), maxCueChars)
	}
	require.Equal(t, int64(0), cues[0].start.MS())
	require.Equal(t, d.Turns[0].End, cues[len(cues)-1].end)
}

// Control characters a speech backend or a caller slipped into text (NUL,
// ESC sequences that rewrite a terminal, C1 controls, stray line breaks)
// never reach the files people open: each rendering keeps only its own
// line structure.
func TestFaultControlCharactersNeverReachRenderings(t *testing.T) {
	t.Parallel()
	const evil = "\x00\x1b[2J\x1b]0;owned\x07\u009b31m\r\n\u2028\x7f"
	in := Input{
		MeetingID: "mtg_1", Title: "Conseil" + evil, StartedAt: time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC),
		Speakers: []Speaker{{ID: "alice", Name: "Alice" + evil}},
		Pieces: []Piece{
			{Speaker: "alice", StartMS: 1000, EndMS: 2500, Text: "bonjour" + evil + "à tous", Words: words(1000, "bonjour"+evil, "à", "tous")},
			{Speaker: "alice", StartMS: 9000, EndMS: 9500, Failure: "backend said" + evil},
		},
	}
	d := Build(in)
	injected := utf8.RuneCountInString(evil)
	for name, write := range map[string]func(Document, *bytes.Buffer) error{
		"vtt": func(d Document, b *bytes.Buffer) error { return d.WriteVTT(b) },
		"srt": func(d Document, b *bytes.Buffer) error { return d.WriteSRT(b) },
		"md":  func(d Document, b *bytes.Buffer) error { return d.WriteMarkdown(b) },
		"txt": func(d Document, b *bytes.Buffer) error { return d.WriteText(b) },
	} {
		var b bytes.Buffer
		require.NoError(t, write(d, &b), name)
		out := b.String()
		for _, r := range out {
			require.False(t, r != '\n' && (r < 0x20 || r >= 0x7f && r < 0xa0 || r == '\u2028'),
				"%s rendering holds control character %U:\n%q", name, r, out)
		}
		require.Contains(t, out, "bonjour", name)
		require.Contains(t, out, "Alice", name)
	}
	faulttest.Report(t, faulttest.FaultsInjected, float64(4*injected))
}

func TestNotRecordedIsStatedInEveryRenderingAndIsNotMissing(t *testing.T) {
	t.Parallel()
	in := Input{
		MeetingID: "mtg_2", Title: "Conseil", StartedAt: time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC),
		Speakers: []Speaker{{ID: "alice", Name: "Alice"}, {ID: "bob", Name: "Bob"}},
		Pieces:   []Piece{{Speaker: "alice", StartMS: 11000, EndMS: 12000, Text: "alpha bravo", Words: words(11000, "alpha", "bravo")}},
		NotRecorded: []Gap{
			{Start: 20000, End: 30000, Reason: ReasonNotRecorded},
			{Start: 0, End: 10000, Reason: ReasonNotRecorded},
			{Speaker: "bob", Start: 0, End: 30000, Reason: ReasonDeclined},
			{Start: 5000, End: 5000, Reason: ReasonNotRecorded}, // empty: dropped
		},
	}
	d := Build(in)
	require.True(t, d.Complete, "what was not recorded by choice is not missing")
	require.Empty(t, d.Missing)
	require.Equal(t, []Gap{
		{Start: 0, End: 10000, Reason: ReasonNotRecorded},
		{Speaker: "bob", Name: "Bob", Start: 0, End: 30000, Reason: ReasonDeclined},
		{Start: 20000, End: 30000, Reason: ReasonNotRecorded},
	}, d.NotRecorded)

	b, err := json.Marshal(d)
	require.NoError(t, err)
	require.Contains(t, string(b), `"not_recorded":[{"speaker":"","name":"","start":0.000,"end":10.000,"reason":"not recorded"}`)
	plain, err := json.Marshal(Build(Input{MeetingID: "m"}))
	require.NoError(t, err)
	require.NotContains(t, string(plain), "not_recorded", "minutes of a meeting recorded whole are unchanged")

	var vtt bytes.Buffer
	require.NoError(t, d.WriteVTT(&vtt))
	require.Equal(t, "WEBVTT\n\nNOTE Bob 00:00:00.000 to 00:00:30.000: not recorded: the participant declined to be recorded\n"+
		"\n00:00:00.000 --> 00:00:10.000\n[not recorded]\n"+
		"\n00:00:11.000 --> 00:00:11.700\n<v Alice>alpha bravo</v>\n"+
		"\n00:00:20.000 --> 00:00:30.000\n[not recorded]\n", vtt.String())

	var srt bytes.Buffer
	require.NoError(t, d.WriteSRT(&srt))
	require.Equal(t, "1\n00:00:00,000 --> 00:00:10,000\n[not recorded]\n\n"+
		"2\n00:00:11,000 --> 00:00:11,700\nAlice: alpha bravo\n\n"+
		"3\n00:00:20,000 --> 00:00:30,000\n[not recorded]\n\n", srt.String())

	var md bytes.Buffer
	require.NoError(t, d.WriteMarkdown(&md))
	require.Contains(t, md.String(), "## Not recorded\n\n- Everyone, 00:00:00 to 00:00:10: not recorded\n"+
		"- Bob, 00:00:00 to 00:00:30: not recorded: the participant declined to be recorded\n"+
		"- Everyone, 00:00:20 to 00:00:30: not recorded\n")
	require.NotContains(t, md.String(), "Missing")
	require.NotContains(t, md.String(), "incomplete")

	var txt bytes.Buffer
	require.NoError(t, d.WriteText(&txt))
	require.Contains(t, txt.String(), "[00:00:00.000] Everyone: (not recorded until 00:00:10.000)\n")
	require.Contains(t, txt.String(), "[00:00:00.000] Bob: (not recorded: the participant declined to be recorded until 00:00:30.000)\n")

	d.Rename(map[string]string{"bob": "Robert"})
	require.Equal(t, "Robert", d.NotRecorded[1].Name)
}

func TestBetweenKeepsTheNotRecordedStretchesItOverlaps(t *testing.T) {
	t.Parallel()
	d := Build(Input{Speakers: []Speaker{{ID: "bob", Name: "Bob"}}, NotRecorded: []Gap{
		{Start: 0, End: 10000, Reason: ReasonNotRecorded},
		{Speaker: "bob", Start: 5000, End: 30000, Reason: ReasonDeclined},
		{Start: 20000, End: 30000, Reason: ReasonNotRecorded},
	}})
	part := d.Between(12000, 18000)
	require.Equal(t, []Gap{{Speaker: "bob", Name: "Bob", Start: 5000, End: 30000, Reason: ReasonDeclined}}, part.NotRecorded)
	require.Len(t, d.Between(0, 0).NotRecorded, 3)
}
