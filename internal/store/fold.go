package store

import (
	"context"
	"database/sql"
	"fmt"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// fold is the form in which search compares text: case folded, accents
// and other combining marks dropped, compatibility forms unified, so that
// "élection" finds "Élections", "ecole" finds "ÉCOLE" and "strasse" finds
// "Straße". It is computed here, in Go, for both the stored copy and the
// query: SQLite's LOWER folds ASCII only, and Postgres's depends on the
// database's collation, so neither database may do it.
func fold(s string) string {
	// A Chain keeps state: one per call.
	t := transform.Chain(norm.NFKD, runes.Remove(runes.In(unicode.Mn)), cases.Fold(), norm.NFC)
	out, _, err := transform.String(t, s)
	if err != nil {
		// Only invalid input fails; lower case is the next best thing.
		return string(cases.Fold().Bytes([]byte(s)))
	}
	return out
}

// backfillBatch bounds one transaction of backfillSearchText.
const backfillBatch = 500

// backfillSearchText computes the folded copy of transcripts saved before
// the copy existed (or by a path that did not write it). A partial index
// finds them, so it costs nothing once done; running it on several nodes
// at once only does the same updates twice.
func (s *Store) backfillSearchText(ctx context.Context) error {
	for {
		n := 0
		err := s.InTx(ctx, func(_ *sql.Tx, q Queries) error {
			rows, err := q.q.QueryContext(ctx, `SELECT track_id, start_ms, text FROM speech_segments
				WHERE search_text = '' AND text <> '' LIMIT $1`, backfillBatch)
			if err != nil {
				return err
			}
			type row struct {
				track string
				start int64
				text  string
			}
			var todo []row
			for rows.Next() {
				var r row
				if err := rows.Scan(&r.track, &r.start, &r.text); err != nil {
					rows.Close()
					return err
				}
				todo = append(todo, r)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for _, r := range todo {
				f := fold(r.text)
				if f == "" {
					f = " " // marks only: folded to nothing, but done
				}
				if _, err := q.q.ExecContext(ctx, `UPDATE speech_segments SET search_text = $1
					WHERE track_id = $2 AND start_ms = $3`, f, r.track, r.start); err != nil {
					return err
				}
			}
			n = len(todo)
			return nil
		})
		if err != nil {
			return fmt.Errorf("fold transcripts for search: %w", err)
		}
		if n < backfillBatch {
			return nil
		}
	}
}
