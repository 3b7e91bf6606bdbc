// Package livekit records meetings held in LiveKit rooms: Greffier joins a
// room as a hidden participant that publishes nothing, subscribes to every
// remote audio track and hands each one, the Opus RTP as received (never
// transcoded), to a Tap, the seam the recorder sits behind as it does for
// Greffier's own SFU. It also reads LiveKit's signed webhooks. It knows
// no store, no recorder and no pipeline: the meeting package decides
// which rooms to record and what their end means.
package livekit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livekit/protocol/auth"
	lkproto "github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// DefaultIdentity is the identity Greffier joins rooms with.
const DefaultIdentity = "greffier-recorder"

// Config says which LiveKit deployment to join and as whom.
type Config struct {
	// URL is the LiveKit server's URL (ws:// or wss://, or http(s)://).
	URL string
	// APIKey and APISecret sign Greffier's join tokens and check
	// LiveKit's webhooks.
	APIKey, APISecret string
	// Identity is the recorder's participant identity. Default
	// DefaultIdentity; it is hidden from the room's participants.
	Identity string
	Logger   *slog.Logger
	// SDKLogger gets the LiveKit SDK's own logs and pion's under it
	// (default: Logger). The SDK logs connection steps at info level.
	SDKLogger *slog.Logger
	// Outages hears each loss and return of a room's connection, from a
	// goroutine of the SDK's (nil: nobody).
	Outages func(Outage)
}

// Outage is a change of the recorder's connection to a meeting's room.
type Outage struct {
	MeetingID, Room string
	// Since is when the connection was lost.
	Since time.Time
	// Restored: the connection is back (the SDK resumed it, or the room
	// was joined again); otherwise it was just lost.
	Restored bool
	// Identities are, at a loss, the participants whose tracks were being
	// recorded; at a return, those whose tracks went on through the loss
	// (the others come back, if at all, as new tracks).
	Identities []string
	// GaveUp: the SDK stopped reconnecting and the room is forgotten; it
	// is recorded again only when asked to (Record).
	GaveUp bool
}

func (c Config) validate() error {
	if c.URL == "" || c.APIKey == "" || c.APISecret == "" {
		return errors.New("livekit: URL, API key and API secret are all required: set GREFFIER_LIVEKIT_URL, GREFFIER_LIVEKIT_API_KEY and GREFFIER_LIVEKIT_API_SECRET")
	}
	return nil
}

// Meetings is what a Source needs of the meeting records (*store.Store).
type Meetings interface {
	// Join records identity in the meeting (its display name updated) and
	// returns the meeting clock's zero, set at the first join.
	Join(ctx context.Context, meetingID, identity, displayName string) (time.Time, error)
	// Rename changes a participant's display name.
	Rename(ctx context.Context, meetingID, identity, displayName string) error
}

// Track describes one subscribed audio track of a participant, from its
// first packet: what a Tap needs to open its recording.
type Track struct {
	MeetingID   string
	Identity    string
	DisplayName string
	SSRC        uint32
	ClockRate   uint32
	PayloadType uint8
	// ClockZero is the meeting clock's zero; FirstPacketAt the arrival of
	// the track's first packet.
	ClockZero, FirstPacketAt time.Time
}

// Tap records the tracks a Source receives (the recorder, through the
// meeting package).
type Tap interface {
	OpenTrack(ctx context.Context, t Track) (TrackTap, error)
}

// TrackTap receives one track's packets, from one goroutine.
type TrackTap interface {
	// WriteRTP must not retain p or its payload: both are reused.
	WriteRTP(p *rtp.Packet)
	// Close says the track ended; it returns once the recording is stored.
	Close(ctx context.Context) error
}

// SenderReportTap is what a TrackTap may also implement to get the
// publisher's RTCP sender reports (as LiveKit forwards them), from the
// goroutine that calls WriteRTP, just before the next packet.
type SenderReportTap interface {
	WriteSenderReport(ntp time.Time, rtpTime uint32)
}

// Source joins LiveKit rooms and records their audio, one room per meeting.
type Source struct {
	cfg      Config
	meetings Meetings
	tap      Tap
	log      *slog.Logger
	// finished is told, from a goroutine of its own, of a meeting whose
	// room LiveKit closed.
	finished func(meetingID string)

	mu    sync.Mutex
	rooms map[string]*room // by meeting id
	// tracks counts the tracks being recorded, for the metrics.
	tracks atomic.Int64
}

// New returns a Source recording into tap; finished is called when
// LiveKit closes a recorded room (nil: nothing is called).
func New(cfg Config, meetings Meetings, tap Tap, finished func(meetingID string)) (*Source, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Identity == "" {
		cfg.Identity = DefaultIdentity
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SDKLogger == nil {
		cfg.SDKLogger = cfg.Logger
	}
	// The SDK gives pion the logger of its package, not the room's: left
	// alone, pion's logs would go to the standard library's logger.
	lksdk.SetLogger(sdkLogger(cfg.SDKLogger))
	if finished == nil {
		finished = func(string) {}
	}
	if cfg.Outages == nil {
		cfg.Outages = func(Outage) {}
	}
	return &Source{cfg: cfg, meetings: meetings, tap: tap, log: cfg.Logger, finished: finished, rooms: map[string]*room{}}, nil
}

// token is the recorder's join token: it may join and subscribe, it may
// not publish anything, and the room's participants do not see it.
func (s *Source) token(roomName string) (string, error) {
	no := false
	yes := true
	at := auth.NewAccessToken(s.cfg.APIKey, s.cfg.APISecret).
		SetIdentity(s.cfg.Identity).SetName("Greffier").
		SetValidFor(24 * time.Hour).
		SetVideoGrant(&auth.VideoGrant{RoomJoin: true, Room: roomName, CanSubscribe: &yes,
			CanPublish: &no, CanPublishData: &no, Hidden: true})
	return at.ToJWT()
}

// Record joins roomName for meetingID, unless the meeting's room is joined
// already. It returns once joined; tracks are recorded as they come.
func (s *Source) Record(ctx context.Context, meetingID, roomName string) error {
	s.mu.Lock()
	if _, ok := s.rooms[meetingID]; ok {
		s.mu.Unlock()
		return nil
	}
	r := &room{src: s, meetingID: meetingID, name: roomName, names: map[string]string{}, reading: map[*reader]bool{}}
	s.rooms[meetingID] = r
	s.mu.Unlock()
	if err := r.join(ctx); err != nil {
		s.mu.Lock()
		delete(s.rooms, meetingID)
		s.mu.Unlock()
		return fmt.Errorf("join LiveKit room %q for meeting %s: %w", roomName, meetingID, err)
	}
	s.log.Info("recording LiveKit room", "meeting", meetingID, "room", roomName)
	return nil
}

// Connected reports whether the meeting's room is joined (the idle
// reaper leaves such a meeting alone: LiveKit says when it ends).
func (s *Source) Connected(meetingID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.rooms[meetingID]
	return ok
}

// Joined lists the meetings whose rooms are joined or being joined.
func (s *Source) Joined() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.rooms))
	for id := range s.rooms {
		out = append(out, id)
	}
	return out
}

// Recording counts the rooms joined and the tracks being recorded.
func (s *Source) Recording() (rooms, tracks int) {
	s.mu.Lock()
	rooms = len(s.rooms)
	s.mu.Unlock()
	return rooms, int(s.tracks.Load())
}

// EndMeeting leaves the meeting's room, if joined, and returns once each
// of its tracks is stored (meeting.Media).
func (s *Source) EndMeeting(ctx context.Context, meetingID string) error {
	s.mu.Lock()
	r := s.rooms[meetingID]
	delete(s.rooms, meetingID)
	s.mu.Unlock()
	if r == nil {
		return nil
	}
	return r.leave(ctx)
}

// Stop leaves every room, storing what was recorded, and keeps the
// meetings live: the next start joins their rooms again.
func (s *Source) Stop(ctx context.Context) error {
	s.mu.Lock()
	rooms := s.rooms
	s.rooms = map[string]*room{}
	s.mu.Unlock()
	var errs []error
	for _, r := range rooms {
		errs = append(errs, r.leave(ctx))
	}
	return errors.Join(errs...)
}

// RoomExists asks LiveKit whether roomName is open, so that a restart does
// not join (and so create again) a room that finished while Greffier was
// down.
func (s *Source) RoomExists(ctx context.Context, roomName string) (bool, error) {
	c := lksdk.NewRoomServiceClient(s.cfg.URL, s.cfg.APIKey, s.cfg.APISecret)
	res, err := c.ListRooms(ctx, &lkproto.ListRoomsRequest{Names: []string{roomName}})
	if err != nil {
		return false, fmt.Errorf("ask LiveKit for room %q: %w", roomName, err)
	}
	return len(res.GetRooms()) > 0, nil
}

// room is one joined LiveKit room.
type room struct {
	src       *Source
	meetingID string
	name      string
	lk        *lksdk.Room
	wg        sync.WaitGroup // the tracks' readers
	// stopNames stops watchNames, which closes namesDone.
	stopNames, namesDone chan struct{}
	stopOnce             sync.Once

	mu      sync.Mutex
	names   map[string]string // display name by identity, as last stored
	leaving bool
	// reading holds the tracks' readers; lostSince is when the
	// connection was lost (zero while connected).
	reading   map[*reader]bool
	lostSince time.Time
}

func (r *room) join(ctx context.Context) error {
	tok, err := r.src.token(r.name)
	if err != nil {
		return fmt.Errorf("sign the recorder's token: %w", err)
	}
	cb := lksdk.NewRoomCallback()
	cb.OnTrackSubscribed = r.subscribed
	cb.OnDisconnectedWithReason = r.disconnected
	cb.OnReconnecting = r.reconnecting
	cb.OnReconnected = r.reconnected
	lk := lksdk.NewRoom(cb)
	lk.SetLogger(sdkLogger(r.src.cfg.SDKLogger))
	r.stopNames, r.namesDone = make(chan struct{}), make(chan struct{})
	r.mu.Lock()
	r.lk = lk
	r.mu.Unlock()
	if err := lk.JoinWithContextAndToken(ctx, r.src.cfg.URL, tok); err != nil {
		close(r.namesDone) // no watcher to wait for
		return err
	}
	go r.watchNames(lk)
	r.mu.Lock()
	leaving := r.leaving
	r.mu.Unlock()
	if leaving {
		// The meeting ended while joining: leave's Disconnect may have
		// come before the connection was made.
		lk.Disconnect()
	}
	return nil
}

// nameCheck is how often participants' names are compared with the
// stored ones: the SDK updates a participant's name without a callback.
const nameCheck = time.Second

// watchNames stores participants' new display names until leave.
func (r *room) watchNames(lk *lksdk.Room) {
	defer close(r.namesDone)
	tick := time.NewTicker(nameCheck)
	defer tick.Stop()
	for {
		select {
		case <-r.stopNames:
			return
		case <-tick.C:
			for _, p := range lk.GetRemoteParticipants() {
				r.rename(p.Identity(), p.Name())
			}
		}
	}
}

// leave disconnects and waits for every track to be stored.
func (r *room) leave(ctx context.Context) error {
	r.mu.Lock()
	r.leaving = true
	lk := r.lk
	r.mu.Unlock()
	if lk != nil {
		lk.Disconnect()
	}
	r.stopWatching()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("store the tracks of LiveKit room %q: %w", r.name, ctx.Err())
	}
}

// reconnecting notes when the connection was lost and whose tracks it
// cuts: the SDK tries to resume it, or to join again (the participants'
// tracks then end, and come back as new ones).
func (r *room) reconnecting() {
	r.mu.Lock()
	if r.leaving || !r.lostSince.IsZero() {
		r.mu.Unlock()
		return
	}
	r.lostSince = time.Now()
	o := Outage{MeetingID: r.meetingID, Room: r.name, Since: r.lostSince, Identities: r.readingLocked(time.Time{})}
	r.mu.Unlock()
	r.src.log.Warn("lost the LiveKit connection: reconnecting", "meeting", r.meetingID, "room", r.name)
	r.src.cfg.Outages(o)
}

// reconnected says the connection is back, naming the tracks that went on.
func (r *room) reconnected() {
	r.mu.Lock()
	since := r.lostSince
	r.lostSince = time.Time{}
	o := Outage{MeetingID: r.meetingID, Room: r.name, Since: since, Restored: true, Identities: r.readingLocked(since)}
	r.mu.Unlock()
	if since.IsZero() {
		return
	}
	r.src.log.Info("LiveKit connection back", "meeting", r.meetingID, "room", r.name, "lost_for", time.Since(since))
	r.src.cfg.Outages(o)
}

// readingLocked lists the identities whose tracks are read, by readers
// started before the given time (zero: any); r.mu is held. A track
// subscribed again after a loss is a new one: its speaker was not heard
// in between.
func (r *room) readingLocked(before time.Time) []string {
	out := make([]string, 0, len(r.reading))
	for rd := range r.reading {
		if before.IsZero() || rd.started.Before(before) {
			out = append(out, rd.identity)
		}
	}
	return out
}

// disconnected ends the meeting when LiveKit closed its room; any other
// loss of the room (the SDK gave up reconnecting, after about a minute,
// or LiveKit put the recorder out) forgets the room, so that asking to
// record it again joins it anew, and tells Outages.
func (r *room) disconnected(reason lksdk.DisconnectionReason) {
	r.mu.Lock()
	leaving := r.leaving
	since := r.lostSince
	if since.IsZero() {
		since = time.Now()
	}
	o := Outage{MeetingID: r.meetingID, Room: r.name, Since: since, Identities: r.readingLocked(time.Time{}), GaveUp: true}
	r.mu.Unlock()
	if leaving {
		return
	}
	if reason == lksdk.RoomClosed {
		r.src.log.Info("LiveKit room closed", "meeting", r.meetingID, "room", r.name)
		go r.src.finished(r.meetingID)
		return
	}
	// The tracks recorded so far are stored as their readers end.
	r.src.log.Error("lost the LiveKit room: its meeting records nothing until the room is joined again",
		"meeting", r.meetingID, "room", r.name, "reason", string(reason), "since", since)
	r.src.mu.Lock()
	if r.src.rooms[r.meetingID] == r {
		delete(r.src.rooms, r.meetingID)
	}
	r.src.mu.Unlock()
	r.stopWatching()
	r.src.cfg.Outages(o)
}

// stopWatching stops watchNames, once.
func (r *room) stopWatching() {
	r.stopOnce.Do(func() {
		close(r.stopNames)
		<-r.namesDone
	})
}

// rename stores a participant's new display name.
func (r *room) rename(identity, name string) {
	r.mu.Lock()
	old, known := r.names[identity]
	if !known || old == name {
		r.mu.Unlock()
		return
	}
	r.names[identity] = name
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.src.meetings.Rename(ctx, r.meetingID, identity, name); err != nil {
		r.src.log.Warn("store a LiveKit participant's new name", "meeting", r.meetingID, "identity", identity, "err", err)
	}
}

// subscribed starts reading an audio track; a video track is
// unsubscribed at once (the SDK subscribes to every publication).
func (r *room) subscribed(track *webrtc.TrackRemote, pub *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
	if track.Kind() != webrtc.RTPCodecTypeAudio {
		_ = pub.SetSubscribed(false)
		return
	}
	r.mu.Lock()
	if r.leaving {
		r.mu.Unlock()
		return
	}
	rd := &reader{room: r, track: track, identity: rp.Identity(), name: rp.Name(), started: time.Now()}
	r.wg.Add(1)
	r.reading[rd] = true
	r.mu.Unlock()
	pub.OnRTCP(rd.rtcp)
	go rd.run()
}
