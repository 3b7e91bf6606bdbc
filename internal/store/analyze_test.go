package store

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStemmersJoinInflectedForms(t *testing.T) {
	t.Parallel()
	same := map[string][][]string{
		"fr": {
			{"élection", "élections", "ÉLECTIONS"},
			{"municipal", "municipale", "municipales"},
			{"cheval", "chevaux"},
			{"voter", "voté", "votée", "votés", "votait", "votaient", "voterons"},
			{"finir", "finissait", "finissant"},
			{"nouveau", "nouveaux"},
			{"actif", "active", "actives"},
			{"naturel", "naturelle", "naturelles"},
		},
		"en": {
			{"vote", "votes", "voted", "voting"},
			{"budget", "budgets"},
			{"run", "running", "runs"},
			{"city", "cities"},
			{"agreed", "agree"},
			{"hoping", "hope", "hoped"},
		},
	}
	for lang, groups := range same {
		stem := stemmerFor(lang)
		for _, g := range groups {
			want := stem(newFolder().word(g[0]))
			for _, w := range g[1:] {
				require.Equal(t, want, stem(newFolder().word(w)), "%s: %s and %s", lang, g[0], w)
			}
		}
	}
	require.NotEqual(t, stemFrench("élection"), stemFrench("électoral"), "derivations stay apart")
	require.Equal(t, "conseil", indexText("Conseil", ""), "other languages are folded, not stemmed")
	require.Equal(t, "fr", indexLanguage("fr-FR", "en"))
	require.Equal(t, "en", indexLanguage("", "english"))
	require.Equal(t, "", indexLanguage("de", "fr"), "the meeting's language wins")
}

func TestQueriesAreWrittenForBothDatabases(t *testing.T) {
	t.Parallel()
	q, err := parseQuery(`Élections "le budget" mun* l'école`)
	require.NoError(t, err)
	require.Equal(t, `("election" OR "elections") AND ("le budget") AND "mun"* AND ("l") AND ("ecol" OR "ecole")`, q.fts5())
	require.Equal(t, `((election) | (elections)) & ((le <-> budget)) & mun:* & ((l)) & ((ecol) | (ecole))`, q.tsquery())
	// A prefix is also looked for from its stems, which the index holds:
	// "municipales*" finds "municipales", indexed as "municipal". A stem
	// under two letters ("ies" in English is "i") is left out.
	q, err = parseQuery(`municipales* ies*`)
	require.NoError(t, err)
	require.Equal(t, `("municipales"* OR "municipal"* OR "municipale"*) AND "ies"*`, q.fts5())
	require.Equal(t, `(municipales:* | municipal:* | municipale:*) & ies:*`, q.tsquery())
}

// BenchmarkIndexText analyses a minute of speech (150 words) for the
// index: the Go part of indexing, the same on both databases.
func BenchmarkIndexText(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("les élections municipales auront lieu en mars nous avons voté le budget de l'école " +
		"the committee voted on the new budgets yesterday we are voting for electoral reform")
	ws := make([]string, 150)
	for i := range ws {
		ws[i] = words[r.IntN(len(words))]
	}
	text := strings.Join(ws, " ")
	b.ReportAllocs()
	for b.Loop() {
		indexText(text, "fr")
	}
}
