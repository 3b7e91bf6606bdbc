package meeting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"sync"
	"time"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/livekit"
	"github.com/greffier/greffier/recorder"
)

// RoomSource joins LiveKit rooms and records them (*livekit.Source).
type RoomSource interface {
	// Record joins room for the meeting (nothing if joined already).
	Record(ctx context.Context, meetingID, room string) error
	// RoomExists says whether LiveKit has the room open.
	RoomExists(ctx context.Context, room string) (bool, error)
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
	Logger     *slog.Logger
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
	// mu makes "the room's meeting, or a new one" one step in this
	// process: a webhook and an API call for the same room at once get one
	// meeting (the store's transaction alone would not stop two on
	// Postgres).
	mu sync.Mutex
}

// NewRooms records rooms through source and ends their meetings through ender.
func NewRooms(cfg RoomsConfig, st *store.Store, source RoomSource, ender Ender) (*Rooms, error) {
	if st == nil || source == nil || ender == nil {
		return nil, errors.New("meeting: NewRooms needs a store, a room source and an ender")
	}
	if _, err := path.Match(cfg.AutoRecord, ""); err != nil {
		return nil, fmt.Errorf("meeting: the LiveKit auto-record pattern %q is malformed: %w", cfg.AutoRecord, err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Rooms{store: st, source: source, ender: ender, auto: cfg.AutoRecord, log: cfg.Logger}, nil
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
	if err := r.source.Record(ctx, m.ID, room); err != nil {
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

// Resume joins again the rooms of the meetings still live, after a
// restart: their tracks start new segments, and what the crash cut is
// in the recovered ones. A room LiveKit closed meanwhile ends its meeting.
func (r *Rooms) Resume(ctx context.Context) error {
	rooms, err := r.store.LiveLiveKitRooms(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, lk := range rooms {
		open, err := r.source.RoomExists(ctx, lk.Room)
		switch {
		case err != nil:
			errs = append(errs, err)
		case !open:
			r.log.Info("the LiveKit room closed while Greffier was down: its meeting ends", "meeting", lk.MeetingID, "room", lk.Room)
			errs = append(errs, r.end(ctx, lk.MeetingID))
		default:
			if err := r.source.Record(ctx, lk.MeetingID, lk.Room); err != nil {
				errs = append(errs, err)
				continue
			}
			errs = append(errs, r.stateDowntime(ctx, lk.MeetingID))
		}
	}
	return errors.Join(errs...)
}

// downtimeReason says why a LiveKit participant's speech is missing
// between a crash and the room's rejoining.
const downtimeReason = "the server restarted: what LiveKit sent while it was down was not received"

// stateDowntime records, for each participant whose last track a crash
// cut (a recovered track), that nothing of theirs was received from that
// track's end until now, when the room is joined again: unlike the SFU's
// participants, who reconnect, LiveKit's went on speaking to LiveKit.
func (r *Rooms) stateDowntime(ctx context.Context, meetingID string) error {
	m, err := r.store.Meeting(ctx, meetingID)
	if err != nil || m.StartedAt.IsZero() {
		return err
	}
	tracks, err := r.store.Tracks(ctx, meetingID)
	if err != nil {
		return err
	}
	last := map[string]store.Track{}
	for _, t := range tracks {
		if l, ok := last[t.Identity]; !ok || t.StartMS >= l.StartMS {
			last[t.Identity] = t
		}
	}
	now := time.Since(m.StartedAt).Milliseconds()
	var errs []error
	for _, t := range last {
		end := t.StartMS + t.DurationMS + t.GapMS
		if t.State != store.TrackRecovered || end >= now {
			continue
		}
		errs = append(errs, r.store.RecordGap(ctx, store.TrackGap{TrackID: t.ID, MeetingID: meetingID, Identity: t.Identity,
			StartMS: end, EndMS: now, Reason: downtimeReason}))
	}
	return errors.Join(errs...)
}

// RoomTap records the tracks of LiveKit rooms (livekit.Tap) through the
// gate that records the SFU's: the recording switches and consents hold
// for LiveKit meetings too.
type RoomTap struct{ tap *Tap }

// NewRoomTap records LiveKit rooms' tracks through tap.
func NewRoomTap(tap *Tap) RoomTap { return RoomTap{tap: tap} }

// OpenTrack starts gating a subscribed track.
func (t RoomTap) OpenTrack(ctx context.Context, tr livekit.Track) (livekit.TrackTap, error) {
	g, err := t.tap.open(ctx, recorder.Track{MeetingID: tr.MeetingID, Identity: tr.Identity, SSRC: tr.SSRC,
		ClockRate: tr.ClockRate, PayloadType: tr.PayloadType, ClockZero: tr.ClockZero, FirstPacketAt: tr.FirstPacketAt})
	if err != nil {
		return nil, err // not a nil *gatedTrack in a non-nil interface
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
