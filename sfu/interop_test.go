package sfu_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/token"
	"github.com/greffier/greffier/sfu"
	"github.com/greffier/greffier/sfu/sfutest"
)

// request sends one request to the test server and returns the response
// with its body read.
func request(t *testing.T, b *testBundle, method, path string, hdr map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, b.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(raw)
}

func TestPreflightsAreAnsweredBeforeAnyTokenCheck(t *testing.T) {
	t.Parallel()
	b := setup(t, sfu.Config{})
	for _, tc := range []struct{ path, method, methods string }{
		{"/v1/whip", "POST", "POST, OPTIONS"},
		{"/v1/whep", "POST", "POST, OPTIONS"},
		{"/v1/whip/0123456789abcdef", "PATCH", "PATCH, DELETE, OPTIONS"},
		{"/v1/whep/0123456789abcdef", "DELETE", "PATCH, DELETE, OPTIONS"},
	} {
		resp, _ := request(t, b, "OPTIONS", tc.path, map[string]string{
			"Origin": "https://elsewhere.example", "Access-Control-Request-Method": tc.method,
			"Access-Control-Request-Headers": "authorization, content-type, if-match",
		}, "")
		require.Equal(t, http.StatusOK, resp.StatusCode, tc.path)
		h := resp.Header
		require.Equal(t, "*", h.Get("Access-Control-Allow-Origin"), tc.path)
		require.Contains(t, h.Get("Access-Control-Allow-Methods"), tc.method, tc.path)
		require.Contains(t, h.Get("Access-Control-Allow-Methods"), "PATCH", "clients learn trickle support from it")
		require.Equal(t, tc.methods, h.Get("Allow"), tc.path)
		for _, want := range []string{"Authorization", "Content-Type", "If-Match"} {
			require.Contains(t, h.Get("Access-Control-Allow-Headers"), want, tc.path)
		}
		for _, want := range []string{"Location", "ETag", "Link"} {
			require.Contains(t, h.Get("Access-Control-Expose-Headers"), want, tc.path)
		}
		if tc.method == "POST" {
			require.Equal(t, "application/sdp", h.Get("Accept-Post"), tc.path)
		}
	}
	// The real requests that follow a preflight carry CORS headers too,
	// refusals included, or the page could not read them.
	resp, body := request(t, b, "POST", "/v1/whip", map[string]string{"Origin": "https://elsewhere.example",
		"Content-Type": "application/sdp"}, pcmuOffer)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, body)
	require.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))
}

func TestOnlyListedOriginsMayCallWhenOriginsAreListed(t *testing.T) {
	t.Parallel()
	b := setup(t, sfu.Config{AllowedOrigins: []string{"https://meet.example.org"}})
	preflight := func(origin string) http.Header {
		resp, _ := request(t, b, "OPTIONS", "/v1/whip", map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "POST"}, "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		return resp.Header
	}
	h := preflight("https://meet.example.org")
	require.Equal(t, "https://meet.example.org", h.Get("Access-Control-Allow-Origin"))
	require.Contains(t, h.Values("Vary"), "Origin")
	h = preflight("https://evil.example")
	require.Empty(t, h.Get("Access-Control-Allow-Origin"), "a browser must refuse this origin")
	require.Empty(t, h.Get("Access-Control-Allow-Methods"))
}

func TestMethodsOutsideRFC9725AreRefusedWith405(t *testing.T) {
	t.Parallel()
	b := setup(t, sfu.Config{})
	pub := b.token(t, "m1", "alice", token.RightPublish)
	p := b.publish(t, "alice", tone(t, 440, 1))
	t.Cleanup(func() { _ = p.CloseWithoutDelete() })
	session := strings.TrimPrefix(p.Location(), b.srv.URL)
	for _, tc := range []struct{ method, path, allow string }{
		{"POST", session, "PATCH, DELETE, OPTIONS"},
		{"GET", session, "PATCH, DELETE, OPTIONS"},
		{"DELETE", "/v1/whip", "POST, OPTIONS"},
		{"PATCH", "/v1/whep", "POST, OPTIONS"},
	} {
		resp, body := request(t, b, tc.method, tc.path, map[string]string{"Authorization": "Bearer " + pub,
			"Content-Type": "application/sdp"}, pcmuOffer)
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "%s %s: %s", tc.method, tc.path, body)
		require.Equal(t, tc.allow, resp.Header.Get("Allow"))
		require.Contains(t, body, "method_not_allowed")
	}
}

var candidateLine = regexp.MustCompile(`(?m)^a=candidate:\S+ (\d+) `)

// components lists the component of every candidate line of an SDP.
func components(sdp string) []string {
	var out []string
	for _, m := range candidateLine.FindAllStringSubmatch(sdp, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestAnswersAndRestartsCarryOnlyRTPCandidates(t *testing.T) {
	t.Parallel()
	b := setup(t, sfu.Config{})
	p := b.publish(t, "alice", tone(t, 440, 3))
	t.Cleanup(func() { _ = p.CloseWithoutDelete() })
	got := components(p.RemoteSDP())
	require.NotEmpty(t, got)
	for _, c := range got {
		require.Equal(t, "1", c, "rtcp-mux is mandatory: no component 2 candidates\n%s", p.RemoteSDP())
	}
	_, err := p.RestartICE(t.Context())
	require.NoError(t, err)
	got = components(p.RemoteSDP())
	require.NotEmpty(t, got)
	for _, c := range got {
		require.Equal(t, "1", c, "the restart's fragment too\n%s", p.RemoteSDP())
	}
}

// rawOffer is a pion client's gathered offer with one audio transceiver
// of the given direction.
func rawOffer(t *testing.T, dir webrtc.RTPTransceiverDirection) string {
	t.Helper()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pc.Close() })
	if dir == webrtc.RTPTransceiverDirectionSendrecv {
		track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "a", "s")
		require.NoError(t, err)
		_, err = pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: dir})
		require.NoError(t, err)
	} else {
		_, err = pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: dir})
		require.NoError(t, err)
	}
	offer, err := pc.CreateOffer(nil)
	require.NoError(t, err)
	gathered := webrtc.GatheringCompletePromise(pc)
	require.NoError(t, pc.SetLocalDescription(offer))
	<-gathered
	return pc.LocalDescription().SDP
}

func TestWHEPAnswersSendonlyWhateverTheOfferSays(t *testing.T) {
	t.Parallel()
	b := setup(t, sfu.Config{})
	for _, dir := range []webrtc.RTPTransceiverDirection{webrtc.RTPTransceiverDirectionRecvonly, webrtc.RTPTransceiverDirectionSendrecv} {
		offer := rawOffer(t, dir)
		require.Contains(t, offer, "a="+dir.String())
		resp, answer := request(t, b, "POST", "/v1/whep", map[string]string{
			"Authorization": "Bearer " + b.token(t, "m1", "bob-"+dir.String(), token.RightListen),
			"Content-Type":  "application/sdp"}, offer)
		require.Equal(t, http.StatusCreated, resp.StatusCode, answer)
		require.Contains(t, answer, "a=sendonly\r\n", dir.String())
		require.NotContains(t, answer, "a=sendrecv", dir.String())
		require.NotContains(t, answer, "a=recvonly", dir.String())
	}
}

func TestAnOfferWithoutOpusIs422ForWHEPAnd406ForWHIP(t *testing.T) {
	t.Parallel()
	b := setup(t, sfu.Config{})
	// The WHEP draft keeps 406 for a counter-offer the client must answer.
	resp, body := request(t, b, "POST", "/v1/whep", map[string]string{
		"Authorization": "Bearer " + b.token(t, "m1", "bob", token.RightListen), "Content-Type": "application/sdp"}, pcmuOffer)
	require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode, body)
	require.Contains(t, body, "no_opus_audio")
	resp, body = request(t, b, "POST", "/v1/whip", map[string]string{
		"Authorization": "Bearer " + b.token(t, "m1", "bob", token.RightPublish), "Content-Type": "application/sdp"}, pcmuOffer)
	require.Equal(t, http.StatusNotAcceptable, resp.StatusCode, body)
}

// turnConfig is an embedded TURN server on free loopback ports.
func turnConfig() sfu.TURNConfig {
	return sfu.TURNConfig{Enabled: true, UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", Secret: "turn-secret-for-tests"}
}

// iceServers fetches the ICE servers for tok from the JSON endpoint.
func iceServers(t *testing.T, b *testBundle, tok string) []sfu.ICEServer {
	t.Helper()
	resp, body := request(t, b, "GET", "/v1/ice-servers", map[string]string{"Authorization": "Bearer " + tok}, "")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	var got struct {
		ICEServers []sfu.ICEServer `json:"ice_servers"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &got))
	return got.ICEServers
}

func TestTURNCredentialsAreDerivedFromTheJoinTokenAndShortLived(t *testing.T) {
	t.Parallel()
	b := setup(t, sfu.Config{TURN: turnConfig(), ICEServers: []string{"stun:stun.example.org:3478"}})
	expires := time.Now().Add(40 * time.Minute).Truncate(time.Second)
	tok, err := b.signer.Sign(token.Claims{ID: "tok-1", MeetingID: "m1", Identity: "alice",
		Rights: []token.Right{token.RightPublish}, ExpiresAt: expires})
	require.NoError(t, err)

	servers := iceServers(t, b, tok)
	require.Len(t, servers, 2)
	turnSrv := servers[0]
	require.Len(t, turnSrv.URLs, 2)
	require.Regexp(t, `^turn:127\.0\.0\.1:\d+\?transport=udp$`, turnSrv.URLs[0])
	require.Regexp(t, `^turn:127\.0\.0\.1:\d+\?transport=tcp$`, turnSrv.URLs[1])
	require.Equal(t, strconv.FormatInt(expires.Unix(), 10)+":tok-1", turnSrv.Username)
	mac := hmac.New(sha1.New, []byte("turn-secret-for-tests"))
	mac.Write([]byte(turnSrv.Username))
	require.Equal(t, base64.StdEncoding.EncodeToString(mac.Sum(nil)), turnSrv.Credential)
	require.Equal(t, []string{"stun:stun.example.org:3478"}, servers[1].URLs)
	require.Empty(t, servers[1].Username)

	// The same servers in the 201's Link headers (RFC 9725 section 4.6),
	// and in OPTIONS for clients that ask there first.
	wantLinks := func(links []string) {
		t.Helper()
		var ice []string
		for _, l := range links {
			if strings.HasSuffix(l, `rel="ice-server"`) || strings.Contains(l, `rel="ice-server";`) {
				ice = append(ice, l)
			}
		}
		require.Len(t, ice, 3, "%q", links)
		for i, u := range turnSrv.URLs {
			require.Equal(t, "<"+u+`>; rel="ice-server"; username="`+turnSrv.Username+`"; credential="`+
				turnSrv.Credential+`"; credential-type="password"`, ice[i])
		}
		require.Equal(t, `<stun:stun.example.org:3478>; rel="ice-server"`, ice[2])
	}
	resp, answer := request(t, b, "POST", "/v1/whip", map[string]string{"Authorization": "Bearer " + tok,
		"Content-Type": "application/sdp"}, rawOffer(t, webrtc.RTPTransceiverDirectionSendrecv))
	require.Equal(t, http.StatusCreated, resp.StatusCode, answer)
	wantLinks(resp.Header.Values("Link"))
	session := strings.TrimPrefix(resp.Header.Get("Location"), b.srv.URL)
	resp, _ = request(t, b, "DELETE", session, map[string]string{"Authorization": "Bearer " + tok}, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = request(t, b, "OPTIONS", "/v1/whip", map[string]string{"Authorization": "Bearer " + tok}, "")
	wantLinks(resp.Header.Values("Link"))

	// A join token may live for a week: its TURN credentials last at most
	// DefaultICECredentialTTL from when they are given out.
	before := time.Now()
	long, err := b.signer.Sign(token.Claims{ID: "tok-2", MeetingID: "m1", Identity: "bob",
		Rights: []token.Right{token.RightListen}, ExpiresAt: before.Add(7 * 24 * time.Hour)})
	require.NoError(t, err)
	user := iceServers(t, b, long)[0].Username
	exp, who, ok := strings.Cut(user, ":")
	require.True(t, ok, user)
	require.Equal(t, "tok-2", who)
	unix, err := strconv.ParseInt(exp, 10, 64)
	require.NoError(t, err)
	require.GreaterOrEqual(t, unix, before.Add(sfu.DefaultICECredentialTTL).Unix()-1)
	require.LessOrEqual(t, unix, time.Now().Add(sfu.DefaultICECredentialTTL).Unix()+1,
		"the credentials outlive DefaultICECredentialTTL")

	// No token, no credentials.
	resp, _ = request(t, b, "OPTIONS", "/v1/whip", nil, "")
	require.Empty(t, resp.Header.Values("Link"))
	resp, _ = request(t, b, "GET", "/v1/ice-servers", nil, "")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

// tcpOnly keeps the servers' turn: URLs over TCP.
func tcpOnly(servers []sfu.ICEServer) []webrtc.ICEServer {
	var out []webrtc.ICEServer
	for _, s := range servers {
		for _, u := range s.URLs {
			if strings.HasPrefix(u, "turn:") && strings.HasSuffix(u, "?transport=tcp") {
				out = append(out, webrtc.ICEServer{URLs: []string{u}, Username: s.Username, Credential: s.Credential})
			}
		}
	}
	return out
}

// TestAClientWithoutUDPPublishesThroughTURNOverTCP: the client's stack is
// refused every UDP socket and may use relayed candidates only, so all it
// sends goes by TCP to the embedded TURN server, which relays it to the
// media port by UDP. Every packet reaches the tap, and listening works the
// same way.
func TestAClientWithoutUDPPublishesThroughTURNOverTCP(t *testing.T) {
	t.Parallel()
	// A relayed pair takes a few seconds of checks to be chosen: the
	// SFU's test timeouts (a second) would give up first.
	b := setup(t, sfu.Config{TURN: turnConfig(), ICEDisconnectedTimeout: 5 * time.Second, ICEFailedTimeout: 10 * time.Second,
		ICEKeepalive: time.Second})
	tok := b.token(t, "m1", "alice", token.RightPublish)
	servers := tcpOnly(iceServers(t, b, tok))
	require.Len(t, servers, 1)
	network := sfutest.Network{ICEServers: servers, RelayOnly: true, NoUDP: true}

	l, err := sfutest.ListenWith(t.Context(), sfutest.ListenOptions{WHEPURL: b.whep, HTTPClient: b.srv.Client(),
		Token: b.token(t, "m1", "bob", token.RightListen), Network: network})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close(t.Context()) })
	p, err := sfutest.Publish(t.Context(), sfutest.PublishOptions{WHIPURL: b.whip, Token: tok,
		OggPath: tone(t, 440, 2), HTTPClient: b.srv.Client(), Network: network})
	require.NoError(t, err)
	tr := b.nextTrack(t)
	<-p.Done()
	require.Eventually(t, func() bool {
		got, _ := tr.snapshot()
		return len(got) == len(p.Sent())
	}, 20*time.Second, 50*time.Millisecond, "every packet sent reaches the tap")
	require.Eventually(t, func() bool { return l.Count() > len(p.Sent())/2 }, 20*time.Second, 50*time.Millisecond,
		"the listener, also relayed over TCP, hears the speaker")
	require.NoError(t, p.Close(t.Context()))
}

// TestAClientOverICETCPPublishesAndListens: a client with no UDP at all
// reaches the media port's number over TCP (ICE-TCP), and its RTP goes
// through pion's path, which reads the TCP stream.
func TestAClientOverICETCPPublishesAndListens(t *testing.T) {
	t.Parallel()
	b := setup(t, sfu.Config{ICETCP: true})
	network := sfutest.Network{TCP: true, NoUDP: true}
	l, err := sfutest.ListenWith(t.Context(), sfutest.ListenOptions{WHEPURL: b.whep, HTTPClient: b.srv.Client(),
		Token: b.token(t, "m1", "bob", token.RightListen), Network: network})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close(t.Context()) })
	p, err := sfutest.Publish(t.Context(), sfutest.PublishOptions{WHIPURL: b.whip, HTTPClient: b.srv.Client(),
		Token: b.token(t, "m1", "alice", token.RightPublish), OggPath: tone(t, 440, 2), Network: network})
	require.NoError(t, err)
	require.Contains(t, p.RemoteSDP(), " tcp ", "the answer offers a TCP candidate")
	tr := b.nextTrack(t)
	<-p.Done()
	require.Eventually(t, func() bool {
		got, _ := tr.snapshot()
		return len(got) == len(p.Sent())
	}, 20*time.Second, 50*time.Millisecond, "every packet sent over TCP reaches the tap")
	require.Eventually(t, func() bool { return l.Count() > len(p.Sent())/2 }, 20*time.Second, 50*time.Millisecond,
		"the listener over TCP hears the speaker")
	require.NoError(t, p.Close(t.Context()))
}

// selfSigned writes a self-signed certificate and key for 127.0.0.1 and
// returns their paths.
func selfSigned(t *testing.T) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "greffier-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	return certFile, keyFile
}

// TestTURNServesTLSWhenGivenACertificate: with a certificate the TURN
// server also listens for TLS and advertises a turns: URL, on which a TLS
// client completes a handshake and gets a TURN answer (an unauthenticated
// Allocate is refused with 401, as over UDP and TCP).
func TestTURNServesTLSWhenGivenACertificate(t *testing.T) {
	t.Parallel()
	certFile, keyFile := selfSigned(t)
	cfg := turnConfig()
	cfg.CertFile, cfg.KeyFile, cfg.TLSAddr = certFile, keyFile, "127.0.0.1:0"
	b := setup(t, sfu.Config{TURN: cfg})
	servers := iceServers(t, b, b.token(t, "m1", "alice", token.RightPublish))
	require.Len(t, servers[0].URLs, 3)
	u := servers[0].URLs[2]
	require.Regexp(t, `^turns:127\.0\.0\.1:\d+\?transport=tcp$`, u)
	addr := strings.TrimSuffix(strings.TrimPrefix(u, "turns:"), "?transport=tcp")
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // a test's self-signed certificate
	require.NoError(t, err)
	defer conn.Close()
	// A STUN Allocate request without credentials (RFC 8656 section 7.1).
	req := []byte{0x00, 0x03, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
		0x00, 0x19, 0x00, 0x04, 17, 0, 0, 0} // REQUESTED-TRANSPORT: UDP
	_, err = conn.Write(req)
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	resp := make([]byte, 512)
	n, err := conn.Read(resp)
	require.NoError(t, err)
	require.GreaterOrEqual(t, n, 20)
	require.Equal(t, []byte{0x01, 0x13}, resp[:2], "an Allocate error response")
	require.Equal(t, req[8:20], resp[8:20], "for our transaction")
}

// TestAnOfferWithVideoFirstGetsItsCandidatesAndETagOnTheAudioSection: a
// client offering a video section before its audio (as a camera encoder,
// or a page that added video first, does) gets that section rejected
// (port 0), and the answer's candidates in the accepted audio section, the
// BUNDLE group's, since browsers ignore those of a rejected section; the
// ETag names the audio section's ICE ufrag.
func TestAnOfferWithVideoFirstGetsItsCandidatesAndETagOnTheAudioSection(t *testing.T) {
	t.Parallel()
	b := setup(t, sfu.Config{})
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pc.Close() })
	_, err = pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
	require.NoError(t, err)
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "a", "s")
	require.NoError(t, err)
	_, err = pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	require.NoError(t, err)
	offer, err := pc.CreateOffer(nil)
	require.NoError(t, err)
	gathered := webrtc.GatheringCompletePromise(pc)
	require.NoError(t, pc.SetLocalDescription(offer))
	<-gathered

	resp, answer := request(t, b, "POST", "/v1/whip", map[string]string{
		"Authorization": "Bearer " + b.token(t, "m1", "alice", token.RightPublish), "Content-Type": "application/sdp"},
		pc.LocalDescription().SDP)
	require.Equal(t, http.StatusCreated, resp.StatusCode, answer)
	var d sdp.SessionDescription
	require.NoError(t, d.UnmarshalString(answer))
	require.Len(t, d.MediaDescriptions, 2)
	video, audio := d.MediaDescriptions[0], d.MediaDescriptions[1]
	require.Equal(t, "video", video.MediaName.Media)
	require.Zero(t, video.MediaName.Port.Value, "the video section is rejected")
	for _, a := range video.Attributes {
		require.NotEqual(t, "candidate", a.Key, "no candidate in the rejected section\n%s", answer)
	}
	var candidates int
	for _, a := range audio.Attributes {
		if a.Key == "candidate" {
			candidates++
		}
	}
	require.Positive(t, candidates, "the audio section carries the candidates\n%s", answer)
	ufrag, ok := audio.Attribute("ice-ufrag")
	require.True(t, ok)
	require.NotEmpty(t, ufrag)
	require.Equal(t, strconv.Quote(ufrag), resp.Header.Get("ETag"))
	session := strings.TrimPrefix(resp.Header.Get("Location"), b.srv.URL)
	resp, _ = request(t, b, "DELETE", session, map[string]string{"Authorization": "Bearer " + b.token(t, "m1", "alice", token.RightPublish)}, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestAClientWithoutUDPPublishesThroughAnExternalTURNServer: with the
// embedded server off, an external TURN server (a real one, pion/turn,
// checking TURN REST API credentials under its shared secret, as coturn's
// use-auth-secret does) listed in ICEServers is given to clients with
// credentials derived from their join token, and a client that may only
// relay over TCP publishes through it.
func TestAClientWithoutUDPPublishesThroughAnExternalTURNServer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm:       "external.example",
		AuthHandler: turn.LongTermTURNRESTAuthHandler("coturn-shared-secret", nil),
		ListenerConfigs: []turn.ListenerConfig{{Listener: ln,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{RelayAddress: net.IPv4(127, 0, 0, 1), Address: "127.0.0.1"}}},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	external := "turn:" + ln.Addr().String() + "?transport=tcp"

	b := setup(t, sfu.Config{ICEServers: []string{"stun:stun.example.org:3478", external},
		ICEServerSecret: "coturn-shared-secret", ICEDisconnectedTimeout: 5 * time.Second, ICEFailedTimeout: 10 * time.Second,
		ICEKeepalive: time.Second})
	tok := b.token(t, "m1", "alice", token.RightPublish)
	servers := iceServers(t, b, tok)
	require.Len(t, servers, 2, "no embedded server; the external STUN and TURN ones")
	require.Equal(t, []string{"stun:stun.example.org:3478"}, servers[0].URLs)
	require.Empty(t, servers[0].Username)
	require.Equal(t, []string{external}, servers[1].URLs)
	require.NotEmpty(t, servers[1].Username)

	p, err := sfutest.Publish(t.Context(), sfutest.PublishOptions{WHIPURL: b.whip, Token: tok,
		OggPath: tone(t, 440, 2), HTTPClient: b.srv.Client(),
		Network: sfutest.Network{ICEServers: tcpOnly(servers), RelayOnly: true, NoUDP: true}})
	require.NoError(t, err)
	tr := b.nextTrack(t)
	<-p.Done()
	require.Eventually(t, func() bool {
		got, _ := tr.snapshot()
		return len(got) == len(p.Sent())
	}, 20*time.Second, 50*time.Millisecond, "every packet sent through the external TURN server reaches the tap")
	require.NoError(t, p.Close(t.Context()))
}
