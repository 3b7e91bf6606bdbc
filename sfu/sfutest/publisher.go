package sfutest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/opus"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// PublishOptions say what to publish where.
type PublishOptions struct {
	WHIPURL string // e.g. httptest server URL + "/v1/whip"
	Token   string // join token with the publish right
	OggPath string // Ogg Opus file to send
	// Level selects the RFC 6464 audio-level extension: LevelNone sends
	// none, LevelDecoded (the zero value) computes it from each decoded
	// packet, LevelFixed sends FixedLevel in every packet.
	Level      LevelMode
	FixedLevel uint8 // 0 loudest .. 127 silence; with LevelFixed
	// HTTPClient signals; default http.DefaultClient.
	HTTPClient *http.Client
	// Vanishable sends all media through one socket of the Publisher's own
	// so that Vanish can silence it. Default off (pion's own sockets).
	Vanishable bool
	// NoCryptex offers no RFC 9335 header encryption, as browsers without
	// it do; pion offers it by default.
	NoCryptex bool
	// Network says how the client reaches the server. Default: UDP host
	// candidates.
	Network Network
}

// LevelMode chooses how a Publisher fills the audio-level extension.
type LevelMode int

const (
	LevelDecoded LevelMode = iota
	LevelNone
	LevelFixed
)

// SentPacket is what a Publisher sent, for comparing with what arrived.
type SentPacket struct {
	SequenceNumber uint16
	Timestamp      uint32
	Payload        []byte
	Level          uint8
}

// Publisher is a real WebRTC peer publishing one Ogg Opus file.
type Publisher struct {
	pc       *webrtc.PeerConnection
	mute     *muteConn // with Vanishable
	closeMux func()
	client   *http.Client
	token    string
	location string
	track    *sendTrack
	file     *oggOpus
	levels   []uint8
	opts     PublishOptions

	stop    chan struct{}
	done    chan struct{}
	sendEnd chan struct{}
	once    sync.Once

	mu      sync.Mutex
	etag    string // the session's ICE generation, from the 201 or the last restart
	started time.Time
	sent    []SentPacket
	reports []rtcp.ReceptionReport // every block the server sent, any SSRC
}

// Publish connects to the WHIP endpoint and starts sending the file in real
// time, 20 ms per packet, with RTP timestamps from its granule positions.
// It returns once the connection is up, or a *StatusError when refused.
func Publish(ctx context.Context, opts PublishOptions) (*Publisher, error) {
	file, err := readOggOpus(opts.OggPath)
	if err != nil {
		return nil, err
	}
	levels, err := packetLevels(file, opts)
	if err != nil {
		return nil, err
	}
	var mute *muteConn
	var mux ice.UDPMux
	if opts.Vanishable {
		conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("client socket: %w", err)
		}
		mute = &muteConn{PacketConn: conn}
		mux = webrtc.NewICEUDPMux(nil, mute)
	}
	closeMux := func() {
		if mux != nil {
			_ = mux.Close()
		}
	}
	api, err := newAPI(opts.WHIPURL, mux, opts.Network)
	if err != nil {
		closeMux()
		return nil, err
	}
	pc, err := api.NewPeerConnection(configuration(opts.NoCryptex, opts.Network))
	if err != nil {
		closeMux()
		return nil, fmt.Errorf("new peer connection: %w", err)
	}
	p := &Publisher{
		pc: pc, mute: mute, closeMux: closeMux,
		client: opts.HTTPClient, token: opts.Token, file: file, levels: levels, opts: opts,
		track: &sendTrack{bound: make(chan struct{})},
		stop:  make(chan struct{}), done: make(chan struct{}), sendEnd: make(chan struct{}),
	}
	if p.client == nil {
		p.client = http.DefaultClient
	}
	connected, failed := stateSignals(pc)
	sender, err := pc.AddTransceiverFromTrack(p.track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		_ = pc.Close()
		closeMux()
		return nil, fmt.Errorf("add track: %w", err)
	}
	go readRTCP(sender.Sender().Read, p.keepRTCP)
	p.location, p.etag, err = negotiate(ctx, p.client, pc, opts.WHIPURL, opts.Token)
	if err == nil {
		err = waitConnected(ctx, pc, connected, failed)
	}
	if err != nil {
		_ = pc.Close()
		closeMux()
		return nil, err
	}
	select {
	case <-p.track.bound:
	case <-ctx.Done():
		_ = pc.Close()
		closeMux()
		return nil, fmt.Errorf("waiting for the track to bind: %w", ctx.Err())
	}
	go p.send()
	return p, nil
}

// send paces the file's packets by their timestamps against the wall clock.
func (p *Publisher) send() {
	defer close(p.sendEnd)
	timer := time.NewTimer(0)
	defer timer.Stop()
	var start time.Time
	seq := uint16(1000)
	for i, pkt := range p.file.packets {
		if i == 0 {
			start = time.Now()
		} else {
			due := start.Add(time.Duration(pkt.ts) * time.Second / 48000)
			timer.Reset(time.Until(due))
			select {
			case <-timer.C:
			case <-p.stop:
				return
			}
		}
		level := p.levels[i]
		ts := 5000 + pkt.ts
		if err := p.track.write(seq, ts, pkt.payload, level, p.opts.Level != LevelNone); err != nil {
			return
		}
		p.mu.Lock()
		if i == 0 {
			p.started = start
		}
		p.sent = append(p.sent, SentPacket{SequenceNumber: seq, Timestamp: ts, Payload: pkt.payload, Level: level})
		p.mu.Unlock()
		seq++
	}
	close(p.done)
}

// Done is closed once the whole file was sent.
func (p *Publisher) Done() <-chan struct{} { return p.done }

// Started is the wall time the first packet was sent (zero before).
func (p *Publisher) Started() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.started
}

// SSRC is the publisher's RTP SSRC.
func (p *Publisher) SSRC() uint32 { return p.track.ssrcValue() }

// Location is the WHIP session URL.
func (p *Publisher) Location() string { return p.location }

// Sent returns a copy of what was sent so far.
func (p *Publisher) Sent() []SentPacket {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]SentPacket(nil), p.sent...)
}

// ReceiverReports returns, in arrival order, the reception reports the
// server sent about the Publisher's stream (blocks of its RTCP receiver
// reports, usually one a second): what it received, lost and saw of the
// Publisher's own sender reports.
func (p *Publisher) ReceiverReports() []rtcp.ReceptionReport {
	ssrc := p.SSRC()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []rtcp.ReceptionReport
	for _, r := range p.reports {
		if r.SSRC == ssrc {
			out = append(out, r)
		}
	}
	return out
}

func (p *Publisher) keepRTCP(pkts []rtcp.Packet) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pkt := range pkts {
		switch r := pkt.(type) {
		case *rtcp.ReceiverReport:
			p.reports = append(p.reports, r.Reports...)
		case *rtcp.SenderReport:
			p.reports = append(p.reports, r.Reports...)
		}
	}
}

// Close stops sending, DELETEs the session and closes the connection. The
// DELETE's error (a *StatusError if refused) is returned.
func (p *Publisher) Close(ctx context.Context) error {
	var err error
	p.once.Do(func() {
		close(p.stop)
		<-p.sendEnd
		err = Delete(ctx, p.client, p.location, p.token)
		err = errors.Join(err, p.pc.Close())
		p.closeMux()
	})
	return err
}

// Vanish silences the Publisher's network at once, as a client whose
// laptop lid closed: the server hears nothing more, not even a goodbye,
// and must notice by its ICE timeouts. It needs Vanishable; call
// CloseWithoutDelete afterwards to free the client.
func (p *Publisher) Vanish() error {
	if p.mute == nil {
		return errors.New("sfutest: Vanish needs PublishOptions.Vanishable")
	}
	p.mute.muted.Store(true)
	return nil
}

// CloseWithoutDelete drops the connection as a crashed client would,
// without telling the server.
func (p *Publisher) CloseWithoutDelete() error {
	var err error
	p.once.Do(func() {
		close(p.stop)
		<-p.sendEnd
		err = p.pc.Close()
		p.closeMux()
	})
	return err
}

// packetLevels computes each packet's RFC 6464 level (-dBov of its RMS).
func packetLevels(file *oggOpus, opts PublishOptions) ([]uint8, error) {
	levels := make([]uint8, len(file.packets))
	switch opts.Level {
	case LevelNone:
		return levels, nil
	case LevelFixed:
		for i := range levels {
			levels[i] = opts.FixedLevel & 0x7f
		}
		return levels, nil
	}
	channels := max(file.channels, 1)
	dec, err := opus.NewDecoderWithOutput(48000, channels)
	if err != nil {
		return nil, fmt.Errorf("opus decoder: %w", err)
	}
	pcm := make([]float32, 5760*channels)
	for i, pkt := range file.packets {
		n, err := dec.DecodeToFloat32(pkt.payload, pcm)
		if err != nil {
			return nil, fmt.Errorf("decode packet %d: %w", i, err)
		}
		var sum float64
		for _, v := range pcm[:n*channels] {
			sum += float64(v) * float64(v)
		}
		levels[i] = 127
		if n > 0 && sum > 0 {
			db := -10 * math.Log10(sum/float64(n*channels))
			levels[i] = uint8(math.Max(0, math.Min(127, math.Round(db))))
		}
	}
	return levels, nil
}

// sendTrack is a TrackLocal that lets the test pick sequence numbers and
// timestamps and write the negotiated audio-level extension.
type sendTrack struct {
	mu      sync.Mutex
	w       webrtc.TrackLocalWriter
	ssrc    uint32
	pt      uint8
	levelID uint8
	bound   chan struct{}
	once    sync.Once
}

func (t *sendTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	for _, c := range ctx.CodecParameters() {
		if c.MimeType == webrtc.MimeTypeOpus {
			t.mu.Lock()
			t.w, t.ssrc, t.pt = ctx.WriteStream(), uint32(ctx.SSRC()), uint8(c.PayloadType)
			for _, e := range ctx.HeaderExtensions() {
				if e.URI == sdp.AudioLevelURI {
					t.levelID = uint8(e.ID)
				}
			}
			t.mu.Unlock()
			t.once.Do(func() { close(t.bound) })
			return c, nil
		}
	}
	return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
}

func (t *sendTrack) Unbind(webrtc.TrackLocalContext) error {
	t.mu.Lock()
	t.w = nil
	t.mu.Unlock()
	return nil
}

func (t *sendTrack) ID() string                { return "audio" }
func (t *sendTrack) RID() string               { return "" }
func (t *sendTrack) StreamID() string          { return "sfutest" }
func (t *sendTrack) Kind() webrtc.RTPCodecType { return webrtc.RTPCodecTypeAudio }

func (t *sendTrack) ssrcValue() uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ssrc
}

func (t *sendTrack) write(seq uint16, ts uint32, payload []byte, level uint8, withLevel bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.w == nil {
		return errors.New("track unbound")
	}
	h := rtp.Header{Version: 2, PayloadType: t.pt, SequenceNumber: seq, Timestamp: ts, SSRC: t.ssrc}
	if withLevel && t.levelID != 0 {
		if err := h.SetExtension(t.levelID, []byte{level}); err != nil {
			return fmt.Errorf("audio level extension: %w", err)
		}
	}
	_, err := t.w.WriteRTP(&h, payload)
	return err
}

// readRTCP reads a sender's or receiver's RTCP until the connection
// closes and hands each compound packet to keep; reading also keeps
// pion's interceptors from stalling. Packets that do not parse are
// skipped.
func readRTCP[A any](read func([]byte) (int, A, error), keep func([]rtcp.Packet)) {
	buf := make([]byte, 1500)
	for {
		n, _, err := read(buf)
		if err != nil {
			return
		}
		if pkts, err := rtcp.Unmarshal(buf[:n]); err == nil {
			keep(pkts)
		}
	}
}
