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
	// CreatedBy keeps the meetings this API key created ("" for every
	// meeting): a host key's search.
	CreatedBy string
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
// segment's row: its rowid on SQLite, its key on Postgres), with the
// fingerprint of the query it belongs to.
type searchCursor struct {
	Score   float64 `json:"s"`
	Row     int64   `json:"r,omitempty"`
	Meeting string  `json:"m,omitempty"`
	Track   string  `json:"t,omitempty"`
	Start   int64   `json:"st,omitempty"`
	Query   uint64  `json:"q"`
}

// fingerprint identifies a query and its filters, not its page.
func (s SearchQuery) fingerprint() uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%q %q %q %q %q %d %d", s.Query, s.MeetingID, s.Identity, s.CreatedBy, s.Language, s.From.UnixMilli(), s.To.UnixMilli())
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
	var match string
	if s.dialect == Postgres {
		match = `s.search_vec @@ to_tsquery('simple', ` + arg(pq.tsquery()) + `)`
	} else {
		match = `speech_fts MATCH ` + arg(pq.fts5())
	}
	if sq.MeetingID != "" {
		where = append(where, `s.meeting_id = `+arg(sq.MeetingID))
	}
	if sq.Identity != "" {
		where = append(where, `s.identity = `+arg(sq.Identity))
	}
	if sq.CreatedBy != "" {
		where = append(where, `m.created_by = `+arg(sq.CreatedBy))
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
	const columns = `s.meeting_id, m.title, s.identity, COALESCE(p.display_name, ''), s.track_id, s.start_ms,
		s.end_ms, m.started_at, s.text, s.search_lang`
	const joins = ` JOIN meetings m ON m.id = s.meeting_id
		LEFT JOIN participants p ON p.meeting_id = s.meeting_id AND p.identity = s.identity`
	var query string
	switch {
	case s.dialect == Postgres:
		// Normalisation 1 divides by 1 + log(length), as bm25 favours
		// short segments that say the words.
		score := `(-ts_rank(s.search_vec, to_tsquery('simple', $1), 1))::float8`
		after := ""
		if cur != nil {
			sc := arg(cur.Score)
			after = `WHERE h.score > ` + sc + ` OR (h.score = ` + sc + ` AND (h.meeting_id, h.track_id, h.start_ms) > (` +
				arg(cur.Meeting) + `, ` + arg(cur.Track) + `, ` + arg(cur.Start) + `))`
		}
		query = `SELECT h.* FROM (SELECT ` + columns + `, ` + score + ` AS score, 0 AS rid FROM speech_segments s` + joins +
			` WHERE ` + strings.Join(append([]string{match}, where...), " AND ") + `) h ` + after +
			` ORDER BY h.score, h.meeting_id, h.track_id, h.start_ms LIMIT ` + arg(sq.Limit+1)
	default:
		// The index alone ranks and cuts the page when nothing else
		// narrows the query, so only a page of rows is read, however many
		// segments hold the words; filters need the rows first.
		after := ""
		if cur != nil {
			sc := arg(cur.Score)
			after = ` WHERE f.score > ` + sc + ` OR (f.score = ` + sc + ` AND f.rid > ` + arg(cur.Row) + `)`
		}
		ranked := `SELECT rowid AS rid, bm25(speech_fts) AS score FROM speech_fts WHERE ` + match
		if len(where) == 0 {
			query = `SELECT ` + columns + `, f.score, f.rid FROM (SELECT * FROM (` + ranked + `) f` + after +
				` ORDER BY f.score, f.rid LIMIT ` + arg(sq.Limit+1) + `) f JOIN speech_segments s ON s.rowid = f.rid` + joins +
				` ORDER BY f.score, f.rid`
		} else {
			query = `SELECT ` + columns + `, f.score, f.rid FROM (` + ranked + `) f JOIN speech_segments s ON s.rowid = f.rid` +
				joins + ` WHERE ` + strings.Join(where, " AND ") + strings.Replace(after, " WHERE ", " AND (", 1) +
				closeParen(after) + ` ORDER BY f.score, f.rid LIMIT ` + arg(sq.Limit+1)
		}
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return SearchPage{}, fmt.Errorf("search: %w", err)
	}
	defer rows.Close()
	var (
		page    SearchPage
		keys    []searchCursor
		started sql.NullInt64
	)
	for rows.Next() {
		var (
			h Hit
			k searchCursor
		)
		if err := rows.Scan(&h.MeetingID, &h.Title, &h.Identity, &h.Name, &h.TrackID, &h.StartMS, &h.EndMS,
			&started, &h.Text, &h.Language, &k.Score, &k.Row); err != nil {
			return SearchPage{}, fmt.Errorf("search: %w", err)
		}
		h.StartedAt = fromMS(started)
		h.Score = -k.Score
		h.Snippet, h.Highlights = pq.snippet(h.Text, h.Language)
		page.Hits = append(page.Hits, h)
		if s.dialect == Postgres {
			k.Meeting, k.Track, k.Start = h.MeetingID, h.TrackID, h.StartMS
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return SearchPage{}, fmt.Errorf("search: %w", err)
	}
	if len(page.Hits) > sq.Limit {
		page.Hits = page.Hits[:sq.Limit]
		k := keys[sq.Limit-1]
		k.Query = sq.fingerprint()
		b, _ := json.Marshal(k)
		page.Next = base64.RawURLEncoding.EncodeToString(b)
	}
	return page, nil
}

// closeParen closes the parenthesis a cursor condition opened when it was
// joined to other conditions.
func closeParen(cond string) string {
	if cond == "" {
		return ""
	}
	return ")"
}
