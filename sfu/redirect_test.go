package sfu_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/token"
	"github.com/greffier/greffier/sfu"
)

// TestAnOfferForAMeetingOnAnotherNodeIsRedirectedWith307 checks the answer
// a node gives for a meeting whose media another node holds: 307 to the
// same request on that node (RFC 9725 allows it; clients resend the offer
// there), with the CORS headers a page needs to follow it; and that the
// session URLs of a node with a BaseURL name it.
func TestAnOfferForAMeetingOnAnotherNodeIsRedirectedWith307(t *testing.T) {
	t.Parallel()
	b := setup(t, sfu.Config{BaseURL: "http://node-a.example:8080/"})
	b.meetings.add("m2")
	b.meetings.mu.Lock()
	b.meetings.meetings["m2"].movedTo = "http://node-b.example:8080"
	b.meetings.mu.Unlock()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(path, tok, offer string) (*http.Response, string) {
		req, err := http.NewRequestWithContext(t.Context(), "POST", b.srv.URL+path, strings.NewReader(offer))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/sdp")
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Origin", "https://meet.example.org")
		resp, err := noFollow.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(body)
	}
	for _, kind := range []string{"whip", "whep"} {
		offer := rawOffer(t, webrtc.RTPTransceiverDirectionSendrecv)
		if kind == "whep" {
			offer = rawOffer(t, webrtc.RTPTransceiverDirectionRecvonly)
		}
		rooms := b.sfu.Occupancy().Meetings
		resp, body := post("/v1/"+kind+"?client=x", b.token(t, "m2", "alice", token.RightPublish, token.RightListen), offer)
		require.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode, body)
		require.Equal(t, "http://node-b.example:8080/v1/"+kind+"?client=x", resp.Header.Get("Location"))
		require.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"), "a page can follow it")
		require.Contains(t, resp.Header.Get("Access-Control-Expose-Headers"), "Location")
		require.Contains(t, body, "meeting_on_another_node")
		require.Contains(t, body, "http://node-b.example:8080")
		require.Equal(t, rooms, b.sfu.Occupancy().Meetings, "no room is left open for a meeting served elsewhere")

		// A session URL of that meeting, resolved against this node: the
		// same redirect.
		req, err := http.NewRequestWithContext(t.Context(), "DELETE", b.srv.URL+"/v1/"+kind+"/0123456789abcdef", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+b.token(t, "m2", "alice", token.RightPublish, token.RightListen))
		del, err := noFollow.Do(req)
		require.NoError(t, err)
		_ = del.Body.Close()
		require.Equal(t, http.StatusTemporaryRedirect, del.StatusCode)
		require.Equal(t, "http://node-b.example:8080/v1/"+kind+"/0123456789abcdef", del.Header.Get("Location"))

		resp, body = post("/v1/"+kind, b.token(t, "m1", "bob", token.RightPublish, token.RightListen), offer)
		require.Equal(t, http.StatusCreated, resp.StatusCode, body)
		require.True(t, strings.HasPrefix(resp.Header.Get("Location"), "http://node-a.example:8080/v1/"+kind+"/"),
			"the session URL names the node that holds the session: %s", resp.Header.Get("Location"))
	}

	// The ICE servers too: only the meeting's node's TURN server relays
	// to its media port, with credentials that node signs.
	req, err := http.NewRequestWithContext(t.Context(), "GET", b.srv.URL+"/v1/ice-servers", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+b.token(t, "m2", "alice", token.RightListen))
	req.Header.Set("Origin", "https://meet.example.org")
	ice, err := noFollow.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(ice.Body)
	require.NoError(t, err)
	_ = ice.Body.Close()
	require.Equal(t, http.StatusTemporaryRedirect, ice.StatusCode, "%s", body)
	require.Equal(t, "http://node-b.example:8080/v1/ice-servers", ice.Header.Get("Location"))
	require.Equal(t, "*", ice.Header.Get("Access-Control-Allow-Origin"), "a page can follow it")
	require.Contains(t, string(body), "meeting_on_another_node")
	here, body2 := request(t, b, "GET", "/v1/ice-servers", map[string]string{
		"Authorization": "Bearer " + b.token(t, "m1", "bob", token.RightListen)}, "")
	require.Equal(t, http.StatusOK, here.StatusCode, "this node's own meeting: %s", body2)
}

// TestAnSFUNotStartedStillRedirects: a node that serves no media (its SFU
// built, not started) answers WHIP with the redirect to the meeting's
// node, and 503 for a meeting it would have to hold itself.
func TestAnSFUNotStartedStillRedirects(t *testing.T) {
	t.Parallel()
	signer, err := token.NewSigner(secret)
	require.NoError(t, err)
	mm := &memMeetings{meetings: map[string]*memMeeting{}}
	mm.add("m1")
	mm.add("m2")
	mm.meetings["m2"].movedTo = "http://node-b.example:8080"
	s, err := sfu.New(sfu.Config{UDPAddr: "127.0.0.1:0"}, mm, signer, &recTap{opened: make(chan *recTrack, 1)}, nil)
	require.NoError(t, err)
	srv := httptest.NewServer(s.WHIPHandler())
	t.Cleanup(srv.Close)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	offer := rawOffer(t, webrtc.RTPTransceiverDirectionSendrecv)
	for meeting, want := range map[string]int{"m2": http.StatusTemporaryRedirect, "m1": http.StatusServiceUnavailable} {
		tok, err := signer.Sign(token.Claims{MeetingID: meeting, Identity: "alice", Rights: []token.Right{token.RightPublish},
			ExpiresAt: time.Now().Add(time.Hour)})
		require.NoError(t, err)
		req, err := http.NewRequestWithContext(t.Context(), "POST", srv.URL+"/v1/whip", strings.NewReader(offer))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/sdp")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := noFollow.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, want, resp.StatusCode, meeting)
		if want == http.StatusTemporaryRedirect {
			require.Equal(t, "http://node-b.example:8080/v1/whip", resp.Header.Get("Location"))
		}
	}
}
