package api_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/api"
	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/testenv"
	"github.com/greffier/greffier/internal/token"
)

// BenchmarkSearch generates GREFFIER_BENCH_HOURS meeting-hours of
// transcript (default 10) on SQLite and on Postgres, then measures
// two-word searches through the store and through the MCP tool, end to
// end over HTTP. Data are generated only here, never in the test run:
//
//	GREFFIER_BENCH_HOURS=1000 go test ./api -run '^$' -bench BenchmarkSearch -benchtime 1x -timeout 3h
//
// Speech is 150 words a minute in 15-second segments, words drawn from a
// Zipf distribution (s = 1.1) over a 20,000-word vocabulary per language,
// half the meetings French, half English, four to eight speakers each.
func BenchmarkSearch(b *testing.B) {
	hours := 10
	if s := os.Getenv("GREFFIER_BENCH_HOURS"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(b, err)
		hours = n
	}
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		b.Run(fmt.Sprintf("%s/%dh", d, hours), func(b *testing.B) {
			for range b.N {
				benchSearch(b, d, hours)
			}
		})
	}
}

const (
	benchSegmentMS   = 15_000
	benchWordsPerSeg = 38 // 150 words a minute
	benchVocab       = 20_000
)

// benchCorpus is a language's vocabulary, most frequent first: real
// frequent words, then made-up ones built from the language's syllables.
type benchCorpus struct {
	lang  string
	words []string
	zipf  *rand.Zipf
}

func newBenchCorpus(r *rand.Rand, lang string) *benchCorpus {
	common := map[string]string{
		"fr": "le la les de des un une et à en que qui est pour pas dans sur ce il elle nous vous ils on avec plus " +
			"tout mais comme fait être avoir budget conseil séance élections municipales école projet vote adopté " +
			"proposition commission travaux rapport réunion décision année mairie quartier habitants question",
		"en": "the of and to a in that is it for on was with as be at by this have from or are not but we they you " +
			"he she budget council meeting elections school project vote adopted proposal committee report decision " +
			"year city district residents question review schedule funding",
	}[lang]
	syll := map[string][]string{
		"fr": {"ra", "té", "mon", "cha", "pé", "lou", "ve", "ri", "ment", "tion", "ssé", "ga", "bré", "ni", "cou", "dé", "fon", "que", "lai", "sta"},
		"en": {"ta", "ber", "ing", "sion", "mo", "ker", "ly", "pro", "con", "ted", "ward", "ness", "ple", "ri", "ven", "ca", "dis", "ter", "ment", "al"},
	}[lang]
	c := &benchCorpus{lang: lang, words: strings.Fields(common)}
	seen := map[string]bool{}
	for _, w := range c.words {
		seen[w] = true
	}
	for len(c.words) < benchVocab {
		n := 2 + r.IntN(3)
		var sb strings.Builder
		for range n {
			sb.WriteString(syll[r.IntN(len(syll))])
		}
		if w := sb.String(); !seen[w] {
			seen[w] = true
			c.words = append(c.words, w)
		}
	}
	c.zipf = rand.NewZipf(r, 1.1, 1, benchVocab-1)
	return c
}

func (c *benchCorpus) sentence(n int) string {
	ws := make([]string, n)
	for i := range ws {
		ws[i] = c.words[c.zipf.Uint64()]
	}
	return strings.Join(ws, " ")
}

type sample struct {
	c    *benchCorpus
	text string
}

func benchSearch(b *testing.B, d store.Dialect, hours int) {
	b.StopTimer()
	ctx := context.Background()
	cfg := store.Config{SQLitePath: filepath.Join(b.TempDir(), "g.db")}
	if d == store.Postgres {
		cfg = store.Config{PostgresURL: testenv.Postgres(b)}
	}
	st, err := store.Open(ctx, cfg)
	require.NoError(b, err)
	defer st.Close()
	r := rand.New(rand.NewPCG(1, 2))
	corpora := []*benchCorpus{newBenchCorpus(r, "fr"), newBenchCorpus(r, "en")}

	// Generation: one meeting an hour long per meeting-hour, written a
	// meeting per transaction (the live path writes a segment at a time;
	// that cost is measured below, on the last meetings).
	segsPerHour := 3_600_000 / benchSegmentMS
	var (
		saveTime time.Duration
		said     []sample // every 101st segment, to draw queries from
		nth      int
	)
	var savedSegs int
	genStart := time.Now()
	for h := range hours {
		c := corpora[h%2]
		m, err := st.CreateMeeting(ctx, fmt.Sprintf("Réunion %d", h), c.lang)
		require.NoError(b, err)
		speakers := 4 + r.IntN(5)
		tracks := make([]store.Track, speakers)
		for i := range tracks {
			who := fmt.Sprintf("p%d", i)
			_, err := st.Join(ctx, m.ID, who, "Person "+who)
			require.NoError(b, err)
			tracks[i] = store.Track{ID: store.NewID("trk"), MeetingID: m.ID, Identity: who}
			require.NoError(b, st.CreateTrack(ctx, tracks[i]))
		}
		// The last meetings are written as the live path does: a segment
		// per transaction, timed.
		timed := h >= hours-2
		save := func(q store.Queries, i int, tr store.Track) {
			start := int64(i * benchSegmentMS)
			require.NoError(b, q.UpsertSpeechSegment(ctx, store.SpeechSegment{MeetingID: m.ID, TrackID: tr.ID,
				Identity: tr.Identity, StartMS: start, EndMS: start + benchSegmentMS - 500, AudioKey: "k"}))
			text := c.sentence(benchWordsPerSeg)
			if nth++; nth%101 == 0 {
				said = append(said, sample{c, text})
			}
			t0 := time.Now()
			require.NoError(b, q.SaveTranscript(ctx, tr.ID, start, text, c.lang, nil))
			if timed {
				saveTime += time.Since(t0)
				savedSegs++
			}
		}
		if timed {
			for i := range segsPerHour {
				save(st.Queries, i, tracks[r.IntN(speakers)])
			}
			continue
		}
		require.NoError(b, st.InTx(ctx, func(_ *sql.Tx, q store.Queries) error {
			for i := range segsPerHour {
				save(q, i, tracks[r.IntN(speakers)])
			}
			return nil
		}))
	}
	b.Logf("%s: generated %d meeting-hours (%d segments) in %s", d, hours, hours*segsPerHour, time.Since(genStart).Round(time.Second))
	if d == store.Postgres {
		_, err := st.DB().ExecContext(ctx, `ANALYZE speech_segments`)
		require.NoError(b, err)
	}

	// Indexing cost: SaveTranscript (analysis + row + index) per minute
	// of speech (the analysis alone: BenchmarkIndexText in the store).
	transcribedMin := float64(savedSegs) * benchSegmentMS / 60_000
	b.ReportMetric(float64(saveTime.Microseconds())/1000/transcribedMin, "save-ms/transcribed-min")

	size := indexBytes(b, st)
	b.ReportMetric(float64(size)/float64(hours)/(1<<20), "index-MiB/meeting-hour")

	// Two-word queries of words a person would search for: two words of
	// something said (so there is at least one hit) that are not among
	// the 30 most frequent of the language (function words); apart, two of
	// the ten most frequent words (the worst case: most segments match).
	queries := func(n int) []string {
		var out []string
		for len(out) < n {
			s := said[r.IntN(len(said))]
			var ws []string
			for _, w := range strings.Fields(s.text) {
				if slices.Index(s.c.words, w) >= 30 {
					ws = append(ws, w)
				}
			}
			if len(ws) >= 2 {
				i, j := r.IntN(len(ws)), r.IntN(len(ws))
				out = append(out, ws[i]+" "+ws[j])
			}
		}
		return out
	}
	common := func(n int) []string {
		var out []string
		for i := range n {
			c := corpora[i%2]
			out = append(out, c.words[r.IntN(10)]+" "+c.words[r.IntN(10)])
		}
		return out
	}
	measure := func(name string, qs []string, do func(q string) int) {
		var lat []time.Duration
		found := 0
		for _, q := range qs {
			t0 := time.Now()
			found += do(q)
			lat = append(lat, time.Since(t0))
		}
		slices.Sort(lat)
		p50, p95 := lat[len(lat)/2], lat[len(lat)*95/100]
		b.ReportMetric(float64(p50.Microseconds())/1000, name+"-p50-ms")
		b.ReportMetric(float64(p95.Microseconds())/1000, name+"-p95-ms")
		b.Logf("%s %s: %d queries, %.1f hits each, p50 %s p95 %s max %s", d, name, len(qs),
			float64(found)/float64(len(qs)), p50, p95, lat[len(lat)-1])
	}
	b.StartTimer()
	search := func(q string) int {
		page, err := st.Search(ctx, store.SearchQuery{Query: q, Limit: 20})
		require.NoError(b, err)
		return len(page.Hits)
	}
	measure("search", queries(300), search)
	measure("search-common", common(40), search)

	// The MCP tool, over HTTP through the SDK's client.
	blobs, err := blob.NewDisk(b.TempDir())
	require.NoError(b, err)
	signer, err := token.NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	require.NoError(b, err)
	media := &fakeMedia{store: st}
	a, err := api.New(api.Config{Token: apiToken}, api.Deps{Store: st, Blobs: blobs, Ender: media, Rerunner: media,
		Sessions: media, Signer: signer, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(b, err)
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	session, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "v0"}, nil).Connect(ctx,
		&mcp.StreamableClientTransport{Endpoint: srv.URL + "/v1/mcp", HTTPClient: &http.Client{Transport: bearer{apiToken}}, MaxRetries: -1,
			DisableStandaloneSSE: true}, nil)
	require.NoError(b, err)
	defer session.Close()
	measure("mcp-search", queries(200), func(q string) int {
		res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "search_transcripts", Arguments: map[string]any{"query": q, "limit": 10}})
		require.NoError(b, err)
		require.False(b, res.IsError)
		hits, _ := res.StructuredContent.(map[string]any)["hits"].([]any)
		return len(hits)
	})
	b.StopTimer()
}

// indexBytes is what search adds to the database: the analysed text
// column and the full-text index.
func indexBytes(b *testing.B, st *store.Store) int64 {
	ctx := context.Background()
	var n int64
	q := `SELECT pg_relation_size('speech_search') + (SELECT sum(pg_column_size(search_vec)) + sum(pg_column_size(search_text)) FROM speech_segments)`
	if st.Dialect() == store.SQLite {
		q = `SELECT (SELECT sum(length(block)) FROM speech_fts_data) + (SELECT coalesce(sum(length(term)), 0) FROM speech_fts_idx)
			+ (SELECT sum(length(search_text)) FROM speech_segments)`
	}
	require.NoError(b, st.DB().QueryRowContext(ctx, q).Scan(&n))
	return n
}
