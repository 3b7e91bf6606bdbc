package store

import (
	"context"
	"fmt"
	"strings"
)

// SearchQuery finds transcribed speech containing every term.
type SearchQuery struct {
	Terms     []string
	MeetingID string // optional
	Identity  string // optional
	Limit     int
}

// Hit is one speech segment that matched.
type Hit struct {
	MeetingID, Title, Identity string
	StartMS, EndMS             int64
	Text                       string
}

// Search returns matching speech segments, newest meetings first, then in
// meeting-clock order. Terms match anywhere in the text whatever their case
// and accents: both sides are folded in Go (fold), then compared with LIKE,
// which both dialects share; no index serves it, which is fine for
// thousands of meetings and is the place for full-text search later.
func (q Queries) Search(ctx context.Context, s SearchQuery) ([]Hit, error) {
	var (
		where = []string{"s.status = $1"}
		args  = []any{SegmentTranscribed}
	)
	for _, t := range s.Terms {
		args = append(args, "%"+escapeLike(fold(t))+"%")
		where = append(where, fmt.Sprintf(`s.search_text LIKE $%d ESCAPE '\'`, len(args)))
	}
	if s.MeetingID != "" {
		args = append(args, s.MeetingID)
		where = append(where, fmt.Sprintf("s.meeting_id = $%d", len(args)))
	}
	if s.Identity != "" {
		args = append(args, s.Identity)
		where = append(where, fmt.Sprintf("s.identity = $%d", len(args)))
	}
	args = append(args, s.Limit)
	rows, err := q.q.QueryContext(ctx, `SELECT s.meeting_id, m.title, s.identity, s.start_ms, s.end_ms, s.text
		FROM speech_segments s JOIN meetings m ON m.id = s.meeting_id
		WHERE `+strings.Join(where, " AND ")+`
		ORDER BY m.created_at DESC, s.meeting_id, s.start_ms LIMIT $`+fmt.Sprint(len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	defer rows.Close()
	var out []Hit
	for rows.Next() {
		var h Hit
		if err := rows.Scan(&h.MeetingID, &h.Title, &h.Identity, &h.StartMS, &h.EndMS, &h.Text); err != nil {
			return nil, fmt.Errorf("search: %w", err)
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

func escapeLike(s string) string { return likeEscaper.Replace(s) }
