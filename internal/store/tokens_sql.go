package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// JoinToken is a join token the API issued: its id, whose it is and until
// when it is valid. The token itself is signed, not stored.
type JoinToken struct {
	ID        string
	MeetingID string
	Identity  string
	ExpiresAt time.Time
	// RevokedAt is when the host revoked it; zero while it is valid.
	RevokedAt time.Time
}

// AddJoinToken records an issued join token.
func (q Queries) AddJoinToken(ctx context.Context, t JoinToken) error {
	if _, err := q.q.ExecContext(ctx, `INSERT INTO join_tokens (id, meeting_id, identity, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5)`, t.ID, t.MeetingID, t.Identity, toMS(q.now()), toMS(t.ExpiresAt)); err != nil {
		return fmt.Errorf("record join token of %s: %w", t.Identity, err)
	}
	return nil
}

// RevokeJoinToken revokes one token of a meeting and returns it; a token
// already revoked keeps its first revocation time. ErrNotFound when the
// meeting issued no such token.
func (q Queries) RevokeJoinToken(ctx context.Context, meetingID, id string) (JoinToken, error) {
	if _, err := q.q.ExecContext(ctx, `UPDATE join_tokens SET revoked_at = $1
		WHERE id = $2 AND meeting_id = $3 AND revoked_at IS NULL`, toMS(q.now()), id, meetingID); err != nil {
		return JoinToken{}, fmt.Errorf("revoke join token %s: %w", id, err)
	}
	var (
		t       = JoinToken{ID: id, MeetingID: meetingID}
		expires int64
		revoked sql.NullInt64
	)
	err := q.q.QueryRowContext(ctx, `SELECT identity, expires_at, revoked_at FROM join_tokens WHERE id = $1 AND meeting_id = $2`,
		id, meetingID).Scan(&t.Identity, &expires, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return JoinToken{}, fmt.Errorf("join token %s of meeting %s: %w", id, meetingID, ErrNotFound)
	}
	if err != nil {
		return JoinToken{}, fmt.Errorf("revoke join token %s: %w", id, err)
	}
	t.ExpiresAt, t.RevokedAt = time.UnixMilli(expires).UTC(), fromMS(revoked)
	return t, nil
}

// RevokeIdentity revokes every token issued so far to identity in a
// meeting (tokens issued later are valid), including tokens that carry no
// id. It returns how many recorded tokens it revoked; ErrNotFound when the
// meeting knows no such identity.
func (q Queries) RevokeIdentity(ctx context.Context, meetingID, identity string) (int, error) {
	var known int
	if err := q.q.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM join_tokens WHERE meeting_id = $1 AND identity = $2)
		+ (SELECT count(*) FROM participants WHERE meeting_id = $1 AND identity = $2)`, meetingID, identity).Scan(&known); err != nil {
		return 0, fmt.Errorf("revoke %s: %w", identity, err)
	}
	if known == 0 {
		return 0, fmt.Errorf("participant %s of meeting %s: %w", identity, meetingID, ErrNotFound)
	}
	now := toMS(q.now())
	res, err := q.q.ExecContext(ctx, `UPDATE join_tokens SET revoked_at = $1
		WHERE meeting_id = $2 AND identity = $3 AND revoked_at IS NULL`, now, meetingID, identity)
	if err != nil {
		return 0, fmt.Errorf("revoke %s: %w", identity, err)
	}
	n, _ := res.RowsAffected()
	// A revoked row of the identity's is what refuses its tokens without
	// an id (see JoinTokenRevoked); one is kept even when no token was
	// recorded.
	if _, err := q.q.ExecContext(ctx, `INSERT INTO join_tokens (id, meeting_id, identity, created_at, expires_at, revoked_at)
		VALUES ($1, $2, $3, $4, $4, $4)`, NewID("rev"), meetingID, identity, now); err != nil {
		return 0, fmt.Errorf("revoke %s: %w", identity, err)
	}
	return int(n), nil
}

// JoinTokenRevoked reports whether the host revoked the token id of
// identity in a meeting. A token without an id (signed before tokens had
// one) counts as revoked once any of the identity's was.
func (q Queries) JoinTokenRevoked(ctx context.Context, meetingID, identity, id string) (bool, error) {
	var n int
	var err error
	if id != "" {
		err = q.q.QueryRowContext(ctx, `SELECT count(*) FROM join_tokens
			WHERE id = $1 AND meeting_id = $2 AND revoked_at IS NOT NULL`, id, meetingID).Scan(&n)
	} else {
		err = q.q.QueryRowContext(ctx, `SELECT count(*) FROM join_tokens
			WHERE meeting_id = $1 AND identity = $2 AND revoked_at IS NOT NULL`, meetingID, identity).Scan(&n)
	}
	if err != nil {
		return false, fmt.Errorf("check join token of %s: %w", identity, err)
	}
	return n > 0, nil
}
