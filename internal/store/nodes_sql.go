package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Node roles: what a process serves. A single `serve` has them all.
const (
	RoleAPI    = "api"    // the HTTP API and web pages
	RoleSFU    = "sfu"    // WHIP/WHEP, media, recorder and the live path
	RoleWorker = "worker" // River's job workers
)

// Node is one running Greffier process, as its heartbeats show it.
type Node struct {
	ID string
	// Roles are what it serves (RoleAPI, RoleSFU, RoleWorker).
	Roles []string
	// URL is its own HTTP base URL, where WHIP and WHEP requests for the
	// meetings placed on it are redirected.
	URL string
	// MediaAddr is its media port's address as it listens.
	MediaAddr string
	// Participants counts its live media sessions: its load as an SFU.
	Participants int
	StartedAt    time.Time
	HeartbeatAt  time.Time
}

// Has says whether n serves role.
func (n Node) Has(role string) bool { return slices.Contains(n.Roles, role) }

// Heartbeat says node n is alive now, with what it serves and its load
// (recording it on its first beat).
func (q Queries) Heartbeat(ctx context.Context, n Node) error {
	now := toMS(q.now())
	if _, err := q.q.ExecContext(ctx, `INSERT INTO nodes (id, started_at, heartbeat_at, roles, url, media_addr, participants)
		VALUES ($1, $2, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, roles = excluded.roles,
			url = excluded.url, media_addr = excluded.media_addr, participants = excluded.participants`,
		n.ID, now, strings.Join(n.Roles, ","), n.URL, n.MediaAddr, n.Participants); err != nil {
		return fmt.Errorf("heartbeat of node %s: %w", n.ID, err)
	}
	return nil
}

const nodeColumns = `id, started_at, heartbeat_at, roles, url, media_addr, participants`

func scanNode(sc interface{ Scan(...any) error }) (Node, error) {
	var (
		n         Node
		start, hb int64
		roles     string
	)
	if err := sc.Scan(&n.ID, &start, &hb, &roles, &n.URL, &n.MediaAddr, &n.Participants); err != nil {
		return n, err
	}
	if roles != "" {
		n.Roles = strings.Split(roles, ",")
	}
	n.StartedAt, n.HeartbeatAt = time.UnixMilli(start).UTC(), time.UnixMilli(hb).UTC()
	return n, nil
}

// Nodes lists the nodes that have beaten since the given time.
func (q Queries) Nodes(ctx context.Context, since time.Time) ([]Node, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT `+nodeColumns+` FROM nodes WHERE heartbeat_at >= $1
		ORDER BY id`, toMS(since))
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	defer rows.Close()
	var out []Node
	for rows.Next() {
		n, err := scanNode(rows)
		if err != nil {
			return nil, fmt.Errorf("list nodes: %w", err)
		}
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

// PlaceMeeting records node as the owner of a meeting's media unless a
// live node owns it already (one that has beaten since aliveSince), and
// returns the owner, with its row. The conditional update is the one
// decision: of two nodes placing a meeting at once, the first update
// wins and the second finds its owner.
func (q Queries) PlaceMeeting(ctx context.Context, meetingID, node string, aliveSince time.Time) (Node, error) {
	// Taking a meeting over from a dead node records the loss, as
	// ReleaseLostMeetings does, so that what it recorded is recovered.
	if _, err := q.q.ExecContext(ctx, `UPDATE meetings SET node = $1, node_placed_at = $2,
			node_lost = CASE WHEN node IS NULL THEN node_lost ELSE node END,
			node_lost_at = CASE WHEN node IS NULL THEN node_lost_at
				ELSE COALESCE((SELECT heartbeat_at FROM nodes WHERE nodes.id = meetings.node), $2) END
		WHERE id = $3 AND (node IS NULL OR (node <> $1 AND NOT EXISTS (
			SELECT 1 FROM nodes WHERE nodes.id = meetings.node AND nodes.heartbeat_at >= $4)))`,
		node, toMS(q.now()), meetingID, toMS(aliveSince)); err != nil {
		return Node{}, fmt.Errorf("place meeting %s on node %s: %w", meetingID, node, err)
	}
	owner, err := q.MeetingNode(ctx, meetingID)
	if err != nil {
		return Node{}, err
	}
	if owner.ID == "" {
		return Node{}, fmt.Errorf("place meeting %s: %w", meetingID, ErrNotFound)
	}
	return owner, nil
}

// MeetingNode returns the node a meeting's media is placed on (its row as
// last seen; only ID set when the node has no row any more), or a zero
// Node when the meeting is not placed.
func (q Queries) MeetingNode(ctx context.Context, meetingID string) (Node, error) {
	var id sql.NullString
	err := q.q.QueryRowContext(ctx, `SELECT node FROM meetings WHERE id = $1`, meetingID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return Node{}, fmt.Errorf("meeting %s: %w", meetingID, ErrNotFound)
	}
	if err != nil {
		return Node{}, fmt.Errorf("node of meeting %s: %w", meetingID, err)
	}
	if !id.Valid {
		return Node{}, nil
	}
	n, err := scanNode(q.q.QueryRowContext(ctx, `SELECT `+nodeColumns+` FROM nodes WHERE id = $1`, id.String))
	if errors.Is(err, sql.ErrNoRows) {
		return Node{ID: id.String}, nil
	}
	if err != nil {
		return Node{}, fmt.Errorf("node of meeting %s: %w", meetingID, err)
	}
	return n, nil
}

// LostMeeting is a live meeting whose media node stopped beating.
type LostMeeting struct {
	MeetingID, Node string
	// LastBeat is the node's last heartbeat (when its row is gone: when
	// the loss was seen).
	LastBeat time.Time
}

// ReleaseLostMeetings frees the placement of every live (or just ended)
// meeting whose node has not beaten since aliveSince, so its participants
// can rejoin through any node, records the loss (MediaLost) and returns
// them. Each meeting is released once: the update is
// conditional on the node the meeting was read with.
func (q Queries) ReleaseLostMeetings(ctx context.Context, aliveSince time.Time) ([]LostMeeting, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT m.id, m.node, COALESCE(n.heartbeat_at, 0) FROM meetings m
		LEFT JOIN nodes n ON n.id = m.node
		WHERE m.node IS NOT NULL AND m.state IN ($1, $2) AND (n.id IS NULL OR n.heartbeat_at < $3)`,
		MeetingLive, MeetingEnded, toMS(aliveSince))
	if err != nil {
		return nil, fmt.Errorf("list meetings of lost nodes: %w", err)
	}
	found, err := scanLost(rows)
	if err != nil {
		return nil, fmt.Errorf("list meetings of lost nodes: %w", err)
	}
	var out []LostMeeting
	for _, l := range found {
		if l.LastBeat.IsZero() {
			// Its row is gone (it stopped, or was forgotten): the loss
			// is seen now.
			l.LastBeat = q.now().UTC()
		}
		res, err := q.q.ExecContext(ctx, `UPDATE meetings SET node = NULL, node_placed_at = NULL, node_lost = $1, node_lost_at = $2
			WHERE id = $3 AND node = $1`, l.Node, toMS(l.LastBeat), l.MeetingID)
		if err != nil {
			return out, fmt.Errorf("release meeting %s: %w", l.MeetingID, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			out = append(out, l)
		}
	}
	return out, nil
}

// PlacedMeetings counts the live meetings placed on each node.
func (q Queries) PlacedMeetings(ctx context.Context) (map[string]int, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT node, count(*) FROM meetings WHERE node IS NOT NULL AND state = $1
		GROUP BY node`, MeetingLive)
	if err != nil {
		return nil, fmt.Errorf("count placed meetings: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var (
			id string
			n  int
		)
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("count placed meetings: %w", err)
		}
		out[id] = n
	}
	return out, rows.Err()
}

// MediaLost returns the node a meeting's media was lost with, and its last
// heartbeat, while what it recorded is not recovered ("" otherwise).
func (q Queries) MediaLost(ctx context.Context, meetingID string) (LostMeeting, error) {
	l := LostMeeting{MeetingID: meetingID}
	var at int64
	err := q.q.QueryRowContext(ctx, `SELECT node_lost, node_lost_at FROM meetings WHERE id = $1`, meetingID).Scan(&l.Node, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return l, fmt.Errorf("meeting %s: %w", meetingID, ErrNotFound)
	}
	if err != nil {
		return l, fmt.Errorf("lost media of meeting %s: %w", meetingID, err)
	}
	if at > 0 {
		l.LastBeat = time.UnixMilli(at).UTC()
	}
	return l, nil
}

// MeetingsWithLostMedia lists the meetings whose media node was lost
// before the given time and whose recordings are not recovered yet.
func (q Queries) MeetingsWithLostMedia(ctx context.Context, before time.Time) ([]LostMeeting, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT id, node_lost, node_lost_at FROM meetings
		WHERE node_lost <> '' AND node_lost_at < $1 ORDER BY node_lost_at, id`, toMS(before))
	if err != nil {
		return nil, fmt.Errorf("list meetings with lost media: %w", err)
	}
	out, err := scanLost(rows)
	if err != nil {
		return nil, fmt.Errorf("list meetings with lost media: %w", err)
	}
	return out, nil
}

// scanLost reads rows of (meeting id, node, heartbeat ms; 0: none) and
// closes them.
func scanLost(rows *sql.Rows) ([]LostMeeting, error) {
	defer rows.Close()
	var out []LostMeeting
	for rows.Next() {
		var (
			l  LostMeeting
			hb int64
		)
		if err := rows.Scan(&l.MeetingID, &l.Node, &hb); err != nil {
			return nil, err
		}
		if hb > 0 {
			l.LastBeat = time.UnixMilli(hb).UTC()
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// SettleLostMedia says a meeting's media lost with node is dealt with
// (recovered, or come back), unless another loss was recorded since.
func (q Queries) SettleLostMedia(ctx context.Context, meetingID, node string) error {
	if _, err := q.q.ExecContext(ctx, `UPDATE meetings SET node_lost = '', node_lost_at = 0 WHERE id = $1 AND node_lost = $2`,
		meetingID, node); err != nil {
		return fmt.Errorf("settle lost media of meeting %s: %w", meetingID, err)
	}
	return nil
}
