package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/greffier/greffier/internal/token"
)

const packetInterval = 20 * time.Millisecond

// Measurement phases the readers check per packet.
const (
	phaseWarm int32 = iota
	phaseMeasure
	phaseDone
)

// loadGen is the clients' process: n publishers and n listeners, each a
// real pion PeerConnection, as cheap as they can be made so that most of
// the machine is left to the server.
type loadGen struct {
	o      options
	api    *webrtc.API
	signer *token.Signer
	client *http.Client
	phase  atomic.Int32

	mu        sync.Mutex
	pcs       []*webrtc.PeerConnection
	listeners []*benchListener
	pubs      []*benchPublisher
}

func runClients(ctx context.Context, o options, secret string, out io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	signer, err := token.NewSigner([]byte(secret))
	if err != nil {
		return fmt.Errorf("join-token secret from %s: %w", secretEnv, err)
	}
	api, err := clientAPI()
	if err != nil {
		return err
	}
	g := &loadGen{o: o, api: api, signer: signer,
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.connectPar}}}
	defer g.closeAll()

	began := time.Now()
	g.pubs = make([]*benchPublisher, o.participants)
	g.listeners = make([]*benchListener, o.participants)
	// Listeners first, so every publisher's first packet finds its audience.
	if err := g.parallel(ctx, func(ctx context.Context, i int) error {
		l, err := g.listen(ctx, i)
		g.listeners[i] = l
		return err
	}); err != nil {
		return err
	}
	if err := g.parallel(ctx, func(ctx context.Context, i int) error {
		p, err := g.publish(ctx, i)
		g.pubs[i] = p
		return err
	}); err != nil {
		return err
	}
	connectTime := time.Since(began)
	fmt.Fprintln(out, "connected")

	stopSend := make(chan struct{})
	var senders sync.WaitGroup
	sendStart := time.Now()
	for k := range o.senders {
		senders.Go(func() { g.send(k, sendStart, stopSend) })
	}
	if err := wait(ctx, o.warmup); err != nil {
		return err
	}
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	g.phase.Store(phaseMeasure)
	winStart := time.Now()
	fmt.Fprintln(out, "start")
	err = wait(ctx, o.duration)
	g.phase.Store(phaseDone)
	window := time.Since(winStart)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	fmt.Fprintln(out, "stop")
	close(stopSend)
	senders.Wait()
	if err != nil {
		return err
	}
	res := g.result(window)
	res.ConnectSeconds = connectTime.Seconds()
	res.ClientCPU = time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()).Seconds()
	b, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	fmt.Fprintf(out, "result %s\n", b)
	return nil
}

func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// parallel runs f for every participant, connectPar at a time.
func (g *loadGen) parallel(ctx context.Context, f func(context.Context, int) error) error {
	sem := make(chan struct{}, g.o.connectPar)
	var wg sync.WaitGroup
	errs := make([]error, g.o.participants)
	for i := range g.o.participants {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			errs[i] = f(cctx, i)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (g *loadGen) closeAll() {
	g.mu.Lock()
	pcs := g.pcs
	g.pcs = nil
	g.mu.Unlock()
	var wg sync.WaitGroup
	for _, pc := range pcs {
		wg.Go(func() { _ = pc.Close() })
	}
	wg.Wait()
}

func (g *loadGen) newPC() (*webrtc.PeerConnection, <-chan struct{}, error) {
	pc, err := g.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, nil, fmt.Errorf("new peer connection: %w", err)
	}
	g.mu.Lock()
	g.pcs = append(g.pcs, pc)
	g.mu.Unlock()
	up := make(chan struct{})
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(up) })
		}
	})
	return pc, up, nil
}

func (g *loadGen) token(i int, r token.Right) (string, error) {
	return g.signer.Sign(token.Claims{MeetingID: g.o.meeting, Identity: fmt.Sprintf("p%03d", i), DisplayName: fmt.Sprintf("P%03d", i),
		Rights: []token.Right{r}, ExpiresAt: time.Now().Add(24 * time.Hour)})
}

// clientAPI is a browser-like stack: Opus, audio level, RTCP reports, no
// mDNS, loopback only.
func clientAPI() (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType: 111,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("register opus: %w", err)
	}
	if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI},
		webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("register audio level: %w", err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, fmt.Errorf("rtcp reports: %w", err)
	}
	var se webrtc.SettingEngine
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(ir)), nil
}

// negotiate posts pc's complete offer and applies the answer.
func (g *loadGen) negotiate(ctx context.Context, pc *webrtc.PeerConnection, endpoint, tok string, up <-chan struct{}) error {
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("create offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("set offer: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return fmt.Errorf("gathering: %w", ctx.Err())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.o.url+endpoint, bytes.NewReader([]byte(pc.LocalDescription().SDP)))
	if err != nil {
		return fmt.Errorf("offer request: %w", err)
	}
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := g.client.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", endpoint, err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST %s: HTTP %d: %s", endpoint, resp.StatusCode, body)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)}); err != nil {
		return fmt.Errorf("set answer: %w", err)
	}
	select {
	case <-up:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("connecting: %w", ctx.Err())
	}
}

func drain[A any](read func([]byte) (int, A, error)) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := read(buf); err != nil {
			return
		}
	}
}

// benchListener receives the meeting on its slots.
type benchListener struct {
	g     *loadGen
	mu    sync.Mutex
	slots []*slotStats
}

// slotStats is what arrived on one slot during the window. Its reader
// goroutine owns the sequence tracking; the measured fields are guarded by
// the listener's mu.
type slotStats struct {
	started  bool
	lastSeq  uint16
	ext      int64 // unwrapped sequence number of lastSeq
	first    int64
	highest  int64
	count    int
	latency  []int32 // microseconds
	shortPkt int
}

func (g *loadGen) listen(ctx context.Context, i int) (*benchListener, error) {
	pc, up, err := g.newPC()
	if err != nil {
		return nil, err
	}
	l := &benchListener{g: g}
	for range g.o.slots {
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio,
			webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return nil, fmt.Errorf("add transceiver: %w", err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		s := &slotStats{latency: make([]int32, 0, int(g.o.duration/packetInterval)+64)}
		l.mu.Lock()
		l.slots = append(l.slots, s)
		l.mu.Unlock()
		go drain(recv.Read)
		go l.read(tr, s)
	})
	tok, err := g.token(i, token.RightListen)
	if err != nil {
		return nil, err
	}
	if err := g.negotiate(ctx, pc, "/v1/whep", tok, up); err != nil {
		return nil, fmt.Errorf("listener %d: %w", i, err)
	}
	return l, nil
}

// read records each packet's sequence number and latency; it parses the
// RTP header by hand to stay cheap.
func (l *benchListener) read(tr *webrtc.TrackRemote, s *slotStats) {
	buf := make([]byte, 1500)
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		now := time.Now().UnixNano()
		if n < 12 {
			continue
		}
		b := buf[:n]
		seq := binary.BigEndian.Uint16(b[2:4])
		off := 12 + 4*int(b[0]&0x0f)
		if b[0]&0x10 != 0 && len(b) >= off+4 {
			off += 4 + 4*int(binary.BigEndian.Uint16(b[off+2:off+4]))
		}
		if !s.started {
			s.started, s.lastSeq = true, seq
		}
		s.ext += int64(int16(seq - s.lastSeq))
		s.lastSeq = seq
		if l.g.phase.Load() != phaseMeasure {
			continue
		}
		if len(b) < off+9 {
			s.shortPkt++
			continue
		}
		sent := int64(binary.BigEndian.Uint64(b[off+1 : off+9]))
		// Uncontended but for the window's end, when result reads.
		l.mu.Lock()
		if s.count == 0 {
			s.first, s.highest = s.ext, s.ext
		}
		s.highest = max(s.highest, s.ext)
		s.count++
		s.latency = append(s.latency, int32((now-sent)/1000))
		l.mu.Unlock()
	}
}

// benchPublisher sends pre-built packets on its sendTrack.
type benchPublisher struct {
	track   *sendTrack
	hdr     rtp.Header
	payload []byte
	level   [1]byte
	sent    int
}

func (g *loadGen) publish(ctx context.Context, i int) (*benchPublisher, error) {
	pc, up, err := g.newPC()
	if err != nil {
		return nil, err
	}
	p := &benchPublisher{track: &sendTrack{bound: make(chan struct{})}, payload: make([]byte, g.o.payload)}
	// An Opus TOC byte (SILK-only 20 ms, mono), then the send time.
	p.payload[0] = 0x08
	tr, err := pc.AddTransceiverFromTrack(p.track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return nil, fmt.Errorf("add track: %w", err)
	}
	go drain(tr.Sender().Read)
	tok, err := g.token(i, token.RightPublish)
	if err != nil {
		return nil, err
	}
	if err := g.negotiate(ctx, pc, "/v1/whip", tok, up); err != nil {
		return nil, fmt.Errorf("publisher %d: %w", i, err)
	}
	select {
	case <-p.track.bound:
	case <-ctx.Done():
		return nil, fmt.Errorf("publisher %d track bind: %w", i, ctx.Err())
	}
	p.hdr = rtp.Header{Version: 2, PayloadType: p.track.pt, SSRC: p.track.ssrc, SequenceNumber: uint16(i * 1000),
		Timestamp: uint32(i) * 100000}
	return p, nil
}

// send writes every 20 ms a packet for each publisher i with i%senders ==
// k. When the goroutine was starved it catches up, as a browser's send
// queue does, so the load offered stays 50 packets a second each. Levels
// rotate: one group of `slots` publishers is loud at a time, the others
// quieter by more than the SFU's switch margin.
func (g *loadGen) send(k int, start time.Time, stop <-chan struct{}) {
	tick := time.NewTicker(packetInterval)
	defer tick.Stop()
	groups := (g.o.participants + g.o.slots - 1) / g.o.slots
	done := 0 // packets each of this goroutine's publishers has sent
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		elapsed := time.Since(start)
		loud := 0
		if g.o.rotate > 0 {
			loud = int(elapsed/g.o.rotate) % groups
		}
		for due := int(elapsed / packetInterval); done < due; done++ {
			g.sendRound(k, loud)
		}
	}
}

func (g *loadGen) sendRound(k, loud int) {
	measuring := g.phase.Load() == phaseMeasure
	for i := k; i < len(g.pubs); i += g.o.senders {
		p := g.pubs[i]
		level := byte(40 + i%50)
		if i/g.o.slots == loud {
			level = 10
		}
		p.hdr.SequenceNumber++
		p.hdr.Timestamp += 960
		p.hdr.Extensions = p.hdr.Extensions[:0]
		p.hdr.Extension = false
		if p.track.levelID != 0 {
			p.level[0] = level
			_ = p.hdr.SetExtension(p.track.levelID, p.level[:])
		}
		binary.BigEndian.PutUint64(p.payload[1:9], uint64(time.Now().UnixNano()))
		if _, err := p.track.w.WriteRTP(&p.hdr, p.payload); err == nil && measuring {
			p.sent++
		}
	}
}

func (g *loadGen) result(window time.Duration) *clientResult {
	res := &clientResult{Listeners: len(g.listeners), ExpectedPerListener: g.o.slots * int(window/packetInterval)}
	var lat []int32
	total := 0
	res.ReceivedMin = -1
	for _, l := range g.listeners {
		l.mu.Lock()
		got, lost := 0, 0
		for _, s := range l.slots {
			got += s.count
			if s.count == 0 {
				continue
			}
			span := int(s.highest - s.first + 1)
			lost += max(0, span-s.count)
			res.Duplicates += max(0, s.count-span)
			lat = append(lat, s.latency...)
		}
		l.mu.Unlock()
		total += got
		res.Lost += lost
		res.LostMaxListener = max(res.LostMaxListener, lost)
		if res.ReceivedMin < 0 || got < res.ReceivedMin {
			res.ReceivedMin = got
		}
	}
	res.ReceivedAvg = float64(total) / float64(len(g.listeners))
	for _, p := range g.pubs {
		res.Sent += p.sent
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		res.LatencyP50us = int64(lat[len(lat)/2])
		res.LatencyP99us = int64(lat[len(lat)*99/100])
		res.LatencyMaxus = int64(lat[len(lat)-1])
	}
	return res
}

// sendTrack is a TrackLocal that hands out its bound writer, SSRC and
// audio-level id, so packets can be written with chosen headers.
type sendTrack struct {
	w       webrtc.TrackLocalWriter
	ssrc    uint32
	pt      uint8
	levelID uint8
	bound   chan struct{}
	once    sync.Once
}

func (t *sendTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	for _, c := range ctx.CodecParameters() {
		if c.MimeType != webrtc.MimeTypeOpus {
			continue
		}
		t.once.Do(func() {
			t.w, t.ssrc, t.pt = ctx.WriteStream(), uint32(ctx.SSRC()), uint8(c.PayloadType)
			for _, e := range ctx.HeaderExtensions() {
				if e.URI == sdp.AudioLevelURI {
					t.levelID = uint8(e.ID)
				}
			}
			close(t.bound)
		})
		return c, nil
	}
	return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
}

func (t *sendTrack) Unbind(webrtc.TrackLocalContext) error { return nil }
func (t *sendTrack) ID() string                            { return "audio" }
func (t *sendTrack) RID() string                           { return "" }
func (t *sendTrack) StreamID() string                      { return "sfubench" }
func (t *sendTrack) Kind() webrtc.RTPCodecType             { return webrtc.RTPCodecTypeAudio }
