package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// LiveKitRoom is a meeting recorded from a LiveKit room.
type LiveKitRoom struct {
	MeetingID string
	Room      string
}

// RecordLiveKitRoom creates a meeting recorded from room, unless a meeting
// of that room is still created or live: then it returns that one and
// created is false. Both happen in one transaction; callers racing for the
// same room on Postgres must take turns (meeting.Rooms does), as the
// transaction does not lock a row that does not exist yet.
func (s *Store) RecordLiveKitRoom(ctx context.Context, room, title, language, keyID string) (m Meeting, created bool, err error) {
	err = s.InTx(ctx, func(_ *sql.Tx, q Queries) error {
		id, err := q.LiveKitMeeting(ctx, room)
		switch {
		case err == nil:
			m, err = q.Meeting(ctx, id)
			return err
		case !errors.Is(err, ErrNotFound):
			return err
		}
		if m, err = q.CreateMeetingBy(ctx, title, language, keyID); err != nil {
			return err
		}
		if _, err := q.q.ExecContext(ctx, `INSERT INTO livekit_rooms (meeting_id, room, created_at) VALUES ($1, $2, $3)`,
			m.ID, room, toMS(q.now())); err != nil {
			return fmt.Errorf("record LiveKit room %q: %w", room, err)
		}
		created = true
		return nil
	})
	return m, created, err
}

// LiveKitMeeting returns the id of the meeting recording room that is
// still created or live, or ErrNotFound.
func (q Queries) LiveKitMeeting(ctx context.Context, room string) (string, error) {
	var id string
	err := q.q.QueryRowContext(ctx, `SELECT r.meeting_id FROM livekit_rooms r JOIN meetings m ON m.id = r.meeting_id
		WHERE r.room = $1 AND m.state IN ($2, $3) ORDER BY r.created_at DESC LIMIT 1`, room, MeetingCreated, MeetingLive).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("live meeting of LiveKit room %q: %w", room, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("live meeting of LiveKit room %q: %w", room, err)
	}
	return id, nil
}

// LiveLiveKitRooms lists the LiveKit rooms of meetings still created or
// live, oldest first: those a restarted process joins again.
func (q Queries) LiveLiveKitRooms(ctx context.Context) ([]LiveKitRoom, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT r.meeting_id, r.room FROM livekit_rooms r JOIN meetings m ON m.id = r.meeting_id
		WHERE m.state IN ($1, $2) ORDER BY r.created_at, r.meeting_id`, MeetingCreated, MeetingLive)
	if err != nil {
		return nil, fmt.Errorf("list live LiveKit rooms: %w", err)
	}
	defer rows.Close()
	var out []LiveKitRoom
	for rows.Next() {
		var r LiveKitRoom
		if err := rows.Scan(&r.MeetingID, &r.Room); err != nil {
			return nil, fmt.Errorf("list live LiveKit rooms: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
