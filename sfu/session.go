package sfu

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/greffier/greffier/internal/token"
)

type sessionKind string

const (
	kindPublish sessionKind = "whip"
	kindListen  sessionKind = "whep"
)

// session is one WHIP or WHEP PeerConnection.
type session struct {
	id        string
	kind      sessionKind
	claims    token.Claims
	clockZero time.Time
	sfu       *SFU
	room      *room
	pc        *webrtc.PeerConnection
	log       *slog.Logger
	listener  *listener // WHEP only

	// negMu serialises renegotiations (PATCH) of the PeerConnection.
	negMu sync.Mutex

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup // readers of media and RTCP

	once sync.Once
	// deleted is set (under SFU.mu) once a DELETE asked for the close.
	deleted bool
}

func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// spawn runs f as one of the session's goroutines unless the session is
// already closing, so close can wait for all of them.
func (s *session) spawn(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Go(f)
	return true
}

// onTrack starts reading a published track.
func (s *session) onTrack(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	if remote.Kind() != webrtc.RTPCodecTypeAudio {
		return
	}
	t := &publishedTrack{
		sess:      s,
		room:      s.room,
		identity:  s.claims.Identity,
		stats:     &s.sfu.stats,
		out:       s.sfu.media,
		maxSize:   s.sfu.cfg.MaxPacketSize,
		meetingID: s.claims.MeetingID,
		zero:      s.clockZero,
		seq:       s.sfu.nextTrackSeq(),
		remote:    remote,
		rate:      remote.Codec().ClockRate,
		channels:  int(remote.Codec().Channels),
		levelID:   audioLevelID(recv),
		log:       s.log.With("track", remote.ID()),
	}
	t.setRate(s.sfu.cfg.MaxPacketRate)
	ctx := s.sfu.baseCtx
	s.spawn(func() {
		s.room.addTrack(t)
		defer s.room.removeTrack(t)
		t.run(ctx, s.sfu.cfg.receiveMTU())
	})
	s.spawn(func() { t.readRTCP(recv.Read) })
}

// drainRTCP reads a listener's RTCP until the connection closes: pion's
// interceptors stall if nobody reads it. What listeners report is about
// the SFU's own slot streams; nothing in it is worth passing to
// publishers (see doc.go on NACK).
func drainRTCP(read func([]byte) (int, interceptor.Attributes, error)) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := read(buf); err != nil {
			return
		}
	}
}

func (s *session) onConnectionState(st webrtc.PeerConnectionState) {
	s.log.Debug("connection state", "state", st.String())
	if st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateClosed {
		// close waits for pion callbacks to return; do not block this one.
		go s.close()
	}
}

// close tears the session down exactly once: stop the connection, wait for
// its readers (and so for its taps' Close), then leave the meeting.
// Concurrent callers all return after the teardown finished.
func (s *session) close() {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		if err := s.pc.Close(); err != nil {
			s.log.Warn("closing peer connection", "err", err)
		}
		s.wg.Wait()
		if s.listener != nil {
			s.room.removeListener(s.listener)
		}
		s.sfu.release(s)
		s.log.Info("session closed")
	})
}
