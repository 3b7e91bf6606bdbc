package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// MinutesVersion is one assembled version of a meeting's minutes. Body is
// the JSON document; Digest identifies its content, so assembling the same
// pieces twice yields the same version rather than a new one.
type MinutesVersion struct {
	MeetingID string
	Version   int
	Digest    string
	Body      []byte
	CreatedAt time.Time
}

// SaveMinutes stores body as the meeting's next minutes version, unless the
// latest version already has this digest, in which case that version is
// returned with created false.
func (q Queries) SaveMinutes(ctx context.Context, meetingID, digest string, body []byte) (v MinutesVersion, created bool, err error) {
	latest, err := q.LatestMinutes(ctx, meetingID)
	switch {
	case err == nil && latest.Digest == digest:
		return latest, false, nil
	case err != nil && !errors.Is(err, ErrNotFound):
		return MinutesVersion{}, false, err
	}
	v = MinutesVersion{MeetingID: meetingID, Version: latest.Version + 1, Digest: digest, Body: body,
		CreatedAt: q.now().UTC().Truncate(time.Millisecond)}
	_, err = q.q.ExecContext(ctx, `INSERT INTO minutes (meeting_id, version, digest, body, created_at)
		VALUES ($1, $2, $3, $4, $5)`, v.MeetingID, v.Version, v.Digest, string(v.Body), toMS(v.CreatedAt))
	if err != nil {
		return MinutesVersion{}, false, fmt.Errorf("save minutes v%d of %s: %w", v.Version, meetingID, err)
	}
	return v, true, nil
}

// LatestMinutes returns the newest minutes version, or ErrNotFound.
func (q Queries) LatestMinutes(ctx context.Context, meetingID string) (MinutesVersion, error) {
	return q.minutes(ctx, `SELECT meeting_id, version, digest, body, created_at FROM minutes WHERE meeting_id = $1
		ORDER BY version DESC LIMIT 1`, meetingID)
}

// Minutes returns one minutes version, or ErrNotFound.
func (q Queries) Minutes(ctx context.Context, meetingID string, version int) (MinutesVersion, error) {
	return q.minutes(ctx, `SELECT meeting_id, version, digest, body, created_at FROM minutes WHERE meeting_id = $1
		AND version = $2`, meetingID, version)
}

func (q Queries) minutes(ctx context.Context, query string, args ...any) (MinutesVersion, error) {
	var (
		v       MinutesVersion
		body    string
		created int64
	)
	err := q.q.QueryRowContext(ctx, query, args...).Scan(&v.MeetingID, &v.Version, &v.Digest, &body, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return MinutesVersion{}, fmt.Errorf("minutes of %s: %w", args[0], ErrNotFound)
	}
	if err != nil {
		return MinutesVersion{}, fmt.Errorf("read minutes of %s: %w", args[0], err)
	}
	v.Body = []byte(body)
	v.CreatedAt = time.UnixMilli(created).UTC()
	return v, nil
}

// Progress counts where a meeting's pipeline stands.
type Progress struct {
	Tracks, TracksRecording, TracksFailed, TracksDetected int
	// TracksDiarizing counts stored shared-microphone tracks whose voices
	// are not told apart yet.
	TracksDiarizing int
	// mediaLost: the meeting's media node was lost and what it recorded
	// is neither recovered nor declared lost yet, so nothing is final.
	mediaLost bool
	// tracksAwaited counts tracks still recording whose speech the live
	// path has not found whole, or whose voices are still to be told
	// apart: the minutes wait for their upload. A track whose speech the
	// live path found need not: its upload goes on beside the minutes.
	tracksAwaited int

	Segments, SegmentsTranscribed, SegmentsFailed int
	MinutesVersion                                int
	// Failures are the reasons of failed tracks and segments, worst first.
	Failures []Failure
	// Waiting are the pending segments waiting for a backend, in
	// meeting-clock order.
	Waiting []Wait
}

// Wait is one unit of the pipeline waiting for a backend that is down,
// rate-limiting or failing: the host sees on what, and since when.
type Wait struct {
	Stage     string    `json:"stage"` // "transcribe"
	TrackID   string    `json:"track_id"`
	Identity  string    `json:"identity"`
	StartMS   int64     `json:"start_ms"`
	EndMS     int64     `json:"end_ms"`
	Backend   string    `json:"backend"`
	Since     time.Time `json:"since"`
	LastError string    `json:"last_error"`
}

// Failure is one unit of the pipeline that failed, and why.
type Failure struct {
	Stage    string `json:"stage"` // "record", "detect_speech", "transcribe"
	TrackID  string `json:"track_id"`
	Identity string `json:"identity"`
	StartMS  int64  `json:"start_ms,omitempty"`
	EndMS    int64  `json:"end_ms,omitempty"`
	Reason   string `json:"reason"`
}

// Done reports whether every track and segment has reached a final state.
func (p Progress) Done() bool {
	return p.tracksAwaited == 0 && !p.mediaLost && p.TracksDiarizing == 0 && p.TracksDetected+p.TracksFailed >= p.Tracks &&
		p.SegmentsTranscribed+p.SegmentsFailed == p.Segments
}

// Progress reads the pipeline's state for one meeting.
func (q Queries) Progress(ctx context.Context, meetingID string) (Progress, error) {
	var p Progress
	tracks, err := q.Tracks(ctx, meetingID)
	if err != nil {
		return p, err
	}
	p.Tracks = len(tracks)
	for _, t := range tracks {
		stored := t.State == TrackStored || t.State == TrackRecovered
		switch {
		case stored && t.VoicesState == VoicesPending:
			p.TracksDiarizing++
		case t.VoicesState == VoicesFailed:
			p.Failures = append(p.Failures, Failure{Stage: "diarize", TrackID: t.ID, Identity: t.Identity,
				StartMS: t.StartMS, EndMS: t.StartMS + t.DurationMS, Reason: t.VoicesFailure})
		}
		if t.State == TrackRecording {
			p.TracksRecording++
			if !t.SpeechDetected || t.VoicesState == VoicesPending {
				p.tracksAwaited++
			}
		}
		switch {
		case t.State == TrackRecording && !t.SpeechDetected:
		case t.State == TrackFailed:
			p.TracksFailed++
			p.Failures = append(p.Failures, Failure{Stage: "record", TrackID: t.ID, Identity: t.Identity,
				StartMS: t.StartMS, EndMS: t.StartMS + t.DurationMS, Reason: t.Failure})
		case t.DetectFailure != "":
			p.TracksFailed++
			p.Failures = append(p.Failures, Failure{Stage: "detect_speech", TrackID: t.ID, Identity: t.Identity,
				StartMS: t.StartMS, EndMS: t.StartMS + t.DurationMS, Reason: t.DetectFailure})
		case t.SpeechDetected:
			p.TracksDetected++
		}
	}
	lost, err := q.MediaLost(ctx, meetingID)
	if err != nil {
		return p, err
	}
	if lost.Node != "" {
		p.mediaLost = true
		p.Failures = append(p.Failures, Failure{Stage: "media", Reason: fmt.Sprintf(
			"media node %s lost at %s: its recordings of this meeting are recovered from their checkpoints "+
				"unless it comes back first", lost.Node, lost.LastBeat.Format(time.RFC3339))})
	}
	// Counted in SQL: this runs each time a stage finishes, and a long
	// meeting has thousands of segments.
	rows, err := q.q.QueryContext(ctx, `SELECT status, COUNT(*) FROM speech_segments WHERE meeting_id = $1
		GROUP BY status`, meetingID)
	if err != nil {
		return p, fmt.Errorf("count speech segments: %w", err)
	}
	for rows.Next() {
		var (
			status SegmentStatus
			n      int
		)
		if err := rows.Scan(&status, &n); err != nil {
			rows.Close()
			return p, fmt.Errorf("count speech segments: %w", err)
		}
		p.Segments += n
		switch status {
		case SegmentTranscribed:
			p.SegmentsTranscribed = n
		case SegmentFailed:
			p.SegmentsFailed = n
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return p, fmt.Errorf("count speech segments: %w", err)
	}
	if p.SegmentsFailed > 0 {
		failed, err := q.q.QueryContext(ctx, `SELECT track_id, identity, start_ms, end_ms, failure FROM speech_segments
			WHERE meeting_id = $1 AND status = $2 ORDER BY start_ms, track_id`, meetingID, SegmentFailed)
		if err != nil {
			return p, fmt.Errorf("list failed segments: %w", err)
		}
		for failed.Next() {
			f := Failure{Stage: "transcribe"}
			if err := failed.Scan(&f.TrackID, &f.Identity, &f.StartMS, &f.EndMS, &f.Reason); err != nil {
				failed.Close()
				return p, fmt.Errorf("list failed segments: %w", err)
			}
			p.Failures = append(p.Failures, f)
		}
		failed.Close()
		if err := failed.Err(); err != nil {
			return p, fmt.Errorf("list failed segments: %w", err)
		}
	}
	gaps, err := q.Gaps(ctx, meetingID)
	if err != nil {
		return p, err
	}
	for _, g := range gaps {
		p.Failures = append(p.Failures, Failure{Stage: "record", TrackID: g.TrackID, Identity: g.Identity,
			StartMS: g.StartMS, EndMS: g.EndMS, Reason: g.Reason})
	}
	if p.Waiting, err = q.waiting(ctx, meetingID); err != nil {
		return p, err
	}
	latest, err := q.LatestMinutes(ctx, meetingID)
	switch {
	case err == nil:
		p.MinutesVersion = latest.Version
	case !errors.Is(err, ErrNotFound):
		return p, err
	}
	return p, nil
}

// waiting lists a meeting's pending segments that wait for a backend.
func (q Queries) waiting(ctx context.Context, meetingID string) ([]Wait, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT track_id, identity, start_ms, end_ms, wait_backend, waiting_since,
		last_error FROM speech_segments WHERE meeting_id = $1 AND status = $2 AND waiting_since > 0
		ORDER BY start_ms, track_id`, meetingID, SegmentPending)
	if err != nil {
		return nil, fmt.Errorf("list waiting segments: %w", err)
	}
	defer rows.Close()
	var out []Wait
	for rows.Next() {
		w := Wait{Stage: "transcribe"}
		var since int64
		if err := rows.Scan(&w.TrackID, &w.Identity, &w.StartMS, &w.EndMS, &w.Backend, &since, &w.LastError); err != nil {
			return nil, fmt.Errorf("list waiting segments: %w", err)
		}
		w.Since = time.UnixMilli(since).UTC()
		out = append(out, w)
	}
	return out, rows.Err()
}

// LatestMinutesVersion is the number of a meeting's latest minutes, 0
// when it has none, without reading them.
func (q Queries) LatestMinutesVersion(ctx context.Context, meetingID string) (int, error) {
	var v int
	if err := q.q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM minutes WHERE meeting_id = $1`,
		meetingID).Scan(&v); err != nil {
		return 0, fmt.Errorf("latest minutes version of %s: %w", meetingID, err)
	}
	return v, nil
}
