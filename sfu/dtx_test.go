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

// TestAnswerAsksForDTX checks that a WHIP answer asks the publisher for
// Opus DTX: a browser that honours it sends a packet every 400 ms while
// its participant is silent instead of one every 20 ms, which is most of
// a meeting's audio for every participant but the speaker.
func TestAnswerAsksForDTX(t *testing.T) {
	t.Parallel()
	b := setup(t, sfu.Config{})
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	require.NoError(t, err)
	defer pc.Close()
	_, err = pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	require.NoError(t, err)
	offer, err := pc.CreateOffer(nil)
	require.NoError(t, err)
	gathered := webrtc.GatheringCompletePromise(pc)
	require.NoError(t, pc.SetLocalDescription(offer))
	<-gathered

	req, err := http.NewRequest(http.MethodPost, b.whip, strings.NewReader(pc.LocalDescription().SDP))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer "+b.token(t, "m1", "alice", token.RightPublish))
	resp, err := b.srv.Client().Do(req)
	require.NoError(t, err)
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "%s", answer)

	var fmtp string
	for _, line := range strings.Split(string(answer), "\r\n") {
		if strings.HasPrefix(line, "a=fmtp:111 ") {
			fmtp = line
		}
	}
	require.Contains(t, fmtp, "usedtx=1", "answer:\n%s", answer)

	loc, err := resp.Location()
	require.NoError(t, err)
	del, err := http.NewRequest(http.MethodDelete, loc.String(), nil)
	require.NoError(t, err)
	del.Header.Set("Authorization", "Bearer "+b.token(t, "m1", "alice", token.RightPublish))
	dresp, err := b.srv.Client().Do(del)
	require.NoError(t, err)
	dresp.Body.Close()
}
