package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

const segmentColumns = `meeting_id, track_id, identity, start_ms, end_ms, audio_start_ms, audio_key, status, text,
	words, language, failure, attempts, waiting_since, wait_backend, last_error`

func scanSegment(row interface{ Scan(...any) error }) (SpeechSegment, error) {
	var (
		s       SpeechSegment
		words   string
		waiting int64
	)
	err := row.Scan(&s.MeetingID, &s.TrackID, &s.Identity, &s.StartMS, &s.EndMS, &s.AudioStartMS, &s.AudioKey,
		&s.Status, &s.Text, &words, &s.Language, &s.Failure, &s.Attempts, &waiting, &s.WaitBackend, &s.LastError)
	if err != nil {
		return SpeechSegment{}, err
	}
	s.WaitingSince = fromMS(sql.NullInt64{Int64: waiting, Valid: true})
	if err := json.Unmarshal([]byte(words), &s.Words); err != nil {
		return SpeechSegment{}, fmt.Errorf("words of segment %s@%d: %w", s.TrackID, s.StartMS, err)
	}
	return s, nil
}

// UpsertSpeechSegment records a speech segment found on a track. Running
// it again for the same (track, start) updates its bounds and audio but
// keeps any transcript already made.
func (q Queries) UpsertSpeechSegment(ctx context.Context, s SpeechSegment) error {
	_, err := q.q.ExecContext(ctx, `INSERT INTO speech_segments (track_id, start_ms, meeting_id, identity, end_ms,
		audio_start_ms, audio_key, status, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (track_id, start_ms) DO UPDATE SET end_ms = excluded.end_ms,
		audio_start_ms = excluded.audio_start_ms, audio_key = excluded.audio_key`,
		s.TrackID, s.StartMS, s.MeetingID, s.Identity, s.EndMS, s.AudioStartMS, s.AudioKey, SegmentPending, toMS(q.now()))
	if err != nil {
		return fmt.Errorf("record speech segment %s@%d: %w", s.TrackID, s.StartMS, err)
	}
	return nil
}

// DeleteSpeechSegment forgets one speech segment, its transcript
// included: speech detection over the whole recording found none there.
func (q Queries) DeleteSpeechSegment(ctx context.Context, trackID string, startMS int64) error {
	if _, err := q.q.ExecContext(ctx, `DELETE FROM speech_segments WHERE track_id = $1 AND start_ms = $2`, trackID, startMS); err != nil {
		return fmt.Errorf("delete speech segment %s@%d: %w", trackID, startMS, err)
	}
	return nil
}

// SpeechSegment returns one speech segment by its natural key.
func (q Queries) SpeechSegment(ctx context.Context, trackID string, startMS int64) (SpeechSegment, error) {
	s, err := scanSegment(q.q.QueryRowContext(ctx, `SELECT `+segmentColumns+` FROM speech_segments
		WHERE track_id = $1 AND start_ms = $2`, trackID, startMS))
	if errors.Is(err, sql.ErrNoRows) {
		return SpeechSegment{}, fmt.Errorf("speech segment %s@%d: %w", trackID, startMS, ErrNotFound)
	}
	if err != nil {
		return SpeechSegment{}, fmt.Errorf("read speech segment %s@%d: %w", trackID, startMS, err)
	}
	return s, nil
}

// SpeechSegments lists a meeting's speech segments in meeting-clock order.
func (q Queries) SpeechSegments(ctx context.Context, meetingID string) ([]SpeechSegment, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT `+segmentColumns+` FROM speech_segments WHERE meeting_id = $1
		ORDER BY start_ms, track_id`, meetingID)
	if err != nil {
		return nil, fmt.Errorf("list speech segments: %w", err)
	}
	defer rows.Close()
	var out []SpeechSegment
	for rows.Next() {
		s, err := scanSegment(rows)
		if err != nil {
			return nil, fmt.Errorf("list speech segments: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// SaveTranscript stores a segment's transcript and marks it transcribed.
func (q Queries) SaveTranscript(ctx context.Context, trackID string, startMS int64, text, language string, words []Word) error {
	if words == nil {
		words = []Word{}
	}
	b, err := json.Marshal(words)
	if err != nil {
		return fmt.Errorf("encode words: %w", err)
	}
	// The words are indexed for search in this statement, so they are
	// found as soon as they are stored, in the meeting's language.
	var meetingLang string
	err = q.q.QueryRowContext(ctx, `SELECT m.language FROM speech_segments s JOIN meetings m ON m.id = s.meeting_id
		WHERE s.track_id = $1 AND s.start_ms = $2`, trackID, startMS).Scan(&meetingLang)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("save transcript of %s@%d: %w", trackID, startMS, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("save transcript of %s@%d: %w", trackID, startMS, err)
	}
	lang := indexLanguage(meetingLang, language)
	res, err := q.q.ExecContext(ctx, `UPDATE speech_segments SET status = $1, text = $2, words = $3, language = $4,
		failure = '', attempts = attempts + 1, updated_at = $5, search_text = $8, search_lang = $9, waiting_since = 0,
		wait_backend = '', last_error = '' WHERE track_id = $6 AND start_ms = $7`,
		SegmentTranscribed, text, string(b), language, toMS(q.now()), trackID, startMS, indexed(text, lang), lang)
	if err != nil {
		return fmt.Errorf("save transcript of %s@%d: %w", trackID, startMS, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("save transcript of %s@%d: %w", trackID, startMS, ErrNotFound)
	}
	return nil
}

// FailSegment records that a segment could not be transcribed, and why.
func (q Queries) FailSegment(ctx context.Context, trackID string, startMS int64, reason string) error {
	_, err := q.q.ExecContext(ctx, `UPDATE speech_segments SET status = $1, failure = $2, attempts = attempts + 1,
		updated_at = $3, waiting_since = 0, wait_backend = '', last_error = '' WHERE track_id = $4 AND start_ms = $5`,
		SegmentFailed, reason, toMS(q.now()), trackID, startMS)
	if err != nil {
		return fmt.Errorf("record failure of %s@%d: %w", trackID, startMS, err)
	}
	return nil
}

// SegmentWaits records that a pending segment waits for backend, which
// last failed with lastError: since now, unless it already waited.
func (q Queries) SegmentWaits(ctx context.Context, trackID string, startMS int64, backend, lastError string) error {
	_, err := q.q.ExecContext(ctx, `UPDATE speech_segments SET waiting_since = CASE WHEN waiting_since = 0 THEN $1
		ELSE waiting_since END, wait_backend = $2, last_error = $3, updated_at = $1
		WHERE track_id = $4 AND start_ms = $5 AND status = $6`,
		toMS(q.now()), backend, lastError, trackID, startMS, SegmentPending)
	if err != nil {
		return fmt.Errorf("record wait of %s@%d: %w", trackID, startMS, err)
	}
	return nil
}

// SegmentOutlines lists a meeting's speech segments in meeting-clock order
// with their keys, times, status and text but not their words: what the
// pipeline reads to prompt a segment with its speaker's previous words, at
// no cost of decoding every word of the meeting each time.
func (q Queries) SegmentOutlines(ctx context.Context, meetingID string) ([]SpeechSegment, error) {
	return q.outlines(ctx, `SELECT meeting_id, track_id, identity, start_ms, end_ms, audio_start_ms, status, text
		FROM speech_segments WHERE meeting_id = $1 ORDER BY start_ms, track_id`, meetingID)
}

// PendingOutlines lists, as SegmentOutlines does, only the meeting's
// segments still to be transcribed: all that deciding whose turn has come
// needs, read after every change to the meeting's units. Through its
// partial index it costs what is pending, a few segments, not what the
// meeting has said so far, which grows for hours.
func (q Queries) PendingOutlines(ctx context.Context, meetingID string) ([]SpeechSegment, error) {
	return q.outlines(ctx, `SELECT meeting_id, track_id, identity, start_ms, end_ms, audio_start_ms, status, text
		FROM speech_segments WHERE meeting_id = $1 AND status = 'pending' ORDER BY start_ms, track_id`, meetingID)
}

func (q Queries) outlines(ctx context.Context, query, meetingID string) ([]SpeechSegment, error) {
	rows, err := q.q.QueryContext(ctx, query, meetingID)
	if err != nil {
		return nil, fmt.Errorf("list speech segments: %w", err)
	}
	defer rows.Close()
	var out []SpeechSegment
	for rows.Next() {
		var s SpeechSegment
		if err := rows.Scan(&s.MeetingID, &s.TrackID, &s.Identity, &s.StartMS, &s.EndMS, &s.AudioStartMS, &s.Status, &s.Text); err != nil {
			return nil, fmt.Errorf("list speech segments: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
