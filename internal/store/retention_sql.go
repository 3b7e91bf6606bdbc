package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrLegalHold: the meeting is under legal hold, so nothing of it may be
// deleted (neither by a request nor by its retention policy).
var ErrLegalHold = errors.New("meeting is under legal hold")

// ErrExpired: what was asked for was deleted by the meeting's retention
// policy.
var ErrExpired = errors.New("deleted by the retention policy")

// Retention is a meeting's retention policy and what it has expired so
// far. A nil duration takes the configured default; a zero one keeps the
// data forever.
type Retention struct {
	MeetingID string
	// Recordings is how long after the meeting ended its audio is kept:
	// tracks, cut speech, archives, mix and speakers' files.
	Recordings *time.Duration
	// Transcripts is how long after the meeting ended its transcripts are
	// kept: transcript pieces (and their search text) and every minutes
	// version, from which every rendering is made.
	Transcripts *time.Duration
	// LegalHold blocks every deletion, by request or by expiry.
	LegalHold bool
	// RecordingsExpiredAt and TranscriptsExpiredAt are when each was
	// deleted by expiry (zero: not yet).
	RecordingsExpiredAt, TranscriptsExpiredAt time.Time
}

// RetentionChange changes the fields that are not nil.
type RetentionChange struct {
	Recordings, Transcripts *time.Duration
	LegalHold               *bool
}

func nullDuration(d *time.Duration) sql.NullInt64 {
	if d == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: d.Milliseconds(), Valid: true}
}

func durationOf(ms sql.NullInt64) *time.Duration {
	if !ms.Valid {
		return nil
	}
	d := time.Duration(ms.Int64) * time.Millisecond
	return &d
}

// Retention returns a meeting's policy; a meeting that never had one set
// gets the defaults (nil durations, no hold). It does not check that the
// meeting exists.
func (q Queries) Retention(ctx context.Context, meetingID string) (Retention, error) {
	r := Retention{MeetingID: meetingID}
	var rec, tr sql.NullInt64
	var hold, recExp, trExp int64
	err := q.q.QueryRowContext(ctx, `SELECT recordings_ms, transcripts_ms, legal_hold, recordings_expired_at, transcripts_expired_at
		FROM retention WHERE meeting_id = $1`, meetingID).Scan(&rec, &tr, &hold, &recExp, &trExp)
	if errors.Is(err, sql.ErrNoRows) {
		return r, nil
	}
	if err != nil {
		return Retention{}, fmt.Errorf("read retention of %s: %w", meetingID, err)
	}
	r.Recordings, r.Transcripts, r.LegalHold = durationOf(rec), durationOf(tr), hold != 0
	if recExp != 0 {
		r.RecordingsExpiredAt = time.UnixMilli(recExp).UTC()
	}
	if trExp != 0 {
		r.TranscriptsExpiredAt = time.UnixMilli(trExp).UTC()
	}
	return r, nil
}

// SetRetention applies c to a meeting's policy and returns the result.
func (q Queries) SetRetention(ctx context.Context, meetingID string, c RetentionChange) (Retention, error) {
	if err := q.LockMeeting(ctx, meetingID); err != nil {
		return Retention{}, err
	}
	r, err := q.Retention(ctx, meetingID)
	if err != nil {
		return Retention{}, err
	}
	if c.Recordings != nil {
		r.Recordings = c.Recordings
	}
	if c.Transcripts != nil {
		r.Transcripts = c.Transcripts
	}
	if c.LegalHold != nil {
		r.LegalHold = *c.LegalHold
	}
	hold := 0
	if r.LegalHold {
		hold = 1
	}
	if _, err := q.q.ExecContext(ctx, `INSERT INTO retention (meeting_id, recordings_ms, transcripts_ms, legal_hold, updated_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (meeting_id) DO UPDATE SET recordings_ms = excluded.recordings_ms,
			transcripts_ms = excluded.transcripts_ms, legal_hold = excluded.legal_hold, updated_at = excluded.updated_at`,
		meetingID, nullDuration(r.Recordings), nullDuration(r.Transcripts), hold, toMS(q.now())); err != nil {
		return Retention{}, fmt.Errorf("set retention of %s: %w", meetingID, err)
	}
	return r, nil
}

// Expiry is a meeting with data past its retention.
type Expiry struct {
	MeetingID               string
	Recordings, Transcripts bool
}

// ExpiryDue lists up to limit meetings, longest ended first, whose
// recordings or transcripts are past their retention at now (defaults
// apply where the meeting set none) and not yet deleted. Meetings under
// legal hold are never listed, nor meetings whose pipeline has not
// finished (their files are still being read).
func (q Queries) ExpiryDue(ctx context.Context, now time.Time, defRecordings, defTranscripts time.Duration, limit int) ([]Expiry, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT id, rec_due, tr_due FROM (
		SELECT m.id, m.ended_at,
			CASE WHEN COALESCE(r.recordings_ms, $1) > 0 AND COALESCE(r.recordings_expired_at, 0) = 0
				AND m.ended_at + COALESCE(r.recordings_ms, $1) <= $3 THEN 1 ELSE 0 END AS rec_due,
			CASE WHEN COALESCE(r.transcripts_ms, $2) > 0 AND COALESCE(r.transcripts_expired_at, 0) = 0
				AND m.ended_at + COALESCE(r.transcripts_ms, $2) <= $3 THEN 1 ELSE 0 END AS tr_due
		FROM meetings m LEFT JOIN retention r ON r.meeting_id = m.id
		WHERE m.state IN ($4, $5, $6) AND m.ended_at IS NOT NULL AND COALESCE(r.legal_hold, 0) = 0) due
		WHERE rec_due = 1 OR tr_due = 1
		ORDER BY ended_at, id LIMIT $7`,
		defRecordings.Milliseconds(), defTranscripts.Milliseconds(), toMS(now),
		MeetingReady, MeetingIncomplete, MeetingFailed, limit)
	if err != nil {
		return nil, fmt.Errorf("list expired meetings: %w", err)
	}
	defer rows.Close()
	var out []Expiry
	for rows.Next() {
		var e Expiry
		var rec, tr int
		if err := rows.Scan(&e.MeetingID, &rec, &tr); err != nil {
			return nil, fmt.Errorf("list expired meetings: %w", err)
		}
		e.Recordings, e.Transcripts = rec == 1, tr == 1
		out = append(out, e)
	}
	return out, rows.Err()
}

// MarkRecordingsExpired records that a meeting's recordings were deleted
// by expiry (the caller deleted the objects first). Track rows stay: they
// say what was recorded, and downloads answer that it expired.
func (q Queries) MarkRecordingsExpired(ctx context.Context, meetingID string) error {
	return q.markExpired(ctx, meetingID, "recordings_expired_at")
}

// ExpireTranscripts deletes a meeting's transcripts: every transcript
// piece with its search text and every minutes version (the caller deletes
// the minutes' objects first), and records when. This is the one place
// transcript rows of a meeting are expired: an index fed from them must be
// cleaned here too.
func (q Queries) ExpireTranscripts(ctx context.Context, meetingID string) error {
	for _, table := range []string{"speech_segments", "minutes"} {
		if _, err := q.q.ExecContext(ctx, `DELETE FROM `+table+` WHERE meeting_id = $1`, meetingID); err != nil {
			return fmt.Errorf("expire transcripts of %s: %s: %w", meetingID, table, err)
		}
	}
	return q.markExpired(ctx, meetingID, "transcripts_expired_at")
}

// column is one of two constants, never user text.
func (q Queries) markExpired(ctx context.Context, meetingID, column string) error {
	now := toMS(q.now())
	if _, err := q.q.ExecContext(ctx, `INSERT INTO retention (meeting_id, `+column+`, updated_at) VALUES ($1, $2, $2)
		ON CONFLICT (meeting_id) DO UPDATE SET `+column+` = excluded.`+column+`, updated_at = excluded.updated_at`,
		meetingID, now); err != nil {
		return fmt.Errorf("mark %s of %s: %w", column, meetingID, err)
	}
	return nil
}

// NoteDeletionFailure records on a meeting being deleted why an attempt
// of its deletion failed, so that GET shows it beside the state while the
// deletion is retried. A meeting in another state, or gone, is left
// alone.
func (q Queries) NoteDeletionFailure(ctx context.Context, meetingID, failure string) error {
	if _, err := q.q.ExecContext(ctx, `UPDATE meetings SET failure = $1, updated_at = $2 WHERE id = $3 AND state = $4`,
		failure, toMS(q.now()), meetingID, MeetingDeleting); err != nil {
		return fmt.Errorf("note the deletion failure of %s: %w", meetingID, err)
	}
	return nil
}

// StartDeleting moves a meeting to deleting, unless it is under legal hold
// (ErrLegalHold) or live (a *TransitionError: it must be ended first), and
// starts a new run so that every job of the old ones does nothing. A
// meeting already deleting is returned as it is.
func (q Queries) StartDeleting(ctx context.Context, meetingID string) (Meeting, error) {
	if err := q.LockMeeting(ctx, meetingID); err != nil {
		return Meeting{}, err
	}
	m, err := q.Meeting(ctx, meetingID)
	if err != nil {
		return Meeting{}, err
	}
	if m.State == MeetingDeleting {
		return m, nil
	}
	r, err := q.Retention(ctx, meetingID)
	if err != nil {
		return Meeting{}, err
	}
	if r.LegalHold {
		return Meeting{}, fmt.Errorf("delete meeting %s: %w", meetingID, ErrLegalHold)
	}
	if _, err := q.Transition(ctx, meetingID, MeetingDeleting, ""); err != nil {
		return Meeting{}, err
	}
	if _, err := q.q.ExecContext(ctx, `UPDATE meetings SET run = run + 1 WHERE id = $1`, meetingID); err != nil {
		return Meeting{}, fmt.Errorf("delete meeting %s: %w", meetingID, err)
	}
	return q.Meeting(ctx, meetingID)
}

// meetingTables are the tables holding a meeting's rows, children before
// the tables they reference. A table added with a meeting_id column
// belongs here; the end-to-end deletion test scans the catalog for every
// such column and fails if a row of a deleted meeting is left anywhere.
var meetingTables = []string{
	"livekit_rooms", "recording_controls", "imports", "webhook_status", "damaged_blobs", "join_tokens", "track_gaps", "speech_segments", "minutes",
	"events", "participant_settings", "participants", "retention", "tracks", "meeting_keys", "meetings",
}

// DeleteMeeting deletes every row of a meeting, in every table, in one
// transaction when q is bound to one. The caller has deleted its objects
// first (the rows are what says a meeting exists, so they go last). It is
// the one place a meeting's rows are deleted: whatever else keeps rows
// about a meeting (an index) must be deleted here too. Deleting a meeting
// that is already gone is not an error.
func (q Queries) DeleteMeeting(ctx context.Context, meetingID string) error {
	for _, table := range meetingTables {
		col := "meeting_id"
		if table == "meetings" {
			col = "id"
		}
		if _, err := q.q.ExecContext(ctx, `DELETE FROM `+table+` WHERE `+col+` = $1`, meetingID); err != nil {
			return fmt.Errorf("delete meeting %s: %s: %w", meetingID, table, err)
		}
	}
	return nil
}
