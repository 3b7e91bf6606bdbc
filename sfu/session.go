package sfu

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/transport/v5/packetio"
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
	in        *inbound  // WHIP only
	link      *link
	// reporterSSRC names the SFU in its receiver reports to a publisher.
	reporterSSRC uint32

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

// publish prepares the tracks of a WHIP session's negotiated audio
// sections: the media path hands them packets once DTLS is up.
func (s *session) publish(offer *sdp.SessionDescription) error {
	offered := offeredSSRCs(offer)
	for _, tr := range s.pc.GetTransceivers() {
		recv := tr.Receiver()
		if tr.Kind() != webrtc.RTPCodecTypeAudio || recv == nil {
			continue
		}
		params := recv.GetParameters()
		var codec *webrtc.RTPCodecParameters
		for i, c := range params.Codecs {
			if strings.EqualFold(c.MimeType, webrtc.MimeTypeOpus) {
				codec = &params.Codecs[i]
				break
			}
		}
		if codec == nil {
			continue
		}
		t := &publishedTrack{
			sess:        s,
			room:        s.room,
			identity:    s.claims.Identity,
			offeredSSRC: offered[tr.Mid()],
			stats:       &s.sfu.stats,
			maxSize:     s.sfu.cfg.MaxPacketSize,
			meetingID:   s.claims.MeetingID,
			zero:        s.clockZero,
			seq:         s.sfu.nextTrackSeq(),
			rate:        codec.ClockRate,
			channels:    int(codec.Channels),
			levelID:     audioLevelID(params.HeaderExtensions),
			log:         s.log,
		}
		t.setRate(s.sfu.cfg.MaxPacketRate)
		s.in.tracks = append(s.in.tracks, t)
	}
	if len(s.in.tracks) == 0 {
		return errors.New("no audio section was accepted")
	}
	return nil
}

// offeredSSRCs maps each audio section's mid to the first SSRC the offer
// announces in it.
func offeredSSRCs(offer *sdp.SessionDescription) map[string]uint32 {
	m := make(map[string]uint32)
	for _, md := range offer.MediaDescriptions {
		mid, _ := md.Attribute("mid")
		for _, a := range md.Attributes {
			if a.Key != "ssrc" {
				continue
			}
			id, _, _ := strings.Cut(a.Value, " ")
			if v, err := strconv.ParseUint(id, 10, 32); err == nil {
				m[mid] = uint32(v)
				break
			}
		}
	}
	return m
}

// joinRoom puts the session's tracks or slots in its room.
func (s *session) joinRoom() {
	if s.listener != nil {
		s.room.addListener(s.listener)
	}
	if s.in != nil {
		for _, t := range s.in.tracks {
			s.room.addTrack(t)
		}
	}
}

// leaveRoom takes them out; a speaker's slots go to others.
func (s *session) leaveRoom() {
	if s.listener != nil {
		s.room.removeListener(s.listener)
	}
	if s.in != nil {
		for _, t := range s.in.tracks {
			s.room.removeTrack(t)
		}
	}
}

// sink is pion's BufferFactory for the session's SRTP read streams. A
// publisher's RTCP carries sender reports for its tracks; everything else
// (listeners' reports on slots, stray RTP) is dropped.
func (s *session) sink(kind packetio.BufferPacketType, _ uint32) io.ReadWriteCloser {
	if kind == packetio.RTCPBufferPacket && s.in != nil {
		return &sink{write: s.rtcp, done: make(chan struct{})}
	}
	return &sink{done: make(chan struct{})}
}

// rtcp takes a decrypted RTCP compound packet from the publisher.
func (s *session) rtcp(b []byte) {
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		return // a malformed report is not worth more
	}
	now := time.Now()
	for _, p := range pkts {
		if sr, ok := p.(*rtcp.SenderReport); ok {
			if t := s.in.trackFor(sr.SSRC); t != nil {
				t.senderReport(sr, now)
			}
		}
	}
}

// follow wires the connection's keys and peer address to the media path.
func (s *session) follow(keys *dtlsKeys) {
	ice := s.pc.SCTP().Transport().ICETransport()
	keys.ready = func(k srtpKeys) {
		// ICE selected a pair before DTLS began; its callback may not
		// have run yet, and the peer may send as soon as DTLS is done.
		if p, err := ice.GetSelectedCandidatePair(); err == nil {
			if addr, ok := addrOf(p); ok {
				s.link.setAddr(addr)
			}
		}
		s.link.setKeys(k)
	}
	ice.OnSelectedCandidatePairChange(func(p *webrtc.ICECandidatePair) {
		if addr, ok := addrOf(p); ok {
			s.link.setAddr(addr)
		} else {
			s.log.Warn("selected ICE candidate has no usable address", "pair", p.String())
		}
	})
}

// addrOf is the remote address of an ICE candidate pair.
func addrOf(p *webrtc.ICECandidatePair) (netip.AddrPort, bool) {
	if p == nil || p.Remote == nil {
		return netip.AddrPort{}, false
	}
	ip, err := netip.ParseAddr(p.Remote.Address)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip.Unmap(), p.Remote.Port), true
}

func (s *session) onConnectionState(st webrtc.PeerConnectionState) {
	s.log.Debug("connection state", "state", st.String())
	if st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateClosed {
		// close waits for pion callbacks to return; do not block this one.
		go s.close()
	}
}

// close tears the session down exactly once: take it off the media path,
// stop the connection, wait for its goroutines, close its taps (and so
// wait for its recordings to be stored), then leave the meeting.
// Concurrent callers all return after the teardown finished.
func (s *session) close() {
	s.once.Do(func() {
		if s.link != nil {
			s.link.close()
		}
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		if err := s.pc.Close(); err != nil {
			s.log.Warn("closing peer connection", "err", err)
		}
		s.wg.Wait()
		s.leaveRoom()
		if s.in != nil {
			for _, t := range s.in.tracks {
				t.finish()
			}
		}
		s.sfu.release(s)
		s.log.Info("session closed")
	})
}
