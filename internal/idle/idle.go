// Package idle ends live meetings that nobody has been connected to for a
// while: a host who forgets to end one, or a server restarted during one
// that nobody rejoins, still gets its minutes. It decides when; ending is
// the owner's Ender, the same path as POST /end. It knows no HTTP and no
// media: presence comes through the small Presence interface.
package idle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/greffier/greffier/internal/store"
)

// Meetings lists meetings by state (*store.Store does).
type Meetings interface {
	MeetingsInState(ctx context.Context, state store.MeetingState) ([]store.Meeting, error)
}

// Presence says whether anyone is connected to a meeting's media.
type Presence interface {
	Connected(meetingID string) bool
}

// Ender ends a meeting as its host would.
type Ender interface {
	EndMeeting(ctx context.Context, meetingID string) (store.Meeting, error)
}

// Config configures a Reaper.
type Config struct {
	// After is how long a live meeting may have nobody connected before
	// it ends. Required.
	After time.Duration
	// Interval is how often meetings are looked at. Default After/4, at
	// most DefaultMaxInterval.
	Interval time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger. Default: discard.
	Logger *slog.Logger
}

// DefaultMaxInterval caps the default Interval: a meeting ends at most this
// late past After.
const DefaultMaxInterval = 30 * time.Second

// WithDefaults returns a copy of c with every zero field set.
func (c Config) WithDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = min(max(c.After/4, time.Millisecond), DefaultMaxInterval)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Reaper ends idle meetings. It remembers since when each live meeting has
// had nobody connected; a meeting it first sees empty (at start, after a
// restart) counts from then, so that participants have After to come back.
type Reaper struct {
	cfg      Config
	meetings Meetings
	presence Presence
	ender    Ender

	empty map[string]time.Time // meeting → first seen with nobody; runOnce's only

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// New checks cfg and returns a Reaper that does nothing until Start.
func New(cfg Config, m Meetings, p Presence, e Ender) (*Reaper, error) {
	if cfg.After <= 0 {
		return nil, errors.New("idle: After must be positive")
	}
	if m == nil || p == nil || e == nil {
		return nil, errors.New("idle: meetings, presence and ender are required")
	}
	return &Reaper{cfg: cfg.WithDefaults(), meetings: m, presence: p, ender: e, empty: map[string]time.Time{}}, nil
}

// Start looks at the live meetings every Interval until Stop. It does not
// block.
func (r *Reaper) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done != nil {
		return errors.New("idle: Start called twice")
	}
	ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		tick := time.NewTicker(r.cfg.Interval)
		defer tick.Stop()
		for {
			if _, err := r.runOnce(ctx); err != nil && ctx.Err() == nil {
				r.cfg.Logger.Error("ending idle meetings", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return nil
}

// Stop stops looking and waits for an ending in progress. Idempotent.
func (r *Reaper) Stop() {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// runOnce looks at every live meeting once and ends those nobody has been
// connected to for After. It returns the meetings it ended.
func (r *Reaper) runOnce(ctx context.Context) ([]string, error) {
	live, err := r.meetings.MeetingsInState(ctx, store.MeetingLive)
	if err != nil {
		return nil, fmt.Errorf("list live meetings: %w", err)
	}
	now := r.cfg.Now()
	seen := make(map[string]bool, len(live))
	var ended []string
	var errs []error
	for _, m := range live {
		seen[m.ID] = true
		if r.presence.Connected(m.ID) {
			delete(r.empty, m.ID)
			continue
		}
		since, ok := r.empty[m.ID]
		if !ok {
			r.empty[m.ID] = now
			continue
		}
		if now.Sub(since) < r.cfg.After {
			continue
		}
		r.cfg.Logger.Info("ending a meeting nobody is connected to", "meeting", m.ID, "empty_for", now.Sub(since).Round(time.Second))
		_, err := r.ender.EndMeeting(ctx, m.ID)
		var te *store.TransitionError
		switch {
		case err == nil:
			ended = append(ended, m.ID)
			delete(r.empty, m.ID)
		case errors.As(err, &te):
			delete(r.empty, m.ID) // ended meanwhile by its host
		default:
			errs = append(errs, fmt.Errorf("end idle meeting %s: %w", m.ID, err))
		}
	}
	for id := range r.empty {
		if !seen[id] {
			delete(r.empty, id)
		}
	}
	return ended, errors.Join(errs...)
}
