package livekit

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/livekit/protocol/auth"
	lkproto "github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/utils/protojson"
	"github.com/livekit/protocol/webhook"
)

// maxWebhookBody bounds a webhook's body: LiveKit's room events are a few
// kilobytes.
const maxWebhookBody = 1 << 20

// ErrWebhookNotSigned is what ReadWebhook's error wraps when the request
// is not signed by the configured API key and secret: it must change
// nothing.
var ErrWebhookNotSigned = errors.New("the webhook is not signed with the configured LiveKit API key and secret")

// Room webhook events Greffier acts on.
const (
	EventRoomStarted  = "room_started"
	EventRoomFinished = "room_finished"
)

// Webhook is what Greffier reads of a LiveKit webhook.
type Webhook struct {
	// Event is LiveKit's event name (EventRoomStarted, …).
	Event string
	// Room is the room's name ("" for events about no room).
	Room string
}

// Webhooks checks LiveKit's webhooks: each is signed with a JWT of the
// API key, whose claims carry the body's SHA-256.
type Webhooks struct{ keys auth.KeyProvider }

// NewWebhooks checks webhooks against one API key and secret.
func NewWebhooks(apiKey, apiSecret string) *Webhooks {
	return &Webhooks{keys: auth.NewSimpleKeyProvider(apiKey, apiSecret)}
}

// ReadWebhook reads and checks a webhook request. A request not signed
// with the configured key gives an error wrapping ErrWebhookNotSigned.
func (w *Webhooks) ReadWebhook(r *http.Request) (Webhook, error) {
	r.Body = http.MaxBytesReader(nil, r.Body, maxWebhookBody)
	body, err := webhook.Receive(r, w.keys)
	if err != nil {
		return Webhook{}, fmt.Errorf("%w: %w", ErrWebhookNotSigned, err)
	}
	var ev lkproto.WebhookEvent
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true, AllowPartial: true}).Unmarshal(body, &ev); err != nil {
		return Webhook{}, fmt.Errorf("read a LiveKit webhook: %w", err)
	}
	return Webhook{Event: ev.GetEvent(), Room: ev.GetRoom().GetName()}, nil
}
