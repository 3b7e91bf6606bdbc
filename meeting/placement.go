package meeting

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/sfu"
)

// Placement decides which SFU node holds a meeting's media, when several
// nodes share one database: the node a meeting's first participant
// reaches places it on the least loaded live SFU node, in the database,
// and every later join finds it there. A node that stops beating loses its
// placements (PlaceMeeting takes them over), so participants rejoin
// through any node.
type Placement struct {
	store *store.Store
	self  string
	// media: this node serves media itself (the sfu role), so it may
	// hold meetings; otherwise it only redirects.
	media bool
	// timeout is how long a node may be silent and still own meetings.
	timeout time.Duration
	now     func() time.Time
}

// NewPlacement places meetings for node self, which serves media itself
// or not, counting nodes silent for longer than timeout as gone.
func NewPlacement(st *store.Store, self string, media bool, timeout time.Duration) (*Placement, error) {
	if st == nil || self == "" || timeout <= 0 {
		return nil, errors.New("meeting: NewPlacement needs a store, a node id and a positive timeout")
	}
	return &Placement{store: st, self: self, media: media, timeout: timeout, now: time.Now}, nil
}

// Place returns nil when meetingID's media is (now) on this node, a
// *sfu.MovedError naming the owner when it is on another.
func (p *Placement) Place(ctx context.Context, meetingID string) error {
	aliveSince := p.now().Add(-p.timeout)
	owner, err := p.store.MeetingNode(ctx, meetingID)
	if err != nil {
		return err
	}
	if owner.ID == p.self {
		return nil
	}
	if owner.ID == "" || owner.HeartbeatAt.Before(aliveSince) {
		candidate, err := p.leastLoaded(ctx, aliveSince)
		if err != nil {
			return fmt.Errorf("place meeting %s: %w", meetingID, err)
		}
		if owner, err = p.store.PlaceMeeting(ctx, meetingID, candidate, aliveSince); err != nil {
			return err
		}
	}
	if owner.ID == p.self {
		return nil
	}
	if owner.URL == "" {
		return fmt.Errorf("meeting %s is on node %s, which has no URL", meetingID, owner.ID)
	}
	return &sfu.MovedError{MeetingID: meetingID, BaseURL: owner.URL}
}

// leastLoaded picks the live SFU node with the fewest live meetings, then
// the fewest media sessions; this media node when no row says otherwise
// (its first heartbeat may not be written yet).
func (p *Placement) leastLoaded(ctx context.Context, aliveSince time.Time) (string, error) {
	nodes, err := p.store.Nodes(ctx, aliveSince)
	if err != nil {
		return "", err
	}
	placed, err := p.store.PlacedMeetings(ctx)
	if err != nil {
		return "", err
	}
	nodes = slices.DeleteFunc(nodes, func(n store.Node) bool {
		if n.ID == p.self {
			return !p.media
		}
		return !n.Has(store.RoleSFU) || n.URL == ""
	})
	if len(nodes) == 0 {
		if !p.media {
			return "", sfu.ErrNoMediaNode
		}
		return p.self, nil
	}
	best := slices.MinFunc(nodes, func(a, b store.Node) int {
		return cmp.Or(cmp.Compare(placed[a.ID], placed[b.ID]), cmp.Compare(a.Participants, b.Participants),
			cmp.Compare(a.ID, b.ID))
	})
	return best.ID, nil
}

// MeetingsInState lists the meetings in state whose media is on this node
// or on none (a lost node's, released): the ones this node's idle reaper
// may end. A meeting on another live node is that node's to judge.
func (p *Placement) MeetingsInState(ctx context.Context, state store.MeetingState) ([]store.Meeting, error) {
	all, err := p.store.MeetingsInState(ctx, state)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, m := range all {
		owner, err := p.store.MeetingNode(ctx, m.ID)
		if err != nil {
			return nil, err
		}
		if owner.ID == "" || owner.ID == p.self {
			out = append(out, m)
		}
	}
	return out, nil
}
