package livekit_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/livekit"
)

const (
	key    = "lk-key"
	secret = "lk-secret-long-enough-for-hmac-signing"
)

// request is a webhook as LiveKit sends it: the body, and a JWT of the
// API key whose claims carry the SHA-256 of signedBody, signed with signer.
func request(t *testing.T, body, signedBody []byte, signer string) *http.Request {
	t.Helper()
	sum := sha256.Sum256(signedBody)
	at := auth.NewAccessToken(key, signer).SetValidFor(time.Minute)
	at.SetSha256(base64.StdEncoding.EncodeToString(sum[:]))
	tok, err := at.ToJWT()
	require.NoError(t, err)
	req, err := http.NewRequest("POST", "http://greffier/v1/livekit/webhook", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", tok)
	return req
}

func TestWebhooksAreReadOnlyWhenLiveKitSignedThem(t *testing.T) {
	t.Parallel()
	w := livekit.NewWebhooks(key, secret)
	body := []byte(`{"event":"room_finished","room":{"sid":"RM_1","name":"council"},"id":"EV_1","createdAt":"1796547600"}`)

	got, err := w.ReadWebhook(request(t, body, body, secret))
	require.NoError(t, err)
	require.Equal(t, livekit.Webhook{Event: livekit.EventRoomFinished, Room: "council"}, got)

	other := []byte(`{"event":"room_finished","room":{"name":"another"}}`)
	unsigned := request(t, body, body, secret)
	unsigned.Header.Del("Authorization")
	for name, req := range map[string]*http.Request{
		"another secret": request(t, body, body, "not-"+secret),
		"another body":   request(t, other, body, secret),
		"no signature":   unsigned,
	} {
		_, err := w.ReadWebhook(req)
		require.ErrorIs(t, err, livekit.ErrWebhookNotSigned, name)
	}

	// Signed, but not an event: an error of its own, not a bad signature.
	junk := []byte(`not json`)
	_, err = w.ReadWebhook(request(t, junk, junk, secret))
	require.Error(t, err)
	require.NotErrorIs(t, err, livekit.ErrWebhookNotSigned)
}

func TestASourceNeedsItsServerAndKeys(t *testing.T) {
	t.Parallel()
	_, err := livekit.New(livekit.Config{URL: "ws://127.0.0.1:7880", APIKey: key}, nil, nil, nil)
	require.ErrorContains(t, err, "GREFFIER_LIVEKIT_API_SECRET")
}
