package meeting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greffier/greffier/captions"
	"github.com/greffier/greffier/internal/backend"
	"github.com/greffier/greffier/internal/store"
)

// relayChannel is the Postgres notification channel of media controls.
const relayChannel = "greffier_media"

// LocalMedia is this node's media server (*sfu.SFU): what the host's
// controls act on.
type LocalMedia interface {
	EndMeeting(ctx context.Context, meetingID string) error
	Disconnect(ctx context.Context, meetingID, identity, tokenID string) (int, error)
}

// Captions is this node's live captions hub (*captions.Hub): what the
// host's controls on captions act on.
type Captions interface {
	SetEnabled(meetingID string, on bool)
	EndFollower(meetingID, identity, tokenID string) int
}

// Gate applies a meeting's recording switches, as stored, to the tracks
// this node holds (*Tap).
type Gate interface {
	Apply(ctx context.Context, meetingID string) error
	ApplyAll(ctx context.Context) error
}

// Relay carries the host's controls on live media (ending a meeting,
// disconnecting a participant whose token was revoked, turning captions
// on or off, a recording switch or a participant's consent) to every node over Postgres LISTEN/NOTIFY, so that the API
// of any node acts on the node that holds the meeting's media. Each node
// acts on what it holds; the others have nothing to close. It implements
// Media and api.Sessions.
//
// A notification reaches only the nodes listening at the moment it is
// sent: a node that is reconnecting misses it. Ending a meeting is also
// in the database (its state), which the owner's joins read; a missed
// disconnection leaves a revoked participant connected until they leave
// (their token can join no more); recording switches are in the database
// too, and a node applies them all each time it listens again.
type Relay struct {
	pool     *pgxpool.Pool
	local    LocalMedia
	captions Captions // nil without captions
	gate     Gate     // nil: switches are not applied here
	self     string
	log      *slog.Logger

	stop context.CancelFunc
	done sync.WaitGroup
	// listening is closed once the first LISTEN is in place.
	listening chan struct{}
}

// relayed is one notification.
type relayed struct {
	Op       string `json:"op"` // "end", "disconnect", "captions" or "switches"
	From     string `json:"from"`
	Meeting  string `json:"meeting"`
	Identity string `json:"identity,omitempty"`
	Token    string `json:"token,omitempty"`
	On       bool   `json:"on,omitempty"` // for "captions"
}

// NewRelay relays controls from and to node self through pool. local may
// be nil on a node without media: it then only sends; hub is nil without
// live captions; gate applies recording switches to the tracks held here
// (nil on a node that records nothing).
func NewRelay(pool *pgxpool.Pool, local LocalMedia, hub Captions, gate Gate, self string, logger *slog.Logger) (*Relay, error) {
	if pool == nil || self == "" || logger == nil {
		return nil, errors.New("meeting: NewRelay needs a Postgres pool, a node id and a logger")
	}
	return &Relay{pool: pool, local: local, captions: hub, gate: gate, self: self, log: logger, listening: make(chan struct{})}, nil
}

// Start listens for other nodes' controls until Stop, returning once the
// first LISTEN is in place (or ctx ends), so that a node that has started
// hears every control sent after.
func (r *Relay) Start(ctx context.Context) error {
	if r.local == nil {
		close(r.listening)
		return nil
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.stop = cancel
	r.done.Add(1)
	go func() {
		defer r.done.Done()
		r.run(lctx)
	}()
	select {
	case <-r.listening:
		return nil
	case <-ctx.Done():
		r.Stop()
		return fmt.Errorf("listen for media controls: %w", ctx.Err())
	}
}

// Stop ends listening; idempotent.
func (r *Relay) Stop() {
	if r.stop != nil {
		r.stop()
		r.done.Wait()
	}
}

func (r *Relay) run(ctx context.Context) {
	wait := backend.Backoff{Base: 100 * time.Millisecond, Max: 5 * time.Second}
	first, fails := true, 0
	for ctx.Err() == nil {
		err := r.listen(ctx, func() {
			fails = 0
			if first {
				first = false
				close(r.listening)
			}
		})
		if ctx.Err() != nil {
			return
		}
		fails++
		r.log.Warn("listening for media controls from other nodes", "err", err)
		t := time.NewTimer(wait.Delay(fails))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// listen holds one connection LISTENing, acting on each notification,
// until it fails or ctx ends.
func (r *Relay) listen(ctx context.Context, listening func()) error {
	pooled, err := r.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A connection that LISTENed must not go back to serve other queries.
	conn := pooled.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+relayChannel); err != nil {
		return err
	}
	listening()
	if r.gate != nil {
		// A switch told while this node was not listening was missed:
		// the stored switches are applied now, lest a stopped recording
		// go on here.
		if err := r.gate.ApplyAll(ctx); err != nil {
			r.log.Error("applying the stored recording switches", "err", err)
		}
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var m relayed
		if err := json.Unmarshal([]byte(n.Payload), &m); err != nil {
			r.log.Warn("unreadable media control", "payload", n.Payload, "err", err)
			continue
		}
		if m.From == r.self {
			continue
		}
		// Off the listening connection: ending a meeting waits for its
		// recordings to be stored.
		r.done.Add(1)
		go func() {
			defer r.done.Done()
			r.act(context.WithoutCancel(ctx), m)
		}()
	}
}

func (r *Relay) act(ctx context.Context, m relayed) {
	var err error
	switch m.Op {
	case "end":
		err = r.local.EndMeeting(ctx, m.Meeting)
	case "disconnect":
		if r.captions != nil {
			r.captions.EndFollower(m.Meeting, m.Identity, m.Token)
		}
		_, err = r.local.Disconnect(ctx, m.Meeting, m.Identity, m.Token)
	case "captions":
		if r.captions != nil {
			r.captions.SetEnabled(m.Meeting, m.On)
		}
	case "switches":
		if r.gate != nil {
			err = r.gate.Apply(ctx, m.Meeting)
		}
	default:
		err = fmt.Errorf("unknown operation %q", m.Op)
	}
	if err != nil {
		r.log.Error("media control from another node", "op", m.Op, "meeting", m.Meeting, "from", m.From, "err", err)
	}
}

func (r *Relay) send(ctx context.Context, m relayed) error {
	m.From = r.self
	payload, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := r.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, relayChannel, string(payload)); err != nil {
		return fmt.Errorf("tell the other nodes to %s meeting %s: %w", m.Op, m.Meeting, err)
	}
	return nil
}

// EndMeeting ends the meeting's media here (waiting for its recordings
// when this node holds them) and on every other node (without waiting).
func (r *Relay) EndMeeting(ctx context.Context, meetingID string) error {
	var errs []error
	if r.local != nil {
		errs = append(errs, r.local.EndMeeting(ctx, meetingID))
	}
	errs = append(errs, r.send(ctx, relayed{Op: "end", Meeting: meetingID}))
	return errors.Join(errs...)
}

// Disconnect closes identity's sessions here and on every other node; the
// count is this node's.
func (r *Relay) Disconnect(ctx context.Context, meetingID, identity, tokenID string) (int, error) {
	var (
		n    int
		errs []error
	)
	if r.local != nil {
		var err error
		n, err = r.local.Disconnect(ctx, meetingID, identity, tokenID)
		errs = append(errs, err)
	}
	errs = append(errs, r.send(ctx, relayed{Op: "disconnect", Meeting: meetingID, Identity: identity, Token: tokenID}))
	return n, errors.Join(errs...)
}

// SetCaptions turns a meeting's live captions on or off here and on every
// other node: the one holding its media makes them.
func (r *Relay) SetCaptions(ctx context.Context, meetingID string, on bool) error {
	if r.captions != nil {
		r.captions.SetEnabled(meetingID, on)
	}
	return r.send(ctx, relayed{Op: "captions", Meeting: meetingID, On: on})
}

// RelayedCaptions is a captions hub whose switch is relayed to every node
// (the API's CaptionHub, with several nodes).
type RelayedCaptions struct {
	*captions.Hub
	Relay *Relay
}

// SetEnabled turns captions on or off on every node; a failure to tell the
// others is logged (the setting is stored, and tracks opened later read it).
func (c RelayedCaptions) SetEnabled(meetingID string, on bool) {
	if err := c.Relay.SetCaptions(context.Background(), meetingID, on); err != nil {
		c.Relay.log.Error("captions switch not relayed to the other nodes", "meeting", meetingID, "err", err)
	}
}

// Switcher sets a meeting's recording switches on this node (*Tap): it
// stores the switch and applies it to the tracks held here.
type Switcher interface {
	SetControl(ctx context.Context, meetingID string, kind store.ControlKind, identity string, on bool) (store.ControlLog, error)
}

// RelayedSwitches sets a recording switch or a participant's consent here
// and tells every other node to apply it (the API's Switches, with several
// nodes): the node that holds the meeting's media stops or starts its
// recordings when the notification reaches it, a few milliseconds after
// the instant the switch states.
type RelayedSwitches struct {
	Switcher
	Relay *Relay
}

// SetControl stores and applies the switch here, then tells the others.
// A switch that is stored but could not be told is returned with the
// error (the API answers it, and says it was not applied everywhere).
func (s RelayedSwitches) SetControl(ctx context.Context, meetingID string, kind store.ControlKind, identity string, on bool) (store.ControlLog, error) {
	l, err := s.Switcher.SetControl(ctx, meetingID, kind, identity, on)
	if l == nil || kind == store.ControlTranscription {
		return l, err
	}
	return l, errors.Join(err, s.Relay.send(ctx, relayed{Op: "switches", Meeting: meetingID}))
}
