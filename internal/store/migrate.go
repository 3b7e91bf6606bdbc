package store

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are applied in order, each once. Both dialects run the same
// text, so it sticks to types and syntax they share.
var migrations = []string{
	`CREATE TABLE meetings (
		id TEXT PRIMARY KEY,
		title TEXT NOT NULL,
		state TEXT NOT NULL,
		language TEXT NOT NULL DEFAULT '',
		failure TEXT NOT NULL DEFAULT '',
		created_at BIGINT NOT NULL,
		started_at BIGINT,
		ended_at BIGINT,
		updated_at BIGINT NOT NULL
	);
	CREATE TABLE participants (
		meeting_id TEXT NOT NULL REFERENCES meetings(id),
		identity TEXT NOT NULL,
		display_name TEXT NOT NULL,
		joined_at BIGINT NOT NULL,
		PRIMARY KEY (meeting_id, identity)
	);
	CREATE TABLE tracks (
		id TEXT PRIMARY KEY,
		meeting_id TEXT NOT NULL REFERENCES meetings(id),
		identity TEXT NOT NULL,
		ssrc BIGINT NOT NULL,
		state TEXT NOT NULL,
		start_ms BIGINT NOT NULL,
		duration_ms BIGINT NOT NULL DEFAULT 0,
		blob_key TEXT NOT NULL DEFAULT '',
		size BIGINT NOT NULL DEFAULT 0,
		sha256 TEXT NOT NULL DEFAULT '',
		gap_ms BIGINT NOT NULL DEFAULT 0,
		failure TEXT NOT NULL DEFAULT '',
		speech_detected INTEGER NOT NULL DEFAULT 0,
		created_at BIGINT NOT NULL
	);
	CREATE INDEX tracks_by_meeting ON tracks (meeting_id, start_ms);
	CREATE TABLE speech_segments (
		track_id TEXT NOT NULL REFERENCES tracks(id),
		start_ms BIGINT NOT NULL,
		meeting_id TEXT NOT NULL REFERENCES meetings(id),
		identity TEXT NOT NULL,
		end_ms BIGINT NOT NULL,
		audio_start_ms BIGINT NOT NULL,
		audio_key TEXT NOT NULL,
		status TEXT NOT NULL,
		text TEXT NOT NULL DEFAULT '',
		words TEXT NOT NULL DEFAULT '[]',
		language TEXT NOT NULL DEFAULT '',
		failure TEXT NOT NULL DEFAULT '',
		attempts INTEGER NOT NULL DEFAULT 0,
		updated_at BIGINT NOT NULL,
		PRIMARY KEY (track_id, start_ms)
	);
	CREATE INDEX speech_by_meeting ON speech_segments (meeting_id, start_ms);
	CREATE TABLE minutes (
		meeting_id TEXT NOT NULL REFERENCES meetings(id),
		version INTEGER NOT NULL,
		digest TEXT NOT NULL,
		body TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		PRIMARY KEY (meeting_id, version)
	);`,
	// Re-runs of the pipeline, and detection failures kept apart from the
	// recording's own state so a re-run can try the stored file again.
	`ALTER TABLE meetings ADD COLUMN run INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE tracks ADD COLUMN detect_failure TEXT NOT NULL DEFAULT '';
	CREATE TABLE events (
		meeting_id TEXT NOT NULL REFERENCES meetings(id),
		at_ms BIGINT NOT NULL,
		kind TEXT NOT NULL,
		identity TEXT NOT NULL,
		seq BIGINT NOT NULL,
		PRIMARY KEY (meeting_id, seq)
	);`,
	`ALTER TABLE meetings ADD COLUMN captions INTEGER NOT NULL DEFAULT 0;`,
	// Tracks of a microphone shared by several people are diarized: who
	// of them spoke when.
	`CREATE TABLE participant_settings (
		meeting_id TEXT NOT NULL REFERENCES meetings(id),
		identity TEXT NOT NULL,
		shared_mic INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (meeting_id, identity)
	);
	ALTER TABLE tracks ADD COLUMN voices_state TEXT NOT NULL DEFAULT '';
	ALTER TABLE tracks ADD COLUMN voices TEXT NOT NULL DEFAULT '';
	ALTER TABLE tracks ADD COLUMN voices_failure TEXT NOT NULL DEFAULT '';`,
	`ALTER TABLE meetings ADD COLUMN webhook_url TEXT NOT NULL DEFAULT '';`,
	// Search compares a folded copy of each transcript (fold.go), filled
	// for older rows by backfillSearchText, which the partial index serves.
	`ALTER TABLE speech_segments ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
	CREATE INDEX speech_unfolded ON speech_segments (track_id, start_ms) WHERE search_text = '' AND text <> '';`,
	// Stored objects found damaged (their bytes no longer hash to the
	// SHA-256 recorded when they were stored), until they verify again.
	`CREATE TABLE damaged_blobs (
		blob_key TEXT PRIMARY KEY,
		meeting_id TEXT NOT NULL REFERENCES meetings(id),
		detail TEXT NOT NULL,
		found_at BIGINT NOT NULL
	);
	CREATE INDEX damaged_blobs_meeting ON damaged_blobs (meeting_id);`,
	// Join tokens issued, so that a host can revoke one, or all of an
	// identity's.
	`CREATE TABLE join_tokens (
		id TEXT PRIMARY KEY,
		meeting_id TEXT NOT NULL REFERENCES meetings(id),
		identity TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		expires_at BIGINT NOT NULL,
		revoked_at BIGINT
	);
	CREATE INDEX join_tokens_by_identity ON join_tokens (meeting_id, identity);`,
	// Stretches of a track that were not recorded (a full spool disk, a
	// refused publisher, lost packets), so the minutes can say so.
	`CREATE TABLE track_gaps (
		track_id TEXT NOT NULL REFERENCES tracks(id),
		start_ms BIGINT NOT NULL,
		meeting_id TEXT NOT NULL REFERENCES meetings(id),
		identity TEXT NOT NULL,
		end_ms BIGINT NOT NULL,
		reason TEXT NOT NULL,
		PRIMARY KEY (track_id, start_ms)
	);
	CREATE INDEX track_gaps_by_meeting ON track_gaps (meeting_id, start_ms);`,
	// Every process is a node with a heartbeat, so that the jobs of a node
	// that died are taken up again in seconds; a speech segment waiting
	// for its backend says on which, since when, and the last error.
	`CREATE TABLE nodes (
		id TEXT PRIMARY KEY,
		started_at BIGINT NOT NULL,
		heartbeat_at BIGINT NOT NULL
	);
	ALTER TABLE speech_segments ADD COLUMN waiting_since BIGINT NOT NULL DEFAULT 0;
	ALTER TABLE speech_segments ADD COLUMN wait_backend TEXT NOT NULL DEFAULT '';
	ALTER TABLE speech_segments ADD COLUMN last_error TEXT NOT NULL DEFAULT '';`,
	// What became of a meeting's webhook deliveries, shown in its progress.
	`CREATE TABLE webhook_status (
		meeting_id TEXT PRIMARY KEY REFERENCES meetings(id),
		url_host TEXT NOT NULL,
		last_event TEXT NOT NULL,
		last_error TEXT NOT NULL DEFAULT '',
		failing_since BIGINT NOT NULL DEFAULT 0,
		delivered_at BIGINT NOT NULL DEFAULT 0,
		updated_at BIGINT NOT NULL);`,
	// API keys with roles (stored as the SHA-256 of the key), the key that
	// created each meeting (a host sees its own), and the audit log of who
	// did what. The audit log keeps no reference to meetings: it outlives
	// a deleted meeting.
	`CREATE TABLE api_keys (
		id TEXT PRIMARY KEY,
		name TEXT NOT NULL,
		role TEXT NOT NULL,
		all_meetings INTEGER NOT NULL DEFAULT 0,
		hash TEXT NOT NULL UNIQUE,
		created_at BIGINT NOT NULL,
		expires_at BIGINT NOT NULL DEFAULT 0,
		last_used_at BIGINT NOT NULL DEFAULT 0,
		revoked_at BIGINT NOT NULL DEFAULT 0
	);
	CREATE INDEX api_keys_by_created ON api_keys (created_at, id);
	ALTER TABLE meetings ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
	CREATE INDEX meetings_by_created ON meetings (created_at, id);
	CREATE TABLE audit_log (
		id TEXT PRIMARY KEY,
		at BIGINT NOT NULL,
		key_id TEXT NOT NULL,
		key_name TEXT NOT NULL,
		method TEXT NOT NULL,
		route TEXT NOT NULL,
		meeting_id TEXT NOT NULL DEFAULT '',
		status INTEGER NOT NULL
	);
	CREATE INDEX audit_log_by_at ON audit_log (at, id);
	CREATE INDEX audit_log_by_meeting ON audit_log (meeting_id, at, id);`,
	// Full-text search: search_text now holds each word folded and stemmed
	// in the segment's index language (analyze.go), search_lang; every
	// row is analysed again by backfillSearchText. The index over it is
	// the dialect's own (search_index.go).
	`ALTER TABLE speech_segments ADD COLUMN search_lang TEXT NOT NULL DEFAULT '';
	UPDATE speech_segments SET search_text = '' WHERE search_text <> '';`,

	// A meeting's own retention policy (NULL durations take the configured
	// defaults), its legal hold, and when each kind of data expired.
	`CREATE TABLE retention (
		meeting_id TEXT PRIMARY KEY REFERENCES meetings(id),
		recordings_ms BIGINT,
		transcripts_ms BIGINT,
		legal_hold INTEGER NOT NULL DEFAULT 0,
		recordings_expired_at BIGINT NOT NULL DEFAULT 0,
		transcripts_expired_at BIGINT NOT NULL DEFAULT 0,
		updated_at BIGINT NOT NULL);`,

	// The host's glossary: words the speech backend is told to expect,
	// one a line.
	`ALTER TABLE meetings ADD COLUMN glossary TEXT NOT NULL DEFAULT '';`,

	// An import's progress: how many of its files are stored as tracks.
	`CREATE TABLE imports (
		meeting_id TEXT PRIMARY KEY REFERENCES meetings(id),
		files INTEGER NOT NULL,
		files_done INTEGER NOT NULL DEFAULT 0,
		updated_at BIGINT NOT NULL);`,

	// A meeting recorded from a LiveKit room: the room Greffier joins, and
	// joins again after a restart while the meeting is live.
	`CREATE TABLE livekit_rooms (
		meeting_id TEXT PRIMARY KEY REFERENCES meetings(id),
		room TEXT NOT NULL,
		created_at BIGINT NOT NULL);`,
	// Nodes say what they serve and where, and a live meeting's media is
	// placed on one SFU node, so that several processes on one database
	// send a meeting's participants to one room.
	`ALTER TABLE nodes ADD COLUMN roles TEXT NOT NULL DEFAULT '';
	ALTER TABLE nodes ADD COLUMN url TEXT NOT NULL DEFAULT '';
	ALTER TABLE nodes ADD COLUMN media_addr TEXT NOT NULL DEFAULT '';
	ALTER TABLE nodes ADD COLUMN participants INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE meetings ADD COLUMN node TEXT;
	ALTER TABLE meetings ADD COLUMN node_placed_at BIGINT;
	ALTER TABLE meetings ADD COLUMN node_lost TEXT NOT NULL DEFAULT '';
	ALTER TABLE meetings ADD COLUMN node_lost_at BIGINT NOT NULL DEFAULT 0;`,
	// The host's recording and transcription switches and each
	// participant's consent, in the order they were set, each at its time
	// on the meeting clock (0 before the clock starts): what was recorded
	// when is read from them (recording_sql.go).
	`CREATE TABLE recording_controls (
		meeting_id TEXT NOT NULL REFERENCES meetings(id),
		seq BIGINT NOT NULL,
		kind TEXT NOT NULL,
		identity TEXT NOT NULL DEFAULT '',
		enabled INTEGER NOT NULL,
		at_ms BIGINT NOT NULL,
		PRIMARY KEY (meeting_id, seq));`,
	// Each meeting's data key, wrapped by the operator's key-encryption
	// key (named by kek_id); the key in clear is never stored. Deleting
	// the row is what makes the meeting's sealed objects unreadable.
	`CREATE TABLE meeting_keys (
		meeting_id TEXT PRIMARY KEY,
		kek_id TEXT NOT NULL,
		wrapped TEXT NOT NULL,
		created_at BIGINT NOT NULL);`,
	// Whether a meeting keeps its audio; 0: only its words are kept
	// (live transcription, the audio discarded once transcribed).
	`ALTER TABLE meetings ADD COLUMN keep_audio INTEGER NOT NULL DEFAULT 1;`,
	// The segments still to be transcribed, which the pipeline reads after
	// every change to a meeting's units (PendingOutlines).
	`CREATE INDEX speech_pending ON speech_segments (meeting_id, start_ms) WHERE status = 'pending';`,
}

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS greffier_migrations (
		version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("create migrations table: %w", err)
	}
	for i, m := range migrations {
		version := i + 1
		err := s.InTx(ctx, func(_ *sql.Tx, q Queries) error {
			var n int
			if err := q.q.QueryRowContext(ctx, `SELECT count(*) FROM greffier_migrations WHERE version = $1`, version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := q.q.ExecContext(ctx, m); err != nil {
				return err
			}
			_, err := q.q.ExecContext(ctx, `INSERT INTO greffier_migrations (version, applied_at) VALUES ($1, $2)`, version, q.now().UnixMilli())
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", version, err)
		}
	}
	return nil
}
