package meeting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/token"
	"github.com/greffier/greffier/sfu"
)

// Joins admits participants to meetings' media (sfu.Meetings): a join
// token the host revoked is refused, and so is a meeting that does not
// exist or has ended.
type Joins struct {
	store *store.Store
	log   *slog.Logger
	// placement, when several nodes share the database, sends a join
	// to the node holding the meeting's media.
	placement *Placement
}

// NewJoins admits participants to the meetings of st.
func NewJoins(st *store.Store, logger *slog.Logger) *Joins { return &Joins{store: st, log: logger} }

// NewPlacedJoins admits participants to the meetings of st placed on this
// node by p, and sends the others to the node that holds them.
func NewPlacedJoins(st *store.Store, p *Placement, logger *slog.Logger) *Joins {
	return &Joins{store: st, log: logger, placement: p}
}

// Join records the token's identity in its meeting and returns the meeting
// clock's zero.
func (j *Joins) Join(ctx context.Context, c token.Claims) (time.Time, error) {
	revoked, err := j.store.JoinTokenRevoked(ctx, c.MeetingID, c.Identity, c.ID)
	if err != nil {
		return time.Time{}, err
	}
	if revoked {
		return time.Time{}, fmt.Errorf("join %s as %s: %w", c.MeetingID, c.Identity, sfu.ErrTokenRevoked)
	}
	zero, err := LoggedJoins{j.store, j.log}.Join(ctx, c.MeetingID, c.Identity, c.DisplayName)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return zero, fmt.Errorf("%w: %w", sfu.ErrMeetingNotFound, err)
	case errors.Is(err, store.ErrMeetingClosed):
		return zero, fmt.Errorf("%w: %w", sfu.ErrMeetingClosed, err)
	}
	return zero, err
}

// Place says where the meeting's media is (sfu.Placer): here (nil) on
// one node, or when this node holds it or is chosen for it; a
// *sfu.MovedError when another node is. A meeting that cannot be joined
// is left to Join to refuse.
func (j *Joins) Place(ctx context.Context, meetingID string) error {
	if j.placement == nil {
		return nil
	}
	m, err := j.store.Meeting(ctx, meetingID)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %w", sfu.ErrMeetingNotFound, err)
	}
	if err != nil || (m.State != store.MeetingCreated && m.State != store.MeetingLive) {
		return err
	}
	return j.placement.Place(ctx, meetingID)
}

// Leave records nothing: the event log has the participant's leaving.
func (j *Joins) Leave(context.Context, string, string) error { return nil }

// LoggedJoins records joins in the store and logs "meeting live" for the
// one join that started its meeting, however many join at once: the
// SFU's joins and LiveKit's participants (livekit.Meetings) alike.
type LoggedJoins struct {
	*store.Store
	Log *slog.Logger
}

// Join is store.Join, logging the join that makes the meeting live.
func (l LoggedJoins) Join(ctx context.Context, meetingID, identity, displayName string) (time.Time, error) {
	zero, started, err := l.Store.JoinStarting(ctx, meetingID, identity, displayName)
	if started {
		l.Log.Info("meeting live", "meeting", meetingID, "first", identity)
	}
	return zero, err
}
