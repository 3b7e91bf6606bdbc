package meeting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/recorder"
)

// EventMediaNodeLost is the meeting event of its media node's loss; its
// identity field names the node.
const EventMediaNodeLost = "media_node_lost"

// Recoverer rebuilds a lost node's tracks from their checkpoints
// (*recorder.Recorder).
type Recoverer interface {
	RecoverLost(ctx context.Context, t store.Track, lost recorder.LostRecorder) error
}

// Settler records that a meeting's lost media is dealt with and moves its
// pipeline on (*jobs.Catalog).
type Settler interface {
	SettleLostMedia(ctx context.Context, meetingID, node string) error
}

// LostMediaConfig configures a LostMedia.
type LostMediaConfig struct {
	// Self is this node's id.
	Self string
	// NodeTimeout is the silence after which a node is lost.
	NodeTimeout time.Duration
	// RecoverAfter is how long a lost node has to come back with the
	// audio it spooled before this node rebuilds its tracks from their
	// checkpoints, declaring the rest lost.
	RecoverAfter time.Duration
	Logger       *slog.Logger
}

// LostMedia looks after the meetings whose SFU node stopped beating: it
// frees their placement (participants rejoin through any node, each in a
// new track segment), logs the loss in the meeting's events, and, once the
// node has had RecoverAfter to come back (its own Recover then stores
// everything it spooled), rebuilds the tracks it left recording from the
// checkpoints in the bucket, the stretch after the last checkpoint stated
// as lost. Until then the meeting's progress says what it waits for and
// its minutes are not assembled. Every SFU node runs one; the store's
// conditional updates make them agree, and only one of them, the live SFU
// node with the smallest id, rebuilds tracks, so that two never rebuild
// the same one.
type LostMedia struct {
	cfg     LostMediaConfig
	store   *store.Store
	rec     Recoverer
	settler Settler
	now     func() time.Time

	stop context.CancelFunc
	done sync.WaitGroup
}

// NewLostMedia watches st's meetings, recovering with rec.
func NewLostMedia(cfg LostMediaConfig, st *store.Store, rec Recoverer, settler Settler) (*LostMedia, error) {
	if st == nil || rec == nil || settler == nil || cfg.Logger == nil || cfg.Self == "" || cfg.NodeTimeout <= 0 || cfg.RecoverAfter < 0 {
		return nil, errors.New("meeting: NewLostMedia needs a store, a recoverer, a settler, a logger, its node id and a positive node timeout")
	}
	return &LostMedia{cfg: cfg, store: st, rec: rec, settler: settler, now: time.Now}, nil
}

// Start runs the watch every fifth of NodeTimeout until Stop. It does not
// block.
func (l *LostMedia) Start(ctx context.Context) error {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.stop = cancel
	l.done.Add(1)
	go func() {
		defer l.done.Done()
		t := time.NewTicker(l.cfg.NodeTimeout / 5)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
			}
			if err := l.runOnce(rctx); err != nil && rctx.Err() == nil {
				l.cfg.Logger.Error("looking after meetings of lost media nodes", "err", err)
			}
		}
	}()
	return nil
}

// Stop ends the watch; idempotent.
func (l *LostMedia) Stop() {
	if l.stop != nil {
		l.stop()
		l.done.Wait()
	}
}

// runOnce releases the meetings of nodes lost now and recovers those lost
// RecoverAfter ago.
func (l *LostMedia) runOnce(ctx context.Context) error {
	now := l.now()
	released, err := l.store.ReleaseLostMeetings(ctx, now.Add(-l.cfg.NodeTimeout))
	if err != nil {
		return err
	}
	var errs []error
	for _, lm := range released {
		l.cfg.Logger.Warn("media node lost: its meetings can be rejoined through any node", "meeting", lm.MeetingID,
			"node", lm.Node, "last_heartbeat", lm.LastBeat)
	}
	// Every loss not settled: a node restarted meanwhile has stored what
	// it spooled (its Recover, under a new node id), leaving nothing to
	// wait for.
	lost, err := l.store.MeetingsWithLostMedia(ctx, now.Add(time.Second))
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if len(lost) == 0 {
		return errors.Join(errs...)
	}
	nodes, err := l.store.Nodes(ctx, now.Add(-l.cfg.NodeTimeout))
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, n := range nodes { // by id
		if n.Has(store.RoleSFU) && n.ID != l.cfg.Self {
			if n.ID < l.cfg.Self {
				return errors.Join(errs...) // that node's work
			}
			break
		}
	}
	for _, lm := range lost {
		// Released here or taken over by a join (PlaceMeeting): logged
		// once either way.
		errs = append(errs, l.logLoss(ctx, lm, now))
		errs = append(errs, l.settle(ctx, lm, !lm.LastBeat.After(now.Add(-l.cfg.RecoverAfter))))
	}
	return errors.Join(errs...)
}

// logLoss adds the loss to the meeting's events unless it is there.
func (l *LostMedia) logLoss(ctx context.Context, lm store.LostMeeting, now time.Time) error {
	logged, err := l.store.HasEvent(ctx, lm.MeetingID, EventMediaNodeLost, lm.Node)
	if err != nil || logged {
		return err
	}
	m, err := l.store.Meeting(ctx, lm.MeetingID)
	if err != nil {
		return err
	}
	at := lm.LastBeat
	if at.IsZero() {
		at = now
	}
	return l.store.AddEvent(ctx, store.Event{MeetingID: m.ID, AtMS: max(0, at.Sub(m.StartedAt).Milliseconds()),
		Kind: EventMediaNodeLost, Identity: lm.Node})
}

// settle settles lm once none of the lost node's tracks is still
// recording; with due, it first rebuilds them from their checkpoints.
func (l *LostMedia) settle(ctx context.Context, lm store.LostMeeting, due bool) error {
	tracks, err := l.store.Tracks(ctx, lm.MeetingID)
	if err != nil {
		return err
	}
	m, err := l.store.Meeting(ctx, lm.MeetingID)
	if err != nil {
		return err
	}
	// The lost node's tracks were created before it stopped, within a
	// heartbeat of its last one; the meeting's next node, which took it
	// over at least NodeTimeout after, records newer ones.
	before := lm.LastBeat.Add(l.cfg.NodeTimeout / 2)
	// The node died after its last heartbeat, and before it could have
	// been found silent: the stretch up to then is stated as lost, an
	// upper bound (no node can say when exactly it died).
	lostReason := recorder.LostRecorder{At: lm.LastBeat.Add(l.cfg.NodeTimeout),
		Reason: fmt.Sprintf("media node %s lost at %s", lm.Node, lm.LastBeat.Format(time.RFC3339))}
	for _, t := range tracks {
		if t.State != store.TrackRecording || t.CreatedAt.After(before) {
			continue
		}
		if !due {
			return nil // waits for the node or for RecoverAfter
		}
		lost := lostReason
		if next, ok := nextSegment(tracks, t); ok && !m.StartedAt.IsZero() {
			// The participant was back on another node by then.
			lost.At = minTime(lost.At, m.StartedAt.Add(time.Duration(next)*time.Millisecond))
		}
		if err := l.rec.RecoverLost(ctx, t, lost); err != nil {
			// Tried again at the next round: the loss stays unsettled.
			return fmt.Errorf("recover track %s of meeting %s from its checkpoints: %w", t.ID, lm.MeetingID, err)
		}
		l.cfg.Logger.Info("recovered a lost node's track from its checkpoints", "meeting", lm.MeetingID, "track", t.ID,
			"identity", t.Identity, "node", lm.Node)
	}
	return l.settler.SettleLostMedia(ctx, lm.MeetingID, lm.Node)
}

// nextSegment is where t's participant's next track segment starts on the
// meeting clock.
func nextSegment(tracks []store.Track, t store.Track) (int64, bool) {
	var (
		next  int64
		found bool
	)
	for _, o := range tracks {
		if o.Identity == t.Identity && o.StartMS > t.StartMS && (!found || o.StartMS < next) {
			next, found = o.StartMS, true
		}
	}
	return next, found
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
