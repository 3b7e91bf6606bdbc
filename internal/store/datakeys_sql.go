package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
)

// DataKey is a meeting's data key as the database holds it: wrapped by a
// key-encryption key named KEKID, never in clear.
type DataKey struct {
	MeetingID string
	KEKID     string
	Wrapped   []byte // stored as base64: one column type for both dialects
}

// DataKey returns the meeting's wrapped data key, or ErrNotFound.
func (q Queries) DataKey(ctx context.Context, meetingID string) (DataKey, error) {
	k := DataKey{MeetingID: meetingID}
	var wrapped string
	err := q.q.QueryRowContext(ctx, `SELECT kek_id, wrapped FROM meeting_keys WHERE meeting_id = $1`, meetingID).
		Scan(&k.KEKID, &wrapped)
	if err == nil {
		k.Wrapped, err = base64.StdEncoding.DecodeString(wrapped)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return DataKey{}, fmt.Errorf("data key of meeting %s: %w", meetingID, ErrNotFound)
	}
	if err != nil {
		return DataKey{}, fmt.Errorf("data key of meeting %s: %w", meetingID, err)
	}
	return k, nil
}

// AddDataKey stores k unless the meeting has a data key already, and
// returns the one stored: of two writers racing to make a meeting's first
// key, both end up with the same.
func (q Queries) AddDataKey(ctx context.Context, k DataKey) (DataKey, error) {
	if _, err := q.q.ExecContext(ctx, `INSERT INTO meeting_keys (meeting_id, kek_id, wrapped, created_at)
		VALUES ($1, $2, $3, $4) ON CONFLICT (meeting_id) DO NOTHING`, k.MeetingID, k.KEKID, base64.StdEncoding.EncodeToString(k.Wrapped), toMS(q.now())); err != nil {
		return DataKey{}, fmt.Errorf("add data key of meeting %s: %w", k.MeetingID, err)
	}
	return q.DataKey(ctx, k.MeetingID)
}

// DataKeys lists every data key wrapped by the key-encryption key kekID,
// or by any other than kekID when other is true.
func (q Queries) DataKeys(ctx context.Context, kekID string, other bool) ([]DataKey, error) {
	op := "="
	if other {
		op = "<>"
	}
	rows, err := q.q.QueryContext(ctx, `SELECT meeting_id, kek_id, wrapped FROM meeting_keys WHERE kek_id `+op+` $1
		ORDER BY meeting_id`, kekID)
	if err != nil {
		return nil, fmt.Errorf("list data keys: %w", err)
	}
	defer rows.Close()
	var out []DataKey
	for rows.Next() {
		var (
			k       DataKey
			wrapped string
			err     error
		)
		if err := rows.Scan(&k.MeetingID, &k.KEKID, &wrapped); err != nil {
			return nil, fmt.Errorf("list data keys: %w", err)
		}
		if k.Wrapped, err = base64.StdEncoding.DecodeString(wrapped); err != nil {
			return nil, fmt.Errorf("list data keys: meeting %s: %w", k.MeetingID, err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list data keys: %w", err)
	}
	return out, nil
}

// RewrapDataKey replaces the meeting's wrapped key, if it is still the one
// wrapped by fromKEK, and says whether it did.
func (q Queries) RewrapDataKey(ctx context.Context, fromKEK string, k DataKey) (bool, error) {
	res, err := q.q.ExecContext(ctx, `UPDATE meeting_keys SET kek_id = $1, wrapped = $2 WHERE meeting_id = $3 AND kek_id = $4`,
		k.KEKID, base64.StdEncoding.EncodeToString(k.Wrapped), k.MeetingID, fromKEK)
	if err != nil {
		return false, fmt.Errorf("re-wrap data key of meeting %s: %w", k.MeetingID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("re-wrap data key of meeting %s: %w", k.MeetingID, err)
	}
	return n == 1, nil
}

// DeleteDataKey destroys the meeting's data key, if it has one: what was
// sealed with it can no longer be opened (DeleteMeeting does it too, with
// the meeting's other rows).
func (q Queries) DeleteDataKey(ctx context.Context, meetingID string) error {
	if _, err := q.q.ExecContext(ctx, `DELETE FROM meeting_keys WHERE meeting_id = $1`, meetingID); err != nil {
		return fmt.Errorf("delete data key of meeting %s: %w", meetingID, err)
	}
	return nil
}
