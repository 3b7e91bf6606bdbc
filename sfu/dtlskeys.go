package sfu

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/prf"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/srtp/v3"
)

// The SFU reads and writes SRTP itself, in the goroutine that reads the
// media socket (see media.go), so it needs each connection's SRTP keys,
// which pion derives from the DTLS handshake and keeps to itself. It
// derives them the same way (RFC 5764 section 4.2, RFC 5705) from what
// pion's public hooks show of the handshake, with the SFU as DTLS server:
// the ServerHello it sends gives the server random and the SRTP profile,
// and the key log line (NSS format) gives the client random and the master
// secret. Both stay in memory, as they do in pion. pion/webrtc has no
// public way to the keys themselves: its DTLSTransport keeps the dtls.Conn
// (whose ExportKeyingMaterial would do) and the SRTP sessions private, and
// its SettingEngine passes on no VerifyConnection callback. So this
// assumes DTLS 1.2 (one CLIENT_RANDOM line, the RFC 5705 exporter over
// SHA-256), the SFU as DTLS server, and no resumption: pion/webrtc sets no
// session store and requires a client certificate, for which pion/dtls
// resumes nothing; a resumed handshake would log its secret before any
// ServerHello. A handshake that breaks these gets fail, or neither
// callback, and its session's RTP goes through pion's own SRTP path
// (session.follow); TestPionPeersAreKeyedOnTheMediaPath and the
// TestDTLSKeys tests fail if a pion upgrade changes them.

// dtlsCipherSuite is the one suite offered: the SFU's certificate is ECDSA
// (pion's default), every browser has this suite, and its PRF hash
// (SHA-256) is what the exporter below assumes.
const dtlsCipherSuite = dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256

// srtpReplayWindow is how many packets back a late one is still accepted:
// pion's default.
const srtpReplayWindow = 64

// srtpKeys is one connection's SRTP state: local encrypts what the SFU
// sends, remote decrypts what it receives. A session has the one it uses.
type srtpKeys struct {
	local, remote *srtp.Context
}

// dtlsKeys collects one connection's handshake secrets through pion's
// hooks and calls ready with its SRTP contexts once they are known.
// pion's handshake goroutine calls both hooks, in order: ServerHello, then
// the key log line after the client's key exchange.
type dtlsKeys struct {
	ready func(srtpKeys)
	fail  func(error)
	// send and receive say which contexts the session needs: a WHIP
	// session only receives, a WHEP session only sends.
	send, receive bool

	mu           sync.Mutex
	serverRandom [handshake.RandomLength]byte
	profile      srtp.ProtectionProfile
	suite        uint16
	hello        bool
	// cryptex: the answer granted encrypted header extensions (RFC 9335),
	// for both directions.
	cryptex bool
}

// setCryptex says whether the answer granted RFC 9335 header encryption;
// it is called once the answer is made, before any handshake.
func (k *dtlsKeys) setCryptex(on bool) {
	k.mu.Lock()
	k.cryptex = on
	k.mu.Unlock()
}

// serverHello is pion's ServerHello hook: it records the message and
// returns it unchanged.
func (k *dtlsKeys) serverHello(m handshake.MessageServerHello) handshake.Message {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.serverRandom = m.Random.MarshalFixed()
	if m.CipherSuiteID != nil {
		k.suite = *m.CipherSuiteID
	}
	k.profile = 0
	for _, e := range m.Extensions {
		if u, ok := e.(*extension.UseSRTP); ok && len(u.ProtectionProfiles) > 0 {
			k.profile = srtp.ProtectionProfile(u.ProtectionProfiles[0])
		}
	}
	k.hello = true
	return &m
}

// Write takes pion's key log: "CLIENT_RANDOM <client random> <master
// secret>\n", hex-encoded.
func (k *dtlsKeys) Write(p []byte) (int, error) {
	keys, err := k.derive(p)
	switch {
	case err != nil && k.fail != nil:
		k.fail(err)
	case err == nil && k.ready != nil:
		k.ready(keys)
	}
	return len(p), nil
}

func (k *dtlsKeys) derive(line []byte) (srtpKeys, error) {
	fields := bytes.Fields(line)
	if len(fields) != 3 || string(fields[0]) != "CLIENT_RANDOM" {
		return srtpKeys{}, fmt.Errorf("sfu: unexpected DTLS key log line (%d fields)", len(fields))
	}
	clientRandom, err1 := hex.DecodeString(string(fields[1]))
	master, err2 := hex.DecodeString(string(fields[2]))
	if err := errors.Join(err1, err2); err != nil {
		return srtpKeys{}, fmt.Errorf("sfu: DTLS key log line does not parse: %w", err)
	}
	if len(clientRandom) != handshake.RandomLength {
		return srtpKeys{}, fmt.Errorf("sfu: DTLS key log line has a %d-byte client random, not %d", len(clientRandom), handshake.RandomLength)
	}
	k.mu.Lock()
	hello, suite, profile, serverRandom, cryptex := k.hello, k.suite, k.profile, k.serverRandom, k.cryptex
	k.mu.Unlock()
	switch {
	case !hello:
		return srtpKeys{}, errors.New("sfu: DTLS keys without a ServerHello: the SFU was not the DTLS server")
	case suite != uint16(dtlsCipherSuite):
		return srtpKeys{}, fmt.Errorf("sfu: DTLS chose cipher suite %#04x, not the one offered", suite)
	case profile == 0:
		return srtpKeys{}, errors.New("sfu: DTLS negotiated no SRTP profile")
	}
	cfg := srtp.Config{Profile: profile}
	exp := exporter{master: master, clientRandom: clientRandom, serverRandom: serverRandom[:]}
	if err := cfg.ExtractSessionKeysFromDTLS(exp, false); err != nil {
		return srtpKeys{}, fmt.Errorf("sfu: SRTP keys: %w", err)
	}
	var opts []srtp.ContextOption
	if cryptex {
		opts = append(opts, srtp.Cryptex(srtp.CryptexModeEnabled))
	}
	var keys srtpKeys
	var err error
	if k.send {
		if keys.local, err = srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, profile, opts...); err != nil {
			return srtpKeys{}, fmt.Errorf("sfu: SRTP sending context: %w", err)
		}
	}
	if k.receive {
		if keys.remote, err = srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, profile,
			append(opts, srtp.SRTPReplayProtection(srtpReplayWindow))...); err != nil {
			return srtpKeys{}, fmt.Errorf("sfu: SRTP receiving context: %w", err)
		}
	}
	return keys, nil
}

// exporter is RFC 5705's keying material exporter for a TLS 1.2 session
// whose PRF hash is SHA-256, seen from the server.
type exporter struct {
	master, clientRandom, serverRandom []byte
}

func (e exporter) ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error) {
	if len(context) != 0 {
		return nil, errors.New("sfu: keying material with a context is not needed here")
	}
	seed := make([]byte, 0, len(label)+len(e.clientRandom)+len(e.serverRandom))
	seed = append(append(append(seed, label...), e.clientRandom...), e.serverRandom...)
	return prf.PHash(e.master, seed, length, sha256.New)
}
