package store

import (
	"context"
	"database/sql"
	"fmt"
)

// The full-text index over speech_segments.search_text is the one part of
// the schema that differs between the databases; it is created here, after
// the shared migrations, and is idempotent so it runs at every start.
//
//   - SQLite: an FTS5 table whose content is speech_segments (external
//     content: it keeps only the index, not a second copy of the text),
//     kept in step by triggers on insert, delete and update of search_text.
//     A deleted segment, a deleted meeting's included, leaves the index in
//     the same statement. Its rows are speech_segments' rowids, which only
//     VACUUM renumbers: after one, drop speech_fts and its triggers, and
//     the next start creates them again.
//   - Postgres: a tsvector column generated from search_text with
//     to_tsvector('simple') and a GIN index on it; it goes with its row.
//
// Only transcribed segments are in the index (a segment that failed or
// waits has nothing to find), so a query needs no join to know that.
var searchIndexDDL = map[Dialect][]string{
	SQLite: {
		`CREATE VIRTUAL TABLE speech_fts USING fts5(search_text, content='speech_segments',
			tokenize='unicode61 remove_diacritics 0')`,
		`CREATE TRIGGER speech_fts_insert AFTER INSERT ON speech_segments WHEN new.status = 'transcribed' BEGIN
			INSERT INTO speech_fts(rowid, search_text) VALUES (new.rowid, new.search_text); END`,
		`CREATE TRIGGER speech_fts_delete AFTER DELETE ON speech_segments WHEN old.status = 'transcribed' BEGIN
			INSERT INTO speech_fts(speech_fts, rowid, search_text) VALUES ('delete', old.rowid, old.search_text); END`,
		// One trigger for both halves, so the old entry is gone before
		// the new one comes.
		`CREATE TRIGGER speech_fts_update AFTER UPDATE OF search_text, status ON speech_segments BEGIN
			INSERT INTO speech_fts(speech_fts, rowid, search_text)
				SELECT 'delete', old.rowid, old.search_text WHERE old.status = 'transcribed';
			INSERT INTO speech_fts(rowid, search_text) SELECT new.rowid, new.search_text WHERE new.status = 'transcribed';
			END`,
		// Rows stored before the index existed ('rebuild' would index
		// every row, whatever its status).
		`INSERT INTO speech_fts(rowid, search_text) SELECT rowid, search_text FROM speech_segments
			WHERE status = 'transcribed'`,
	},
	Postgres: {
		`ALTER TABLE speech_segments ADD COLUMN search_vec tsvector GENERATED ALWAYS AS (CASE WHEN status = 'transcribed'
			THEN to_tsvector('simple'::regconfig, search_text) END) STORED`,
		`CREATE INDEX speech_search ON speech_segments USING gin (search_vec)`,
	},
}

// ensureSearchIndex creates the dialect's full-text index once.
func (s *Store) ensureSearchIndex(ctx context.Context) error {
	err := s.InTx(ctx, func(_ *sql.Tx, q Queries) error {
		var n int
		var err error
		if s.dialect == Postgres {
			// Two nodes starting at once: one creates, the other waits.
			if _, err := q.q.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7213)`); err != nil {
				return err
			}
			err = q.q.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.columns
				WHERE table_name = 'speech_segments' AND column_name = 'search_vec' AND table_schema = current_schema()`).Scan(&n)
		} else {
			err = q.q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name = 'speech_fts'`).Scan(&n)
		}
		if err != nil || n > 0 {
			return err
		}
		for _, stmt := range searchIndexDDL[s.dialect] {
			if _, err := q.q.ExecContext(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create the search index: %w", err)
	}
	return nil
}
