package jobs

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/riverqueue/river"

	"github.com/greffier/greffier/internal/egress"
	"github.com/greffier/greffier/internal/store"
)

// Webhook events.
const (
	EventMinutesReady = "minutes.ready"
	// EventMinutesIncomplete: minutes are assembled but some stretch of
	// speech is missing from them (see their missing list).
	EventMinutesIncomplete = "minutes.incomplete"
	EventMeetingFailed     = "meeting.failed"
	EventArchiveReady      = "archive.ready"
	// EventMeetingDeleted: every trace of the meeting is gone. It is
	// logged and announced (Deps.Announced), never sent: nothing of the
	// meeting, its webhook included, is left to send it to.
	EventMeetingDeleted = "meeting.deleted"
)

// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256 of
// "<t>.<body>" with the webhook secret>", so a receiver can check both the
// sender and the freshness.
const SignatureHeader = "Greffier-Signature"

// Sign returns the signature header value for body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// WebhookArgs asks for one event to be delivered to a meeting's webhook.
type WebhookArgs struct {
	MeetingID string `json:"meeting_id"`
	Event     string `json:"event"`
	Version   int    `json:"version,omitempty"`
	Run       int    `json:"run"`
}

func (WebhookArgs) Kind() string { return "deliver_webhook" }

// InsertOpts: one delivery of an event per run and version.
func (WebhookArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// Payload is what a webhook receives.
type Payload struct {
	Event          string             `json:"event"`
	MeetingID      string             `json:"meeting_id"`
	State          store.MeetingState `json:"state"`
	Failure        string             `json:"failure,omitempty"`
	MinutesVersion int                `json:"minutes_version,omitempty"`
	// Links are API paths; fetch them with the API token.
	Links map[string]string `json:"links"`
	At    time.Time         `json:"at"`
}

type webhookWorker struct {
	river.WorkerDefaults[WebhookArgs]
	p *Pipeline
}

func (w *webhookWorker) Timeout(*river.Job[WebhookArgs]) time.Duration { return 30 * time.Second }

func (w *webhookWorker) Work(ctx context.Context, job *river.Job[WebhookArgs]) error {
	p, a := w.p, job.Args
	m, err := p.store.Meeting(ctx, a.MeetingID)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	if m.WebhookURL == "" || len(p.cfg.WebhookSecret) == 0 {
		return nil
	}
	base := "/v1/meetings/" + m.ID
	pl := Payload{Event: a.Event, MeetingID: m.ID, State: m.State, Failure: m.Failure, MinutesVersion: a.Version,
		Links: map[string]string{"meeting": base}, At: time.Now().UTC()}
	switch a.Event {
	case EventMinutesReady, EventMinutesIncomplete:
		pl.Links["minutes"] = base + "/minutes?version=" + strconv.Itoa(a.Version)
	case EventArchiveReady:
		pl.Links["archive"], pl.Links["mix"] = base+"/archive.webm", base+"/mix.flac"
	}
	body, err := json.Marshal(pl)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.WebhookURL, bytes.NewReader(body))
	if err != nil {
		err = fmt.Errorf("webhook URL %q: %w", m.WebhookURL, err)
		p.webhookAttempted(ctx, m.ID, "", a.Event, err)
		return river.JobCancel(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, Sign(p.cfg.WebhookSecret, time.Now(), body))
	req.Header.Set("Greffier-Delivery", strconv.FormatInt(job.ID, 10))
	// Errors name the receiver by its host: a URL's path or query may
	// hold the receiver's secret.
	err, final := p.deliver(req, a.Event, req.URL.Host)
	p.webhookAttempted(ctx, m.ID, req.URL.Hostname(), a.Event, err)
	if final {
		return river.JobCancel(err)
	}
	return err
}

// deliver sends req and says why the delivery failed, if it did, and
// whether that is final (retrying cannot mend it).
func (p *Pipeline) deliver(req *http.Request, event, host string) (err error, final bool) {
	resp, err := p.http.Do(req)
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err // without the URL, whose query may hold a secret
	}
	if _, ok := errors.AsType[*egress.DeniedError](err); ok {
		// Retrying would not change the address: stop here, with why.
		return fmt.Errorf("deliver %s to %s: refused, %w: webhooks reach public addresses only, "+
			"unless the operator sets GREFFIER_WEBHOOK_ALLOW_PRIVATE", event, host, err), true
	}
	if err != nil {
		return fmt.Errorf("deliver %s to %s: %w", event, host, err), false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if err := egress.Redirect(resp); err != nil {
		// A redirect could point anywhere, an internal address included:
		// it is never followed, and a receiver that moved needs its
		// new URL set.
		return fmt.Errorf("deliver %s to %s: %w", event, host, err), true
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("deliver %s to %s: answered %s", event, host, resp.Status), false
	}
	return nil, false
}

// webhookAttempted shows in the meeting's progress how a delivery went. It
// is only shown: a failure to record it is logged.
func (p *Pipeline) webhookAttempted(ctx context.Context, meetingID, host, event string, err error) {
	failure := ""
	if err != nil {
		failure = clip(err.Error())
	}
	dctx, cancel := detached(ctx)
	defer cancel()
	if werr := p.store.WebhookAttempted(dctx, meetingID, host, event, failure); werr != nil {
		p.log.Warn("could not show a webhook delivery in the meeting's progress", "meeting", meetingID, "err", werr)
	}
}

// notify enqueues a webhook delivery in tx when the meeting has a webhook.
// announce logs one of a meeting's events, once its transaction has
// committed, and tells Deps.Announced.
func (p *Pipeline) announce(m store.Meeting, event string, version int) {
	args := []any{"meeting", m.ID, "state", m.State}
	if version > 0 {
		args = append(args, "version", version)
	}
	if !m.EndedAt.IsZero() {
		args = append(args, "after_end", time.Since(m.EndedAt).Round(time.Millisecond))
	}
	switch event {
	case EventMinutesReady:
		p.log.Info("minutes ready", args...)
	case EventMinutesIncomplete:
		p.log.Warn("minutes incomplete: some speech is missing, and the minutes say whose and why", args...)
	case EventMeetingFailed:
		p.log.Error("meeting failed: no minutes could be made", append(args, "failure", m.Failure)...)
	case EventArchiveReady:
		p.log.Info("archive ready", "meeting", m.ID)
	case EventMeetingDeleted:
		p.log.Info("meeting deleted", "meeting", m.ID)
	}
	if p.announced != nil {
		p.announced(m, event)
	}
}

func (p *Pipeline) notify(ctx context.Context, tx *sql.Tx, m store.Meeting, event string, version int) error {
	if m.WebhookURL == "" {
		return nil
	}
	_, err := p.client.InsertTx(ctx, tx, WebhookArgs{MeetingID: m.ID, Event: event, Version: version, Run: m.Run}, nil)
	if err != nil {
		return fmt.Errorf("enqueue %s webhook: %w", event, err)
	}
	return nil
}
