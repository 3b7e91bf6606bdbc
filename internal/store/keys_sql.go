package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// APIKey is an API key as stored: its SHA-256, never the key itself.
type APIKey struct {
	ID          string
	Name        string
	Role        string
	AllMeetings bool // a host key that sees every meeting, not only its own
	Hash        string
	CreatedAt   time.Time
	ExpiresAt   time.Time // zero: never
	LastUsedAt  time.Time // zero: never used
	RevokedAt   time.Time // zero: not revoked
}

const keyColumns = `id, name, role, all_meetings, hash, created_at, expires_at, last_used_at, revoked_at`

func scanKey(row interface{ Scan(...any) error }) (APIKey, error) {
	var (
		k                                   APIKey
		all                                 int64
		created, expires, used, revokedAtMS sql.NullInt64
	)
	if err := row.Scan(&k.ID, &k.Name, &k.Role, &all, &k.Hash, &created, &expires, &used, &revokedAtMS); err != nil {
		return APIKey{}, err
	}
	k.AllMeetings = all != 0
	k.CreatedAt, k.ExpiresAt, k.LastUsedAt, k.RevokedAt = fromMS(created), fromMS(expires), fromMS(used), fromMS(revokedAtMS)
	return k, nil
}

// CreateAPIKey stores k (its ID and Hash set by the caller), stamped now,
// and returns it as stored.
func (q Queries) CreateAPIKey(ctx context.Context, k APIKey) (APIKey, error) {
	k.CreatedAt = q.now().UTC().Truncate(time.Millisecond)
	all := 0
	if k.AllMeetings {
		all = 1
	}
	if _, err := q.q.ExecContext(ctx, `INSERT INTO api_keys (id, name, role, all_meetings, hash, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, k.ID, k.Name, k.Role, all, k.Hash, toMS(k.CreatedAt), toMS(k.ExpiresAt)); err != nil {
		return APIKey{}, fmt.Errorf("create API key %s: %w", k.Name, err)
	}
	return k, nil
}

// APIKeyByHash finds the key whose SHA-256 is hash, revoked or expired
// ones included (the caller says why it refuses them), or ErrNotFound.
func (q Queries) APIKeyByHash(ctx context.Context, hash string) (APIKey, error) {
	k, err := scanKey(q.q.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE hash = $1`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return APIKey{}, fmt.Errorf("API key: %w", ErrNotFound)
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("read API key: %w", err)
	}
	return k, nil
}

// APIKeyByID finds key id, revoked or expired ones included, or
// ErrNotFound: a browser session names its key by id and is checked
// against it on every request.
func (q Queries) APIKeyByID(ctx context.Context, id string) (APIKey, error) {
	k, err := scanKey(q.q.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return APIKey{}, fmt.Errorf("API key %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("read API key %s: %w", id, err)
	}
	return k, nil
}

// APIKeys lists up to limit keys not revoked, oldest first, after the
// position after (zero: from the first).
func (q Queries) APIKeys(ctx context.Context, after Position, limit int) ([]APIKey, error) {
	t := after.At.UnixMilli()
	if after.ID == "" {
		t = -1
	}
	rows, err := q.q.QueryContext(ctx, `SELECT `+keyColumns+` FROM api_keys
		WHERE revoked_at = 0 AND (created_at > $1 OR (created_at = $1 AND id > $2))
		ORDER BY created_at, id LIMIT $3`, t, after.ID, limit)
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	defer rows.Close()
	var out []APIKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list API keys: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RevokeAPIKey revokes a key for good, or answers ErrNotFound when there
// is no such key or it was already revoked.
func (q Queries) RevokeAPIKey(ctx context.Context, id string) error {
	res, err := q.q.ExecContext(ctx, `UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at = 0`, toMS(q.now()), id)
	if err != nil {
		return fmt.Errorf("revoke API key %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("API key %s: %w", id, ErrNotFound)
	}
	return nil
}

// TouchAPIKey sets a key's last use to at, unless a use at or after
// notBefore is already recorded: callers bound the writes to one per key
// and interval.
func (q Queries) TouchAPIKey(ctx context.Context, id string, at, notBefore time.Time) error {
	if _, err := q.q.ExecContext(ctx, `UPDATE api_keys SET last_used_at = $1 WHERE id = $2 AND last_used_at < $3`,
		toMS(at), id, toMS(notBefore)); err != nil {
		return fmt.Errorf("record use of API key %s: %w", id, err)
	}
	return nil
}
