package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

const meetingColumns = `id, title, state, language, failure, created_at, started_at, ended_at, run, captions, webhook_url, created_by, glossary, keep_audio`

func scanMeeting(row interface{ Scan(...any) error }) (Meeting, error) {
	var (
		m                 Meeting
		created, captions int64
		keepAudio         int64
		started, ended    sql.NullInt64
		glossary          string
	)
	if err := row.Scan(&m.ID, &m.Title, &m.State, &m.Language, &m.Failure, &created, &started, &ended, &m.Run, &captions, &m.WebhookURL, &m.CreatedBy, &glossary, &keepAudio); err != nil {
		return Meeting{}, err
	}
	if glossary != "" {
		m.Glossary = strings.Split(glossary, "\n")
	}
	m.CreatedAt = time.UnixMilli(created).UTC()
	m.StartedAt, m.EndedAt = fromMS(started), fromMS(ended)
	m.Captions = captions != 0
	m.KeepAudio = keepAudio != 0
	return m, nil
}

// CreateMeeting stores a new meeting in state created and returns it.
func (q Queries) CreateMeeting(ctx context.Context, title, language string) (Meeting, error) {
	return q.CreateMeetingBy(ctx, title, language, "")
}

// CreateMeetingBy is CreateMeeting, recording the API key that asked for it.
func (q Queries) CreateMeetingBy(ctx context.Context, title, language, keyID string) (Meeting, error) {
	now := q.now().UTC().Truncate(time.Millisecond)
	m := Meeting{ID: NewID("mtg"), Title: title, Language: language, State: MeetingCreated, CreatedAt: now, CreatedBy: keyID, KeepAudio: true}
	_, err := q.q.ExecContext(ctx, `INSERT INTO meetings (id, title, state, language, created_at, updated_at, created_by)
		VALUES ($1, $2, $3, $4, $5, $5, $6)`, m.ID, m.Title, m.State, m.Language, toMS(now), keyID)
	if err != nil {
		return Meeting{}, fmt.Errorf("create meeting: %w", err)
	}
	return m, nil
}

// Meeting returns one meeting, or ErrNotFound.
func (q Queries) Meeting(ctx context.Context, id string) (Meeting, error) {
	m, err := scanMeeting(q.q.QueryRowContext(ctx, `SELECT `+meetingColumns+` FROM meetings WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Meeting{}, fmt.Errorf("meeting %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Meeting{}, fmt.Errorf("read meeting %s: %w", id, err)
	}
	return m, nil
}

// Meetings lists meetings, newest first.
func (q Queries) Meetings(ctx context.Context, limit int) ([]Meeting, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT `+meetingColumns+` FROM meetings ORDER BY created_at DESC, id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list meetings: %w", err)
	}
	defer rows.Close()
	var out []Meeting
	for rows.Next() {
		m, err := scanMeeting(rows)
		if err != nil {
			return nil, fmt.Errorf("list meetings: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// MeetingFilter selects a page of meetings, newest first.
type MeetingFilter struct {
	State MeetingState // "" for any
	// CreatedAfter and CreatedBefore bound created_at (exclusive); zero
	// for no bound.
	CreatedAfter, CreatedBefore time.Time
	CreatedBy                   string // "" for anyone's
	// After is the last meeting of the previous page (zero: first page).
	After Position
	Limit int
}

// Position is a row's place in a list ordered by time then id: what a
// page's cursor holds.
type Position struct {
	At time.Time
	ID string
}

// MeetingsPage lists the meetings f selects, newest first.
func (q Queries) MeetingsPage(ctx context.Context, f MeetingFilter) ([]Meeting, error) {
	where, args := []string{"1 = 1"}, []any{}
	add := func(cond string, v ...any) {
		for _, x := range v {
			args = append(args, x)
			cond = strings.Replace(cond, "?", fmt.Sprintf("$%d", len(args)), 1)
		}
		where = append(where, cond)
	}
	if f.State != "" {
		add("state = ?", f.State)
	}
	if !f.CreatedAfter.IsZero() {
		add("created_at > ?", f.CreatedAfter.UnixMilli())
	}
	if !f.CreatedBefore.IsZero() {
		add("created_at < ?", f.CreatedBefore.UnixMilli())
	}
	if f.CreatedBy != "" {
		add("created_by = ?", f.CreatedBy)
	}
	if f.After.ID != "" {
		t := f.After.At.UnixMilli()
		add("(created_at < ? OR (created_at = ? AND id < ?))", t, t, f.After.ID)
	}
	args = append(args, f.Limit)
	rows, err := q.q.QueryContext(ctx, `SELECT `+meetingColumns+` FROM meetings WHERE `+strings.Join(where, " AND ")+
		fmt.Sprintf(` ORDER BY created_at DESC, id DESC LIMIT $%d`, len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("list meetings: %w", err)
	}
	defer rows.Close()
	var out []Meeting
	for rows.Next() {
		m, err := scanMeeting(rows)
		if err != nil {
			return nil, fmt.Errorf("list meetings: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// MeetingsInState lists the meetings in state, oldest first.
func (q Queries) MeetingsInState(ctx context.Context, state MeetingState) ([]Meeting, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT `+meetingColumns+` FROM meetings WHERE state = $1 ORDER BY created_at, id`, state)
	if err != nil {
		return nil, fmt.Errorf("list %s meetings: %w", state, err)
	}
	defer rows.Close()
	var out []Meeting
	for rows.Next() {
		m, err := scanMeeting(rows)
		if err != nil {
			return nil, fmt.Errorf("list %s meetings: %w", state, err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// Transition moves a meeting to state to, if its current state allows it,
// and returns the meeting as it now is. A forbidden move is a
// *TransitionError. The first move to ended stamps EndedAt (a re-run, which
// passes through ended again, keeps the meeting's real end); to failed
// records why.
func (q Queries) Transition(ctx context.Context, id string, to MeetingState, failure string) (Meeting, error) {
	m, err := q.Meeting(ctx, id)
	if err != nil {
		return Meeting{}, err
	}
	if !m.State.CanBecome(to) {
		return Meeting{}, &TransitionError{MeetingID: id, From: m.State, To: to}
	}
	now := q.now()
	ended := nullMS(m.EndedAt)
	if to == MeetingEnded && m.EndedAt.IsZero() {
		ended = nullMS(now)
	}
	res, err := q.q.ExecContext(ctx, `UPDATE meetings SET state = $1, ended_at = $2, failure = $3, updated_at = $4
		WHERE id = $5 AND state = $6`, to, ended, failure, toMS(now), id, m.State)
	if err != nil {
		return Meeting{}, fmt.Errorf("move meeting %s to %s: %w", id, to, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		// Someone else moved it between our read and write: report what
		// it is now rather than guessing.
		now, rerr := q.Meeting(ctx, id)
		if rerr != nil {
			return Meeting{}, rerr
		}
		return Meeting{}, &TransitionError{MeetingID: id, From: now.State, To: to}
	}
	return q.Meeting(ctx, id)
}

// Join records identity as a participant (its display name updated on a
// rejoin), starts the meeting clock at the first join, and returns the
// clock's zero. An ended meeting answers ErrMeetingClosed.
func (q Queries) Join(ctx context.Context, meetingID, identity, displayName string) (time.Time, error) {
	zero, _, err := q.JoinStarting(ctx, meetingID, identity, displayName)
	return zero, err
}

// JoinStarting is Join that also says whether this join started the
// meeting: true for exactly one join of a meeting, however many join at
// once (its "meeting live" event is logged once).
func (q Queries) JoinStarting(ctx context.Context, meetingID, identity, displayName string) (zero time.Time, started bool, err error) {
	m, err := q.Meeting(ctx, meetingID)
	if err != nil {
		return time.Time{}, false, err
	}
	switch m.State {
	case MeetingCreated, MeetingLive:
	default:
		return time.Time{}, false, fmt.Errorf("join meeting %s: %w", meetingID, ErrMeetingClosed)
	}
	now := toMS(q.now())
	// The conditional update makes the first join win the clock's zero
	// even when two participants join at once.
	res, err := q.q.ExecContext(ctx, `UPDATE meetings SET state = $1, started_at = $2, updated_at = $2
		WHERE id = $3 AND state = $4`, MeetingLive, now, meetingID, MeetingCreated)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("start meeting %s: %w", meetingID, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 1 {
		started = true
	}
	if _, err := q.q.ExecContext(ctx, `INSERT INTO participants (meeting_id, identity, display_name, joined_at)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (meeting_id, identity) DO UPDATE SET display_name = excluded.display_name`,
		meetingID, identity, displayName, now); err != nil {
		return time.Time{}, started, fmt.Errorf("record participant %s: %w", identity, err)
	}
	m, err = q.Meeting(ctx, meetingID)
	if err != nil {
		return time.Time{}, started, err
	}
	if m.State != MeetingLive {
		return time.Time{}, started, fmt.Errorf("join meeting %s: %w", meetingID, ErrMeetingClosed)
	}
	return m.StartedAt, started, nil
}

// Participants lists a meeting's participants in order of first join.
func (q Queries) Participants(ctx context.Context, meetingID string) ([]Participant, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT meeting_id, identity, display_name, joined_at FROM participants
		WHERE meeting_id = $1 ORDER BY joined_at, identity`, meetingID)
	if err != nil {
		return nil, fmt.Errorf("list participants: %w", err)
	}
	defer rows.Close()
	var out []Participant
	for rows.Next() {
		var p Participant
		var joined int64
		if err := rows.Scan(&p.MeetingID, &p.Identity, &p.DisplayName, &joined); err != nil {
			return nil, fmt.Errorf("list participants: %w", err)
		}
		p.JoinedAt = time.UnixMilli(joined).UTC()
		out = append(out, p)
	}
	return out, rows.Err()
}

// LockMeeting takes the meeting's row lock for the rest of the transaction
// (on Postgres; SQLite serialises writers anyway), so that concurrent
// stages deciding "is everything done?" decide one after the other.
func (q Queries) LockMeeting(ctx context.Context, meetingID string) error {
	res, err := q.q.ExecContext(ctx, `UPDATE meetings SET updated_at = $1 WHERE id = $2`, toMS(q.now()), meetingID)
	if err != nil {
		return fmt.Errorf("lock meeting %s: %w", meetingID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("lock meeting %s: %w", meetingID, ErrNotFound)
	}
	return nil
}

// Rename changes a participant's display name; minutes rendered from now on
// show it.
func (q Queries) Rename(ctx context.Context, meetingID, identity, displayName string) error {
	res, err := q.q.ExecContext(ctx, `UPDATE participants SET display_name = $1 WHERE meeting_id = $2 AND identity = $3`,
		displayName, meetingID, identity)
	if err != nil {
		return fmt.Errorf("rename %s: %w", identity, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("participant %s of meeting %s: %w", identity, meetingID, ErrNotFound)
	}
	return nil
}

// StartRerun begins a new run of the pipeline over a meeting's stored
// recordings: the run number goes up, speech detection is to be done again
// on every stored track, and the old speech segments go (their transcripts
// live on in the minutes versions already saved). It returns the new run.
func (q Queries) StartRerun(ctx context.Context, meetingID string) (int, error) {
	if _, err := q.q.ExecContext(ctx, `UPDATE meetings SET run = run + 1 WHERE id = $1`, meetingID); err != nil {
		return 0, fmt.Errorf("start re-run of %s: %w", meetingID, err)
	}
	if _, err := q.q.ExecContext(ctx, `UPDATE tracks SET speech_detected = 0, detect_failure = '',
		voices_state = CASE WHEN voices_state = '' THEN '' ELSE $4 END, voices = '', voices_failure = ''
		WHERE meeting_id = $1 AND state IN ($2, $3)`, meetingID, TrackStored, TrackRecovered, VoicesPending); err != nil {
		return 0, fmt.Errorf("start re-run of %s: %w", meetingID, err)
	}
	if _, err := q.q.ExecContext(ctx, `DELETE FROM speech_segments WHERE meeting_id = $1`, meetingID); err != nil {
		return 0, fmt.Errorf("start re-run of %s: %w", meetingID, err)
	}
	m, err := q.Meeting(ctx, meetingID)
	return m.Run, err
}

// SetKeepAudio says whether a meeting keeps its audio (false: only the
// words its live transcription finds). It is set when the meeting is
// created, before any track: a meeting's tracks all follow one rule.
func (q Queries) SetKeepAudio(ctx context.Context, meetingID string, keep bool) error {
	return q.setMeetingFlag(ctx, "keep_audio", meetingID, keep)
}

// SetCaptions turns live captions on or off for a meeting.
func (q Queries) SetCaptions(ctx context.Context, meetingID string, on bool) error {
	return q.setMeetingFlag(ctx, "captions", meetingID, on)
}

// setMeetingFlag sets one of a meeting's 0/1 columns; column is its
// callers' literal, never input.
func (q Queries) setMeetingFlag(ctx context.Context, column, meetingID string, on bool) error {
	v := 0
	if on {
		v = 1
	}
	res, err := q.q.ExecContext(ctx, `UPDATE meetings SET `+column+` = $1 WHERE id = $2`, v, meetingID)
	if err != nil {
		return fmt.Errorf("set %s of %s: %w", column, meetingID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("meeting %s: %w", meetingID, ErrNotFound)
	}
	return nil
}

// SetWebhook sets (or, with "", clears) the URL told of a meeting's progress.
func (q Queries) SetWebhook(ctx context.Context, meetingID, url string) error {
	res, err := q.q.ExecContext(ctx, `UPDATE meetings SET webhook_url = $1 WHERE id = $2`, url, meetingID)
	if err != nil {
		return fmt.Errorf("set webhook of %s: %w", meetingID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("meeting %s: %w", meetingID, ErrNotFound)
	}
	return nil
}

// MeetingCounts counts the meetings in each state (states with none are
// absent), for metrics.
func (q Queries) MeetingCounts(ctx context.Context) (map[MeetingState]int, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT state, COUNT(*) FROM meetings GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("count meetings: %w", err)
	}
	defer rows.Close()
	out := map[MeetingState]int{}
	for rows.Next() {
		var st MeetingState
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("count meetings: %w", err)
		}
		out[st] = n
	}
	return out, rows.Err()
}

// SetGlossary replaces the words a meeting's speech backend is told to
// expect (nil clears them). Terms hold no line breaks: callers check them.
func (q Queries) SetGlossary(ctx context.Context, meetingID string, terms []string) error {
	res, err := q.q.ExecContext(ctx, `UPDATE meetings SET glossary = $1 WHERE id = $2`, strings.Join(terms, "\n"), meetingID)
	if err != nil {
		return fmt.Errorf("set glossary of %s: %w", meetingID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("meeting %s: %w", meetingID, ErrNotFound)
	}
	return nil
}
