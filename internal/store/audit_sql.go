package store

import (
	"context"
	"fmt"
	"time"
)

// AuditEntry is one call recorded in the audit log: who (which key), what
// (method and route pattern), on which meeting, and how it ended.
type AuditEntry struct {
	ID        string
	At        time.Time
	KeyID     string
	KeyName   string
	Method    string
	Route     string
	MeetingID string // "" when the route names no meeting
	Status    int
}

// AddAudit appends e to the audit log, stamped now; it returns e as stored.
func (q Queries) AddAudit(ctx context.Context, e AuditEntry) (AuditEntry, error) {
	e.ID = NewID("aud")
	e.At = q.now().UTC().Truncate(time.Millisecond)
	if _, err := q.q.ExecContext(ctx, `INSERT INTO audit_log (id, at, key_id, key_name, method, route, meeting_id, status)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, e.ID, toMS(e.At), e.KeyID, e.KeyName, e.Method, e.Route, e.MeetingID, e.Status); err != nil {
		return AuditEntry{}, fmt.Errorf("record %s %s in the audit log: %w", e.Method, e.Route, err)
	}
	return e, nil
}

// Audit lists up to limit audit entries, newest first, before the position
// before (zero: from the newest), of one meeting unless meetingID is "".
func (q Queries) Audit(ctx context.Context, meetingID string, before Position, limit int) ([]AuditEntry, error) {
	query := `SELECT id, at, key_id, key_name, method, route, meeting_id, status FROM audit_log WHERE `
	args := []any{}
	if before.ID != "" {
		t := before.At.UnixMilli()
		args = append(args, t, before.ID)
		query += `(at < $1 OR (at = $1 AND id < $2))`
	} else {
		query += `1 = 1`
	}
	if meetingID != "" {
		args = append(args, meetingID)
		query += fmt.Sprintf(` AND meeting_id = $%d`, len(args))
	}
	args = append(args, limit)
	query += fmt.Sprintf(` ORDER BY at DESC, id DESC LIMIT $%d`, len(args))
	rows, err := q.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read the audit log: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var (
			e  AuditEntry
			at int64
		)
		if err := rows.Scan(&e.ID, &at, &e.KeyID, &e.KeyName, &e.Method, &e.Route, &e.MeetingID, &e.Status); err != nil {
			return nil, fmt.Errorf("read the audit log: %w", err)
		}
		e.At = time.UnixMilli(at).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}
