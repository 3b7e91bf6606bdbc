// Package captions turns each speaker's live audio into words pushed to
// whoever follows the meeting, as they are recognised: a streaming speech
// backend per speaking track, a hub per meeting, subscribers with bounded
// queues. It knows nothing of HTTP or storage: the API serves a hub's
// subscriptions, and each track's Listener hears the packets the recorder
// writes.
package captions

import (
	"context"
	"sync"
	"time"

	"github.com/greffier/greffier/transcribe"
)

// Caption is one word as a listener sees it: first as soon as the backend
// names it (Final false), then once more with its end (Final true).
type Caption struct {
	MeetingID string `json:"meeting_id"`
	Speaker   string `json:"speaker"`
	Name      string `json:"name"`
	Text      string `json:"text"`
	Final     bool   `json:"final"`
	// StartMS and EndMS are on the meeting clock; EndMS is 0 until Final.
	StartMS int64 `json:"start_ms"`
	EndMS   int64 `json:"end_ms,omitempty"`
	// At is the wall-clock time the word started.
	At time.Time `json:"at"`
	// Seq numbers a meeting's captions from 1, for Last-Event-ID.
	Seq int64 `json:"seq"`
}

// Streamer opens a live recognition session (transcribe.Kyutai does).
type Streamer interface {
	Stream(ctx context.Context, onWord func(w transcribe.Word, final bool)) (Stream, error)
}

// Stream is one live recognition session.
type Stream interface {
	Write(pcm16k []int16) error
	Close(ctx context.Context) error
}

// subscriberQueue bounds what a slow subscriber may fall behind by; past
// it the subscriber is dropped (and can reconnect), never the meeting.
const subscriberQueue = 256

// Hub fans captions out to a meeting's subscribers and remembers which
// meetings want captions.
type Hub struct {
	mu       sync.Mutex
	meetings map[string]*meeting
}

type meeting struct {
	enabled bool
	seq     int64
	subs    map[*Subscription]struct{}
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{meetings: map[string]*meeting{}} }

func (h *Hub) meeting(id string) *meeting {
	m := h.meetings[id]
	if m == nil {
		m = &meeting{subs: map[*Subscription]struct{}{}}
		h.meetings[id] = m
	}
	return m
}

// SetEnabled turns captions on or off for a meeting.
func (h *Hub) SetEnabled(meetingID string, on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.meeting(meetingID).enabled = on
}

// Enabled reports whether a meeting wants captions.
func (h *Hub) Enabled(meetingID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.meetings[meetingID]
	return m != nil && m.enabled
}

// Forget drops a meeting's state once it has ended; its subscriptions end.
func (h *Hub) Forget(meetingID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if m := h.meetings[meetingID]; m != nil {
		for s := range m.subs {
			s.end()
		}
		delete(h.meetings, meetingID)
	}
}

// Follower is who follows a meeting's captions: a participant by the join
// token it presented, or a host (zero Follower, the API token).
type Follower struct {
	Identity string
	// TokenID is the join token's id ("" for tokens issued without one,
	// which go with their identity).
	TokenID string
}

// Subscription receives one meeting's captions.
type Subscription struct {
	C    <-chan Caption
	c    chan Caption
	done chan struct{}
	once sync.Once
	h    *Hub
	id   string
	who  Follower
}

// Done is closed when the subscription ends: the meeting ended, the
// subscriber fell too far behind or lost its right to follow, or Close was
// called.
func (s *Subscription) Done() <-chan struct{} { return s.done }

func (s *Subscription) end() { s.once.Do(func() { close(s.done) }) }

// Close ends the subscription.
func (s *Subscription) Close() {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	if m := s.h.meetings[s.id]; m != nil {
		delete(m.subs, s)
	}
	s.end()
}

// Subscribe follows a meeting's captions from now on, for a host.
func (h *Hub) Subscribe(meetingID string) *Subscription {
	return h.SubscribeAs(meetingID, Follower{})
}

// SubscribeAs follows a meeting's captions from now on, for who: the
// subscription ends when who's right to follow is revoked (EndFollower).
func (h *Hub) SubscribeAs(meetingID string, who Follower) *Subscription {
	c := make(chan Caption, subscriberQueue)
	s := &Subscription{C: c, c: c, done: make(chan struct{}), h: h, id: meetingID, who: who}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.meeting(meetingID).subs[s] = struct{}{}
	return s
}

// EndFollower ends the subscriptions to a meeting of a participant whose
// join token was revoked: all of identity's with tokenID "", else those
// opened with that token. It returns how many it ended.
func (h *Hub) EndFollower(meetingID, identity, tokenID string) int {
	if identity == "" {
		return 0 // hosts follow with the API token, which is not revoked here
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.meetings[meetingID]
	if m == nil {
		return 0
	}
	n := 0
	for s := range m.subs {
		if s.who.Identity == identity && (tokenID == "" || s.who.TokenID == tokenID) {
			delete(m.subs, s)
			s.end()
			n++
		}
	}
	return n
}

// publish numbers a caption and hands it to every subscriber without
// waiting: a subscriber whose queue is full is dropped.
func (h *Hub) publish(c Caption) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.meeting(c.MeetingID)
	m.seq++
	c.Seq = m.seq
	for s := range m.subs {
		select {
		case s.c <- c:
		default:
			delete(m.subs, s)
			s.end()
		}
	}
}
