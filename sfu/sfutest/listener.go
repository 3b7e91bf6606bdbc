package sfutest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// ListenOptions say where to listen and on how many slots.
type ListenOptions struct {
	WHEPURL string
	Token   string // join token with the listen right
	// Slots is how many recvonly audio sections to offer. Default 3.
	Slots      int
	HTTPClient *http.Client
	// NoCryptex offers no RFC 9335 header encryption, as browsers without
	// it do; pion offers it by default.
	NoCryptex bool
	// Network says how the client reaches the server. Default: UDP host
	// candidates.
	Network Network
}

// Received is one packet a Listener got.
type Received struct {
	SequenceNumber uint16
	Timestamp      uint32
	Marker         bool
	Payload        []byte
	Level          uint8
	HasLevel       bool
	At             time.Time
}

// Listener is a real WebRTC peer receiving a meeting over WHEP. It records
// every packet per SSRC, and the server's sender reports.
type Listener struct {
	pc       *webrtc.PeerConnection
	client   *http.Client
	token    string
	location string
	once     sync.Once
	wg       sync.WaitGroup

	mu      sync.Mutex
	byS     map[uint32][]Received
	srs     []rtcp.SenderReport
	changed chan struct{} // closed and replaced on every packet
}

// Listen opens a WHEP session with three slots and records what arrives.
func Listen(ctx context.Context, whepURL, token string) (*Listener, error) {
	return ListenWith(ctx, ListenOptions{WHEPURL: whepURL, Token: token})
}

// ListenWith is Listen with options.
func ListenWith(ctx context.Context, opts ListenOptions) (*Listener, error) {
	if opts.Slots == 0 {
		opts.Slots = 3
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = http.DefaultClient
	}
	api, err := newAPI(opts.WHEPURL, nil, opts.Network)
	if err != nil {
		return nil, err
	}
	pc, err := api.NewPeerConnection(configuration(opts.NoCryptex, opts.Network))
	if err != nil {
		return nil, fmt.Errorf("new peer connection: %w", err)
	}
	l := &Listener{pc: pc, client: opts.HTTPClient, token: opts.Token, byS: make(map[uint32][]Received), changed: make(chan struct{})}
	for range opts.Slots {
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio,
			webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			_ = pc.Close()
			return nil, fmt.Errorf("add transceiver: %w", err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		l.wg.Add(2)
		go func() { defer l.wg.Done(); readRTCP(recv.Read, l.keepRTCP) }()
		go func() { defer l.wg.Done(); l.read(tr, recv) }()
	})
	connected, failed := stateSignals(pc)
	l.location, _, err = negotiate(ctx, l.client, pc, opts.WHEPURL, opts.Token)
	if err == nil {
		err = waitConnected(ctx, pc, connected, failed)
	}
	if err != nil {
		_ = pc.Close()
		l.wg.Wait()
		return nil, err
	}
	return l, nil
}

func (l *Listener) read(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	var levelID uint8
	for _, e := range recv.GetParameters().HeaderExtensions {
		if e.URI == sdp.AudioLevelURI {
			levelID = uint8(e.ID)
		}
	}
	for {
		p, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		r := Received{
			SequenceNumber: p.SequenceNumber, Timestamp: p.Timestamp, Marker: p.Marker,
			Payload: p.Payload, At: time.Now(),
		}
		if levelID != 0 {
			if ext := p.GetExtension(levelID); len(ext) > 0 {
				r.Level, r.HasLevel = ext[0]&0x7f, true
			}
		}
		l.mu.Lock()
		l.byS[p.SSRC] = append(l.byS[p.SSRC], r)
		close(l.changed)
		l.changed = make(chan struct{})
		l.mu.Unlock()
	}
}

// Packets returns a copy of everything received, per SSRC.
func (l *Listener) Packets() map[uint32][]Received {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[uint32][]Received, len(l.byS))
	for s, rs := range l.byS {
		out[s] = append([]Received(nil), rs...)
	}
	return out
}

// SenderReports returns, in arrival order, the RTCP sender reports the
// server sent on the slots (usually one a second per slot that carried
// something): per slot SSRC, the packets and payload octets sent so far
// and the slot's RTP time at the report's NTP time.
func (l *Listener) SenderReports() []rtcp.SenderReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]rtcp.SenderReport(nil), l.srs...)
}

func (l *Listener) keepRTCP(pkts []rtcp.Packet) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, pkt := range pkts {
		if sr, ok := pkt.(*rtcp.SenderReport); ok {
			l.srs = append(l.srs, *sr)
		}
	}
}

// Count is how many packets arrived in all.
func (l *Listener) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, rs := range l.byS {
		n += len(rs)
	}
	return n
}

// Changed is closed when the next packet arrives: wait on it instead of
// sleeping.
func (l *Listener) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// Location is the WHEP session URL.
func (l *Listener) Location() string { return l.location }

// Close DELETEs the session, closes the connection and waits for its
// readers to finish.
func (l *Listener) Close(ctx context.Context) error {
	var err error
	l.once.Do(func() {
		err = Delete(ctx, l.client, l.location, l.token)
		err = errors.Join(err, l.pc.Close())
		l.wg.Wait()
	})
	return err
}
