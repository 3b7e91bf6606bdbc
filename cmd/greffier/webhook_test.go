package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/faulttest"
	"github.com/greffier/greffier/jobs"
)

// A webhook URL is chosen by whoever holds the API token; aimed at an
// internal address it would have the server call what only the server
// can reach (cloud metadata, admin ports). Refused at creation and on
// PATCH with a 400 that says what to set.
func TestFaultWebhookToAnInternalAddressIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{strictWebhooks: true})
	internal := []string{
		"http://127.0.0.1:9/hook", "http://localhost/hook", "http://169.254.169.254/latest/meta-data/",
		"http://10.1.2.3/", "http://172.16.0.1/", "http://192.168.1.1/", "http://100.64.0.1/", "http://0.0.0.0/",
		"http://224.0.0.1/", "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://[fe80::1]/", "http://[fd00::1]/",
		"http://[::]/",
	}
	faults, fivexx := 0, 0
	type errBody struct {
		Error struct{ Code, Message string }
	}
	for _, u := range internal {
		var e errBody
		code := b.call(t, "POST", "/v1/meetings", map[string]any{"webhook_url": u}, &e)
		faults++
		if code >= 500 {
			fivexx++
		}
		require.Equal(t, http.StatusBadRequest, code, u)
		require.Equal(t, "bad_webhook", e.Error.Code, u)
		require.Contains(t, e.Error.Message, "GREFFIER_WEBHOOK_ALLOW_PRIVATE", u)
	}
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{"webhook_url": "https://93.184.216.34/hook"}, &m))
	var e errBody
	code := b.call(t, "PATCH", "/v1/meetings/"+m.ID, map[string]any{"webhook_url": "http://169.254.169.254/"}, &e)
	faults++
	if code >= 500 {
		fivexx++
	}
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, "bad_webhook", e.Error.Code)
	faulttest.Report(t, faulttest.FaultsInjected, float64(faults))
	faulttest.Report(t, faulttest.BadInput5xx, float64(fivexx))
}

// webhookJobs waits until every webhook delivery is final and returns them.
func (b *testBundle) webhookJobs(t *testing.T) []*rivertype.JobRow {
	t.Helper()
	var rows []*rivertype.JobRow
	require.Eventually(t, func() bool {
		res, err := b.app.pipeline.Client().JobList(context.Background(),
			river.NewJobListParams().Kinds(jobs.WebhookArgs{}.Kind()).First(100))
		require.NoError(t, err)
		rows = res.Jobs
		if len(rows) == 0 {
			return false
		}
		for _, r := range rows {
			switch r.State {
			case rivertype.JobStateCompleted, rivertype.JobStateCancelled, rivertype.JobStateDiscarded:
			default:
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "webhook deliveries: %+v", rows)
	return rows
}

// endEmptyMeeting creates a meeting with webhook url (set straight in the
// store, as a host name that resolved to a public address when the
// meeting was created would be) and ends it: minutes.ready follows.
func (b *testBundle) endEmptyMeeting(t *testing.T, url string) string {
	t.Helper()
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{}, &m))
	require.NoError(t, b.app.store.SetWebhook(context.Background(), m.ID, url))
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, nil))
	return m.ID
}

// A host name that resolves to a public address when the meeting is
// created and to an internal one when the webhook is sent (DNS
// rebinding) still reaches nothing: the address is checked as it is
// dialled. The delivery stops at once with a reason, not after retries.
func TestFaultWebhookIsNotSentToAnInternalAddressAtDeliveryTime(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{strictWebhooks: true})
	var got atomic.Int32
	recv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { got.Add(1) }))
	t.Cleanup(recv.Close)
	b.endEmptyMeeting(t, recv.URL+"/hook")
	faulttest.Report(t, faulttest.FaultsInjected, 1)
	rows := b.webhookJobs(t)
	require.Len(t, rows, 1)
	require.Equal(t, rivertype.JobStateCancelled, rows[0].State)
	require.NotEmpty(t, rows[0].Errors)
	require.Contains(t, rows[0].Errors[len(rows[0].Errors)-1].Error, "GREFFIER_WEBHOOK_ALLOW_PRIVATE")
	require.Zero(t, got.Load(), "nothing reached the internal address")
}

// A receiver that answers with a redirect does not get Greffier to call
// where it points (an internal address behind a public one): the
// delivery stops with a reason naming the redirect.
func TestFaultWebhookRedirectIsNotFollowed(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	var inner, outer atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { inner.Add(1) }))
	t.Cleanup(target.Close)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		outer.Add(1)
		http.Redirect(w, r, target.URL+"/admin", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirect.Close)
	b.endEmptyMeeting(t, redirect.URL+"/hook")
	faulttest.Report(t, faulttest.FaultsInjected, 1)
	rows := b.webhookJobs(t)
	require.Len(t, rows, 1)
	require.Equal(t, rivertype.JobStateCancelled, rows[0].State)
	last := rows[0].Errors[len(rows[0].Errors)-1].Error
	require.True(t, strings.Contains(last, "redirect"), last)
	require.Equal(t, int32(1), outer.Load(), "one attempt, no retries of a redirect")
	require.Zero(t, inner.Load(), "the redirect was not followed")
}

// webhookProgress is the webhook part of a meeting's progress.
type webhookProgress struct {
	URLHost      string     `json:"url_host"`
	LastEvent    string     `json:"last_event"`
	LastError    string     `json:"last_error"`
	FailingSince *time.Time `json:"failing_since"`
	DeliveredAt  *time.Time `json:"delivered_at"`
}

func (b *testBundle) webhookProgress(t *testing.T, meetingID string) *webhookProgress {
	t.Helper()
	var m struct {
		Pipeline struct {
			Webhook *webhookProgress `json:"webhook"`
		} `json:"pipeline"`
	}
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+meetingID, nil, &m))
	return m.Pipeline.Webhook
}

// TestFaultWebhookFailureShowsInProgress: a delivery refused (an internal
// address) or failing (the receiver answers 500) shows in the meeting's
// progress, with the host, the event, the error and since when, until a
// delivery succeeds; not only in the job queue.
func TestFaultWebhookFailureShowsInProgress(t *testing.T) {
	t.Parallel()
	faults := 0
	t.Run("refused", func(t *testing.T) {
		b := setup(t, setupOptions{strictWebhooks: true})
		recv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		t.Cleanup(recv.Close)
		id := b.endEmptyMeeting(t, recv.URL+"/hook?secret=s3cr3t")
		faults++
		b.webhookJobs(t)
		wh := b.webhookProgress(t, id)
		require.NotNil(t, wh, "a refused delivery shows in the progress")
		require.Equal(t, "127.0.0.1", wh.URLHost)
		require.Equal(t, jobs.EventMinutesReady, wh.LastEvent)
		require.Contains(t, wh.LastError, "GREFFIER_WEBHOOK_ALLOW_PRIVATE")
		require.NotContains(t, wh.LastError, "s3cr3t", "the URL's query may hold the receiver's secret")
		require.NotNil(t, wh.FailingSince)
		require.Nil(t, wh.DeliveredAt)
	})
	t.Run("failing then delivered", func(t *testing.T) {
		b := setup(t, setupOptions{})
		var healthy atomic.Bool
		recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if !healthy.Load() {
				w.WriteHeader(http.StatusInternalServerError)
			}
		}))
		t.Cleanup(recv.Close)
		id := b.endEmptyMeeting(t, recv.URL+"/hook")
		faults++
		var wh *webhookProgress
		require.Eventually(t, func() bool { wh = b.webhookProgress(t, id); return wh != nil }, 30*time.Second, 50*time.Millisecond,
			"a failing delivery shows in the progress while it is retried")
		require.Contains(t, wh.LastError, "500")
		require.NotNil(t, wh.FailingSince)
		since := *wh.FailingSince
		healthy.Store(true)
		require.Eventually(t, func() bool { wh = b.webhookProgress(t, id); return wh.DeliveredAt != nil }, 30*time.Second, 50*time.Millisecond)
		require.Empty(t, wh.LastError)
		require.Nil(t, wh.FailingSince)
		require.False(t, wh.DeliveredAt.Before(since))
	})
	faulttest.Report(t, faulttest.FaultsInjected, float64(faults))
}
