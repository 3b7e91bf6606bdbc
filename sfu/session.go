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

	// keyMu guards keying, decided once by the DTLS handshake.
	keyMu  sync.Mutex
	keying keying

	// negMu serialises renegotiations (PATCH) of the PeerConnection.
	negMu sync.Mutex

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup // readers of media and RTCP

	once sync.Once
	// deleted is set (under SFU.mu) once a DELETE asked for the close.
	deleted bool
}

// keying says which SRTP path a session's RTP takes.
type keying int

const (
	keyingPending keying = iota // DTLS has not made its keys yet
	keyingOwn                   // the media path, with keys from dtlsKeys
	keyingPion                  // pion's own SRTP path: no keys could be derived
)

// errNoOwnKeys: DTLS connected but pion's hooks never gave dtlsKeys its
// key log line (a pion that stopped calling them, or a DTLS version
// whose log has no CLIENT_RANDOM line).
var errNoOwnKeys = errors.New("sfu: DTLS connected without a key log line from its hooks")

// errOverTCP: the connection's selected candidate pair is TCP.
var errOverTCP = errors.New("sfu: ICE selected a TCP candidate pair, which the UDP media path cannot serve")

// overTCP reports whether a pair's local side is ICE-TCP.
func overTCP(p *webrtc.ICECandidatePair) bool {
	return p != nil && p.Local != nil && p.Local.Protocol == webrtc.ICEProtocolTCP
}

// pionRTPBuffer bounds what waits in pion's buffer of a track read
// through pion's own SRTP path, as pion's default buffer does.
const pionRTPBuffer = 1000 * 1000

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
// (listeners' reports on slots, stray RTP) is dropped, except a
// publisher's RTP on pion's own SRTP path, which its tracks read. pion
// opens read streams once DTLS is done, when keying is decided.
func (s *session) sink(kind packetio.BufferPacketType, _ uint32) io.ReadWriteCloser {
	if kind == packetio.RTCPBufferPacket && s.in != nil {
		return &sink{write: s.rtcp, done: make(chan struct{})}
	}
	if kind == packetio.RTPBufferPacket && s.in != nil && s.throughPion(errNoOwnKeys) {
		return newPionBuffer()
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

// follow wires the connection's keys and peer address to the media path,
// or, if its handshake gives no keys the SFU can derive, its RTP to pion's
// own SRTP path: the session is slower, but nothing is dropped.
func (s *session) follow(keys *dtlsKeys) {
	ice := s.pc.SCTP().Transport().ICETransport()
	keys.fail = func(err error) { s.throughPion(err) }
	s.pc.OnTrack(func(remote *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		// pion starts tracks once DTLS is done, when keying is decided.
		if s.in != nil && s.throughPion(errNoOwnKeys) {
			s.spawn(func() { s.readThroughPion(remote) })
		}
	})
	keys.ready = func(k srtpKeys) {
		// The media path reads and writes the UDP media port only: a
		// connection over ICE-TCP (or relayed to it by TCP) stays on
		// pion's path, which reads and writes its TCP stream.
		if p, err := ice.GetSelectedCandidatePair(); err == nil && overTCP(p) {
			s.throughPion(errOverTCP)
			return
		}
		if !s.ownKeys() {
			return
		}
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
		if overTCP(p) {
			s.keyMu.Lock()
			own := s.keying == keyingOwn
			s.keyMu.Unlock()
			if own {
				// Keyed on the UDP media path, which cannot write to a TCP
				// stream: close so the client reconnects (and is keyed
				// for TCP), rather than stay silent.
				s.log.Warn("ICE moved a UDP session to TCP; closing it so the client reconnects", "pair", p.String())
				go s.close()
			}
			return
		}
		if addr, ok := addrOf(p); ok {
			s.link.setAddr(addr)
		} else {
			s.log.Warn("selected ICE candidate has no usable address", "pair", p.String())
		}
	})
}

// ownKeys settles the session on the media path, with keys of its own,
// unless it is already on pion's, and reports whether it is.
func (s *session) ownKeys() bool {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.keying == keyingPending {
		s.keying = keyingOwn
	}
	return s.keying == keyingOwn
}

// throughPion settles the session on pion's own SRTP path unless it has
// keys of its own, and reports whether it is on pion's path. why is
// logged: a session there costs pion's CPU per packet, and with the pion
// this module requires none should be (dtlskeys.go says what the
// derivation assumes).
func (s *session) throughPion(why error) bool {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.keying != keyingPending {
		return s.keying == keyingPion
	}
	s.keying = keyingPion
	s.sfu.stats.pionSRTP.Add(1)
	s.log.Warn("this session's RTP goes through pion's slower SRTP path", "why", why)
	if s.listener != nil {
		for _, slot := range s.listener.slots {
			slot.sendThroughPion()
		}
	}
	return true
}

// readThroughPion hands a publisher's track, read and decrypted by pion,
// to the media path's handling (tap, levels, fan-out) until the
// connection closes.
func (s *session) readThroughPion(remote *webrtc.TrackRemote) {
	media := s.sfu.media
	out := media.newSender(media.socks[0])
	buf := make([]byte, readSize)
	for {
		n, _, err := remote.Read(buf)
		if err != nil {
			return
		}
		s.in.receivePlain(buf[:n], time.Now(), out)
	}
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
	if st == webrtc.PeerConnectionStateConnected {
		// DTLS is done: its hooks have given keys by now, or never will.
		s.throughPion(errNoOwnKeys)
	}
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
