// Package sfutest drives Greffier's SFU from tests the way a browser would:
// real pion peers that publish an Ogg Opus file over WHIP in real time, or
// listen over WHEP and record what arrives. It is test support only; it
// must not import anything of Greffier but what a client knows (no sfu
// internals, no recorder, no store).
package sfutest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// StatusError is a refused WHIP/WHEP request: the HTTP status and the
// JSON error body's code and message.
type StatusError struct {
	StatusCode int
	Code       string
	Message    string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.StatusCode, e.Code, e.Message)
}

// Network says how a client reaches the server: the zero value is UDP
// host candidates, as on a LAN.
type Network struct {
	// ICEServers are STUN/TURN servers for the client's connection.
	ICEServers []webrtc.ICEServer
	// RelayOnly makes the client use relayed candidates only (ICE
	// transport policy "relay"): every packet goes through a TURN server.
	RelayOnly bool
	// NoUDP refuses the client every UDP socket (see noUDPNet): with
	// RelayOnly and a turn:...?transport=tcp server it reaches the SFU
	// only through TURN over TCP.
	NoUDP bool
	// TCP gathers ICE-TCP host candidates besides (or, with NoUDP,
	// instead of) UDP ones.
	TCP bool
}

// configuration is a client's PeerConnection configuration.
func configuration(noCryptex bool, n Network) webrtc.Configuration {
	c := webrtc.Configuration{ICEServers: n.ICEServers}
	if noCryptex {
		c.RTPHeaderEncryptionPolicy = webrtc.RTPHeaderEncryptionPolicyDisable
	}
	if n.RelayOnly {
		c.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	return c
}

// newAPI builds a client stack like a browser's: Opus with the audio-level
// extension, RTCP reports, no mDNS; on loopback only when the server is.
// With mux set, all its media goes through that one socket.
func newAPI(serverURL string, mux ice.UDPMux, n Network) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1",
		},
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
	if mux != nil {
		se.SetICEUDPMux(mux)
	}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	types := []webrtc.NetworkType{webrtc.NetworkTypeUDP4}
	switch {
	case n.TCP && n.NoUDP:
		types = []webrtc.NetworkType{webrtc.NetworkTypeTCP4}
	case n.TCP:
		types = append(types, webrtc.NetworkTypeTCP4)
	}
	se.SetNetworkTypes(types)
	if n.NoUDP {
		blocked, err := newNoUDPNet()
		if err != nil {
			return nil, fmt.Errorf("network: %w", err)
		}
		se.SetNet(blocked)
	}
	if u, err := url.Parse(serverURL); err == nil {
		if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsLoopback() {
			se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
		}
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(ir)), nil
}

// negotiate gathers pc's offer, POSTs it and applies the answer. It returns
// the session URL from Location and the answer's ETag.
func negotiate(ctx context.Context, client *http.Client, pc *webrtc.PeerConnection, endpoint, token string) (string, string, error) {
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return "", "", fmt.Errorf("create offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return "", "", fmt.Errorf("set offer: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", "", fmt.Errorf("gathering candidates: %w", ctx.Err())
	}
	status, body, hdr, err := do(ctx, client, http.MethodPost, endpoint, token, []byte(pc.LocalDescription().SDP))
	if err != nil {
		return "", "", err
	}
	if status != http.StatusCreated {
		return "", "", statusError(status, body)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/sdp" {
		return "", "", fmt.Errorf("answer has Content-Type %q, want application/sdp", ct)
	}
	loc, err := url.Parse(endpoint)
	if err != nil {
		return "", "", fmt.Errorf("endpoint URL: %w", err)
	}
	session, err := loc.Parse(hdr.Get("Location"))
	if err != nil || hdr.Get("Location") == "" {
		return "", "", fmt.Errorf("answer has no usable Location %q", hdr.Get("Location"))
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)}); err != nil {
		return "", "", fmt.Errorf("set answer: %w", err)
	}
	return session.String(), hdr.Get("ETag"), nil
}

// Delete sends DELETE to a session URL with token, as a leaving client
// does. It returns a *StatusError unless the answer is 200.
func Delete(ctx context.Context, client *http.Client, sessionURL, token string) error {
	if client == nil {
		client = http.DefaultClient
	}
	status, body, _, err := do(ctx, client, http.MethodDelete, sessionURL, token, nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return statusError(status, body)
	}
	return nil
}

func do(ctx context.Context, client *http.Client, method, target, token string, body []byte) (int, []byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: %w", method, target, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/sdp")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return doReq(client, req)
}

func doReq(client *http.Client, req *http.Request) (int, []byte, http.Header, error) {
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: read body: %w", req.Method, req.URL, err)
	}
	return resp.StatusCode, b, resp.Header, nil
}

func statusError(status int, body []byte) error {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &e) // a non-JSON body leaves Code empty, which tests will see
	return &StatusError{StatusCode: status, Code: e.Error.Code, Message: e.Error.Message}
}

// waitConnected waits until pc is connected, or fails when it fails.
func waitConnected(ctx context.Context, pc *webrtc.PeerConnection, connected <-chan struct{}, failed <-chan struct{}) error {
	select {
	case <-connected:
		return nil
	case <-failed:
		return fmt.Errorf("peer connection failed (state %s)", pc.ConnectionState())
	case <-ctx.Done():
		return fmt.Errorf("waiting for the connection: %w", ctx.Err())
	}
}

// stateSignals turns connection states into channels closed once each.
// pion may call the handler from several goroutines.
func stateSignals(pc *webrtc.PeerConnection) (connected, failed <-chan struct{}) {
	c, f := make(chan struct{}), make(chan struct{})
	var cOnce, fOnce sync.Once
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			cOnce.Do(func() { close(c) })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			fOnce.Do(func() { close(f) })
		}
	})
	return c, f
}

// muteConn is a UDP socket that can go silent at once, both ways, as a
// client whose network vanished: nothing it sends leaves, nothing sent to
// it arrives, and no goodbye (DTLS close, DELETE) is ever sent.
type muteConn struct {
	net.PacketConn
	muted atomic.Bool
}

func (c *muteConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.muted.Load() {
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, addr)
}

func (c *muteConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil || !c.muted.Load() {
			return n, addr, err
		}
	}
}
