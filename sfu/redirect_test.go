package sfu_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

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

		resp, body = post("/v1/"+kind, b.token(t, "m1", "bob", token.RightPublish, token.RightListen), offer)
		require.Equal(t, http.StatusCreated, resp.StatusCode, body)
		require.True(t, strings.HasPrefix(resp.Header.Get("Location"), "http://node-a.example:8080/v1/"+kind+"/"),
			"the session URL names the node that holds the session: %s", resp.Header.Get("Location"))
	}
}
