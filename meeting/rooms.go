package meeting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"sync"
	"time"

	"github.com/greffier/greffier/internal/backend"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/livekit"
	"github.com/greffier/greffier/recorder"
	"github.com/greffier/greffier/sfu"
)

// Meeting events of the recorder's connection to a LiveKit room: lost at
// their time (the recorder retries until it is back), and back.
const (
	EventLiveKitLost     = "livekit_connection_lost"
	EventLiveKitRestored = "livekit_connection_restored"
)

// RoomSource joins LiveKit rooms and records them (*livekit.Source).
type RoomSource interface {
	// Record joins room for the meeting (nothing if joined already).
	Record(ctx context.Context, meetingID, room string) error
	// RoomExists says whether LiveKit has the room open.
	RoomExists(ctx context.Context, room string) (bool, error)
	// Connected says whether the meeting's room is joined (or being joined).
	Connected(meetingID string) bool
	// Joined lists the meetings whose rooms are joined.
	Joined() []string
	// EndMeeting leaves the meeting's room, storing its tracks.
	EndMeeting(ctx context.Context, meetingID string) error
}

// Owner says whether this node records a meeting's room (*Placement: the
// node a meeting's media is placed on, the least loaded live SFU node
// taking over a lost node's).
type Owner interface {
	Place(ctx context.Context, meetingID string) error
}

// Ender ends a meeting (*Lifecycle).
type Ender interface {
	EndMeeting(ctx context.Context, meetingID string) (store.Meeting, error)
}

// RoomsConfig says which LiveKit rooms are recorded without being asked.
type RoomsConfig struct {
	// AutoRecord is the pattern (path.Match syntax: "*" for every room)
	// of the rooms recorded as soon as LiveKit says they started; ""
	// records only the rooms the API asks for.
	AutoRecord string
	// Owner places each meeting's room on one node; nil: this process
	// records every room (one process on its database).
	Owner Owner
	// Self names this node in the minutes' reasons; SelfURL is its URL
	// as its heartbeats give it: a meeting placed on an earlier process at
	// that URL (this node before a restart) is taken over at once.
	Self, SelfURL string
	// Interval is how often the rooms of live meetings are checked: joined
	// by their owner, again after a lost connection (default 1 s).
	Interval time.Duration
	// Retry spaces the tries to join a room that failed (default 1 s
	// doubling up to 30 s).
	Retry  backend.Backoff
	Logger *slog.Logger
}

// Rooms is the life of meetings held in LiveKit rooms: one meeting per
// room while it is open, started by the API or by LiveKit's room_started
// webhook, ended when LiveKit closes the room (webhook or the recorder's
// disconnection, whichever comes first) or by the API, and joined again
// when Greffier restarts during it.
type Rooms struct {
	store  *store.Store
	source RoomSource
	ender  Ender
	auto   string
	log    *slog.Logger
	cfg    RoomsConfig
	gaps   *RoomGaps
	// tries counts the failed joins of each meeting's room since it was
	// last joined, and when the next may start (the watch's goroutine only).
	tries map[string]joinTry

	stop context.CancelFunc
	done sync.WaitGroup
	// mu makes "the room's meeting, or a new one" one step in this
	// process: a webhook and an API call for the same room at once get one
	// meeting (the store's transaction alone would not stop two on
	// Postgres).
	mu sync.Mutex
}

// joinTry is the failed joins of one room.
type joinTry struct {
	n    int
	next time.Time
}

// NewRooms records rooms through source and ends their meetings through
// ender; gaps (nil: none) states what the recorder's absences cut.
func NewRooms(cfg RoomsConfig, st *store.Store, source RoomSource, ender Ender, gaps *RoomGaps) (*Rooms, error) {
	if st == nil || source == nil || ender == nil {
		return nil, errors.New("meeting: NewRooms needs a store, a room source and an ender")
	}
	if gaps == nil {
		gaps = NewRoomGaps(st, cfg.Logger)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Retry.Base <= 0 || cfg.Retry.Max <= 0 {
		cfg.Retry = backend.Backoff{Base: time.Second, Max: 30 * time.Second}
	}
	if _, err := path.Match(cfg.AutoRecord, ""); err != nil {
		return nil, fmt.Errorf("meeting: the LiveKit auto-record pattern %q is malformed: %w", cfg.AutoRecord, err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Rooms{store: st, source: source, ender: ender, auto: cfg.AutoRecord, log: cfg.Logger, cfg: cfg, gaps: gaps,
		tries: map[string]joinTry{}}, nil
}

// Record records room as a meeting, or returns the meeting already
// recording it (created is then false). A room Greffier could not join
// ends its new meeting at once, with nothing recorded, so that no meeting
// waits for a room nobody records; the error says why.
func (r *Rooms) Record(ctx context.Context, room, title, language, createdBy string) (m store.Meeting, created bool, err error) {
	if title == "" {
		title = room
	}
	r.mu.Lock()
	m, created, err = r.store.RecordLiveKitRoom(ctx, room, title, language, createdBy)
	r.mu.Unlock()
	if err != nil {
		return m, false, err
	}
	mine, err := r.owns(ctx, m.ID)
	if err == nil && !mine {
		// Its owner joins the room at its next check.
		return m, created, nil
	}
	if err == nil {
		err = r.source.Record(ctx, m.ID, room)
	}
	if err != nil {
		if created {
			if ended, eerr := r.ender.EndMeeting(context.WithoutCancel(ctx), m.ID); eerr == nil {
				m = ended
			}
		}
		return m, created, err
	}
	return m, created, nil
}

// AutoRecords says whether room is recorded as soon as it starts.
func (r *Rooms) AutoRecords(room string) bool {
	ok, _ := path.Match(r.auto, room) // checked by NewRooms
	return r.auto != "" && ok
}

// RoomStarted records room if it is to be recorded without being asked;
// ok says whether it is.
func (r *Rooms) RoomStarted(ctx context.Context, room string) (m store.Meeting, ok bool, err error) {
	if !r.AutoRecords(room) {
		return m, false, nil
	}
	m, _, err = r.Record(ctx, room, "", "", "")
	return m, err == nil, err
}

// RoomFinished ends the meeting recording room, if there is one.
func (r *Rooms) RoomFinished(ctx context.Context, room string) error {
	id, err := r.store.LiveKitMeeting(ctx, room)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return r.end(ctx, id)
}

// Finished ends a meeting whose room LiveKit closed (livekit.Source's
// callback).
func (r *Rooms) Finished(meetingID string) {
	if err := r.end(context.Background(), meetingID); err != nil {
		r.log.Error("could not end the meeting of a closed LiveKit room", "meeting", meetingID, "err", err)
	}
}

// end ends a meeting, unless it has ended already (the webhook and the
// disconnection both say so).
func (r *Rooms) end(ctx context.Context, meetingID string) error {
	_, err := r.ender.EndMeeting(ctx, meetingID)
	if te := (*store.TransitionError)(nil); errors.As(err, &te) {
		return nil
	}
	return err
}

// owns says whether this node records the meeting's room, placing it
// (on the least loaded live SFU node) when no live node has it.
func (r *Rooms) owns(ctx context.Context, meetingID string) (bool, error) {
	if r.cfg.Owner == nil {
		return true, nil
	}
	if r.cfg.SelfURL != "" {
		owner, err := r.store.MeetingNode(ctx, meetingID)
		if err != nil {
			return false, err
		}
		if owner.ID != "" && owner.ID != r.cfg.Self && owner.URL == r.cfg.SelfURL {
			// Two live nodes never share a URL: the owner is this node's
			// previous process, whose heartbeat has not gone stale yet.
			if _, err := r.store.PlaceMeeting(ctx, meetingID, r.cfg.Self, time.Now().Add(time.Minute)); err != nil {
				return false, err
			}
		}
	}
	err := r.cfg.Owner.Place(ctx, meetingID)
	if _, moved := errors.AsType[*sfu.MovedError](err); moved {
		return false, nil
	}
	return err == nil, err
}

// Start checks the rooms of live meetings every Interval until Stop, so
// that each is recorded by its owner: joined when placed here, taken over
// from a lost node, joined again (with backoff) when the connection to
// LiveKit was lost for longer than the SDK retries, left when the meeting
// ended on another node or moved away. The first check is Resume's.
func (r *Rooms) Start(ctx context.Context) error {
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.stop = cancel
	r.done.Add(1)
	go func() {
		defer r.done.Done()
		t := time.NewTicker(r.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
			}
			if err := r.check(wctx, false); err != nil && wctx.Err() == nil {
				r.log.Warn("checking the LiveKit rooms of live meetings", "err", err)
			}
		}
	}()
	return nil
}

// Stop ends the checks; idempotent.
func (r *Rooms) Stop() {
	if r.stop != nil {
		r.stop()
		r.done.Wait()
	}
}

// Resume joins again the rooms of the meetings still live that this node
// records, after a restart: their tracks start new segments, and what the
// crash cut is in the recovered ones. A room LiveKit closed meanwhile ends
// its meeting.
func (r *Rooms) Resume(ctx context.Context) error { return r.check(ctx, true) }

// check is one pass over the rooms of live meetings; now joins at once
// the rooms whose joins wait for their backoff.
func (r *Rooms) check(ctx context.Context, now bool) error {
	// Joined before the live meetings: a room joined after is not left
	// for a meeting created after the list was read.
	joined := r.source.Joined()
	rooms, err := r.store.LiveLiveKitRooms(ctx)
	if err != nil {
		return err
	}
	live := map[string]bool{}
	var errs []error
	for _, lk := range rooms {
		live[lk.MeetingID] = true
		errs = append(errs, r.keep(ctx, lk, now))
	}
	for _, id := range joined {
		if !live[id] {
			// Ended through another node's API: its media is left here.
			errs = append(errs, r.source.EndMeeting(ctx, id))
		}
	}
	for id := range r.tries {
		if !live[id] {
			delete(r.tries, id)
		}
	}
	r.gaps.forget(live)
	return errors.Join(errs...)
}

// keep makes one live meeting's room recorded here if, and only if, this
// node owns it.
func (r *Rooms) keep(ctx context.Context, lk store.LiveKitRoom, now bool) error {
	mine, err := r.owns(ctx, lk.MeetingID)
	if err != nil {
		return err
	}
	if !mine {
		if r.source.Connected(lk.MeetingID) {
			// Placed on another node meanwhile (this one was found
			// silent): one recorder per room.
			r.log.Warn("a LiveKit room this node recorded is another node's now: leaving it", "meeting", lk.MeetingID, "room", lk.Room)
			return r.source.EndMeeting(ctx, lk.MeetingID)
		}
		return nil
	}
	if r.source.Connected(lk.MeetingID) {
		delete(r.tries, lk.MeetingID)
		return nil
	}
	try := r.tries[lk.MeetingID]
	if !now && time.Now().Before(try.next) {
		return nil
	}
	if err := r.rejoin(ctx, lk); err != nil {
		try.n++
		try.next = time.Now().Add(r.cfg.Retry.Delay(try.n))
		r.tries[lk.MeetingID] = try
		return fmt.Errorf("join LiveKit room %q again (try %d, next in %v): %w", lk.Room, try.n, time.Until(try.next).Round(time.Millisecond), err)
	}
	delete(r.tries, lk.MeetingID)
	return nil
}

// rejoin joins a live meeting's room that this node does not record: what
// the recorder's absence cut is stated as each participant comes back.
func (r *Rooms) rejoin(ctx context.Context, lk store.LiveKitRoom) error {
	open, err := r.source.RoomExists(ctx, lk.Room)
	if err != nil {
		return err
	}
	if !open {
		r.log.Info("the LiveKit room closed while nobody recorded it: its meeting ends", "meeting", lk.MeetingID, "room", lk.Room)
		return r.end(ctx, lk.MeetingID)
	}
	if err := r.gaps.absent(ctx, lk.MeetingID, r.cfg.Self); err != nil {
		return err
	}
	if err := r.source.Record(ctx, lk.MeetingID, lk.Room); err != nil {
		return err
	}
	r.gaps.restored(ctx, lk.MeetingID)
	return nil
}

// downtimeReason says why a LiveKit participant's speech is missing while
// no recorder was in the room.
const downtimeReason = "the recorder of this LiveKit room stopped (a restart, or its node was lost): what LiveKit sent while it was down was not received"

// lostReason says why a LiveKit participant's speech is missing while the
// recorder's connection to LiveKit was lost.
const lostReason = "the LiveKit connection was lost"

// RoomGaps states in the minutes what a LiveKit room's participants said
// while nobody recorded them: from when the recorder lost them (its
// connection lost, its process restarted or its node lost) to their new
// track's first packet, when they are heard again. Unlike the SFU's
// participants, who reconnect, LiveKit's went on speaking to LiveKit. It
// also logs the connection's losses and returns in the meeting's events.
type RoomGaps struct {
	store *store.Store
	log   *slog.Logger

	mu sync.Mutex
	// pending: by meeting, by identity, since when they were not heard.
	pending map[string]map[string]absence
}

type absence struct {
	since  time.Time
	reason string
}

// NewRoomGaps states gaps in st.
func NewRoomGaps(st *store.Store, logger *slog.Logger) *RoomGaps {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &RoomGaps{store: st, log: logger, pending: map[string]map[string]absence{}}
}

// Outage takes in a change of a room's connection (livekit.Config.Outages).
func (g *RoomGaps) Outage(o livekit.Outage) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g.mu.Lock()
	p := g.pending[o.MeetingID]
	if p == nil {
		p = map[string]absence{}
		g.pending[o.MeetingID] = p
	}
	if o.Restored {
		for _, id := range o.Identities { // their tracks went on
			delete(p, id)
		}
	} else {
		for _, id := range o.Identities {
			if _, ok := p[id]; !ok {
				p[id] = absence{since: o.Since, reason: lostReason}
			}
		}
	}
	g.mu.Unlock()
	switch {
	case o.Restored:
		g.event(ctx, o.MeetingID, EventLiveKitRestored, time.Now())
	case !o.GaveUp:
		g.event(ctx, o.MeetingID, EventLiveKitLost, o.Since)
	}
}

// restored logs the connection's return after a join.
func (g *RoomGaps) restored(ctx context.Context, meetingID string) {
	g.mu.Lock()
	_, lost := g.pending[meetingID]
	g.mu.Unlock()
	if lost {
		g.event(ctx, meetingID, EventLiveKitRestored, time.Now())
	}
}

// event logs a connection event unless the meeting has not started.
func (g *RoomGaps) event(ctx context.Context, meetingID, kind string, at time.Time) {
	m, err := g.store.Meeting(ctx, meetingID)
	if err == nil && !m.StartedAt.IsZero() {
		err = g.store.AddEvent(ctx, store.Event{MeetingID: meetingID, AtMS: max(0, at.Sub(m.StartedAt).Milliseconds()), Kind: kind})
	}
	if err != nil {
		g.log.Error("could not log a LiveKit connection event", "meeting", meetingID, "kind", kind, "err", err)
	}
}

// absent notes, before a room is joined by a recorder that was not in it,
// since when each participant whose last track was cut went unheard: the
// end of a track a crash cut (recovered), or, for a track a lost node
// left recording, that node's last heartbeat (the lost node's recovery
// states the stretch from its last checkpoint).
func (g *RoomGaps) absent(ctx context.Context, meetingID, self string) error {
	m, err := g.store.Meeting(ctx, meetingID)
	if err != nil || m.StartedAt.IsZero() {
		return err
	}
	tracks, err := g.store.Tracks(ctx, meetingID)
	if err != nil {
		return err
	}
	lost, err := g.store.MediaLost(ctx, meetingID)
	if err != nil {
		return err
	}
	last := map[string]store.Track{}
	for _, t := range tracks {
		if l, ok := last[t.Identity]; !ok || t.StartMS >= l.StartMS {
			last[t.Identity] = t
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.pending[meetingID]
	if p == nil {
		p = map[string]absence{}
		g.pending[meetingID] = p
	}
	for id, t := range last {
		if _, ok := p[id]; ok {
			continue // lost with the connection, in this process
		}
		switch {
		case t.State == store.TrackRecovered:
			p[id] = absence{since: m.StartedAt.Add(time.Duration(t.StartMS+t.DurationMS+t.GapMS) * time.Millisecond), reason: downtimeReason}
		case t.State == store.TrackRecording && lost.Node != "" && lost.Node != self:
			p[id] = absence{since: lost.LastBeat, reason: fmt.Sprintf("media node %s lost at %s: the LiveKit room was joined again by node %s",
				lost.Node, lost.LastBeat.Format(time.RFC3339), self)}
		}
	}
	return nil
}

// heard states the gap of a participant heard again, at their new track's
// first packet.
func (g *RoomGaps) heard(ctx context.Context, tr livekit.Track) {
	g.mu.Lock()
	a, ok := g.pending[tr.MeetingID][tr.Identity]
	delete(g.pending[tr.MeetingID], tr.Identity)
	g.mu.Unlock()
	if !ok {
		return
	}
	start, end := a.since.Sub(tr.ClockZero).Milliseconds(), tr.FirstPacketAt.Sub(tr.ClockZero).Milliseconds()
	if end <= start {
		return
	}
	tracks, err := g.store.Tracks(ctx, tr.MeetingID)
	if err != nil {
		g.log.Error("could not state a LiveKit participant's absence", "meeting", tr.MeetingID, "identity", tr.Identity, "err", err)
		return
	}
	// The gap belongs to the track it follows: the last that started
	// before the absence did. Not one that starts at its end: the new
	// track's row may already be stored, a few milliseconds before the
	// first packet that ends the absence, and a gap held by a track it
	// lies before is not a stretch of that track.
	start = max(start, 0)
	var prev store.Track
	for _, t := range tracks {
		if t.Identity == tr.Identity && t.StartMS <= start && (prev.ID == "" || t.StartMS > prev.StartMS) {
			prev = t
		}
	}
	if prev.ID == "" {
		return
	}
	if err := g.store.RecordGap(ctx, store.TrackGap{TrackID: prev.ID, MeetingID: tr.MeetingID, Identity: tr.Identity,
		StartMS: start, EndMS: end, Reason: a.reason}); err != nil {
		g.log.Error("could not state a LiveKit participant's absence", "meeting", tr.MeetingID, "identity", tr.Identity, "err", err)
	}
}

// forget drops the absences of meetings no longer live.
func (g *RoomGaps) forget(live map[string]bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for id := range g.pending {
		if !live[id] {
			delete(g.pending, id)
		}
	}
}

// RoomTap records the tracks of LiveKit rooms (livekit.Tap) through the
// gate that records the SFU's: the recording switches and consents hold
// for LiveKit meetings too. gaps states what each participant's absence
// cut when heard again.
type RoomTap struct {
	tap  *Tap
	gaps *RoomGaps
}

// NewRoomTap records LiveKit rooms' tracks through tap, gaps stating what
// each participant's absence cut when heard again.
func NewRoomTap(tap *Tap, gaps *RoomGaps) RoomTap { return RoomTap{tap: tap, gaps: gaps} }

// OpenTrack starts gating a subscribed track.
func (t RoomTap) OpenTrack(ctx context.Context, tr livekit.Track) (livekit.TrackTap, error) {
	g, err := t.tap.open(ctx, recorder.Track{MeetingID: tr.MeetingID, Identity: tr.Identity, SSRC: tr.SSRC,
		ClockRate: tr.ClockRate, PayloadType: tr.PayloadType, ClockZero: tr.ClockZero, FirstPacketAt: tr.FirstPacketAt})
	if err != nil {
		return nil, err // not a nil *gatedTrack in a non-nil interface
	}
	if t.gaps != nil {
		t.gaps.heard(ctx, tr)
	}
	return g, nil
}

// Medias ends a meeting in every media that may hold it (the SFU and the
// LiveKit source), together (Media).
type Medias []Media

// EndMeeting ends the meeting in each, and returns once each has.
func (ms Medias) EndMeeting(ctx context.Context, meetingID string) error {
	var errs []error
	for _, m := range ms {
		errs = append(errs, m.EndMeeting(ctx, meetingID))
	}
	return errors.Join(errs...)
}

// Presence says whether anyone is connected to a meeting's media.
type Presence interface{ Connected(meetingID string) bool }

// Presences is connected when any of its presences is.
type Presences []Presence

// Connected reports whether any says the meeting has someone connected.
func (ps Presences) Connected(meetingID string) bool {
	for _, p := range ps {
		if p.Connected(meetingID) {
			return true
		}
	}
	return false
}
