package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
	"time"
)

// SearchQuery finds transcribed speech. Query is the user's text: words
// (all required), "quoted phrases" and prefix* words; case, accents and
// inflections do not matter. The other fields narrow it; zero values do
// not.
type SearchQuery struct {
	Query     string
	MeetingID string
	Identity  string
	// Language keeps segments indexed in this language: "fr", "en", or
	// "other" for the unstemmed rest.
	Language string
	// From and To bound when the words were said (wall clock), To excluded.
	From, To time.Time
	Limit    int
	// Cursor continues a previous page: SearchPage.Next of the same query.
	Cursor string
}

// Hit is one speech segment that matched.
type Hit struct {
	MeetingID, Title, Identity string
	// Name is the speaker's display name now.
	Name           string
	TrackID        string
	StartMS, EndMS int64
	// StartedAt is the meeting clock's zero (wall clock), zero if unknown.
	StartedAt time.Time
	Text      string
	// Language is the index language the segment was stemmed in ("fr",
	// "en", "" for none).
	Language string
	// Score is the relevance, higher is better; it compares hits of one
	// query on one database only.
	Score float64
	// Snippet is an excerpt of Text around the match; Highlights are the
	// matched words in it, [start, end) in characters (code points).
	Snippet    string
	Highlights [][2]int
}

// SearchPage is one page of hits, most relevant first; Next, when not
// empty, is the cursor of the page after it.
type SearchPage struct {
	Hits []Hit
	Next string
}

// searchCursor is where a page ended, in the order of the results (score
// ascending as the databases compute it, lower is better; then the
// segment's key), with the fingerprint of the query it belongs to.
type searchCursor struct {
	Score   float64 `json:"s"`
	Meeting string  `json:"m"`
	Track   string  `json:"t"`
	Start   int64   `json:"st"`
	Query   uint64  `json:"q"`
}

// fingerprint identifies a query and its filters, not its page.
func (s SearchQuery) fingerprint() uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%q %q %q %q %d %d", s.Query, s.MeetingID, s.Identity, s.Language, s.From.UnixMilli(), s.To.UnixMilli())
	return h.Sum64()
}

// Search returns one page of the speech segments that hold every item of
// the query, most relevant first: on SQLite FTS5's bm25, on Postgres
// ts_rank (frequency of the forms, normalised by the segment's length).
// The index text and the query are analysed in Go (analyze.go), so both
// databases match the same segments; only the scores differ.
func (s *Store) Search(ctx context.Context, sq SearchQuery) (SearchPage, error) {
	pq, err := parseQuery(sq.Query)
	if err != nil {
		return SearchPage{}, err
	}
	if sq.Limit <= 0 {
		sq.Limit = 50
	}
	var cur *searchCursor
	if sq.Cursor != "" {
		cur = &searchCursor{}
		b, err := base64.RawURLEncoding.DecodeString(sq.Cursor)
		if err != nil || json.Unmarshal(b, cur) != nil || cur.Query != sq.fingerprint() {
			return SearchPage{}, ErrBadCursor
		}
	}

	var (
		args  []any
		where []string
	)
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	var from, score string
	switch s.dialect {
	case Postgres:
		q := arg(pq.tsquery())
		from = `speech_segments s`
		where = append(where, `s.search_vec @@ to_tsquery('simple', `+q+`)`)
		// Normalisation 1 divides by 1 + log(length), as bm25 favours
		// short segments that say the words.
		score = `(-ts_rank(s.search_vec, to_tsquery('simple', ` + q + `), 1))::float8`
	default:
		from = `speech_fts JOIN speech_segments s ON s.rowid = speech_fts.rowid`
		where = append(where, `speech_fts MATCH `+arg(pq.fts5()))
		score = `bm25(speech_fts)`
	}
	where = append(where, `s.status = `+arg(SegmentTranscribed))
	if sq.MeetingID != "" {
		where = append(where, `s.meeting_id = `+arg(sq.MeetingID))
	}
	if sq.Identity != "" {
		where = append(where, `s.identity = `+arg(sq.Identity))
	}
	if sq.Language != "" {
		lang := sq.Language
		if lang == "other" {
			lang = ""
		}
		where = append(where, `s.search_lang = `+arg(lang))
	}
	if !sq.From.IsZero() {
		where = append(where, `m.started_at + s.start_ms >= `+arg(sq.From.UnixMilli()))
	}
	if !sq.To.IsZero() {
		where = append(where, `m.started_at + s.start_ms < `+arg(sq.To.UnixMilli()))
	}
	outer := ""
	if cur != nil {
		sc, mt, tr, st := arg(cur.Score), arg(cur.Meeting), arg(cur.Track), arg(cur.Start)
		outer = `WHERE h.score > ` + sc + ` OR (h.score = ` + sc + ` AND (h.meeting_id, h.track_id, h.start_ms) > (` +
			mt + `, ` + tr + `, ` + st + `))`
	}
	lim := arg(sq.Limit + 1)
	rows, err := s.db.QueryContext(ctx, `SELECT h.meeting_id, h.title, h.identity, h.name, h.track_id, h.start_ms,
		h.end_ms, h.started_at, h.text, h.search_lang, h.score FROM (
		SELECT s.meeting_id, m.title, s.identity, COALESCE(p.display_name, '') AS name, s.track_id, s.start_ms,
			s.end_ms, m.started_at, s.text, s.search_lang, `+score+` AS score
		FROM `+from+` JOIN meetings m ON m.id = s.meeting_id
		LEFT JOIN participants p ON p.meeting_id = s.meeting_id AND p.identity = s.identity
		WHERE `+strings.Join(where, " AND ")+`) h `+outer+`
		ORDER BY h.score, h.meeting_id, h.track_id, h.start_ms LIMIT `+lim, args...)
	if err != nil {
		return SearchPage{}, fmt.Errorf("search: %w", err)
	}
	defer rows.Close()
	var (
		page    SearchPage
		scores  []float64
		started sql.NullInt64
	)
	for rows.Next() {
		var (
			h     Hit
			score float64
		)
		if err := rows.Scan(&h.MeetingID, &h.Title, &h.Identity, &h.Name, &h.TrackID, &h.StartMS, &h.EndMS,
			&started, &h.Text, &h.Language, &score); err != nil {
			return SearchPage{}, fmt.Errorf("search: %w", err)
		}
		h.StartedAt = fromMS(started)
		h.Score = -score
		h.Snippet, h.Highlights = pq.snippet(h.Text, h.Language)
		page.Hits = append(page.Hits, h)
		scores = append(scores, score)
	}
	if err := rows.Err(); err != nil {
		return SearchPage{}, fmt.Errorf("search: %w", err)
	}
	if len(page.Hits) > sq.Limit {
		page.Hits = page.Hits[:sq.Limit]
		last := page.Hits[sq.Limit-1]
		b, _ := json.Marshal(searchCursor{Score: scores[sq.Limit-1], Meeting: last.MeetingID, Track: last.TrackID,
			Start: last.StartMS, Query: sq.fingerprint()})
		page.Next = base64.RawURLEncoding.EncodeToString(b)
	}
	return page, nil
}
