package sfu

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/stretchr/testify/require"
)

// dtlsKeysWait bounds every wait of these tests: a loopback handshake takes
// milliseconds, so reaching it means something is stuck.
const dtlsKeysWait = 5 * time.Second

// dtlsKeysOutcome is what a dtlsKeys reported, through channels its
// callbacks fill from pion's handshake goroutine.
type dtlsKeysOutcome struct {
	ready chan srtpKeys
	fail  chan error
}

// dtlsKeysWatched is a dtlsKeys whose callbacks report to the outcome.
// The channels hold more than one report so that a second, unexpected
// call shows up instead of blocking the handshake.
func dtlsKeysWatched(send, receive, cryptex bool) (*dtlsKeys, dtlsKeysOutcome) {
	out := dtlsKeysOutcome{ready: make(chan srtpKeys, 4), fail: make(chan error, 4)}
	k := &dtlsKeys{
		ready:   func(k srtpKeys) { out.ready <- k },
		fail:    func(err error) { out.fail <- err },
		send:    send,
		receive: receive,
	}
	k.setCryptex(cryptex)
	return k, out
}

// keys waits for ready and checks that fail was not called.
func (o dtlsKeysOutcome) keys(t *testing.T) srtpKeys {
	t.Helper()
	select {
	case k := <-o.ready:
		o.nothingMore(t)
		return k
	case err := <-o.fail:
		require.FailNow(t, "fail called instead of ready", "%v", err)
	case <-time.After(dtlsKeysWait):
		require.FailNow(t, "ready never called")
	}
	return srtpKeys{}
}

// err waits for fail and checks that ready was not called.
func (o dtlsKeysOutcome) err(t *testing.T) error {
	t.Helper()
	select {
	case err := <-o.fail:
		require.Error(t, err)
		o.nothingMore(t)
		return err
	case k := <-o.ready:
		require.FailNow(t, "ready called instead of fail", "%+v", k)
	case <-time.After(dtlsKeysWait):
		require.FailNow(t, "fail never called")
	}
	return nil
}

// nothingMore checks that no other report is pending. Write calls its
// callback before it returns, so once the caller has seen Write return
// (or the handshake end), every report is already in the channels.
func (o dtlsKeysOutcome) nothingMore(t *testing.T) {
	t.Helper()
	select {
	case k := <-o.ready:
		require.FailNow(t, "ready called again", "%+v", k)
	case err := <-o.fail:
		require.FailNow(t, "fail called too", "%v", err)
	default:
	}
}

// dtlsKeysCert is a self-signed ECDSA P-256 certificate, like the ones
// pion/webrtc generates.
func dtlsKeysCert(t *testing.T) tls.Certificate {
	t.Helper()
	cert, err := selfsign.GenerateSelfSigned()
	require.NoError(t, err)
	return cert
}

// dtlsKeysHandshake runs a real DTLS handshake over two loopback UDP
// sockets: the server is set up as pion/webrtc sets it up when the SFU
// answers (its default SRTP profiles, client certificate required, the
// SFU's one cipher suite unless suites says otherwise) with keys's hooks;
// the client, like a browser, offers every suite pion has and the given
// SRTP profiles (none: no use_srtp extension). It returns the client's
// connection state once both sides are done.
func dtlsKeysHandshake(t *testing.T, keys *dtlsKeys, profiles []dtls.SRTPProtectionProfile,
	suites ...dtls.CipherSuiteID,
) *dtls.State {
	t.Helper()
	return dtlsKeysHandshakeWith(t, keys, profiles, suites, nil, nil)
}

// dtlsKeysHandshakeWith is dtlsKeysHandshake with more options for
// either side.
func dtlsKeysHandshakeWith(t *testing.T, keys *dtlsKeys, profiles []dtls.SRTPProtectionProfile,
	suites []dtls.CipherSuiteID, serverMore []dtls.ServerOption, clientMore []dtls.ClientOption,
) *dtls.State {
	t.Helper()
	if len(suites) == 0 {
		suites = []dtls.CipherSuiteID{dtlsCipherSuite}
	}
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	clientSock, serverSock := listen(), listen()

	serverOpts := append([]dtls.ServerOption{
		dtls.WithCertificates(dtlsKeysCert(t)),
		dtls.WithSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_256_GCM, dtls.SRTP_AEAD_AES_128_GCM,
			dtls.SRTP_AES128_CM_HMAC_SHA1_80),
		dtls.WithExtendedMasterSecret(dtls.RequestExtendedMasterSecret),
		dtls.WithInsecureSkipVerify(true),
		dtls.WithCipherSuites(suites...),
		dtls.WithClientAuth(dtls.RequireAnyClientCert),
		dtls.WithServerHelloMessageHook(keys.serverHello),
		dtls.WithKeyLogWriter(keys),
	}, serverMore...)
	server, err := dtls.ServerWithOptions(serverSock, clientSock.LocalAddr(), serverOpts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = server.Close() })

	clientOpts := []dtls.ClientOption{
		dtls.WithCertificates(dtlsKeysCert(t)),
		dtls.WithExtendedMasterSecret(dtls.RequestExtendedMasterSecret),
		dtls.WithInsecureSkipVerify(true),
	}
	if len(profiles) > 0 {
		clientOpts = append(clientOpts, dtls.WithSRTPProtectionProfiles(profiles...))
	}
	clientOpts = append(clientOpts, clientMore...)
	client, err := dtls.ClientWithOptions(clientSock, serverSock.LocalAddr(), clientOpts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })

	ctx, cancel := context.WithTimeout(t.Context(), dtlsKeysWait)
	defer cancel()
	serverDone := make(chan error, 1)
	go func() { serverDone <- server.HandshakeContext(ctx) }()
	require.NoError(t, client.HandshakeContext(ctx), "client handshake")
	require.NoError(t, <-serverDone, "server handshake")

	state, ok := client.ConnectionState()
	require.True(t, ok)
	return &state
}

// dtlsKeysClient is the client's side of the SRTP session, derived the
// standard way from its DTLS state: local encrypts what it sends to the
// SFU, remote decrypts what the SFU sends.
func dtlsKeysClient(t *testing.T, state *dtls.State, profile srtp.ProtectionProfile, cryptex bool) (local, remote *srtp.Context) {
	t.Helper()
	cfg := srtp.Config{Profile: profile}
	require.NoError(t, cfg.ExtractSessionKeysFromDTLS(state, true))
	var opts []srtp.ContextOption
	if cryptex {
		opts = append(opts, srtp.Cryptex(srtp.CryptexModeEnabled))
	}
	local, err := srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, profile, opts...)
	require.NoError(t, err)
	remote, err = srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, profile, opts...)
	require.NoError(t, err)
	return local, remote
}

// dtlsKeysRTP is an Opus RTP packet with an audio level header extension.
func dtlsKeysRTP(t *testing.T, ssrc uint32, seq uint16) []byte {
	t.Helper()
	p := rtp.Packet{
		Header: rtp.Header{
			Version:        2,
			PayloadType:    111,
			SequenceNumber: seq,
			Timestamp:      960 * uint32(seq),
			SSRC:           ssrc,
		},
		Payload: []byte("not really opus, but long enough to see through"),
	}
	require.NoError(t, p.Header.SetExtension(1, []byte{0x80 | 30}))
	b, err := p.Marshal()
	require.NoError(t, err)
	return b
}

// dtlsKeysCheckCrypt encrypts plain with enc and checks that the result
// hides the payload (and, with cryptex, the header extension), that dec
// gives plain back, and that dec refuses the packet once tampered with.
func dtlsKeysCheckCrypt(t *testing.T, enc, dec *srtp.Context, plain []byte, cryptex bool) {
	t.Helper()
	var h rtp.Header
	hlen, err := h.Unmarshal(plain)
	require.NoError(t, err)
	payload := plain[hlen:]

	sealed, err := enc.EncryptRTP(nil, plain, nil)
	require.NoError(t, err)
	require.False(t, bytes.Contains(sealed, payload), "payload sent in clear")
	var sh rtp.Header
	_, err = sh.Unmarshal(sealed)
	require.NoError(t, err)
	if cryptex {
		require.Equal(t, uint16(0xC0DE), sh.ExtensionProfile, "header extensions not encrypted")
	} else {
		require.Equal(t, uint16(0xBEDE), sh.ExtensionProfile)
		require.Equal(t, []byte{0x80 | 30}, sh.GetExtension(1))
	}

	tampered := bytes.Clone(sealed)
	tampered[hlen+3] ^= 0x01
	_, err = dec.DecryptRTP(nil, tampered, nil)
	require.Error(t, err, "tampered packet accepted")

	opened, err := dec.DecryptRTP(nil, sealed, nil)
	require.NoError(t, err)
	require.Equal(t, plain, opened)
}

// TestDTLSKeysFromRealHandshake: the SFU's contexts, taken from the
// hooks of a real handshake, talk to the client's, taken from its DTLS
// state the standard way, in both directions, for each SRTP profile the
// server accepts, with and without cryptex.
func TestDTLSKeysFromRealHandshake(t *testing.T) {
	t.Parallel()
	profiles := []struct {
		name string
		dtls dtls.SRTPProtectionProfile
		srtp srtp.ProtectionProfile
	}{
		{"SRTP_AEAD_AES_128_GCM", dtls.SRTP_AEAD_AES_128_GCM, srtp.ProtectionProfileAeadAes128Gcm},
		{"SRTP_AES128_CM_HMAC_SHA1_80", dtls.SRTP_AES128_CM_HMAC_SHA1_80, srtp.ProtectionProfileAes128CmHmacSha1_80},
		{"SRTP_AEAD_AES_256_GCM", dtls.SRTP_AEAD_AES_256_GCM, srtp.ProtectionProfileAeadAes256Gcm},
	}
	for _, p := range profiles {
		for _, cryptex := range []bool{false, true} {
			name := p.name
			if cryptex {
				name += "/cryptex"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				keys, out := dtlsKeysWatched(true, true, cryptex)
				state := dtlsKeysHandshake(t, keys, []dtls.SRTPProtectionProfile{p.dtls})
				sfu := out.keys(t)
				require.NotNil(t, sfu.local)
				require.NotNil(t, sfu.remote)
				clientLocal, clientRemote := dtlsKeysClient(t, state, p.srtp, cryptex)

				// Client to SFU: what a WHIP publisher sends.
				dtlsKeysCheckCrypt(t, clientLocal, sfu.remote, dtlsKeysRTP(t, 0x11223344, 1000), cryptex)
				// SFU to client: what a WHEP viewer receives.
				dtlsKeysCheckCrypt(t, sfu.local, clientRemote, dtlsKeysRTP(t, 0x55667788, 7), cryptex)

				// The directions are not interchangeable: the SFU cannot
				// read back what it sent itself.
				sealed, err := sfu.local.EncryptRTP(nil, dtlsKeysRTP(t, 0x55667788, 8), nil)
				require.NoError(t, err)
				_, err = sfu.remote.DecryptRTP(nil, sealed, nil)
				require.Error(t, err)

				// The receiving context refuses a replayed packet.
				sealed, err = clientLocal.EncryptRTP(nil, dtlsKeysRTP(t, 0x11223344, 1001), nil)
				require.NoError(t, err)
				_, err = sfu.remote.DecryptRTP(nil, sealed, nil)
				require.NoError(t, err)
				_, err = sfu.remote.DecryptRTP(nil, sealed, nil)
				require.Error(t, err, "replayed packet accepted")
				out.nothingMore(t)
			})
		}
	}
}

// TestDTLSKeysFailFromRealHandshake: handshakes that succeed but leave
// the SFU without usable keys are reported through fail.
func TestDTLSKeysFailFromRealHandshake(t *testing.T) {
	t.Parallel()
	t.Run("client offers no SRTP", func(t *testing.T) {
		t.Parallel()
		keys, out := dtlsKeysWatched(true, true, false)
		dtlsKeysHandshake(t, keys, nil)
		require.ErrorContains(t, out.err(t), "no SRTP profile")
	})
	t.Run("server set up with another cipher suite", func(t *testing.T) {
		t.Parallel()
		keys, out := dtlsKeysWatched(true, true, false)
		dtlsKeysHandshake(t, keys, []dtls.SRTPProtectionProfile{dtls.SRTP_AEAD_AES_128_GCM},
			dtls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA)
		require.ErrorContains(t, out.err(t), "cipher suite 0xc00a")
	})
}

// dtlsKeysSessions is an in-memory DTLS session store. It keeps one
// session whatever the key: a client keys its sessions by the server's
// address, which is new for each handshake here.
type dtlsKeysSessions struct {
	mu   sync.Mutex
	sess dtls.Session
}

func (s *dtlsKeysSessions) Set(_ []byte, sess dtls.Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sess = sess
	return nil
}

func (s *dtlsKeysSessions) Get([]byte) (dtls.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sess, nil
}

func (s *dtlsKeysSessions) Del([]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sess = dtls.Session{}
	return nil
}

// TestDTLSKeysNoResumption pins what the derivation assumes of session
// resumption: a resumed handshake logs its secret before its ServerHello,
// which the hooks would report as a failure (the session then going
// through pion's own SRTP path, see TestDTLSKeysErrors, "no ServerHello
// first"). pion/webrtc requires a client certificate, and pion/dtls
// resumes no client-authenticated session: a browser offering to resume
// one, even to a server with a session store, gets a full handshake, and
// the SFU keys that talk to it.
func TestDTLSKeysNoResumption(t *testing.T) {
	t.Parallel()
	serverMore := []dtls.ServerOption{dtls.WithSessionStore(&dtlsKeysSessions{})}
	clientMore := []dtls.ClientOption{dtls.WithSessionStore(&dtlsKeysSessions{}), dtls.WithServerName("sfu")}
	profiles := []dtls.SRTPProtectionProfile{dtls.SRTP_AEAD_AES_128_GCM}
	keys, out := dtlsKeysWatched(true, true, false)
	first := dtlsKeysHandshakeWith(t, keys, profiles, nil, serverMore, clientMore)
	out.keys(t)
	require.NotEmpty(t, first.SessionID, "the first handshake made a session the client offers to resume")

	keys, out = dtlsKeysWatched(true, true, false)
	second := dtlsKeysHandshakeWith(t, keys, profiles, nil, serverMore, clientMore)
	require.NotEqual(t, first.SessionID, second.SessionID, "the session was resumed")
	sfu := out.keys(t)
	clientLocal, clientRemote := dtlsKeysClient(t, second, srtp.ProtectionProfileAeadAes128Gcm, false)
	dtlsKeysCheckCrypt(t, clientLocal, sfu.remote, dtlsKeysRTP(t, 1, 1), false)
	dtlsKeysCheckCrypt(t, sfu.local, clientRemote, dtlsKeysRTP(t, 2, 1), false)
}

// dtlsKeysHello is a ServerHello with the given suite (nil: none) and
// extensions.
func dtlsKeysHello(t *testing.T, suite *uint16, exts ...extension.Extension) handshake.MessageServerHello {
	t.Helper()
	m := handshake.MessageServerHello{
		Version:       protocol.Version1_2,
		CipherSuiteID: suite,
		Extensions:    exts,
	}
	require.NoError(t, m.Random.Populate())
	return m
}

func dtlsKeysUseSRTP(profiles ...extension.SRTPProtectionProfile) *extension.UseSRTP {
	return &extension.UseSRTP{ProtectionProfiles: profiles}
}

func dtlsKeysSuite(id dtls.CipherSuiteID) *uint16 {
	s := uint16(id)
	return &s
}

// dtlsKeysLine is a well-formed key log line with random secrets.
func dtlsKeysLine(t *testing.T) []byte {
	t.Helper()
	var clientRandom [handshake.RandomLength]byte
	var master [48]byte
	_, err := rand.Read(clientRandom[:])
	require.NoError(t, err)
	_, err = rand.Read(master[:])
	require.NoError(t, err)
	return fmt.Appendf(nil, "CLIENT_RANDOM %x %x\n", clientRandom, master)
}

// dtlsKeysWrite writes line and checks that Write takes all of it without
// error, whatever the line.
func dtlsKeysWrite(t *testing.T, keys *dtlsKeys, line []byte) {
	t.Helper()
	n, err := keys.Write(line)
	require.NoError(t, err)
	require.Equal(t, len(line), n)
}

func TestDTLSKeysServerHelloHookReturnsTheMessage(t *testing.T) {
	t.Parallel()
	keys, out := dtlsKeysWatched(true, true, false)
	m := dtlsKeysHello(t, dtlsKeysSuite(dtlsCipherSuite), dtlsKeysUseSRTP(extension.SRTP_AEAD_AES_128_GCM))
	got := keys.serverHello(m)
	require.Equal(t, &m, got)
	out.nothingMore(t)
}

// TestDTLSKeysErrors: each way the hooks can fall short calls fail with
// an error that says what went wrong, never ready, and Write still takes
// the whole line without error (pion only logs a key log error).
func TestDTLSKeysErrors(t *testing.T) {
	t.Parallel()
	good := dtlsKeysSuite(dtlsCipherSuite)
	gcm := dtlsKeysUseSRTP(extension.SRTP_AEAD_AES_128_GCM)
	line := dtlsKeysLine(t)
	fields := strings.Fields(string(line))
	cases := []struct {
		name  string
		hello *handshake.MessageServerHello // nil: no ServerHello seen
		line  []byte
		want  string
	}{
		{
			name: "garbage line",
			hello: func() *handshake.MessageServerHello {
				m := dtlsKeysHello(t, good, gcm)
				return &m
			}(),
			line: []byte("this is not a key log line\n"),
			want: "unexpected DTLS key log line",
		},
		{
			name: "empty line",
			line: nil,
			want: "unexpected DTLS key log line (0 fields)",
		},
		{
			name: "another label",
			line: []byte("CLIENT_HANDSHAKE_TRAFFIC_SECRET " + fields[1] + " " + fields[2] + "\n"),
			want: "unexpected DTLS key log line",
		},
		{
			name: "not hex",
			line: []byte("CLIENT_RANDOM " + fields[1] + " not-hex\n"),
			want: "DTLS key log line does not parse",
		},
		{
			name: "short client random",
			line: []byte("CLIENT_RANDOM " + fields[1][:10] + " " + fields[2] + "\n"),
			want: "5-byte client random, not 32",
		},
		{
			name: "no ServerHello first",
			line: line,
			want: "without a ServerHello",
		},
		{
			name: "another cipher suite",
			hello: func() *handshake.MessageServerHello {
				m := dtlsKeysHello(t, dtlsKeysSuite(dtls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256), gcm)
				return &m
			}(),
			line: line,
			want: "cipher suite 0xc02f, not the one offered",
		},
		{
			name: "no cipher suite",
			hello: func() *handshake.MessageServerHello {
				m := dtlsKeysHello(t, nil, gcm)
				return &m
			}(),
			line: line,
			want: "cipher suite 0x0000",
		},
		{
			name: "no use_srtp extension",
			hello: func() *handshake.MessageServerHello {
				m := dtlsKeysHello(t, good, &extension.RenegotiationInfo{}, &extension.UseExtendedMasterSecret{Supported: true})
				return &m
			}(),
			line: line,
			want: "no SRTP profile",
		},
		{
			name: "use_srtp without a profile",
			hello: func() *handshake.MessageServerHello {
				m := dtlsKeysHello(t, good, dtlsKeysUseSRTP())
				return &m
			}(),
			line: line,
			want: "no SRTP profile",
		},
		{
			name: "unknown SRTP profile",
			hello: func() *handshake.MessageServerHello {
				m := dtlsKeysHello(t, good, dtlsKeysUseSRTP(0x7777))
				return &m
			}(),
			line: line,
			want: "SRTP keys",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			keys, out := dtlsKeysWatched(true, true, false)
			if c.hello != nil {
				keys.serverHello(*c.hello)
			}
			dtlsKeysWrite(t, keys, c.line)
			require.ErrorContains(t, out.err(t), c.want)
		})
	}

	t.Run("a later ServerHello without use_srtp forgets the profile", func(t *testing.T) {
		t.Parallel()
		keys, out := dtlsKeysWatched(true, true, false)
		keys.serverHello(dtlsKeysHello(t, good, gcm))
		keys.serverHello(dtlsKeysHello(t, good))
		dtlsKeysWrite(t, keys, line)
		require.ErrorContains(t, out.err(t), "no SRTP profile")
	})

	t.Run("no callbacks", func(t *testing.T) {
		t.Parallel()
		keys := &dtlsKeys{send: true, receive: true}
		dtlsKeysWrite(t, keys, []byte("garbage"))
		keys.serverHello(dtlsKeysHello(t, good, gcm))
		dtlsKeysWrite(t, keys, line)
	})
}

// TestDTLSKeysBuildsOnlyTheContextsAskedFor: a WHIP session only
// receives, a WHEP one only sends.
func TestDTLSKeysBuildsOnlyTheContextsAskedFor(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		send, receive bool
	}{
		{"send only", true, false},
		{"receive only", false, true},
		{"both", true, true},
		{"neither", false, false},
	}
	line := dtlsKeysLine(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			keys, out := dtlsKeysWatched(c.send, c.receive, false)
			keys.serverHello(dtlsKeysHello(t, dtlsKeysSuite(dtlsCipherSuite),
				dtlsKeysUseSRTP(extension.SRTP_AES128_CM_HMAC_SHA1_80)))
			dtlsKeysWrite(t, keys, line)
			got := out.keys(t)
			require.Equal(t, c.send, got.local != nil, "local context")
			require.Equal(t, c.receive, got.remote != nil, "remote context")
		})
	}

	// The same secrets give the same contexts whichever are asked for:
	// the send-only local context talks to the client as the full one
	// would.
	t.Run("send only from a real handshake", func(t *testing.T) {
		t.Parallel()
		keys, out := dtlsKeysWatched(true, false, false)
		state := dtlsKeysHandshake(t, keys, []dtls.SRTPProtectionProfile{dtls.SRTP_AEAD_AES_128_GCM})
		got := out.keys(t)
		require.Nil(t, got.remote)
		_, clientRemote := dtlsKeysClient(t, state, srtp.ProtectionProfileAeadAes128Gcm, false)
		dtlsKeysCheckCrypt(t, got.local, clientRemote, dtlsKeysRTP(t, 42, 1), false)
	})
	t.Run("receive only from a real handshake", func(t *testing.T) {
		t.Parallel()
		keys, out := dtlsKeysWatched(false, true, false)
		state := dtlsKeysHandshake(t, keys, []dtls.SRTPProtectionProfile{dtls.SRTP_AES128_CM_HMAC_SHA1_80})
		got := out.keys(t)
		require.Nil(t, got.local)
		clientLocal, _ := dtlsKeysClient(t, state, srtp.ProtectionProfileAes128CmHmacSha1_80, false)
		dtlsKeysCheckCrypt(t, clientLocal, got.remote, dtlsKeysRTP(t, 42, 1), false)
	})
}
