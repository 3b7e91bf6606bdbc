package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

const trackColumns = `id, meeting_id, identity, ssrc, state, start_ms, duration_ms, blob_key, size, sha256,
	gap_ms, failure, speech_detected, detect_failure, created_at, voices_state, voices, voices_failure`

func scanTrack(row interface{ Scan(...any) error }) (Track, error) {
	var (
		t        Track
		ssrc     int64
		detected int64
		created  int64
		voices   string
	)
	err := row.Scan(&t.ID, &t.MeetingID, &t.Identity, &ssrc, &t.State, &t.StartMS, &t.DurationMS, &t.BlobKey,
		&t.Size, &t.SHA256, &t.GapMS, &t.Failure, &detected, &t.DetectFailure, &created, &t.VoicesState, &voices, &t.VoicesFailure)
	if err != nil {
		return Track{}, err
	}
	if voices != "" {
		if err := json.Unmarshal([]byte(voices), &t.Voices); err != nil {
			return Track{}, fmt.Errorf("voices of track %s: %w", t.ID, err)
		}
	}
	t.SSRC = uint32(ssrc)
	t.SpeechDetected = detected != 0
	t.CreatedAt = time.UnixMilli(created).UTC()
	return t, nil
}

// CreateTrack records a track segment that has started recording.
func (q Queries) CreateTrack(ctx context.Context, t Track) error {
	if t.ID == "" || t.MeetingID == "" || t.Identity == "" {
		return errors.New("create track: id, meeting and identity are required")
	}
	// A participant known to share a microphone gets diarized.
	_, err := q.q.ExecContext(ctx, `INSERT INTO tracks (id, meeting_id, identity, ssrc, state, start_ms, duration_ms,
		blob_key, created_at, voices_state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
		CASE WHEN EXISTS (SELECT 1 FROM participant_settings WHERE meeting_id = $2 AND identity = $3 AND shared_mic = 1)
		THEN $10 ELSE '' END)
		ON CONFLICT (id) DO NOTHING`,
		t.ID, t.MeetingID, t.Identity, int64(t.SSRC), TrackRecording, t.StartMS, t.DurationMS, t.BlobKey, toMS(q.now()),
		VoicesPending)
	if err != nil {
		return fmt.Errorf("create track %s: %w", t.ID, err)
	}
	return nil
}

// FinishTrack records how a track segment's recording ended: stored,
// recovered or failed, with its object's size and checksum, and replaces
// the track's gaps with t.Gaps (the recorder knows them all by then). Run
// it in a transaction (InTx) for the row and its gaps to change together.
func (q Queries) FinishTrack(ctx context.Context, t Track) error {
	switch t.State {
	case TrackStored, TrackRecovered, TrackFailed:
	default:
		return fmt.Errorf("finish track %s: state %q is not final", t.ID, t.State)
	}
	res, err := q.q.ExecContext(ctx, `UPDATE tracks SET state = $1, start_ms = $2, duration_ms = $3, blob_key = $4,
		size = $5, sha256 = $6, gap_ms = $7, failure = $8 WHERE id = $9`,
		t.State, t.StartMS, t.DurationMS, t.BlobKey, t.Size, t.SHA256, t.GapMS, t.Failure, t.ID)
	if err != nil {
		return fmt.Errorf("finish track %s: %w", t.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("finish track %s: %w", t.ID, ErrNotFound)
	}
	if _, err := q.q.ExecContext(ctx, `DELETE FROM track_gaps WHERE track_id = $1`, t.ID); err != nil {
		return fmt.Errorf("finish track %s: clear gaps: %w", t.ID, err)
	}
	for _, g := range t.Gaps {
		g.TrackID, g.MeetingID, g.Identity = t.ID, t.MeetingID, t.Identity
		if err := q.RecordGap(ctx, g); err != nil {
			return fmt.Errorf("finish track %s: %w", t.ID, err)
		}
	}
	return nil
}

// FailTrack marks a track failed with a reason, keeping what its row
// already says (start, duration): for a track whose recorder lost its own
// record of it. ErrNotFound if the track was never created.
func (q Queries) FailTrack(ctx context.Context, trackID, failure string) error {
	res, err := q.q.ExecContext(ctx, `UPDATE tracks SET state = $1, failure = $2 WHERE id = $3`, TrackFailed, failure, trackID)
	if err != nil {
		return fmt.Errorf("fail track %s: %w", trackID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("fail track %s: %w", trackID, ErrNotFound)
	}
	return nil
}

// RecordGap records (or, for the same track and start, updates) a stretch
// of a track that was not recorded.
func (q Queries) RecordGap(ctx context.Context, g TrackGap) error {
	if g.TrackID == "" || g.MeetingID == "" || g.Identity == "" || g.Reason == "" {
		return errors.New("record gap: track, meeting, identity and reason are required")
	}
	if g.EndMS < g.StartMS {
		return fmt.Errorf("record gap of %s: ends at %d ms before it starts at %d ms", g.TrackID, g.EndMS, g.StartMS)
	}
	_, err := q.q.ExecContext(ctx, `INSERT INTO track_gaps (track_id, start_ms, meeting_id, identity, end_ms, reason)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (track_id, start_ms) DO UPDATE SET end_ms = excluded.end_ms, reason = excluded.reason`,
		g.TrackID, g.StartMS, g.MeetingID, g.Identity, g.EndMS, g.Reason)
	if err != nil {
		return fmt.Errorf("record gap of %s at %d ms: %w", g.TrackID, g.StartMS, err)
	}
	return nil
}

// Gaps lists a meeting's recording gaps in meeting-clock order.
func (q Queries) Gaps(ctx context.Context, meetingID string) ([]TrackGap, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT track_id, meeting_id, identity, start_ms, end_ms, reason FROM track_gaps
		WHERE meeting_id = $1 ORDER BY start_ms, track_id`, meetingID)
	if err != nil {
		return nil, fmt.Errorf("list gaps: %w", err)
	}
	defer rows.Close()
	var out []TrackGap
	for rows.Next() {
		var g TrackGap
		if err := rows.Scan(&g.TrackID, &g.MeetingID, &g.Identity, &g.StartMS, &g.EndMS, &g.Reason); err != nil {
			return nil, fmt.Errorf("list gaps: %w", err)
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// Track returns one track segment.
func (q Queries) Track(ctx context.Context, id string) (Track, error) {
	t, err := scanTrack(q.q.QueryRowContext(ctx, `SELECT `+trackColumns+` FROM tracks WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Track{}, fmt.Errorf("track %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Track{}, fmt.Errorf("read track %s: %w", id, err)
	}
	return t, nil
}

// Tracks lists a meeting's track segments in meeting-clock order.
func (q Queries) Tracks(ctx context.Context, meetingID string) ([]Track, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT `+trackColumns+` FROM tracks WHERE meeting_id = $1
		ORDER BY start_ms, id`, meetingID)
	if err != nil {
		return nil, fmt.Errorf("list tracks: %w", err)
	}
	defer rows.Close()
	var out []Track
	for rows.Next() {
		t, err := scanTrack(rows)
		if err != nil {
			return nil, fmt.Errorf("list tracks: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// TracksInState lists every track segment in state, across meetings (for
// start-up recovery).
func (q Queries) TracksInState(ctx context.Context, state TrackState) ([]Track, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT `+trackColumns+` FROM tracks WHERE state = $1 ORDER BY created_at, id`, state)
	if err != nil {
		return nil, fmt.Errorf("list %s tracks: %w", state, err)
	}
	defer rows.Close()
	var out []Track
	for rows.Next() {
		t, err := scanTrack(rows)
		if err != nil {
			return nil, fmt.Errorf("list %s tracks: %w", state, err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// MarkSpeechDetected records that a track has been cut into speech
// segments, or, with a non-empty failure, that it could not be.
func (q Queries) MarkSpeechDetected(ctx context.Context, trackID, failure string) error {
	_, err := q.q.ExecContext(ctx, `UPDATE tracks SET speech_detected = 1, detect_failure = $1 WHERE id = $2`, failure, trackID)
	if err != nil {
		return fmt.Errorf("mark speech detected on %s: %w", trackID, err)
	}
	return nil
}

// SetVoices records a track's diarization: who spoke when, or why not.
func (q Queries) SetVoices(ctx context.Context, trackID string, turns []VoiceTurn, failure string) error {
	state, body := VoicesDone, ""
	if failure != "" {
		state = VoicesFailed
	} else {
		if turns == nil {
			turns = []VoiceTurn{}
		}
		b, err := json.Marshal(turns)
		if err != nil {
			return fmt.Errorf("encode voices: %w", err)
		}
		body = string(b)
	}
	_, err := q.q.ExecContext(ctx, `UPDATE tracks SET voices_state = $1, voices = $2, voices_failure = $3 WHERE id = $4`,
		state, body, failure, trackID)
	if err != nil {
		return fmt.Errorf("record voices of %s: %w", trackID, err)
	}
	return nil
}

// SetSharedMic says whether a participant shares their microphone with
// others (a room), so their tracks get diarized.
func (q Queries) SetSharedMic(ctx context.Context, meetingID, identity string, shared bool) error {
	v := 0
	if shared {
		v = 1
	}
	_, err := q.q.ExecContext(ctx, `INSERT INTO participant_settings (meeting_id, identity, shared_mic) VALUES ($1, $2, $3)
		ON CONFLICT (meeting_id, identity) DO UPDATE SET shared_mic = excluded.shared_mic`, meetingID, identity, v)
	if err != nil {
		return fmt.Errorf("set shared microphone of %s: %w", identity, err)
	}
	return nil
}
