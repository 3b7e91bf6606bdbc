package store

import (
	"context"
	"fmt"
)

// Event is something that happened in a meeting, on its clock: a
// participant joined or left, started or stopped speaking.
type Event struct {
	MeetingID string
	Seq       int64
	AtMS      int64 // meeting clock
	Kind      string
	Identity  string
}

// AddEvent appends an event to its meeting's log. Callers serialise their
// appends (one writer per process): the sequence number is the next free one.
func (q Queries) AddEvent(ctx context.Context, e Event) error {
	_, err := q.q.ExecContext(ctx, `INSERT INTO events (meeting_id, seq, at_ms, kind, identity)
		SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4 FROM events WHERE meeting_id = $1`,
		e.MeetingID, e.AtMS, e.Kind, e.Identity)
	if err != nil {
		return fmt.Errorf("record %s event of %s: %w", e.Kind, e.Identity, err)
	}
	return nil
}

// Events lists a meeting's events in order.
func (q Queries) Events(ctx context.Context, meetingID string) ([]Event, error) {
	return q.EventsAfter(ctx, meetingID, 0)
}

// EventsAfter lists a meeting's events numbered above seq, in order: what
// a live page has not seen yet.
func (q Queries) EventsAfter(ctx context.Context, meetingID string, seq int64) ([]Event, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT meeting_id, seq, at_ms, kind, identity FROM events
		WHERE meeting_id = $1 AND seq > $2 ORDER BY seq`, meetingID, seq)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		if err := rows.Scan(&e.MeetingID, &e.Seq, &e.AtMS, &e.Kind, &e.Identity); err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// EventsPage lists up to limit of a meeting's events after sequence number
// after, in order.
func (q Queries) EventsPage(ctx context.Context, meetingID string, after int64, limit int) ([]Event, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT meeting_id, seq, at_ms, kind, identity FROM events
		WHERE meeting_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, meetingID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		if err := rows.Scan(&e.MeetingID, &e.Seq, &e.AtMS, &e.Kind, &e.Identity); err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// HasEvent says whether the meeting's log holds an event of kind for
// identity.
func (q Queries) HasEvent(ctx context.Context, meetingID, kind, identity string) (bool, error) {
	var n int
	if err := q.q.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE meeting_id = $1 AND kind = $2 AND identity = $3`,
		meetingID, kind, identity).Scan(&n); err != nil {
		return false, fmt.Errorf("look for a %s event: %w", kind, err)
	}
	return n > 0, nil
}
