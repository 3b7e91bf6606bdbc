package sfu_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/token"
	"github.com/greffier/greffier/sfu"
	"github.com/greffier/greffier/sfu/sfutest"
)

const pcmuOffer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n" +
	"c=IN IP4 0.0.0.0\r\na=rtpmap:0 PCMU/8000\r\na=sendonly\r\n"

// opusOfferNoICE is well-formed SDP with Opus that no WebRTC stack accepts
// (no ICE credentials, no fingerprint).
const opusOfferNoICE = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" +
	"c=IN IP4 0.0.0.0\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\na=sendonly\r\n"

// passiveOffer asks the SFU to be the DTLS client, in its audio section;
// passiveFirstOffer does so in a data section before it, which is where
// pion reads the role from.
const (
	passiveOffer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" +
		"c=IN IP4 0.0.0.0\r\na=mid:0\r\na=setup:passive\r\na=rtpmap:111 opus/48000/2\r\na=sendonly\r\n"
	passiveFirstOffer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
		"m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=setup:passive\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=setup:actpass\r\n" +
		"a=rtpmap:111 opus/48000/2\r\na=sendonly\r\n"
)

func expiredToken(t *testing.T) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "greffier", "sub": "alice", "aud": []string{"m1"}, "rights": []string{"publish"},
		"exp": time.Now().Add(-time.Minute).Unix(),
	})
	s, err := tok.SignedString(secret)
	require.NoError(t, err)
	return s
}

func forgedToken(t *testing.T) string {
	t.Helper()
	other, err := token.NewSigner([]byte("ffffffffffffffffffffffffffffffff"))
	require.NoError(t, err)
	s, err := other.Sign(token.Claims{MeetingID: "m1", Identity: "alice", Rights: []token.Right{token.RightPublish},
		ExpiresAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	return s
}

func TestHTTPErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, sfu.Config{})
	pub := b.token(t, "m1", "alice", token.RightPublish)
	lis := b.token(t, "m1", "alice", token.RightListen)
	cases := []struct {
		name        string
		method      string
		path        string
		token       string
		contentType string
		body        string
		status      int
		code        string
	}{
		{"no token", "POST", "/v1/whip", "", "application/sdp", pcmuOffer, 401, "unauthorized"},
		{"forged token", "POST", "/v1/whip", forgedToken(t), "application/sdp", pcmuOffer, 401, "unauthorized"},
		{"expired token", "POST", "/v1/whip", expiredToken(t), "application/sdp", pcmuOffer, 401, "unauthorized"},
		{"listen token publishing", "POST", "/v1/whip", lis, "application/sdp", pcmuOffer, 403, "forbidden"},
		{"publish token listening", "POST", "/v1/whep", pub, "application/sdp", pcmuOffer, 403, "forbidden"},
		{"not sdp content type", "POST", "/v1/whip", pub, "text/plain", pcmuOffer, 415, "unsupported_media_type"},
		{"malformed sdp", "POST", "/v1/whip", pub, "application/sdp", "hello, world", 400, "bad_sdp"},
		{"no opus", "POST", "/v1/whip", pub, "application/sdp", pcmuOffer, 406, "no_opus_audio"},
		{"no opus whep", "POST", "/v1/whep", lis, "application/sdp", pcmuOffer, 422, "no_opus_audio"},
		{"unusable offer", "POST", "/v1/whip", pub, "application/sdp", opusOfferNoICE, 400, "bad_sdp"},
		{"sfu as dtls client", "POST", "/v1/whip", pub, "application/sdp", passiveOffer, 400, "bad_sdp"},
		{"sfu as dtls client, said first", "POST", "/v1/whep", lis, "application/sdp", passiveFirstOffer, 400, "bad_sdp"},
		{"too big", "POST", "/v1/whip", pub, "application/sdp", pcmuOffer + strings.Repeat("a=x\r\n", 14000), 413, "sdp_too_large"},
		{"unknown session", "DELETE", "/v1/whip/0123456789abcdef", pub, "", "", 404, "session_not_found"},
		{"patch unknown session", "PATCH", "/v1/whip/0123456789abcdef", pub, "application/trickle-ice-sdpfrag", "", 404, "session_not_found"},
		{"put", "PUT", "/v1/whip/0123456789abcdef", pub, "application/sdp", "", 405, "method_not_allowed"},
	}
	t.Run("cases", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				req, err := http.NewRequestWithContext(t.Context(), tc.method, b.srv.URL+tc.path, strings.NewReader(tc.body))
				require.NoError(t, err)
				if tc.token != "" {
					req.Header.Set("Authorization", "Bearer "+tc.token)
				}
				if tc.contentType != "" {
					req.Header.Set("Content-Type", tc.contentType)
				}
				resp, err := b.srv.Client().Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				raw, err := io.ReadAll(resp.Body)
				require.NoError(t, err)
				require.Equal(t, tc.status, resp.StatusCode, "body: %s", raw)
				require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
				var body struct {
					Error struct{ Code, Message string }
				}
				require.NoError(t, json.Unmarshal(raw, &body))
				require.Equal(t, tc.code, body.Error.Code)
				require.NotEmpty(t, body.Error.Message)
			})
		}
	})
	// Only the unusable offer got as far as joining; refusing it left again.
	require.Equal(t, []string{"m1/alice"}, b.meetings.left())
}

func TestMeetingErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, sfu.Config{MaxParticipants: 1})
	b.meetings.add("closed")
	b.meetings.mu.Lock()
	b.meetings.meetings["closed"].closed = true
	b.meetings.mu.Unlock()
	file := tone(t, 440, 1)
	publish := func(meeting, identity string) error {
		p, err := sfutest.Publish(t.Context(), sfutest.PublishOptions{WHIPURL: b.whip, OggPath: file,
			Token: b.token(t, meeting, identity, token.RightPublish), HTTPClient: b.srv.Client()})
		if err == nil {
			t.Cleanup(func() { _ = p.CloseWithoutDelete() })
		}
		return err
	}
	requireStatus(t, publish("nope", "alice"), http.StatusNotFound, "meeting_not_found")
	requireStatus(t, publish("closed", "alice"), http.StatusConflict, "meeting_ended")

	require.NoError(t, publish("m1", "alice"))
	requireStatus(t, publish("m1", "bob"), http.StatusServiceUnavailable, "meeting_full")
	// The same identity is the same participant: it may also listen.
	l, err := sfutest.ListenWith(t.Context(), sfutest.ListenOptions{WHEPURL: b.whep,
		Token: b.token(t, "m1", "alice", token.RightListen), HTTPClient: b.srv.Client()})
	require.NoError(t, err)
	require.NoError(t, l.Close(t.Context()))

	// DELETE needs the session's own identity.
	err = sfutest.Delete(t.Context(), b.srv.Client(), l.Location(), b.token(t, "m1", "alice", token.RightListen))
	requireStatus(t, err, http.StatusNotFound, "session_not_found")
}

func TestDeleteNeedsSameIdentity(t *testing.T) {
	t.Parallel()
	b := setup(t, sfu.Config{})
	pub := b.publish(t, "alice", tone(t, 440, 1))
	err := sfutest.Delete(t.Context(), b.srv.Client(), pub.Location(), b.token(t, "m1", "mallory", token.RightPublish))
	requireStatus(t, err, http.StatusNotFound, "session_not_found")
	require.NoError(t, pub.Close(t.Context()))
}
