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

// folder computes the form in which search compares words: case folded,
// accents and other combining marks dropped, compatibility forms unified,
// so that "élection" finds "Élections", "ecole" finds "ÉCOLE" and
// "strasse" finds "Straße". It is computed here, in Go, for both the index
// and the query (analyze.go): SQLite's tokenizer folds differently from
// Postgres's parser, so neither database may do it. A folder keeps state
// (its transformer's buffers, reused from word to word): one per
// goroutine.
type folder struct{ t transform.Transformer }

func newFolder() *folder {
	return &folder{t: transform.Chain(norm.NFKD, runes.Remove(runes.In(unicode.Mn)), cases.Fold(), norm.NFC)}
}

func (f *folder) fold(s string) string {
	out, _, err := transform.String(f.t, s) // resets f.t first
	if err != nil {
		// Only invalid input fails; lower case is the next best thing.
		return string(cases.Fold().Bytes([]byte(s)))
	}
	return out
}

// indexed is the index text of a transcript, never empty for a text
// that was analysed: a text without words is marked done with a space.
func indexed(text, lang string) string {
	if f := indexText(text, lang); f != "" {
		return f
	}
	if text == "" {
		return ""
	}
	return " "
}

// backfillBatch bounds one transaction of backfillSearchText.
const backfillBatch = 500

// backfillSearchText analyses for search the transcripts saved before
// the index (or by a path that did not write it). A partial index finds
// them, so it costs nothing once done; running it on several nodes at
// once only does the same updates twice.
func (s *Store) backfillSearchText(ctx context.Context) error {
	for {
		n := 0
		err := s.InTx(ctx, func(_ *sql.Tx, q Queries) error {
			rows, err := q.q.QueryContext(ctx, `SELECT s.track_id, s.start_ms, s.text, s.language, m.language
				FROM speech_segments s JOIN meetings m ON m.id = s.meeting_id
				WHERE s.search_text = '' AND s.text <> '' LIMIT $1`, backfillBatch)
			if err != nil {
				return err
			}
			type row struct {
				track          string
				start          int64
				text, lang, ml string
			}
			var todo []row
			for rows.Next() {
				var r row
				if err := rows.Scan(&r.track, &r.start, &r.text, &r.lang, &r.ml); err != nil {
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
				lang := indexLanguage(r.ml, r.lang)
				if _, err := q.q.ExecContext(ctx, `UPDATE speech_segments SET search_text = $1, search_lang = $2
					WHERE track_id = $3 AND start_ms = $4`, indexed(r.text, lang), lang, r.track, r.start); err != nil {
					return err
				}
			}
			n = len(todo)
			return nil
		})
		if err != nil {
			return fmt.Errorf("index transcripts for search: %w", err)
		}
		if n < backfillBatch {
			return nil
		}
	}
}
