package sfu

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/sdp/v3"
	"github.com/pion/transport/v5/packetio"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"
)

// SFU terminates participants' WebRTC connections for every meeting on one
// UDP port.
type SFU struct {
	cfg      Config
	meetings Meetings
	verifier Verifier
	tap      Tap
	log      *slog.Logger

	mu       sync.Mutex
	state    lifecycle
	media    *mediaConn // the media port, under mux
	mux      ice.UDPMux
	tcpMux   ice.TCPMux   // ICE over TCP on the media port's number; nil when off
	tcpLn    net.Listener // tcpMux's listener
	turn     *turnServer  // the embedded TURN server; nil when off
	net      *stdnet.Net
	pionLogs *pionLoggers
	codecs   *webrtc.MediaEngine // Opus and the audio level; each connection copies it
	cert     *webrtc.Certificate // shared by every connection; see certificate
	certAt   time.Time
	router   router
	baseCtx  context.Context // outlives requests: taps open and close under it
	cancel   context.CancelFunc
	rooms    map[string]*room
	sessions map[string]*session
	ended    map[string]time.Time // meetings refused, with when they ended
	trackSeq atomic.Uint64
	stats    counters
	maxEnded int              // MaxEndedMeetings; tests lower it
	now      func() time.Time // the clock of the ended list; tests set it
	// dtlsSettings, if set, changes each new connection's settings last:
	// tests make handshakes the SFU cannot derive keys from with it.
	dtlsSettings func(*webrtc.SettingEngine)
}

type lifecycle int

const (
	stateNew lifecycle = iota
	stateRunning
	stateStopped
)

// New checks cfg and returns an SFU that serves nothing until Start.
func New(cfg Config, meetings Meetings, verifier Verifier, tap Tap, logger *slog.Logger) (*SFU, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if meetings == nil || verifier == nil || tap == nil {
		return nil, errors.New("sfu: meetings, verifier and tap are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &SFU{
		cfg:      cfg,
		meetings: meetings,
		verifier: verifier,
		tap:      tap,
		log:      logger,
		rooms:    make(map[string]*room),
		sessions: make(map[string]*session),
		ended:    make(map[string]time.Time),
		now:      time.Now,
		maxEnded: MaxEndedMeetings,
		pionLogs: &pionLoggers{log: logger},
	}, nil
}

// Start binds the media UDP port and builds the WebRTC stack. It does not
// block. ctx bounds only the start itself; taps live until Stop.
func (s *SFU) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateNew {
		return errors.New("sfu: Start called twice or after Stop")
	}
	// One socket per core on the media port (Linux): each is read by its
	// own goroutine, which handles its peers' packets (mediaconn.go).
	conns, tcpLn, err := s.bindMedia(ctx)
	if err != nil {
		return err
	}
	closeConns := func() {
		for _, c := range conns {
			_ = c.Close()
		}
		if tcpLn != nil {
			_ = tcpLn.Close()
		}
	}
	for _, uc := range conns {
		// Best effort: the kernel caps both at its maxima, silently.
		if err := errors.Join(uc.SetReadBuffer(s.cfg.UDPBufferSize), uc.SetWriteBuffer(s.cfg.UDPBufferSize)); err != nil {
			s.log.Warn("sizing the media socket's buffers", "bytes", s.cfg.UDPBufferSize, "err", err)
		}
	}
	media, err := newMediaConn(conns, s.log)
	if err != nil {
		closeConns()
		return err
	}
	// One view of the host's interfaces for every connection: pion reads
	// them again for each one otherwise, a few kB each.
	n, err := stdnet.NewNet()
	if err != nil {
		closeConns()
		return fmt.Errorf("sfu: network interfaces: %w", err)
	}
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(opusCodec, webrtc.RTPCodecTypeAudio); err != nil {
		closeConns()
		return fmt.Errorf("sfu: register opus: %w", err)
	}
	if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI},
		webrtc.RTPCodecTypeAudio); err != nil {
		closeConns()
		return fmt.Errorf("sfu: register audio level extension: %w", err)
	}
	local, _ := media.LocalAddr().(*net.UDPAddr)
	if tcpLn != nil {
		s.tcpLn = tcpLn
		s.tcpMux = webrtc.NewICETCPMux(s.pionLogs.NewLogger("ice-tcp"), tcpLn, 64)
	}
	if s.cfg.TURN.Enabled {
		t, err := s.startTURN(ctx, local.IP)
		if err != nil {
			closeConns()
			if s.tcpMux != nil {
				_ = s.tcpMux.Close()
			}
			return err
		}
		s.turn = t
	}
	media.take = s.router.take
	media.run()
	s.media, s.net, s.codecs = media, n, me
	s.mux = webrtc.NewICEUDPMux(s.pionLogs.NewLogger("ice-mux"), media)
	s.baseCtx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	go s.runReports(s.baseCtx.Done())
	s.state = stateRunning
	s.log.Info("sfu started", "udp", media.LocalAddr().String(), "sockets", len(conns))
	return nil
}

// bindMedia binds the media port over UDP and, with ICETCP, the same port
// number over TCP. When the kernel picks the port, its TCP twin may already be
// taken by an unrelated socket; another pick is tried rather than failing a
// start that asked for no particular port.
func (s *SFU) bindMedia(ctx context.Context) ([]*net.UDPConn, net.Listener, error) {
	const picks = 8
	ephemeral := false
	if ua, err := net.ResolveUDPAddr("udp", s.cfg.UDPAddr); err == nil && ua.Port == 0 {
		ephemeral = true
	}
	for attempt := 1; ; attempt++ {
		conns, err := listenMedia(ctx, s.cfg.UDPAddr, runtime.GOMAXPROCS(0))
		if err != nil {
			return nil, nil, &BindError{Network: "udp", Addr: s.cfg.UDPAddr, Err: err}
		}
		if !s.cfg.ICETCP {
			return conns, nil, nil
		}
		local := conns[0].LocalAddr().String()
		ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", local)
		if err == nil {
			return conns, ln, nil
		}
		for _, c := range conns {
			_ = c.Close()
		}
		if !ephemeral || attempt == picks || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, &BindError{Network: "tcp", Addr: local, Err: err}
		}
	}
}

// BindError is a media socket Start could not bind: the UDP media port,
// or (with ICETCP) the same port number over TCP. Its caller knows the
// setting the user changes, and names it.
type BindError struct {
	Network string // udp, or tcp for ICE over TCP
	Addr    string
	Err     error
}

func (e *BindError) Error() string {
	if e.Network == "tcp" {
		return fmt.Sprintf("sfu: bind ICE over TCP on the media port's number %s: %v", e.Addr, e.Err)
	}
	return fmt.Sprintf("sfu: bind media UDP %s: %v", e.Addr, e.Err)
}

func (e *BindError) Unwrap() error { return e.Err }

// newAPI builds the pion API of one PeerConnection: Opus only with the
// audio-level extension (s.codecs), the shared ICE UDP mux, and the SFU as DTLS
// server with keys's hooks, through which the media path gets the
// connection's SRTP keys (dtlskeys.go; without them the connection's RTP
// goes through pion's SRTP path, see session.follow). No interceptors: the media path
// bypasses them and sends its own RTCP reports (rtcp.go).
func (s *SFU) newAPI(keys *dtlsKeys, buffers func(packetio.BufferPacketType, uint32) io.ReadWriteCloser) (*webrtc.API, error) {
	se := webrtc.SettingEngine{LoggerFactory: s.pionLogs, BufferFactory: buffers}
	se.SetNet(s.net)
	se.SetICEUDPMux(s.mux)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(s.cfg.ICEDisconnectedTimeout, s.cfg.ICEFailedTimeout, s.cfg.ICEKeepalive)
	// pion reads only DTLS, RTCP and STUN now (RTP takes the media path,
	// which reads whole datagrams and judges their size itself).
	se.SetReceiveMTU(1500)
	// No goroutine per track waiting for a first packet that pion will
	// never see: the media path reads RTP.
	se.SetFireOnTrackBeforeFirstRTP(true)
	if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleServer); err != nil {
		return nil, fmt.Errorf("sfu: DTLS role: %w", err)
	}
	se.SetDTLSCipherSuites(dtlsCipherSuite)
	se.SetDTLSServerHelloMessageHook(keys.serverHello)
	se.SetDTLSKeyLogWriter(keys)
	s.mu.Lock()
	change := s.dtlsSettings
	s.mu.Unlock()
	if change != nil {
		change(&se)
	}
	local, _ := s.media.LocalAddr().(*net.UDPAddr)
	if local != nil && local.IP.IsLoopback() {
		se.SetIncludeLoopbackCandidate(true)
	}
	types := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4}
	if local != nil && local.IP.To4() == nil && !local.IP.IsUnspecified() {
		types = []webrtc.NetworkType{webrtc.NetworkTypeUDP6, webrtc.NetworkTypeTCP6}
	}
	if s.tcpMux != nil {
		se.SetICETCPMux(s.tcpMux)
	} else {
		types = types[:1]
	}
	se.SetNetworkTypes(types)
	if len(s.cfg.PublicIPs) > 0 {
		// Behind a 1:1 NAT the bound address is useless to peers: announce
		// the public one instead.
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External:        s.cfg.PublicIPs,
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		}); err != nil {
			return nil, fmt.Errorf("sfu: PublicIPs %v: %w", s.cfg.PublicIPs, err)
		}
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(s.codecs), webrtc.WithSettingEngine(se),
		webrtc.WithInterceptorRegistry(&interceptor.Registry{})), nil
}

var opusCodec = webrtc.RTPCodecParameters{
	RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType:    webrtc.MimeTypeOpus,
		ClockRate:   48000,
		Channels:    2,
		SDPFmtpLine: "minptime=10;useinbandfec=1",
	},
	PayloadType: 111,
}

// certRenewal is how old the shared DTLS certificate may get before new
// connections get a new one: pion's certificates are valid for a month.
const certRenewal = 7 * 24 * time.Hour

// certificate is the DTLS certificate for a new connection. pion makes a
// key pair and a certificate for every connection unless given one; one
// for all saves the CPU and a few kB per connection, and peers pin it by
// its fingerprint in each answer anyway.
func (s *SFU) certificate() (webrtc.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cert == nil || s.now().Sub(s.certAt) > certRenewal {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return webrtc.Certificate{}, fmt.Errorf("sfu: DTLS key: %w", err)
		}
		cert, err := webrtc.GenerateCertificate(key)
		if err != nil {
			return webrtc.Certificate{}, fmt.Errorf("sfu: DTLS certificate: %w", err)
		}
		s.cert, s.certAt = cert, s.now()
	}
	return *s.cert, nil
}

// UDPAddr is the bound media address, nil before Start.
func (s *SFU) UDPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.media == nil {
		return nil
	}
	return s.media.LocalAddr()
}

// Stop closes every session and waits until every TrackTap.Close returned
// (or ctx ends). It is idempotent.
func (s *SFU) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.state != stateRunning {
		s.state = stateStopped
		s.mu.Unlock()
		return nil
	}
	s.state = stateStopped
	all := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		all = append(all, sess)
	}
	rooms := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, r)
	}
	s.mu.Unlock()

	err := closeAll(ctx, all)
	for _, r := range rooms {
		r.stop()
	}
	s.cancel()
	if cerr := s.mux.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("sfu: close ICE mux: %w", cerr))
	}
	if s.tcpMux != nil {
		_ = s.tcpMux.Close()
		_ = s.tcpLn.Close()
	}
	if s.turn != nil {
		if cerr := s.turn.srv.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("sfu: close TURN server: %w", cerr))
		}
	}
	// The mux closes the port; closing again does nothing.
	_ = s.media.Close()
	s.log.Info("sfu stopped")
	return err
}

// EndMeeting refuses new joins to meetingID from now on, closes its
// sessions and returns once every one of its TrackTap.Close returned.
func (s *SFU) EndMeeting(ctx context.Context, meetingID string) error {
	s.mu.Lock()
	s.markEnded(meetingID)
	var all []*session
	for _, sess := range s.sessions {
		if sess.claims.MeetingID == meetingID {
			all = append(all, sess)
		}
	}
	s.mu.Unlock()
	if err := closeAll(ctx, all); err != nil {
		return fmt.Errorf("sfu: end meeting %s: %w", meetingID, err)
	}
	return nil
}

// Disconnect closes the sessions of identity in meetingID (only those
// opened with token tokenID, unless it is "") and returns once every one
// of their TrackTap.Close returned: a revoked participant's recordings are
// stored, and they hear and say nothing more. It returns how many
// sessions it closed.
func (s *SFU) Disconnect(ctx context.Context, meetingID, identity, tokenID string) (int, error) {
	s.mu.Lock()
	all := s.takeSessions(meetingID, identity, tokenID, "", nil)
	s.mu.Unlock()
	if err := closeAll(ctx, all); err != nil {
		return len(all), fmt.Errorf("sfu: disconnect %s from %s: %w", identity, meetingID, err)
	}
	return len(all), nil
}

// Connected reports whether anyone is connected to meetingID, or joining
// it, on this SFU.
func (s *SFU) Connected(meetingID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rooms[meetingID] != nil
}

// markEnded adds meetingID to the ended list and keeps the list bounded:
// entries older than EndedMeetingTTL go, then the oldest beyond
// MaxEndedMeetings. EndMeeting is rare, so a scan is fine. Called with
// s.mu held.
func (s *SFU) markEnded(meetingID string) {
	now := s.now()
	s.ended[meetingID] = now
	var oldest string
	for id, at := range s.ended {
		if now.Sub(at) > s.cfg.EndedMeetingTTL {
			delete(s.ended, id)
		} else if oldest == "" || at.Before(s.ended[oldest]) {
			oldest = id
		}
	}
	if len(s.ended) > s.maxEnded {
		delete(s.ended, oldest)
	}
}

// isEnded reports whether meetingID is in the ended list. Called with
// s.mu held.
func (s *SFU) isEnded(meetingID string) bool {
	at, ok := s.ended[meetingID]
	if ok && s.now().Sub(at) > s.cfg.EndedMeetingTTL {
		delete(s.ended, meetingID)
		return false
	}
	return ok
}

// endedCount is the ended list's length, for tests.
func (s *SFU) endedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ended)
}

// observe tells the Observer, if any.
func (s *SFU) observe(ev Event) {
	if s.cfg.Observer != nil {
		s.cfg.Observer.Observe(ev)
	}
}

// closeAll closes sessions in parallel: each close waits for its taps to
// store their recordings, which may take a while.
func closeAll(ctx context.Context, all []*session) error {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, sess := range all {
		wg.Go(sess.close)
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for %d sessions to close: %w", len(all), ctx.Err())
	}
}
