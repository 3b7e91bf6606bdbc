package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// WebhookStatus is what became of a meeting's webhook deliveries: a host
// sees a receiver that refuses, fails or cannot be reached where it looks
// at the meeting, not only in the job queue.
type WebhookStatus struct {
	// URLHost is the host delivered to (the URL's path and query may hold
	// a receiver's secret, so they are not kept here).
	URLHost string
	// LastEvent is the event of the latest attempt.
	LastEvent string
	// LastError is why the latest attempt failed ("" if it succeeded).
	LastError string
	// FailingSince is when the attempts began failing (zero while they
	// succeed).
	FailingSince time.Time
	// DeliveredAt is the latest successful delivery (zero if none).
	DeliveredAt time.Time
}

// WebhookAttempted records one delivery attempt of event to urlHost for a
// meeting: delivered when failure is "", else failing since the first
// failure after the last success.
func (q Queries) WebhookAttempted(ctx context.Context, meetingID, urlHost, event, failure string) error {
	now := toMS(q.now())
	var err error
	if failure == "" {
		_, err = q.q.ExecContext(ctx, `INSERT INTO webhook_status (meeting_id, url_host, last_event, last_error,
			failing_since, delivered_at, updated_at) VALUES ($1, $2, $3, '', 0, $4, $4)
			ON CONFLICT (meeting_id) DO UPDATE SET url_host = excluded.url_host, last_event = excluded.last_event,
			last_error = '', failing_since = 0, delivered_at = excluded.delivered_at, updated_at = excluded.updated_at`,
			meetingID, urlHost, event, now)
	} else {
		_, err = q.q.ExecContext(ctx, `INSERT INTO webhook_status (meeting_id, url_host, last_event, last_error,
			failing_since, delivered_at, updated_at) VALUES ($1, $2, $3, $4, $5, 0, $5)
			ON CONFLICT (meeting_id) DO UPDATE SET url_host = excluded.url_host, last_event = excluded.last_event,
			last_error = excluded.last_error, updated_at = excluded.updated_at,
			failing_since = CASE WHEN webhook_status.failing_since = 0 THEN excluded.failing_since
				ELSE webhook_status.failing_since END`,
			meetingID, urlHost, event, failure, now)
	}
	if err != nil {
		return fmt.Errorf("record webhook delivery of %s: %w", meetingID, err)
	}
	return nil
}

// WebhookStatus returns what became of a meeting's webhook deliveries, or
// ErrNotFound if none was attempted.
func (q Queries) WebhookStatus(ctx context.Context, meetingID string) (WebhookStatus, error) {
	var (
		w                  WebhookStatus
		failing, delivered int64
	)
	err := q.q.QueryRowContext(ctx, `SELECT url_host, last_event, last_error, failing_since, delivered_at
		FROM webhook_status WHERE meeting_id = $1`, meetingID).Scan(&w.URLHost, &w.LastEvent, &w.LastError, &failing, &delivered)
	if errors.Is(err, sql.ErrNoRows) {
		return w, fmt.Errorf("webhook deliveries of %s: %w", meetingID, ErrNotFound)
	}
	if err != nil {
		return w, fmt.Errorf("read webhook deliveries of %s: %w", meetingID, err)
	}
	if failing != 0 {
		w.FailingSince = time.UnixMilli(failing).UTC()
	}
	if delivered != 0 {
		w.DeliveredAt = time.UnixMilli(delivered).UTC()
	}
	return w, nil
}
