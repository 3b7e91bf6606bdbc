package store_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/store"
)

// searchFixture is two meetings a day apart, one in French and one in
// English, each said by two people.
type searchFixture struct {
	fr, en store.Meeting
	texts  []string
	day2   time.Time
}

var searchSaid = []struct {
	lang, who, text string
}{
	{"fr", "alice", "Les élections municipales auront lieu en mars"},
	{"fr", "bob", "Nous avons voté le budget de l'école"},
	{"fr", "alice", "Le budget, le budget, toujours le budget !"},
	{"fr", "bob", "Budget annexe et discussion sur un sujet qui n'a rien à voir avec le reste de la séance du conseil"},
	{"en", "carol", "The committee voted on the new budgets yesterday"},
	{"en", "dave", "We are voting for ÉLECTORAL reform"},
	{"en", "carol", "Running meetings takes time"},
}

func setupSearch(t *testing.T, s *store.Store, clock *time.Time) searchFixture {
	t.Helper()
	ctx := context.Background()
	var f searchFixture
	var err error
	f.fr, err = s.CreateMeeting(ctx, "Conseil municipal", "fr")
	require.NoError(t, err)
	f.en, err = s.CreateMeeting(ctx, "Committee", "en")
	require.NoError(t, err)
	tracks := map[string]store.Track{}
	for i, said := range searchSaid {
		m := f.fr
		if said.lang == "en" {
			m = f.en
			if f.day2.IsZero() {
				*clock = clock.Add(24 * time.Hour)
				f.day2 = *clock
			}
		}
		tr, ok := tracks[said.who]
		if !ok {
			_, err := s.Join(ctx, m.ID, said.who, strings.ToUpper(said.who[:1])+said.who[1:])
			require.NoError(t, err)
			tr = store.Track{ID: store.NewID("trk"), MeetingID: m.ID, Identity: said.who}
			require.NoError(t, s.CreateTrack(ctx, tr))
			tracks[said.who] = tr
		}
		start := int64(i * 10_000)
		require.NoError(t, s.UpsertSpeechSegment(ctx, store.SpeechSegment{MeetingID: m.ID, TrackID: tr.ID,
			Identity: said.who, StartMS: start, EndMS: start + 4000, AudioKey: "k"}))
		// The backend's language is ignored where the meeting has one:
		// it says the other language here, and the language filters below
		// find each segment under its meeting's.
		backend := map[string]string{"fr": "en", "en": "fr"}[said.lang]
		require.NoError(t, s.SaveTranscript(ctx, tr.ID, start, said.text, backend, nil))
		f.texts = append(f.texts, said.text)
	}
	return f
}

// found returns the indexes in searchSaid of the hits, in their order.
func (f searchFixture) found(t *testing.T, s *store.Store, q store.SearchQuery) []int {
	t.Helper()
	if q.Limit == 0 {
		q.Limit = 50
	}
	page, err := s.Search(context.Background(), q)
	require.NoError(t, err, "%+v", q)
	out := []int{}
	for _, h := range page.Hits {
		i := indexOf(f.texts, h.Text)
		require.GreaterOrEqual(t, i, 0, h.Text)
		out = append(out, i)
	}
	return out
}

func indexOf(xs []string, x string) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

func TestSearchFindsWordFormsAccentsPhrasesAndPrefixesOnBothDatabases(t *testing.T) {
	t.Parallel()
	eachDialectClocked(t, func(t *testing.T, s *store.Store, clock *time.Time) {
		f := setupSearch(t, s, clock)
		cases := []struct {
			q    string
			want []int // in any order
		}{
			{"élection", []int{0}},
			{"ELECTIONS", []int{0}},
			{"Élections MUNICIPALE", []int{0}},
			{"municipal", []int{0}},
			{"ecole", []int{1}},
			{"budgets", []int{1, 2, 3, 4}},
			{"budget yesterday", []int{4}},
			{"running", []int{6}},
			{"run", []int{6}},
			{"meeting", []int{6}},
			{`"voté le budget"`, []int{1}},
			{`"votés le BUDGET"`, []int{1}},
			{`"le budget voté"`, []int{}},
			{`"new budget"`, []int{4}},
			{`"budget new"`, []int{}},
			{"électo*", []int{5}},
			{"mun*", []int{0}},
			{"sean*", []int{3}},
			// A whole inflected word as a prefix finds that word, though
			// the index holds its stem.
			{"municipales*", []int{0}},
			{"Élections*", []int{0}},
			{"running*", []int{6}},
			{"budgets*", []int{1, 2, 3, 4}},
			{"mars élections", []int{0}},
			{"mars budget", []int{}},
		}
		for _, c := range cases {
			require.ElementsMatch(t, c.want, f.found(t, s, store.SearchQuery{Query: c.q}), "%s", c.q)
		}
		// A query word is tried in every language's stemming; a language
		// filter keeps one.
		// ("vote" is "vot" in both stemmings.)
		require.ElementsMatch(t, []int{1, 4, 5}, f.found(t, s, store.SearchQuery{Query: "vote"}))
		require.ElementsMatch(t, []int{4, 5}, f.found(t, s, store.SearchQuery{Query: "vote", Language: "en"}))
		require.ElementsMatch(t, []int{1}, f.found(t, s, store.SearchQuery{Query: "vote", Language: "fr"}))
		require.Empty(t, f.found(t, s, store.SearchQuery{Query: "vote", Language: "other"}))

		// Filters: speaker, meeting, when it was said.
		require.ElementsMatch(t, []int{1, 3}, f.found(t, s, store.SearchQuery{Query: "budget", Identity: "bob"}))
		require.ElementsMatch(t, []int{4}, f.found(t, s, store.SearchQuery{Query: "budget", MeetingID: f.en.ID}))
		require.ElementsMatch(t, []int{4}, f.found(t, s, store.SearchQuery{Query: "budget", From: f.day2}))
		require.ElementsMatch(t, []int{1, 2, 3}, f.found(t, s, store.SearchQuery{Query: "budget", To: f.day2}))
		require.ElementsMatch(t, []int{2}, f.found(t, s, store.SearchQuery{Query: "budget",
			From: f.day2.Add(-24*time.Hour + 20*time.Second), To: f.day2.Add(-24*time.Hour + 21*time.Second)}))

		_, err := s.Search(context.Background(), store.SearchQuery{Query: `" ' !`})
		require.ErrorIs(t, err, store.ErrEmptyQuery)
		_, err = s.Search(context.Background(), store.SearchQuery{Query: "b*"})
		require.ErrorContains(t, err, "prefix")
	})
}

func TestSearchRanksHighlightsAndPages(t *testing.T) {
	t.Parallel()
	eachDialectClocked(t, func(t *testing.T, s *store.Store, clock *time.Time) {
		ctx := context.Background()
		f := setupSearch(t, s, clock)
		// Three times in a short turn, once in a short one, once in a
		// long one: that order on both databases.
		require.Equal(t, []int{2, 1, 3}, f.found(t, s, store.SearchQuery{Query: "budget", MeetingID: f.fr.ID}))

		page, err := s.Search(ctx, store.SearchQuery{Query: "budget", MeetingID: f.fr.ID, Limit: 10})
		require.NoError(t, err)
		h := page.Hits[0]
		require.Equal(t, f.fr.ID, h.MeetingID)
		require.Equal(t, "alice", h.Identity)
		require.Equal(t, "Alice", h.Name)
		require.Equal(t, int64(20_000), h.StartMS)
		require.Equal(t, int64(24_000), h.EndMS)
		require.Equal(t, "fr", h.Language)
		require.False(t, h.StartedAt.IsZero())
		require.Greater(t, h.Score, page.Hits[1].Score)
		require.Equal(t, h.Text, h.Snippet)
		require.Equal(t, []string{"budget", "budget", "budget"}, marked(h.Snippet, h.Highlights))

		page, err = s.Search(ctx, store.SearchQuery{Query: "ELECTION mun*", Limit: 10})
		require.NoError(t, err)
		require.Len(t, page.Hits, 1)
		require.Equal(t, []string{"élections", "municipales"}, marked(page.Hits[0].Snippet, page.Hits[0].Highlights))
		page, err = s.Search(ctx, store.SearchQuery{Query: "municipales* Élections*", Limit: 10})
		require.NoError(t, err)
		require.Len(t, page.Hits, 1)
		require.Equal(t, []string{"élections", "municipales"}, marked(page.Hits[0].Snippet, page.Hits[0].Highlights))

		// A long turn is cut around its first match.
		long := strings.Repeat("rien de spécial ici ", 15) + "enfin les Élections " + strings.Repeat("et puis plus rien ", 10)
		tr := store.Track{ID: store.NewID("trk"), MeetingID: f.fr.ID, Identity: "alice"}
		require.NoError(t, s.CreateTrack(ctx, tr))
		require.NoError(t, s.UpsertSpeechSegment(ctx, store.SpeechSegment{MeetingID: f.fr.ID, TrackID: tr.ID,
			Identity: "alice", StartMS: 90_000, EndMS: 120_000, AudioKey: "k"}))
		require.NoError(t, s.SaveTranscript(ctx, tr.ID, 90_000, long, "fr", nil))
		page, err = s.Search(ctx, store.SearchQuery{Query: "élections", Identity: "alice", Limit: 10})
		require.NoError(t, err)
		require.Len(t, page.Hits, 2)
		for _, h := range page.Hits {
			if h.Text != long {
				continue
			}
			require.True(t, strings.HasPrefix(h.Snippet, "… "), h.Snippet)
			require.True(t, strings.HasSuffix(h.Snippet, " …"), h.Snippet)
			require.Contains(t, h.Snippet, "enfin les Élections")
			require.Equal(t, []string{"Élections"}, marked(h.Snippet, h.Highlights))
			require.LessOrEqual(t, len(strings.Fields(h.Snippet)), 32)
		}

		// Pages: every hit once, in the order of the whole list.
		all := f.found(t, s, store.SearchQuery{Query: "budget"})
		require.Len(t, all, 4)
		var paged []int
		cursor := ""
		for range 10 {
			page, err := s.Search(ctx, store.SearchQuery{Query: "budget", Limit: 1, Cursor: cursor})
			require.NoError(t, err)
			for _, h := range page.Hits {
				paged = append(paged, indexOf(f.texts, h.Text))
			}
			if page.Next == "" {
				break
			}
			cursor = page.Next
		}
		require.Equal(t, all, paged)
		// The same through a filter, which reads the rows before the page.
		var bobs []int
		cursor = ""
		for range 10 {
			page, err := s.Search(ctx, store.SearchQuery{Query: "budget", Identity: "bob", Limit: 1, Cursor: cursor})
			require.NoError(t, err)
			for _, h := range page.Hits {
				bobs = append(bobs, indexOf(f.texts, h.Text))
			}
			if page.Next == "" {
				break
			}
			cursor = page.Next
		}
		require.Equal(t, f.found(t, s, store.SearchQuery{Query: "budget", Identity: "bob"}), bobs)
		require.Len(t, bobs, 2)
		page, err = s.Search(ctx, store.SearchQuery{Query: "budget", Limit: 3})
		require.NoError(t, err)
		require.NotEmpty(t, page.Next)
		_, err = s.Search(ctx, store.SearchQuery{Query: "budgets", Limit: 3, Cursor: page.Next})
		require.ErrorIs(t, err, store.ErrBadCursor)
		_, err = s.Search(ctx, store.SearchQuery{Query: "budget", Limit: 3, Cursor: "garbage!"})
		require.ErrorIs(t, err, store.ErrBadCursor)
	})
}

// marked returns the highlighted words of a snippet.
func marked(snippet string, hl [][2]int) []string {
	r := []rune(snippet)
	out := []string{}
	for _, h := range hl {
		out = append(out, string(r[h[0]:h[1]]))
	}
	return out
}

// Index entries go with the transcript rows they come from: a segment
// transcribed again, a segment dropped, a meeting's rows deleted.
func TestSearchIndexFollowsTheTranscripts(t *testing.T) {
	t.Parallel()
	eachDialectClocked(t, func(t *testing.T, s *store.Store, clock *time.Time) {
		ctx := context.Background()
		f := setupSearch(t, s, clock)
		segs, err := s.SpeechSegments(ctx, f.fr.ID)
		require.NoError(t, err)

		count := func(q string) int {
			page, err := s.Search(ctx, store.SearchQuery{Query: q, Limit: 50})
			require.NoError(t, err)
			return len(page.Hits)
		}
		require.Equal(t, 1, count("élections"))
		require.NoError(t, s.SaveTranscript(ctx, segs[0].TrackID, segs[0].StartMS, "Le référendum aura lieu", "fr", nil))
		require.Equal(t, 0, count("élections"), "the old words are gone")
		require.Equal(t, 1, count("referendum"))

		// A segment that fails on a later run has nothing to find.
		require.NoError(t, s.FailSegment(ctx, segs[0].TrackID, segs[0].StartMS, "backend failed"))
		require.Equal(t, 0, count("referendum"))
		require.NoError(t, s.SaveTranscript(ctx, segs[0].TrackID, segs[0].StartMS, "Le référendum aura lieu", "fr", nil))
		require.Equal(t, 1, count("referendum"))

		require.NoError(t, s.DeleteSpeechSegment(ctx, segs[0].TrackID, segs[0].StartMS))
		require.Equal(t, 0, count("referendum"))

		// A meeting deleted: its segments' rows go, and their index
		// entries with them, in the database itself.
		require.Equal(t, 4, count("budget"))
		_, err = s.DB().ExecContext(ctx, `DELETE FROM speech_segments WHERE meeting_id = $1`, f.fr.ID)
		require.NoError(t, err)
		require.Equal(t, 1, count("budget"))
		var entries int
		q := `SELECT count(*) FROM speech_segments WHERE search_vec @@ to_tsquery('simple', 'budget')`
		if s.Dialect() == store.SQLite {
			q = `SELECT count(*) FROM speech_fts WHERE speech_fts MATCH 'budget'`
		}
		require.NoError(t, s.DB().QueryRowContext(ctx, q).Scan(&entries))
		require.Equal(t, 1, entries, "the index holds the English meeting's entry only")
	})
}

// A segment is stemmed in its meeting's language when the host set one,
// else in the language the speech backend reported, else not at all.
func TestSearchStemsByTheMeetingsLanguageElseTheBackends(t *testing.T) {
	t.Parallel()
	eachDialectClocked(t, func(t *testing.T, s *store.Store, _ *time.Time) {
		ctx := context.Background()
		said := func(meetingLang, backendLang, text string) string {
			m, err := s.CreateMeeting(ctx, "Réunion", meetingLang)
			require.NoError(t, err)
			_, err = s.Join(ctx, m.ID, "alice", "Alice")
			require.NoError(t, err)
			tr := store.Track{ID: store.NewID("trk"), MeetingID: m.ID, Identity: "alice"}
			require.NoError(t, s.CreateTrack(ctx, tr))
			require.NoError(t, s.UpsertSpeechSegment(ctx, store.SpeechSegment{MeetingID: m.ID, TrackID: tr.ID,
				Identity: "alice", StartMS: 0, EndMS: 4000, AudioKey: "k"}))
			require.NoError(t, s.SaveTranscript(ctx, tr.ID, 0, text, backendLang, nil))
			return m.ID
		}
		langOf := func(meetingID string) string {
			page, err := s.Search(ctx, store.SearchQuery{Query: "votaient", MeetingID: meetingID, Limit: 5})
			require.NoError(t, err)
			if len(page.Hits) == 0 {
				return "not found"
			}
			return page.Hits[0].Language
		}
		// "votaient" finds "votait" only through the French stemmer.
		require.Equal(t, "fr", langOf(said("fr", "en", "Ils votait ensemble")), "the meeting's language wins")
		require.Equal(t, "fr", langOf(said("", "fr-FR", "Ils votait ensemble")), "else the backend's")
		require.Equal(t, "not found", langOf(said("", "", "Ils votait ensemble")), "else no stemming")
		require.Equal(t, "not found", langOf(said("de", "fr", "Ils votait ensemble")), "a meeting in another language is not stemmed")
	})
}

// The SQLite index points at speech_segments' rowids, which VACUUM may
// renumber. docs/operations.md says what to do after one: drop the index
// and its triggers, and the next start builds them again from the rows.
func TestSearchIndexIsRebuiltAtStartWhenDroppedAfterAVacuum(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := store.Config{SQLitePath: filepath.Join(t.TempDir(), "g.db")}
	s, err := store.Open(ctx, cfg)
	require.NoError(t, err)
	clock := time.Now()
	f := setupSearch(t, s, &clock)
	// Rows deleted before the VACUUM leave gaps it may close.
	segs, err := s.SpeechSegments(ctx, f.fr.ID)
	require.NoError(t, err)
	require.NoError(t, s.DeleteSpeechSegment(ctx, segs[0].TrackID, segs[0].StartMS))
	_, err = s.DB().ExecContext(ctx, `VACUUM`)
	require.NoError(t, err)
	for _, stmt := range []string{`DROP TABLE speech_fts`, `DROP TRIGGER speech_fts_insert`, `DROP TRIGGER speech_fts_delete`,
		`DROP TRIGGER speech_fts_update`} {
		_, err = s.DB().ExecContext(ctx, stmt)
		require.NoError(t, err, stmt)
	}
	require.NoError(t, s.Close())

	s, err = store.Open(ctx, cfg)
	require.NoError(t, err)
	defer s.Close()
	require.ElementsMatch(t, []int{1, 2, 3, 4}, f.found(t, s, store.SearchQuery{Query: "budget"}))
	require.Empty(t, f.found(t, s, store.SearchQuery{Query: "élections"}), "the deleted segment stays gone")
	// And the triggers are back: a new transcript is found at once.
	require.NoError(t, s.SaveTranscript(ctx, segs[1].TrackID, segs[1].StartMS, "Le référendum", "fr", nil))
	page, err := s.Search(ctx, store.SearchQuery{Query: "referendum"})
	require.NoError(t, err)
	require.Len(t, page.Hits, 1)
}
