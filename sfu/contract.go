package sfu

import (
	"context"
	"errors"
	"time"

	"github.com/pion/rtp"

	"github.com/greffier/greffier/internal/token"
)

// Verifier checks a join token. Errors wrap token.ErrInvalid.
type Verifier interface {
	Verify(raw string) (token.Claims, error)
}

// Meetings is the SFU's view of the meeting records, implemented over the
// store by cmd/greffier.
type Meetings interface {
	// Join records the token's identity in its meeting and returns the
	// meeting clock's zero (set at the first join). Errors wrap
	// ErrMeetingNotFound or ErrMeetingClosed when the meeting cannot be
	// joined, ErrTokenRevoked when the host revoked the token.
	Join(ctx context.Context, c token.Claims) (clockZero time.Time, err error)
	// Leave records that identity has no connection left in the meeting.
	Leave(ctx context.Context, meetingID, identity string) error
}

// Errors a Meetings implementation wraps so the SFU can answer 404, 409 or
// 401.
var (
	ErrMeetingNotFound = errors.New("meeting not found")
	ErrMeetingClosed   = errors.New("meeting closed")
	ErrTokenRevoked    = errors.New("join token revoked")
)

// Placer is what a Meetings implementation may also implement when
// several nodes share the meetings: before admitting a participant, the
// SFU asks where the meeting's media is. Place returns nil for this node,
// a *MovedError for another (or an error wrapping ErrMeetingNotFound, or
// ErrNoMediaNode). A node that serves no media (its SFU not started)
// still answers WHIP and WHEP this way, with redirects.
type Placer interface {
	Place(ctx context.Context, meetingID string) error
}

// ErrNoMediaNode says no node able to serve a meeting's media is alive.
var ErrNoMediaNode = errors.New("no media node is alive")

// MovedError is what a Placer returns when the meeting's media lives on
// another node: the SFU answers 307 Temporary Redirect to
// the same path on BaseURL (RFC 9725 allows WHIP and WHEP to redirect), so
// the client sends its offer there.
type MovedError struct {
	MeetingID string
	// BaseURL is the owner node's HTTP base URL, such as http://10.0.0.2:8080.
	BaseURL string
}

func (e *MovedError) Error() string {
	return "meeting " + e.MeetingID + " is served by the media node at " + e.BaseURL
}

// Tap receives every published track: it is the recorder's seam.
type Tap interface {
	// OpenTrack is called when a track's first packet arrives.
	OpenTrack(ctx context.Context, t TrackInfo) (TrackTap, error)
}

// AdmissionTap is what a Tap may also implement to refuse a publisher
// before the WHIP answer when it could not record them (its disk is
// full): the publisher then gets 507 Insufficient Storage with the reason,
// instead of a session whose media nobody keeps. t has no SSRC, clock
// rate or first packet yet. The Tap records the refusal where the
// meeting's users look; the SFU only answers.
type AdmissionTap interface {
	// CanRecord returns nil, or an error saying why t's publisher could
	// not be recorded and what to do.
	CanRecord(ctx context.Context, t TrackInfo) error
}

// TrackInfo describes one SSRC of a published track, recorded through one TrackTap.
type TrackInfo struct {
	MeetingID   string
	Identity    string
	DisplayName string
	SSRC        uint32
	ClockRate   uint32
	Channels    int
	// AudioLevelID is the id the publisher negotiated for the RFC 6464
	// audio-level extension, 0 if none: the tap can read each packet's
	// level from its header instead of decoding it.
	AudioLevelID uint8
	// ClockZero is the meeting clock's zero, as Meetings.Join returned it.
	ClockZero time.Time
	// FirstPacketAt is when the track's first packet arrived.
	FirstPacketAt time.Time
}

// TrackTap receives one track's packets.
type TrackTap interface {
	// WriteRTP gets every received packet, in arrival order, before any
	// forwarding decision. It must not block long and must not retain p or
	// its payload: both are reused for the next packet.
	WriteRTP(p *rtp.Packet)
	// Close says the track ended; it blocks until the recording is stored.
	// The SFU calls it exactly once per opened TrackTap.
	Close(ctx context.Context) error
}

// SenderReportTap is what a TrackTap may also implement to get the
// publisher's RTCP sender reports, which pin an RTP timestamp to the
// sender's wall clock (NTP): the recorder uses them to refine where the
// track sits on the meeting clock. The SFU calls it from the same
// goroutine as WriteRTP, never concurrently with it, just before the
// first packet that follows the report's arrival.
type SenderReportTap interface {
	WriteSenderReport(ntp time.Time, rtpTime uint32)
}

// BoundedTap is what a TrackTap with a bounded queue may also implement: Free
// is how many packets it can take now without dropping one. The SFU asks
// it only while it gives an opened tap the packets it held while the tap
// opened (up to about a minute of them), so that the burst goes no faster
// than the tap writes it rather than overflowing its queue. Safe to call
// from another goroutine than WriteRTP's.
type BoundedTap interface {
	Free() int
}

// Observer is told what happens in meetings, for the owner to store as
// meeting events. Calls come from the SFU's control goroutines (never per
// packet), possibly concurrently: return quickly and do not call back into
// the SFU.
type Observer interface {
	Observe(Event)
}

// EventKind names what happened.
type EventKind string

// Event kinds. Joined and Left are per identity (a participant with a
// publishing and a listening session joins once and leaves once).
// SpeakingStarted and SpeakingStopped are per published track, from its
// RFC 6464 audio levels: started when its smoothed level reaches
// Config.SpeakingLevel, stopped once it has stayed below for
// Config.SwitchHold or the track ended. Tracks without levels have none.
const (
	EventJoined          EventKind = "joined"
	EventLeft            EventKind = "left"
	EventSpeakingStarted EventKind = "speaking_started"
	EventSpeakingStopped EventKind = "speaking_stopped"
)

// Event is one thing that happened in a meeting.
type Event struct {
	Kind      EventKind
	MeetingID string
	Identity  string
	// At is the wall-clock instant; At.Sub(ClockZero) places it on the
	// meeting clock.
	At        time.Time
	ClockZero time.Time
}
