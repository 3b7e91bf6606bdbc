package meeting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/recorder"
	"github.com/greffier/greffier/sfu"
)

// Controls reads and appends a meeting's recording switches (*store.Store).
type Controls interface {
	Meeting(ctx context.Context, id string) (store.Meeting, error)
	Controls(ctx context.Context, meetingID string) (store.ControlLog, error)
	AddControl(ctx context.Context, c store.Control) (store.Control, error)
}

// Tap records the tracks the SFU receives (sfu.Tap) while their meeting
// records and their participant consents: the SFU knows no recorder and
// the recorder no SFU; their meeting is here. Each published track is
// gated by one atomic pointer to its current recording (nil while it is
// not recorded), so the packet path pays one load for it; each stretch the
// host records is a new track segment, opened and closed off that path.
type Tap struct {
	rec      *recorder.Recorder
	controls Controls
	events   sfu.Observer
	log      *slog.Logger
	now      func() time.Time

	mu       sync.Mutex
	meetings map[string]*recMeeting
}

// recMeeting is one meeting's open tracks. Its mu orders the meeting's
// controls and track openings, so a track opens under the switches as they
// are; it is held across their I/O (a control is rare, and one meeting's
// wait holds up no other).
type recMeeting struct {
	refs   int // guarded by Tap.mu: callers between acquire and release
	mu     sync.Mutex
	tracks map[*gatedTrack]struct{}
}

// NewTap records with rec what the switches in controls allow, and tells
// events (the meeting's log, optional) when a switch is set.
func NewTap(rec *recorder.Recorder, controls Controls, events sfu.Observer, logger *slog.Logger) *Tap {
	return &Tap{rec: rec, controls: controls, events: events, log: logger, now: time.Now, meetings: map[string]*recMeeting{}}
}

func (t *Tap) acquire(meetingID string) *recMeeting {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.meetings[meetingID]
	if m == nil {
		m = &recMeeting{tracks: map[*gatedTrack]struct{}{}}
		t.meetings[meetingID] = m
	}
	m.refs++
	return m
}

// release forgets a meeting that has no track and no caller left. Call it
// without m.mu held.
func (t *Tap) release(meetingID string, m *recMeeting) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m.refs--
	if m.refs > 0 {
		return
	}
	m.mu.Lock()
	empty := len(m.tracks) == 0
	m.mu.Unlock()
	if empty {
		delete(t.meetings, meetingID)
	}
}

// records reports whether identity's track is recorded now.
func (t *Tap) records(ctx context.Context, meetingID, identity string) (bool, error) {
	log, err := t.controls.Controls(ctx, meetingID)
	if err != nil {
		return false, err
	}
	return log.On(store.ControlRecording, "") && log.On(store.ControlConsent, identity), nil
}

// OpenTrack starts gating a published track, recording it if its meeting
// records and its participant consents.
func (t *Tap) OpenTrack(ctx context.Context, info sfu.TrackInfo) (sfu.TrackTap, error) {
	g, err := t.open(ctx, recorder.Track{MeetingID: info.MeetingID, Identity: info.Identity, SSRC: info.SSRC,
		ClockRate: info.ClockRate, AudioLevelID: info.AudioLevelID, ClockZero: info.ClockZero, FirstPacketAt: info.FirstPacketAt})
	if err != nil {
		return nil, err
	}
	return g, nil
}

// open gates a track of any media source (the SFU's, LiveKit's).
func (t *Tap) open(ctx context.Context, tr recorder.Track) (*gatedTrack, error) {
	m := t.acquire(tr.MeetingID)
	defer t.release(tr.MeetingID, m)
	m.mu.Lock()
	defer m.mu.Unlock()
	on, err := t.records(ctx, tr.MeetingID, tr.Identity)
	if err != nil {
		return nil, fmt.Errorf("open track: read the meeting's switches: %w", err)
	}
	mt, err := t.controls.Meeting(ctx, tr.MeetingID)
	if err != nil {
		return nil, fmt.Errorf("open track: %w", err)
	}
	// A meeting that keeps only its words has each of its segments heard
	// by the live path and never stored.
	tr.Transient = !mt.KeepAudio
	g := &gatedTrack{tap: t, meeting: m, track: tr}
	if on {
		w, err := t.rec.Open(ctx, tr)
		if err != nil {
			return nil, err
		}
		g.w.Store(w)
	}
	m.tracks[g] = struct{}{}
	return g, nil
}

// CanRecord refuses a publisher the recorder could not record (its spool
// disk is nearly full); the recorder lists them as not recorded. A
// publisher who is not to be recorded now is not refused: nothing of
// theirs would reach the disk.
func (t *Tap) CanRecord(ctx context.Context, info sfu.TrackInfo) error {
	if on, err := t.records(ctx, info.MeetingID, info.Identity); err == nil && !on {
		return nil
	}
	return t.rec.Check(ctx, recorder.Track{MeetingID: info.MeetingID, Identity: info.Identity,
		ClockZero: info.ClockZero, FirstPacketAt: info.FirstPacketAt})
}

// SetControl sets one of a meeting's switches (identity only for
// consent), records it on the meeting clock and in the meeting's events,
// and applies it to the tracks open now: turning recording on opens a new
// track segment for every track that may be recorded, from its next
// packet on; turning it off (or a participant declining) ends their
// segments at once, the packets after it are not written anywhere. It
// returns the meeting's controls, the new one last. A meeting that has
// ended is refused with a *store.TransitionError.
func (t *Tap) SetControl(ctx context.Context, meetingID string, kind store.ControlKind, identity string, on bool) (store.ControlLog, error) {
	if (kind == store.ControlConsent) != (identity != "") {
		return nil, fmt.Errorf("set %s of %s: a consent names its participant, and only a consent does", kind, meetingID)
	}
	m := t.acquire(meetingID)
	defer t.release(meetingID, m)
	m.mu.Lock()
	defer m.mu.Unlock()
	mt, err := t.controls.Meeting(ctx, meetingID)
	if err != nil {
		return nil, err
	}
	if mt.State != store.MeetingCreated && mt.State != store.MeetingLive {
		return nil, &store.TransitionError{MeetingID: meetingID, From: mt.State, To: mt.State}
	}
	log, err := t.controls.Controls(ctx, meetingID)
	if err != nil {
		return nil, err
	}
	c := store.Control{MeetingID: meetingID, Kind: kind, Identity: identity, Enabled: on}
	log = append(log, c)
	// The new segments are opened first, off the clock: the switch's
	// instant is taken once they are ready, so that the first packet
	// after it is the first one kept, within a frame.
	var (
		errs    []error
		opened  map[*gatedTrack]*recorder.Writer
		stopped []*gatedTrack
	)
	if kind != store.ControlTranscription {
		opened, stopped, errs = t.align(ctx, m, log)
	}
	now := t.now()
	for g, w := range opened {
		g.w.Store(w)
	}
	for _, g := range stopped {
		g.stop(ctx)
	}
	if !mt.StartedAt.IsZero() {
		c.AtMS = max(now.Sub(mt.StartedAt).Milliseconds(), 0)
	}
	saved, err := t.controls.AddControl(ctx, c)
	if err != nil {
		// The switch is not recorded: the segments it opened go, lest
		// audio be kept that the minutes say was not recorded.
		for g := range opened {
			g.stop(ctx)
		}
		return nil, errors.Join(append(errs, err)...)
	}
	log[len(log)-1] = saved
	if t.events != nil && !mt.StartedAt.IsZero() {
		t.events.Observe(sfu.Event{Kind: controlEvent(kind, on), MeetingID: meetingID, Identity: identity,
			At: now, ClockZero: mt.StartedAt})
	}
	t.log.Info("meeting switch set", "meeting", meetingID, "switch", kind, "identity", identity, "on", on, "at_ms", c.AtMS)
	return log, errors.Join(errs...)
}

// align opens a segment for each of m's tracks that log says is recorded
// and has none, and lists those that have one and are not: the caller
// applies both at the switch's instant. Called with m.mu held.
func (t *Tap) align(ctx context.Context, m *recMeeting, log store.ControlLog) (opened map[*gatedTrack]*recorder.Writer, stopped []*gatedTrack, errs []error) {
	opened = map[*gatedTrack]*recorder.Writer{}
	for g := range m.tracks {
		want := log.On(store.ControlRecording, "") && log.On(store.ControlConsent, g.track.Identity)
		switch w := g.w.Load(); {
		case want && w == nil:
			// No first-packet time: the segment starts at its first
			// packet after the switch, on the meeting clock.
			seg := g.track
			seg.FirstPacketAt = time.Time{}
			nw, err := t.rec.Open(ctx, seg)
			if err != nil {
				errs = append(errs, fmt.Errorf("record %s: %w", g.track.Identity, err))
				continue
			}
			opened[g] = nw
		case !want && w != nil:
			stopped = append(stopped, g)
		}
	}
	return opened, stopped, errs
}

// Apply brings the tracks of meetingID open here in line with its
// switches as stored, when another node has set one (the node that takes
// the request stores the switch; the one holding the media applies it).
// A meeting with no track here costs one map lookup.
func (t *Tap) Apply(ctx context.Context, meetingID string) error {
	t.mu.Lock()
	_, held := t.meetings[meetingID]
	t.mu.Unlock()
	if !held {
		return nil
	}
	m := t.acquire(meetingID)
	defer t.release(meetingID, m)
	m.mu.Lock()
	defer m.mu.Unlock()
	log, err := t.controls.Controls(ctx, meetingID)
	if err != nil {
		return fmt.Errorf("apply the switches of %s: %w", meetingID, err)
	}
	opened, stopped, errs := t.align(ctx, m, log)
	for g, w := range opened {
		g.w.Store(w)
	}
	for _, g := range stopped {
		g.stop(ctx)
	}
	if len(opened)+len(stopped) > 0 {
		// How late the media follows the stored switch: the
		// notification's delay, for the stated stretch's precision.
		var lateMS int64
		if mt, err := t.controls.Meeting(ctx, meetingID); err == nil && len(log) > 0 && !mt.StartedAt.IsZero() {
			lateMS = t.now().Sub(mt.StartedAt).Milliseconds() - log[len(log)-1].AtMS
		}
		t.log.Info("meeting switch from another node applied", "meeting", meetingID, "started", len(opened),
			"stopped", len(stopped), "late_ms", lateMS)
	}
	return errors.Join(errs...)
}

// ApplyAll applies the stored switches of every meeting with a track here
// (after missing other nodes' notifications, while reconnecting).
func (t *Tap) ApplyAll(ctx context.Context) error {
	t.mu.Lock()
	ids := make([]string, 0, len(t.meetings))
	for id := range t.meetings {
		ids = append(ids, id)
	}
	t.mu.Unlock()
	var errs []error
	for _, id := range ids {
		errs = append(errs, t.Apply(ctx, id))
	}
	return errors.Join(errs...)
}

// Control event kinds in the meeting's log.
func controlEvent(kind store.ControlKind, on bool) sfu.EventKind {
	switch {
	case kind == store.ControlConsent && on:
		return "consent_given"
	case kind == store.ControlConsent:
		return "consent_declined"
	case on:
		return sfu.EventKind(string(kind) + "_started")
	default:
		return sfu.EventKind(string(kind) + "_stopped")
	}
}

// gatedTrack is one published track: its packets go to its current
// recording, or nowhere.
type gatedTrack struct {
	tap     *Tap
	meeting *recMeeting
	track   recorder.Track // as opened: its first segment's
	w       atomic.Pointer[recorder.Writer]
	// closing counts the segments being stored after a stop; Close
	// waits for them, so the SFU's "every recording is stored" holds.
	closing sync.WaitGroup
}

// WriteRTP writes the packet to the current segment, if any. A packet
// racing a stop may reach the segment being closed: the recorder ignores
// packets after Close.
func (g *gatedTrack) WriteRTP(p *rtp.Packet) {
	if w := g.w.Load(); w != nil {
		w.WriteRTP(p)
	}
}

// WriteSenderReport gives the current segment the sender's report.
func (g *gatedTrack) WriteSenderReport(ntp time.Time, rtpTime uint32) {
	if w := g.w.Load(); w != nil {
		w.WriteSenderReport(ntp, rtpTime)
	}
}

// Free is the current segment's room for packets (sfu.BoundedTap); with no
// segment, packets are dropped by design and there is room for all.
func (g *gatedTrack) Free() int {
	if w := g.w.Load(); w != nil {
		return w.Free()
	}
	return math.MaxInt
}

// Recording is the segment being recorded now, nil if none.
func (g *gatedTrack) Recording() *recorder.Writer { return g.w.Load() }

// stop ends the current segment; it is stored in the background. Called
// with the meeting's mu held.
func (g *gatedTrack) stop(ctx context.Context) {
	w := g.w.Swap(nil)
	if w == nil {
		return
	}
	g.closing.Add(1)
	go func() {
		defer g.closing.Done()
		if err := w.Close(context.WithoutCancel(ctx)); err != nil {
			g.tap.log.Error("storing a recorded stretch", "meeting", g.track.MeetingID, "identity", g.track.Identity, "track", w.ID(), "err", err)
		}
	}()
}

// Close ends the track: its current segment is stored, and so is every
// segment still being stored, before it returns.
func (g *gatedTrack) Close(ctx context.Context) error {
	g.meeting.mu.Lock()
	delete(g.meeting.tracks, g)
	w := g.w.Swap(nil)
	g.meeting.mu.Unlock()
	var err error
	if w != nil {
		err = w.Close(ctx)
	}
	g.closing.Wait()
	g.tap.mu.Lock()
	m := g.meeting
	if m.refs == 0 && g.tap.meetings[g.track.MeetingID] == m {
		m.mu.Lock()
		if len(m.tracks) == 0 {
			delete(g.tap.meetings, g.track.MeetingID)
		}
		m.mu.Unlock()
	}
	g.tap.mu.Unlock()
	return err
}
