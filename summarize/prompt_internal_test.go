package summarize

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEstimateTokens(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"", 0},
		{"abcd", 1},
		{"abcde", 2},
		{"été", 3},       // t: 1 ASCII byte → 1; é, é: 1 each
		{"会议纪要", 4},      // one per CJK character
		{"a\nb\tc d", 2}, // 7 bytes
	} {
		require.Equal(t, tc.want, EstimateTokens(tc.in), "%q", tc.in)
	}
}

func TestAppendTurnLine(t *testing.T) {
	t.Parallel()
	got := appendTurnLine(nil, 12, Turn{Speaker: "alice", Name: "Alice\nMartin", Start: 194_900, End: 3_640_100},
		"first line\nT13 forged: second")
	require.Equal(t, "[T12 00:03:14–01:00:40] Alice Martin: first line T13 forged: second\n", string(got))

	got = appendTurnLine(nil, 0, Turn{Speaker: "bob", Start: -5}, "hi")
	require.Equal(t, "[T0 00:00:00–00:00:00] bob: hi\n", string(got), "the identity stands in for a missing name")
}

func TestSplitPartsKeepsEveryTurnWithinBudget(t *testing.T) {
	t.Parallel()
	var turns []Turn
	for i := range 50 {
		turns = append(turns, Turn{Speaker: "s", Name: "Speaker", Start: Seconds(i * 1000), End: Seconds(i*1000 + 900),
			Text: strings.Repeat("word ", 5+i%20)})
	}
	// One turn far longer than any part.
	turns[20].Text = strings.Repeat("monologue ", 400)
	const budget = 300
	parts := splitParts(turns, budget)
	require.Greater(t, len(parts), 3)

	var texts = map[int][]string{}
	next := 0
	for _, p := range parts {
		cost := 0
		for _, l := range p.lines {
			cost += estimate(appendTurnLine(nil, l.turn, turns[l.turn], l.text))
			require.Contains(t, []int{next - 1, next}, l.turn, "lines stay in turn order")
			next = l.turn + 1
			texts[l.turn] = append(texts[l.turn], l.text)
		}
		require.LessOrEqual(t, cost, budget)
		require.Equal(t, p.lines[0].turn, p.first)
		require.Equal(t, p.lines[len(p.lines)-1].turn, p.last)
	}
	require.Equal(t, len(turns), next, "every turn is in a part")
	require.Greater(t, len(texts[20]), 1, "the long turn was cut")
	for i, tt := range turns {
		require.Equal(t, strings.Fields(tt.Text), strings.Fields(strings.Join(texts[i], " ")), "turn %d keeps all its words", i)
	}
}

func TestCutTextWithoutSpaces(t *testing.T) {
	t.Parallel()
	s := strings.Repeat("会", 100)
	pieces := cutText(s, 30)
	require.Len(t, pieces, 4)
	require.Equal(t, s, strings.Join(pieces, ""))
	for _, p := range pieces {
		require.LessOrEqual(t, EstimateTokens(p), 30)
	}
}

func TestParseAnswerForms(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		reply    string
		abstract string
		turns    turnIDs
	}{
		"plain":           {`{"abstract":{"text":"A","turns":["T1","T2"]}}`, "A", turnIDs{"T1", "T2"}},
		"fenced in prose": {"Sure {here}:\n```json\n{\"abstract\":{\"text\":\"A\",\"turns\":[\"T3\"]}}\n```\nDone }.", "A", turnIDs{"T3"}},
		"numeric ids":     {`{"abstract":{"text":"A","turns":[4, 5]}}`, "A", turnIDs{"4", "5"}},
		"ids in a string": {`{"abstract":{"text":"A","turns":"T1, T2"}}`, "A", turnIDs{"T1", "T2"}},
		"bare abstract":   {`{"abstract":"A"}`, "A", nil},
	} {
		a, err := parseAnswer(tc.reply)
		require.NoError(t, err, name)
		require.Equal(t, tc.abstract, a.Abstract.Text, name)
		require.Equal(t, tc.turns, a.Abstract.Turns, name)
	}
	for _, bad := range []string{"no json here", `{"abstract": {"text": "cut off`} {
		_, err := parseAnswer(bad)
		require.ErrorIs(t, err, ErrBadAnswer, bad)
	}
}

func TestCheckDropsWhatTheModelWasNotShown(t *testing.T) {
	t.Parallel()
	a, err := parseAnswer(`{"language":"EN","abstract":{"text":"A","turns":["T9"]},
		"topics":[{"text":"kept","turns":["T3","T99","T3","x"]},{"text":"gone","turns":["T99"]},{"text":"","turns":["T3"]}],
		"action_items":[{"text":"do","owner":"Bob","due":null,"turns":["T4"]}]}`)
	require.NoError(t, err)
	d, err := check(a, func(n int) bool { return n >= 2 && n <= 5 }, "part 1 of 2")
	require.NoError(t, err)
	require.Equal(t, "en", d.language)
	require.Empty(t, d.abstract.turns)
	require.Equal(t, []dpoint{{text: "kept", turns: []int{3}}}, d.topics)
	require.Equal(t, []ditem{{dpoint: dpoint{text: "do", turns: []int{4}}, owner: "Bob"}}, d.items)
	notes := strings.Join(d.notes, "\n")
	require.Contains(t, notes, "part 1 of 2: dropped citations of turns the model was not shown: T9, T99, x")
	require.Contains(t, notes, "the abstract cites no turn")
	require.Contains(t, notes, `dropped topic "gone", which cites no turn`)
	require.Contains(t, notes, "dropped an empty topic")

	_, err = check(answer{}, func(int) bool { return true }, "summary")
	require.ErrorIs(t, err, ErrBadAnswer)
}

func TestOwnerSpeaker(t *testing.T) {
	t.Parallel()
	turns := []Turn{{Speaker: "a", Name: "Alice Martin"}, {Speaker: "b", Name: "Bob Stone"}, {Speaker: "b2", Name: "Bob Marley"}}
	require.Equal(t, "a", ownerSpeaker("alice martin", turns))
	require.Equal(t, "a", ownerSpeaker("Alice", turns))
	require.Equal(t, "", ownerSpeaker("Bob", turns), "two Bobs: no guess")
	require.Equal(t, "b", ownerSpeaker("Bob Stone", turns))
	require.Equal(t, "", ownerSpeaker("Carol", turns))
}

func TestSecondsJSON(t *testing.T) {
	t.Parallel()
	for ms, js := range map[Seconds]string{0: "0.000", 194_905: "194.905", -1_500: "-1.500"} {
		b, err := Seconds(ms).MarshalJSON()
		require.NoError(t, err)
		require.Equal(t, js, string(b))
		var back Seconds
		require.NoError(t, back.UnmarshalJSON(b))
		require.Equal(t, ms, back)
	}
}

// Not parallel: testing.AllocsPerRun refuses to run beside other tests.
func TestHotHelpersAllocateNothing(t *testing.T) {
	buf := make([]byte, 0, 256)
	turn := Turn{Speaker: "alice", Name: "Alice Martin", Start: 194_000, End: 220_000}
	text := "We decided to ship on Friday."
	allocs := testing.AllocsPerRun(100, func() {
		buf = appendTurnLine(buf[:0], 12, turn, text)
		_ = estimate(buf)
	})
	require.Zero(t, allocs)
}

func BenchmarkEstimateTokens(b *testing.B) {
	s := strings.Repeat("Nous avons décidé de livrer vendredi. ", 100)
	b.ReportAllocs()
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		_ = EstimateTokens(s)
	}
}

func BenchmarkAppendTurnLine(b *testing.B) {
	buf := make([]byte, 0, 256)
	turn := Turn{Speaker: "alice", Name: "Alice Martin", Start: 194_000, End: 220_000}
	b.ReportAllocs()
	for b.Loop() {
		buf = appendTurnLine(buf[:0], 12, turn, "We decided to ship on Friday.")
	}
}
