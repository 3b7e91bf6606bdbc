package store

import (
	"context"
	"fmt"
	"time"
)

// Damage is one stored object of a meeting whose bytes were found not to
// hash to the SHA-256 recorded when it was stored: a recording or an
// archive file that can no longer be served as good.
type Damage struct {
	MeetingID string
	BlobKey   string
	// Detail says what was found (the expected and actual digests).
	Detail  string
	FoundAt time.Time
}

// MarkDamaged records that the object under key, of meeting meetingID, is
// damaged. Marking it again updates the detail and keeps the first finding's
// time.
func (q Queries) MarkDamaged(ctx context.Context, meetingID, key, detail string) error {
	_, err := q.q.ExecContext(ctx, `INSERT INTO damaged_blobs (blob_key, meeting_id, detail, found_at)
		VALUES ($1, $2, $3, $4) ON CONFLICT (blob_key) DO UPDATE SET detail = excluded.detail`,
		key, meetingID, detail, toMS(q.now()))
	if err != nil {
		return fmt.Errorf("mark %s damaged: %w", key, err)
	}
	return nil
}

// ClearDamage forgets that the object under key was damaged (it verified
// again, or was rebuilt). Clearing an object never marked is not an error.
func (q Queries) ClearDamage(ctx context.Context, key string) error {
	if _, err := q.q.ExecContext(ctx, `DELETE FROM damaged_blobs WHERE blob_key = $1`, key); err != nil {
		return fmt.Errorf("clear damage of %s: %w", key, err)
	}
	return nil
}

// Damaged lists the meeting's objects known to be damaged, by key.
func (q Queries) Damaged(ctx context.Context, meetingID string) ([]Damage, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT meeting_id, blob_key, detail, found_at FROM damaged_blobs
		WHERE meeting_id = $1 ORDER BY blob_key`, meetingID)
	if err != nil {
		return nil, fmt.Errorf("list damaged objects of %s: %w", meetingID, err)
	}
	defer rows.Close()
	var out []Damage
	for rows.Next() {
		var (
			d     Damage
			found int64
		)
		if err := rows.Scan(&d.MeetingID, &d.BlobKey, &d.Detail, &found); err != nil {
			return nil, fmt.Errorf("list damaged objects of %s: %w", meetingID, err)
		}
		d.FoundAt = time.UnixMilli(found).UTC()
		out = append(out, d)
	}
	return out, rows.Err()
}
