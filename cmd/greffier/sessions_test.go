package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/faulttest"
	"github.com/greffier/greffier/sfu/sfutest"
	"github.com/greffier/greffier/transcribe/kyutaitest"
)

type trackList struct {
	Tracks []struct {
		ID, Identity, State string
		DurationMS          int64 `json:"duration_ms"`
	} `json:"tracks"`
}

func (b *testBundle) tracks(t *testing.T, meetingID string) trackList {
	t.Helper()
	var l trackList
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+meetingID+"/tracks", nil, &l))
	return l
}

// storedTracks counts the tracks whose recording is stored.
func (l trackList) stored() int {
	n := 0
	for _, tr := range l.Tracks {
		if tr.State == "stored" || tr.State == "recovered" {
			n++
		}
	}
	return n
}

// sdpPost posts an SDP body to a WHIP/WHEP endpoint with a join token and
// returns the status and the error code of the answer.
func (b *testBundle) sdpPost(t *testing.T, path, joinToken, body string) (int, string) {
	t.Helper()
	resp, raw := b.joinDo(t, "POST", path, joinToken, "application/sdp", body)
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = jsonDecode(strings.NewReader(string(raw)), &e)
	if resp.StatusCode == http.StatusCreated {
		// Free the session the offer opened.
		loc := resp.Header.Get("Location")
		_ = sfutest.Delete(context.Background(), nil, b.url+loc, joinToken)
	}
	return resp.StatusCode, e.Error.Code
}

// A leaked join link used while its owner speaks: the newer WHIP session
// replaces the older one, whose recording ends and is stored, so nobody
// speaks as that person beside them.
func TestFaultSecondPublisherWithOneTokenReplacesTheFirst(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	ctx := context.Background()
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"participants": []map[string]any{{"identity": "alice", "display_name": "Alice"}}}, &m))
	tok := m.Join[0].Token
	first, err := sfutest.Publish(ctx, sfutest.PublishOptions{WHIPURL: b.url + "/v1/whip", Token: tok,
		OggPath: filepath.Join(fixtures, "alice.opus")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = first.CloseWithoutDelete() })
	require.Eventually(t, func() bool { return len(b.tracks(t, m.ID).Tracks) == 1 }, 10*time.Second, 20*time.Millisecond)

	second, err := sfutest.Publish(ctx, sfutest.PublishOptions{WHIPURL: b.url + "/v1/whip", Token: tok,
		OggPath: filepath.Join(fixtures, "alice.opus")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = second.CloseWithoutDelete() })
	faulttest.Report(t, faulttest.FaultsInjected, 1)

	// The first session is gone at once and its recording is stored,
	// while the second one records.
	err = sfutest.Delete(ctx, nil, first.Location(), tok)
	requireStatusCode(t, err, http.StatusNotFound)
	var l trackList
	require.Eventually(t, func() bool {
		l = b.tracks(t, m.ID)
		return len(l.Tracks) == 2 && l.stored() == 1
	}, 10*time.Second, 20*time.Millisecond, "tracks: %+v", l)
	for _, tr := range l.Tracks {
		if tr.State == "stored" {
			require.Greater(t, tr.DurationMS, int64(0))
		} else {
			require.Equal(t, "recording", tr.State, "the newer session records")
		}
	}

	<-second.Done()
	require.NoError(t, second.Close(ctx))
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, nil))
	var now meetingAnswer
	require.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &now)
		return now.State == "ready" || now.State == "failed"
	}, 60*time.Second, 100*time.Millisecond)
	require.Equal(t, "ready", now.State)
	l = b.tracks(t, m.ID)
	faulttest.Report(t, faulttest.RecordingsLost, float64(len(l.Tracks)-l.stored()))
	require.Equal(t, 2, l.stored(), "both recordings are stored: %+v", l)
}

// The same for listening: a second WHEP session of an identity replaces
// the first, so a leaked link cannot listen silently beside its owner.
func TestFaultSecondListenerWithOneTokenReplacesTheFirst(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	ctx := context.Background()
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"participants": []map[string]any{{"identity": "alice"}, {"identity": "bob"}}}, &m))
	alice, bob := m.Join[0].Token, m.Join[1].Token
	pub, err := sfutest.Publish(ctx, sfutest.PublishOptions{WHIPURL: b.url + "/v1/whip", Token: bob,
		OggPath: filepath.Join(fixtures, "bob.opus"), Level: sfutest.LevelFixed, FixedLevel: 10})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.CloseWithoutDelete() })
	first, err := sfutest.Listen(ctx, b.url+"/v1/whep", alice)
	require.NoError(t, err)
	t.Cleanup(func() { _ = first.Close(ctx) })
	require.Eventually(t, func() bool { return first.Count() >= 20 }, 10*time.Second, 10*time.Millisecond)

	second, err := sfutest.Listen(ctx, b.url+"/v1/whep", alice)
	require.NoError(t, err)
	t.Cleanup(func() { _ = second.Close(ctx) })
	faulttest.Report(t, faulttest.FaultsInjected, 1)
	requireStatusCode(t, sfutest.Delete(ctx, nil, first.Location(), alice), http.StatusNotFound)

	// Small counts: bob's file lasts a few seconds, and on a loaded
	// machine most of it may be gone before the second listener joins.
	require.Eventually(t, func() bool { return second.Count() >= 20 }, 10*time.Second, 10*time.Millisecond)
	heard := first.Count()
	require.Eventually(t, func() bool { return second.Count() >= 40 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, heard, first.Count(), "the replaced listener hears nothing more")
}

func requireStatusCode(t *testing.T, err error, status int) {
	t.Helper()
	require.Error(t, err)
	se, ok := err.(*sfutest.StatusError)
	require.True(t, ok, "want a *sfutest.StatusError, got %T: %v", err, err)
	require.Equal(t, status, se.StatusCode, "%v", se)
}

// offerWith is an offer of n audio sections in direction dir.
func offerWith(t *testing.T, n int, dir webrtc.RTPTransceiverDirection) string {
	t.Helper()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	require.NoError(t, err)
	defer pc.Close()
	for range n {
		_, err = pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: dir})
		require.NoError(t, err)
	}
	offer, err := pc.CreateOffer(nil)
	require.NoError(t, err)
	return offer.SDP
}

// manySections is a compact offer of n Opus sections in direction dir
// (sendonly or recvonly), small enough for hundreds to pass the size cap.
func manySections(n int, dir string) string {
	var b strings.Builder
	b.WriteString("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE")
	for i := range n {
		fmt.Fprintf(&b, " %d", i)
	}
	b.WriteString("\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\na=fingerprint:sha-256 " +
		strings.TrimSuffix(strings.Repeat("AB:", 32), ":") + "\r\n")
	for i := range n {
		fmt.Fprintf(&b, "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:%d\r\na=%s\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n", i, dir)
	}
	return b.String()
}

// One offer with hundreds of audio sections would have the SFU set up a
// track (or slot) for each: refused with a clear 400 before anything is
// built, and a normal offer still works.
func TestFaultOfferWithHundredsOfAudioSectionsIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"participants": []map[string]any{{"identity": "alice"}}}, &m))
	tok := m.Join[0].Token
	faults, fivexx := 0, 0
	for _, c := range []struct {
		path     string
		sections int
		dir      string
	}{
		{"/v1/whip", 300, "sendonly"},
		{"/v1/whip", 2, "sendonly"},
		{"/v1/whep", 300, "recvonly"},
		{"/v1/whep", 17, "recvonly"},
	} {
		code, errCode := b.sdpPost(t, c.path, tok, manySections(c.sections, c.dir))
		faults++
		if code >= 500 {
			fivexx++
		}
		require.Equal(t, http.StatusBadRequest, code, "%s with %d sections", c.path, c.sections)
		require.Equal(t, "too_many_sections", errCode)
	}
	faulttest.Report(t, faulttest.FaultsInjected, float64(faults))
	faulttest.Report(t, faulttest.BadInput5xx, float64(fivexx))
	var now meetingAnswer
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &now))
	require.Equal(t, "created", now.State, "a refused offer joins nobody")

	code, _ := b.sdpPost(t, "/v1/whip", tok, offerWith(t, 1, webrtc.RTPTransceiverDirectionSendonly))
	require.Equal(t, http.StatusCreated, code)
	code, _ = b.sdpPost(t, "/v1/whep", tok, offerWith(t, 3, webrtc.RTPTransceiverDirectionRecvonly))
	require.Equal(t, http.StatusCreated, code)
}

type tokenAnswer struct {
	Identity string `json:"identity"`
	Token    string `json:"token"`
	TokenID  string `json:"token_id"`
}

// A join link that leaked can be revoked: the identity's live sessions
// are closed (the recording stored), and its tokens open no WHIP, WHEP or
// captions session any more; a token issued afterwards works.
func TestFaultRevokedJoinTokensAreRefusedAndDisconnected(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{captions: &kyutaitest.Options{}})
	ctx := context.Background()
	var m struct {
		ID   string        `json:"id"`
		Join []tokenAnswer `json:"join"`
	}
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"participants": []map[string]any{{"identity": "alice"}, {"identity": "bob"}}}, &m))
	alice, bob := m.Join[0], m.Join[1]
	require.NotEmpty(t, alice.TokenID, "every join token has an id to revoke it by")
	require.NotEqual(t, alice.TokenID, bob.TokenID)
	captions := func(tok string) int {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		req, err := http.NewRequestWithContext(cctx, "GET", b.url+"/v1/meetings/"+m.ID+"/captions?token="+tok, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, captions(alice.Token))

	pub, err := sfutest.Publish(ctx, sfutest.PublishOptions{WHIPURL: b.url + "/v1/whip", Token: alice.Token,
		OggPath: filepath.Join(fixtures, "alice.opus")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.CloseWithoutDelete() })
	lis, err := sfutest.Listen(ctx, b.url+"/v1/whep", alice.Token)
	require.NoError(t, err)
	t.Cleanup(func() { _ = lis.Close(ctx) })
	require.Eventually(t, func() bool { return len(b.tracks(t, m.ID).Tracks) == 1 }, 10*time.Second, 20*time.Millisecond)

	var e struct {
		Error struct{ Code, Message string }
	}
	require.Equal(t, http.StatusNotFound, b.call(t, "POST", "/v1/meetings/"+m.ID+"/participants/nobody/revoke", nil, &e))
	require.Equal(t, http.StatusOK, b.call(t, "POST", "/v1/meetings/"+m.ID+"/participants/alice/revoke", nil, nil))
	faulttest.Report(t, faulttest.FaultsInjected, 1)

	// Disconnected: both sessions gone, the recording stored.
	requireStatusCode(t, sfutest.Delete(ctx, nil, pub.Location(), alice.Token), http.StatusNotFound)
	requireStatusCode(t, sfutest.Delete(ctx, nil, lis.Location(), alice.Token), http.StatusNotFound)
	var l trackList
	require.Eventually(t, func() bool { l = b.tracks(t, m.ID); return l.stored() == 1 }, 10*time.Second, 20*time.Millisecond, "%+v", l)
	// Refused everywhere.
	code, errCode := b.sdpPost(t, "/v1/whip", alice.Token, offerWith(t, 1, webrtc.RTPTransceiverDirectionSendonly))
	require.Equal(t, http.StatusUnauthorized, code)
	require.Equal(t, "token_revoked", errCode)
	code, errCode = b.sdpPost(t, "/v1/whep", alice.Token, offerWith(t, 1, webrtc.RTPTransceiverDirectionRecvonly))
	require.Equal(t, http.StatusUnauthorized, code)
	require.Equal(t, "token_revoked", errCode)
	require.Equal(t, http.StatusUnauthorized, captions(alice.Token))
	// Bob was not touched.
	require.Equal(t, http.StatusOK, captions(bob.Token))

	// One token, by its id.
	require.Equal(t, http.StatusNotFound, b.call(t, "DELETE", "/v1/meetings/"+m.ID+"/tokens/nope", nil, &e))
	require.Equal(t, http.StatusNoContent, b.call(t, "DELETE", "/v1/meetings/"+m.ID+"/tokens/"+bob.TokenID, nil, nil))
	code, errCode = b.sdpPost(t, "/v1/whep", bob.Token, offerWith(t, 1, webrtc.RTPTransceiverDirectionRecvonly))
	require.Equal(t, http.StatusUnauthorized, code)
	require.Equal(t, "token_revoked", errCode)

	// A new token for alice works.
	var fresh tokenAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings/"+m.ID+"/tokens", map[string]any{"identity": "alice"}, &fresh))
	code, _ = b.sdpPost(t, "/v1/whip", fresh.Token, offerWith(t, 1, webrtc.RTPTransceiverDirectionSendonly))
	require.Equal(t, http.StatusCreated, code)

	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, nil))
	l = b.tracks(t, m.ID)
	faulttest.Report(t, faulttest.RecordingsLost, float64(len(l.Tracks)-l.stored()))
	require.Equal(t, len(l.Tracks), l.stored(), "%+v", l)
}
