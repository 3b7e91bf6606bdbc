package store

import (
	"context"
	"fmt"
	"time"
)

// Node is one running Greffier process, as its heartbeats show it.
type Node struct {
	ID          string
	StartedAt   time.Time
	HeartbeatAt time.Time
}

// Heartbeat says node id is alive now (recording it on its first beat).
func (q Queries) Heartbeat(ctx context.Context, id string) error {
	now := toMS(q.now())
	if _, err := q.q.ExecContext(ctx, `INSERT INTO nodes (id, started_at, heartbeat_at) VALUES ($1, $2, $2)
		ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at`, id, now); err != nil {
		return fmt.Errorf("heartbeat of node %s: %w", id, err)
	}
	return nil
}

// Nodes lists the nodes that have beaten since the given time.
func (q Queries) Nodes(ctx context.Context, since time.Time) ([]Node, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT id, started_at, heartbeat_at FROM nodes WHERE heartbeat_at >= $1
		ORDER BY id`, toMS(since))
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	defer rows.Close()
	var out []Node
	for rows.Next() {
		var (
			n         Node
			start, hb int64
		)
		if err := rows.Scan(&n.ID, &start, &hb); err != nil {
			return nil, fmt.Errorf("list nodes: %w", err)
		}
		n.StartedAt, n.HeartbeatAt = time.UnixMilli(start).UTC(), time.UnixMilli(hb).UTC()
		out = append(out, n)
	}
	return out, rows.Err()
}

// ForgetNodes deletes node id, or with id "" every node silent since before.
func (q Queries) ForgetNodes(ctx context.Context, id string, before time.Time) error {
	var err error
	if id != "" {
		_, err = q.q.ExecContext(ctx, `DELETE FROM nodes WHERE id = $1`, id)
	} else {
		_, err = q.q.ExecContext(ctx, `DELETE FROM nodes WHERE heartbeat_at < $1`, toMS(before))
	}
	if err != nil {
		return fmt.Errorf("forget nodes: %w", err)
	}
	return nil
}
