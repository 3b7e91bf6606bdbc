package sfu

import (
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// slotTrack is one of a listener's N outgoing audio tracks. Whoever speaks
// on it, the listener sees one SSRC with continuous sequence numbers and
// timestamps: pion on the far side drops an SSRC its SDP did not announce.
type slotTrack struct {
	id, streamID string
	out          rtpWriter

	// Control plane, guarded by room.mu.
	holder *publishedTrack
	since  time.Time

	// Data path. The mutex is contended only at a speaker switch, when the
	// outgoing and incoming speakers' readers may both be writing.
	mu      sync.Mutex
	src     *publishedTrack
	w       rtpWriter
	stream  webrtc.TrackLocalWriter // pion's, while bound
	viaPion bool                    // see sendThroughPion
	ssrc    uint32
	pt      uint8
	levelID uint8 // the listener's id for the audio-level extension, 0 if none
	resync  bool
	srcSSRC uint32
	started bool
	seqOff  uint16
	tsOff   uint32
	lastSeq uint16
	lastTS  uint32
	lastAt  time.Time
	hdr     rtp.Header
	level   [1]byte
	sent    uint64
	octets  uint64
}

// rtpWriter is where a slot's packets go: the listener's outbound (tests
// record them), through the sender of the reader doing the fan-out.
type rtpWriter interface {
	writeRTP(out *sender, h *rtp.Header, payload []byte) error
}

// pionWriter sends a slot's packets through pion's own SRTP path, for a
// listener whose SRTP keys the media path could not derive (dtlskeys.go).
// It is slower (pion's interceptor chain, SRTP session and one write per
// packet) but the listener hears everything.
type pionWriter struct{ stream webrtc.TrackLocalWriter }

func (p pionWriter) writeRTP(_ *sender, h *rtp.Header, payload []byte) error {
	_, err := p.stream.WriteRTP(h, payload)
	return err
}

// newSlotTrack makes a slot that sends through out, the listener's
// session's media path, not through pion's.
func newSlotTrack(id, streamID string, out rtpWriter) *slotTrack {
	return &slotTrack{id: id, streamID: streamID, out: out}
}

// Bind is called by pion once the listener's answer is applied.
func (s *slotTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	var codec *webrtc.RTPCodecParameters
	for i, c := range ctx.CodecParameters() {
		if strings.EqualFold(c.MimeType, webrtc.MimeTypeOpus) {
			codec = &ctx.CodecParameters()[i]
			break
		}
	}
	if codec == nil {
		return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
	}
	var levelID uint8
	for _, e := range ctx.HeaderExtensions() {
		if e.URI == sdp.AudioLevelURI && e.ID > 0 && e.ID < 15 {
			levelID = uint8(e.ID)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stream = ctx.WriteStream()
	s.w = s.out
	if s.viaPion {
		s.w = pionWriter{s.stream}
	}
	s.ssrc = uint32(ctx.SSRC())
	s.pt = uint8(codec.PayloadType)
	s.levelID = levelID
	return *codec, nil
}

// Unbind stops writes: the listener's connection is gone.
func (s *slotTrack) Unbind(webrtc.TrackLocalContext) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.w, s.stream = nil, nil
	return nil
}

// sendThroughPion makes the slot write through pion's track from now on
// (and from its next Bind): its listener's session has no keys of its own.
func (s *slotTrack) sendThroughPion() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.viaPion = true
	if s.stream != nil {
		s.w = pionWriter{s.stream}
	}
}

func (s *slotTrack) ID() string                { return s.id }
func (s *slotTrack) RID() string               { return "" }
func (s *slotTrack) StreamID() string          { return s.streamID }
func (s *slotTrack) Kind() webrtc.RTPCodecType { return webrtc.RTPCodecTypeAudio }

// setSource hands the slot to t (nil: silence). The next packet from t
// re-bases the rewriting so the listener's stream stays continuous.
func (s *slotTrack) setSource(t *publishedTrack) {
	s.mu.Lock()
	s.src = t
	s.resync = true
	s.mu.Unlock()
}

// write forwards p from src if src holds the slot, rewriting SSRC,
// sequence number, timestamp, payload type and extensions, and reports
// whether it was sent. It allocates nothing.
func (s *slotTrack) write(out *sender, src *publishedTrack, p *rtp.Packet, level byte, hasLevel bool, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.src != src || s.w == nil {
		return false
	}
	marker := p.Marker
	if s.resync || p.SSRC != s.srcSSRC {
		if s.started {
			// Continue one packet after what the listener last got, with the
			// timestamp advanced by the wall time since, so the gap stays a gap.
			adv := uint32(now.Sub(s.lastAt) * 48 / time.Millisecond)
			if adv == 0 {
				adv = 1
			}
			s.seqOff = s.lastSeq + 1 - p.SequenceNumber
			s.tsOff = s.lastTS + adv - p.Timestamp
		}
		s.srcSSRC = p.SSRC
		s.resync = false
		marker = true // a new talkspurt for the far side's jitter buffer
	}
	seq := p.SequenceNumber + s.seqOff
	ts := p.Timestamp + s.tsOff
	if !s.started || int16(seq-s.lastSeq) > 0 {
		s.lastSeq, s.lastTS, s.lastAt = seq, ts, now
		s.started = true
	}

	exts := s.hdr.Extensions[:0]
	s.hdr = rtp.Header{
		Version:        2,
		Marker:         marker,
		PayloadType:    s.pt,
		SequenceNumber: seq,
		Timestamp:      ts,
		SSRC:           s.ssrc,
		Extensions:     exts,
	}
	if hasLevel && s.levelID != 0 {
		s.level[0] = level
		// Cannot fail: the id is 1..14 and the payload one byte.
		_ = s.hdr.SetExtension(s.levelID, s.level[:])
	}
	if err := s.w.writeRTP(out, &s.hdr, p.Payload); err != nil {
		return false
	}
	s.sent++
	s.octets += uint64(len(p.Payload))
	return true
}

// senderReport is the slot's RTCP sender report for now, if it has sent
// anything: the listener's receiver maps its RTP clock to wall time with
// it and measures the round trip.
func (s *slotTrack) senderReport(now time.Time) (*rtcp.SenderReport, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent == 0 {
		return nil, false
	}
	return &rtcp.SenderReport{
		SSRC:        s.ssrc,
		NTPTime:     ntpOf(now),
		RTPTime:     s.lastTS + uint32(now.Sub(s.lastAt)*48/time.Millisecond),
		PacketCount: uint32(s.sent),
		OctetCount:  uint32(s.octets),
	}, true
}
