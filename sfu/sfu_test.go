package sfu_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/greffier/greffier/internal/token"
	"github.com/greffier/greffier/sfu"
	"github.com/greffier/greffier/sfu/sfutest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var secret = []byte("0123456789abcdef0123456789abcdef")

// memMeetings is an in-memory Meetings: the seam's contract, not a
// database stand-in (the store's own tests run real databases).
type memMeetings struct {
	mu       sync.Mutex
	meetings map[string]*memMeeting
	leaves   []string
	joins    []string
}

type memMeeting struct {
	zero    time.Time
	closed  bool
	present map[string]bool
	// movedTo is the base URL of the node holding the meeting's media,
	// when it is another.
	movedTo string
}

func (m *memMeetings) add(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.meetings[id] = &memMeeting{present: map[string]bool{}}
}

func (m *memMeetings) Join(_ context.Context, c token.Claims) (time.Time, error) {
	meetingID, identity := c.MeetingID, c.Identity
	m.mu.Lock()
	defer m.mu.Unlock()
	mt := m.meetings[meetingID]
	if mt == nil {
		return time.Time{}, fmt.Errorf("join %s: %w", meetingID, sfu.ErrMeetingNotFound)
	}
	if mt.closed {
		return time.Time{}, fmt.Errorf("join %s: %w", meetingID, sfu.ErrMeetingClosed)
	}
	if mt.zero.IsZero() {
		mt.zero = time.Now()
	}
	mt.present[identity] = true
	m.joins = append(m.joins, meetingID+"/"+identity)
	return mt.zero, nil
}

func (m *memMeetings) Place(_ context.Context, meetingID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if mt := m.meetings[meetingID]; mt != nil && mt.movedTo != "" {
		return &sfu.MovedError{MeetingID: meetingID, BaseURL: mt.movedTo}
	}
	return nil
}

func (m *memMeetings) Leave(_ context.Context, meetingID, identity string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if mt := m.meetings[meetingID]; mt != nil {
		delete(mt.present, identity)
	}
	m.leaves = append(m.leaves, meetingID+"/"+identity)
	return nil
}

func (m *memMeetings) zero(id string) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.meetings[id].zero
}

func (m *memMeetings) left() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.leaves...)
}

// recTap is a Tap that keeps copies of every packet it is given.
type recTap struct {
	mu     sync.Mutex
	tracks []*recTrack
	opened chan *recTrack
}

type recTrack struct {
	info    sfu.TrackInfo
	mu      sync.Mutex
	packets []rtp.Packet
	closes  int
	closed  chan struct{}
}

func (t *recTap) OpenTrack(_ context.Context, info sfu.TrackInfo) (sfu.TrackTap, error) {
	tr := &recTrack{info: info, closed: make(chan struct{})}
	t.mu.Lock()
	t.tracks = append(t.tracks, tr)
	t.mu.Unlock()
	t.opened <- tr
	return tr, nil
}

func (t *recTrack) WriteRTP(p *rtp.Packet) {
	c := *p
	c.Payload = bytes.Clone(p.Payload)
	c.Extensions = nil
	t.mu.Lock()
	t.packets = append(t.packets, c)
	t.mu.Unlock()
}

func (t *recTrack) Close(context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closes++
	if t.closes == 1 {
		close(t.closed)
	}
	return nil
}

func (t *recTrack) snapshot() ([]rtp.Packet, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]rtp.Packet(nil), t.packets...), t.closes
}

type testBundle struct {
	sfu      *sfu.SFU
	srv      *httptest.Server
	signer   *token.Signer
	meetings *memMeetings
	tap      *recTap
	whip     string
	whep     string
}

func setup(t testing.TB, cfg sfu.Config) *testBundle {
	t.Helper()
	return setupTap(t, cfg, nil)
}

// setupTap is setup with a Tap that wraps a recTap (nil: a plain recTap).
func setupTap(t testing.TB, cfg sfu.Config, wrapper interface {
	sfu.Tap
	rec() *recTap
},
) *testBundle {
	t.Helper()
	signer, err := token.NewSigner(secret)
	require.NoError(t, err)
	mm := &memMeetings{meetings: map[string]*memMeeting{}}
	mm.add("m1")
	var tap sfu.Tap = &recTap{opened: make(chan *recTrack, 256)}
	if wrapper != nil {
		tap = wrapper
	}
	cfg.UDPAddr = "127.0.0.1:0"
	if cfg.ICEDisconnectedTimeout == 0 {
		cfg.ICEDisconnectedTimeout = time.Second
		cfg.ICEFailedTimeout = time.Second
		cfg.ICEKeepalive = 200 * time.Millisecond
	}
	s, err := sfu.New(cfg, mm, signer, tap, nil)
	require.NoError(t, err)
	require.NoError(t, s.Start(t.Context()))
	mux := http.NewServeMux()
	mux.Handle("/v1/whip", s.WHIPHandler())
	mux.Handle("/v1/whip/", s.WHIPHandler())
	mux.Handle("/v1/whep", s.WHEPHandler())
	mux.Handle("/v1/whep/", s.WHEPHandler())
	mux.Handle("/v1/ice-servers", s.ICEServersHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, s.Stop(ctx))
		srv.Close()
	})
	rt, _ := tap.(*recTap)
	if wrapper != nil {
		rt = wrapper.rec()
	}
	return &testBundle{sfu: s, srv: srv, signer: signer, meetings: mm, tap: rt,
		whip: srv.URL + "/v1/whip", whep: srv.URL + "/v1/whep"}
}

func (b *testBundle) token(t testing.TB, meeting, identity string, rights ...token.Right) string {
	t.Helper()
	tok, err := b.signer.Sign(token.Claims{MeetingID: meeting, Identity: identity, DisplayName: strings.ToUpper(identity),
		Rights: rights, ExpiresAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	return tok
}

func (b *testBundle) publish(t *testing.T, identity, file string) *sfutest.Publisher {
	t.Helper()
	p, err := sfutest.Publish(t.Context(), sfutest.PublishOptions{
		WHIPURL: b.whip, Token: b.token(t, "m1", identity, token.RightPublish), OggPath: file,
		HTTPClient: b.srv.Client(),
	})
	require.NoError(t, err)
	return p
}

func (b *testBundle) listen(t *testing.T, identity string) *sfutest.Listener {
	t.Helper()
	l, err := sfutest.ListenWith(t.Context(), sfutest.ListenOptions{
		WHEPURL: b.whep, Token: b.token(t, "m1", identity, token.RightListen), HTTPClient: b.srv.Client(),
	})
	require.NoError(t, err)
	return l
}

func (b *testBundle) nextTrack(t *testing.T) *recTrack {
	t.Helper()
	select {
	case tr := <-b.tap.opened:
		return tr
	case <-time.After(10 * time.Second):
		t.Fatal("no track was opened")
		return nil
	}
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// tone makes a small Ogg Opus file of a sine wave in the test's temp dir.
// Extra ffmpeg output options (e.g. "-b:a", "256k") override the defaults.
func tone(t testing.TB, hz int, seconds float64, extra ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), fmt.Sprintf("tone%d.opus", hz))
	args := append([]string{"-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=%d:duration=%g", hz, seconds),
		"-ac", "1", "-c:a", "libopus", "-b:a", "24k", "-frame_duration", "20"}, extra...)
	out, err := exec.CommandContext(t.Context(), "ffmpeg", append(args, "-y", path)...).CombinedOutput()
	require.NoError(t, err, "ffmpeg: %s", out)
	_, err = os.Stat(path)
	require.NoError(t, err)
	return path
}

func TestPublishTapSeesEveryPacket(t *testing.T) {
	t.Parallel()
	b := setup(t, sfu.Config{})
	pub := b.publish(t, "alice", tone(t, 440, 1))
	tr := b.nextTrack(t)
	waitClosed(t, pub.Done(), "the file to be sent")
	sent := pub.Sent()
	require.GreaterOrEqual(t, len(sent), 50, "one second of 20 ms packets, plus the encoder's pre-skip")

	require.Eventually(t, func() bool { p, _ := tr.snapshot(); return len(p) == len(sent) }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, pub.Close(t.Context()))
	waitClosed(t, tr.closed, "the tap to close")

	info := tr.info
	require.Equal(t, "m1", info.MeetingID)
	require.Equal(t, "alice", info.Identity)
	require.Equal(t, "ALICE", info.DisplayName)
	require.Equal(t, pub.SSRC(), info.SSRC)
	require.Equal(t, uint32(48000), info.ClockRate)
	require.Equal(t, 2, info.Channels)
	require.Equal(t, b.meetings.zero("m1"), info.ClockZero)
	require.False(t, info.FirstPacketAt.Before(pub.Started()), "first packet cannot arrive before it was sent")
	require.Less(t, info.FirstPacketAt.Sub(pub.Started()), time.Second)

	got, closes := tr.snapshot()
	require.Equal(t, 1, closes)
	for i, p := range got {
		require.Equal(t, pub.SSRC(), p.SSRC, "packet %d", i)
		require.Equal(t, sent[i].SequenceNumber, p.SequenceNumber, "packet %d", i)
		require.Equal(t, sent[i].Timestamp, p.Timestamp, "packet %d", i)
		require.Equal(t, sent[i].Payload, p.Payload, "packet %d", i)
	}
	require.Equal(t, uint32((len(got)-1)*960), got[len(got)-1].Timestamp-got[0].Timestamp)
	require.Eventually(t, func() bool { return len(b.meetings.left()) == 1 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, []string{"m1/alice"}, b.meetings.left())
}

func payloadSet(sent []sfutest.SentPacket) map[string]bool {
	set := make(map[string]bool, len(sent))
	for _, p := range sent {
		set[string(p.Payload)] = true
	}
	return set
}

func TestListenerHearsOthersNotItself(t *testing.T) {
	t.Parallel()
	b := setup(t, sfu.Config{})
	// alice listens with the identity she publishes with: she must hear bob only.
	lis := b.listen(t, "alice")
	alice := b.publish(t, "alice", tone(t, 440, 1))
	bob := b.publish(t, "bob", tone(t, 660, 1))
	waitClosed(t, alice.Done(), "alice's file")
	waitClosed(t, bob.Done(), "bob's file")
	require.Eventually(t, func() bool { return lis.Count() >= 30 }, 5*time.Second, 10*time.Millisecond)

	alices, bobs := payloadSet(alice.Sent()), payloadSet(bob.Sent())
	got := lis.Packets()
	require.Len(t, got, 1, "bob arrives on one slot")
	for ssrc, rs := range got {
		require.NotEqual(t, bob.SSRC(), ssrc, "slots carry their own SSRC")
		for i, r := range rs {
			require.False(t, alices[string(r.Payload)], "alice heard herself (packet %d)", i)
			require.True(t, bobs[string(r.Payload)], "packet %d is not bob's", i)
			require.True(t, r.HasLevel, "audio level is forwarded with the listener's id")
			if i > 0 {
				require.Equal(t, rs[i-1].SequenceNumber+1, r.SequenceNumber, "packet %d", i)
				require.Equal(t, rs[i-1].Timestamp+960, r.Timestamp, "packet %d", i)
			}
		}
	}
	require.NoError(t, lis.Close(t.Context()))
	require.NoError(t, alice.Close(t.Context()))
	require.NoError(t, bob.Close(t.Context()))
}

func TestEndMeetingClosesTapsAndRefusesJoins(t *testing.T) {
	t.Parallel()
	b := setup(t, sfu.Config{})
	pub := b.publish(t, "alice", tone(t, 440, 3))
	tr := b.nextTrack(t)
	require.NoError(t, b.sfu.EndMeeting(t.Context(), "m1"))
	_, closes := tr.snapshot()
	require.Equal(t, 1, closes, "EndMeeting returns after the tap's Close")

	_, err := sfutest.Publish(t.Context(), sfutest.PublishOptions{WHIPURL: b.whip,
		Token: b.token(t, "m1", "bob", token.RightPublish), OggPath: tone(t, 660, 1), HTTPClient: b.srv.Client()})
	requireStatus(t, err, http.StatusConflict, "meeting_ended")
	_ = pub.CloseWithoutDelete()
}

func TestVanishedPeerClosesTap(t *testing.T) {
	t.Parallel()
	b := setup(t, sfu.Config{})
	pub := b.publish(t, "alice", tone(t, 440, 3))
	tr := b.nextTrack(t)
	require.NoError(t, pub.CloseWithoutDelete())
	waitClosed(t, tr.closed, "the tap of a vanished peer to close")
	require.Eventually(t, func() bool { return len(b.meetings.left()) == 1 }, 5*time.Second, 10*time.Millisecond)
}

func requireStatus(t *testing.T, err error, status int, code string) {
	t.Helper()
	require.Error(t, err)
	se, ok := errors.AsType[*sfutest.StatusError](err)
	require.True(t, ok, "want a *sfutest.StatusError, got %T: %v", err, err)
	require.Equal(t, status, se.StatusCode, "%v", se)
	require.Equal(t, code, se.Code, "%v", se)
	require.NotEmpty(t, se.Message)
}

func TestListenerHearsTheLoudest(t *testing.T) {
	t.Parallel()
	b := setup(t, sfu.Config{SwitchHold: 500 * time.Millisecond})
	one, err := sfutest.ListenWith(t.Context(), sfutest.ListenOptions{WHEPURL: b.whep, Slots: 1,
		Token: b.token(t, "m1", "x", token.RightListen), HTTPClient: b.srv.Client()})
	require.NoError(t, err)
	two, err := sfutest.ListenWith(t.Context(), sfutest.ListenOptions{WHEPURL: b.whep, Slots: 2,
		Token: b.token(t, "m1", "y", token.RightListen), HTTPClient: b.srv.Client()})
	require.NoError(t, err)
	pubs := map[string]*sfutest.Publisher{}
	// Loud comes last and medium lasts, so both speak through the judged
	// second even when a loaded machine connects them slowly.
	for i, sp := range []struct {
		identity string
		level    uint8
		seconds  float64
	}{{"quiet", 70, 3}, {"medium", 40, 5}, {"loud", 10, 4}} {
		p, err := sfutest.Publish(t.Context(), sfutest.PublishOptions{
			WHIPURL: b.whip, Token: b.token(t, "m1", sp.identity, token.RightPublish),
			OggPath: tone(t, 300+100*i, sp.seconds), Level: sfutest.LevelFixed, FixedLevel: sp.level,
			HTTPClient: b.srv.Client(),
		})
		require.NoError(t, err)
		pubs[sp.identity] = p
	}
	var lastStart time.Time
	for _, p := range pubs {
		waitClosed(t, p.Done(), "a publisher's file")
		if p.Started().After(lastStart) {
			lastStart = p.Started()
		}
	}
	// Judge a second in which all three were speaking and the first
	// holders' hold time had passed.
	from, to := lastStart.Add(time.Second), lastStart.Add(2*time.Second)

	whose := func(payload []byte) string {
		for id, p := range pubs {
			if payloadSet(p.Sent())[string(payload)] {
				return id
			}
		}
		return "nobody"
	}
	heard := func(l *sfutest.Listener) map[string]int {
		out := map[string]int{}
		for _, rs := range l.Packets() {
			for _, r := range rs {
				if r.At.After(from) && r.At.Before(to) {
					out[whose(r.Payload)]++
				}
			}
		}
		return out
	}
	h1, h2 := heard(one), heard(two)
	require.Equal(t, []string{"loud"}, keys(h1), "one slot carries the loudest: %v", h1)
	require.Greater(t, h1["loud"], 20, "%v", h1)
	require.ElementsMatch(t, []string{"loud", "medium"}, keys(h2), "two slots carry the two loudest: %v", h2)
	for _, rs := range one.Packets() {
		for i := 1; i < len(rs); i++ {
			require.Equal(t, rs[i-1].SequenceNumber+1, rs[i].SequenceNumber, "one stream across speaker switches")
		}
	}
	require.NoError(t, one.Close(t.Context()))
	require.NoError(t, two.Close(t.Context()))
	for _, p := range pubs {
		require.NoError(t, p.Close(t.Context()))
	}
}

func keys(m map[string]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestHeaderEncryptionEitherWay crosses publishers and listeners that do
// and do not offer RFC 9335 header encryption: the SFU keys each
// connection the way its answer said, and the audio level, inside the
// encrypted header or not, reaches every listener.
func TestHeaderEncryptionEitherWay(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ pubNoCryptex, lisNoCryptex bool }{{false, true}, {true, false}, {true, true}} {
		t.Run(fmt.Sprintf("publisher without %v, listener without %v", c.pubNoCryptex, c.lisNoCryptex), func(t *testing.T) {
			t.Parallel()
			b := setup(t, sfu.Config{})
			lis, err := sfutest.ListenWith(t.Context(), sfutest.ListenOptions{WHEPURL: b.whep,
				Token: b.token(t, "m1", "listener", token.RightListen), NoCryptex: c.lisNoCryptex})
			require.NoError(t, err)
			pub, err := sfutest.Publish(t.Context(), sfutest.PublishOptions{WHIPURL: b.whip,
				Token: b.token(t, "m1", "speaker", token.RightPublish), OggPath: tone(t, 440, 1), NoCryptex: c.pubNoCryptex})
			require.NoError(t, err)
			waitClosed(t, pub.Done(), "the speaker's file")
			require.Eventually(t, func() bool { return lis.Count() >= 30 }, 5*time.Second, 10*time.Millisecond)
			sent := payloadSet(pub.Sent())
			for _, rs := range lis.Packets() {
				for i, r := range rs {
					require.True(t, sent[string(r.Payload)], "packet %d is the speaker's", i)
					require.True(t, r.HasLevel, "packet %d has its audio level", i)
				}
			}
			rec := b.nextTrack(t)
			require.Eventually(t, func() bool { pkts, _ := rec.snapshot(); return len(pkts) >= 30 }, 5*time.Second, 10*time.Millisecond)
			require.NoError(t, lis.Close(t.Context()))
			require.NoError(t, pub.Close(t.Context()))
		})
	}
}

// speakAndHear has a speaker publish a one-second tone while a listener
// listens, and checks that the tap records it and the listener hears it.
func speakAndHear(t *testing.T, b *testBundle) {
	t.Helper()
	lis := b.listen(t, "listener")
	pub := b.publish(t, "speaker", tone(t, 440, 1))
	waitClosed(t, pub.Done(), "the speaker's file")
	require.Eventually(t, func() bool { return lis.Count() >= 30 }, 5*time.Second, 10*time.Millisecond)
	sent := payloadSet(pub.Sent())
	for _, rs := range lis.Packets() {
		for i, r := range rs {
			require.True(t, sent[string(r.Payload)], "packet %d is the speaker's", i)
			require.True(t, r.HasLevel, "packet %d has its audio level", i)
		}
	}
	rec := b.nextTrack(t)
	require.Eventually(t, func() bool { pkts, _ := rec.snapshot(); return len(pkts) >= 30 }, 5*time.Second, 10*time.Millisecond)
	pkts, _ := rec.snapshot()
	for i, p := range pkts {
		require.True(t, sent[string(p.Payload)], "recorded packet %d is the speaker's", i)
	}
	require.NoError(t, lis.Close(t.Context()))
	require.NoError(t, pub.Close(t.Context()))
	require.Zero(t, b.sfu.Stats().DroppedSRTP)
}

// TestPionPeersAreKeyedOnTheMediaPath pins what the media path's keys
// assume of pion (sfu/dtlskeys.go: DTLS 1.2, the SFU as server, no
// resumption, pion's hooks called as they are): the SFU derives its own
// keys for a real pion/webrtc publisher and listener, and none of their
// sessions falls back to pion's slower SRTP path. A pion upgrade that
// changes the handshake fails here, loudly, even though such sessions
// still carry their media (TestSessionsWithoutOwnKeysGoThroughPion).
func TestPionPeersAreKeyedOnTheMediaPath(t *testing.T) {
	t.Parallel()
	b := setup(t, sfu.Config{})
	speakAndHear(t, b)
	require.Zero(t, b.sfu.Stats().PionSRTPSessions,
		"a pion peer's session went through pion's SRTP path: the DTLS handshake no longer fits sfu/dtlskeys.go")
}

// TestSessionsWithoutOwnKeysGoThroughPion: when a handshake gives the
// SFU no keys it can derive, the session's RTP goes through pion's own
// SRTP path instead of being dropped: the speaker is recorded and heard,
// and the fallback is counted.
func TestSessionsWithoutOwnKeysGoThroughPion(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		change func(*webrtc.SettingEngine)
	}{
		// As if pion stopped writing its key log (or wrote a DTLS 1.3 one
		// with no CLIENT_RANDOM line): DTLS connects without keys.
		{"no key log line", func(se *webrtc.SettingEngine) { se.SetDTLSKeyLogWriter(nil) }},
		// A handshake the derivation does not know: another PRF suite.
		{"another cipher suite", func(se *webrtc.SettingEngine) {
			se.SetDTLSCipherSuites(dtls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, sfu.Config{})
			sfu.SetDTLSSettings(b.sfu, c.change)
			speakAndHear(t, b)
			require.Equal(t, uint64(2), b.sfu.Stats().PionSRTPSessions, "the speaker's and the listener's sessions")
		})
	}
}
