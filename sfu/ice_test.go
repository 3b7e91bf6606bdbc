package sfu_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/token"
	"github.com/greffier/greffier/sfu"
)

func TestICERestartKeepsSessionAndRecording(t *testing.T) {
	t.Parallel()
	b := setup(t, sfu.Config{})
	pub := b.publish(t, "alice", tone(t, 440, 8))
	tr := b.nextTrack(t)
	count := func() int { p, _ := tr.snapshot(); return len(p) }
	require.Eventually(t, func() bool { return count() > 10 }, 5*time.Second, 10*time.Millisecond)
	before := pub.ServerICEUfrag()
	require.NotEmpty(t, before)

	ufrag, err := pub.RestartICE(t.Context())
	require.NoError(t, err)
	require.NotEqual(t, before, ufrag, "the server took new ICE credentials")
	require.Equal(t, ufrag, pub.ServerICEUfrag())
	// Media flows on the new credentials past the ICE failure timeout
	// (2 s here): had the restart failed, the session would have closed.
	at := count()
	require.Eventually(t, func() bool { return count() >= at+150 }, 10*time.Second, 10*time.Millisecond)
	select {
	case <-tr.closed:
		t.Fatal("the recording was closed by the restart")
	case extra := <-b.tap.opened:
		t.Fatalf("the restart opened a second track: %+v", extra.info)
	default:
	}
	// A packet in flight while the credentials change may be lost; the
	// stream must not lose more.
	pkts, _ := tr.snapshot()
	lost := 0
	for i := 1; i < len(pkts); i++ {
		gap := int(pkts[i].SequenceNumber - pkts[i-1].SequenceNumber)
		require.Positive(t, gap, "packet %d out of order", i)
		lost += gap - 1
	}
	require.LessOrEqual(t, lost, 2, "packets lost across the restart")

	patch := func(ifMatch, body string) (int, string) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPatch, pub.Location(), strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+b.token(t, "m1", "alice", token.RightPublish))
		req.Header.Set("Content-Type", "application/trickle-ice-sdpfrag")
		if ifMatch != "" {
			req.Header.Set("If-Match", ifMatch)
		}
		resp, err := b.srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	status, body := patch("", "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdefghijklmn\r\n")
	require.Equal(t, http.StatusPreconditionRequired, status, body)
	require.Contains(t, body, "precondition_required")
	status, body = patch("*", "a=mid:0\r\n")
	require.Equal(t, http.StatusBadRequest, status, body)
	require.NoError(t, pub.Close(t.Context()))
}

// TestTrickleAndRestartFollowTheETag: RFC 9725 section 4.3. The 201's
// ETag names the ICE generation; a trickle naming it is taken (204), an
// ICE restart answers 200 with a new ETag, after which a trickle naming
// the old one is refused with 412 and one naming the new one is taken.
func TestTrickleAndRestartFollowTheETag(t *testing.T) {
	t.Parallel()
	b := setup(t, sfu.Config{})
	pub := b.publish(t, "alice", tone(t, 440, 8))
	t.Cleanup(func() { _ = pub.CloseWithoutDelete() })
	first := pub.ETag()
	require.Equal(t, strconv.Quote(pub.ServerICEUfrag()), first, "the 201's ETag names the server's ICE ufrag")

	status, err := pub.Trickle(t.Context(), first)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, status, "a trickle naming the current ETag")

	_, err = pub.RestartICE(t.Context())
	require.NoError(t, err)
	second := pub.ETag()
	require.NotEqual(t, first, second, "an ICE restart gives a new ETag")
	require.Equal(t, strconv.Quote(pub.ServerICEUfrag()), second)

	status, err = pub.Trickle(t.Context(), first)
	require.NoError(t, err)
	require.Equal(t, http.StatusPreconditionFailed, status, "a trickle naming the ETag before the restart")
	status, err = pub.Trickle(t.Context(), second)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, status, "a trickle naming the new ETag")
	status, err = pub.Trickle(t.Context(), "")
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, status, "a trickle without If-Match")
}
