package main

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/faulttest"
	"github.com/greffier/greffier/minutes"
	"github.com/greffier/greffier/sfu/sfutest"
)

// unfinishedJobs counts pipeline jobs not yet completed, cancelled or
// discarded.
func (b *testBundle) unfinishedJobs(t *testing.T) int {
	t.Helper()
	res, err := b.app.pipeline.Client().JobList(context.Background(), river.NewJobListParams().First(1000).
		States(rivertype.JobStateAvailable, rivertype.JobStateRunning, rivertype.JobStateRetryable,
			rivertype.JobStateScheduled, rivertype.JobStatePending))
	require.NoError(t, err)
	return len(res.Jobs)
}

// waitIdleEnd waits until meeting id has ended by itself and its minutes
// are ready, and reports what it measured.
func (b *testBundle) waitIdleEnd(t *testing.T, id string, turns int) {
	t.Helper()
	var now meetingAnswer
	require.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+id, nil, &now)
		return now.State == "ready" || now.State == "failed"
	}, 60*time.Second, 100*time.Millisecond, "the meeting did not end by itself: %s", now.State)
	require.Equal(t, "ready", now.State)
	var doc minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+id+"/minutes", nil, &doc))
	require.True(t, doc.Complete)
	require.Len(t, doc.Turns, turns)
	l := b.tracks(t, id)
	faulttest.Report(t, faulttest.RecordingsLost, float64(len(l.Tracks)-l.stored()))
	require.Equal(t, len(l.Tracks), l.stored())
	stuck := 0
	if !assertEventually(func() bool { stuck = b.unfinishedJobs(t); return stuck == 0 }, 30*time.Second) {
		t.Errorf("%d jobs unfinished", stuck)
	}
	faulttest.Report(t, faulttest.JobsStuck, float64(stuck))
}

func assertEventually(cond func() bool, within time.Duration) bool {
	deadline := time.Now().Add(within)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// A host who forgets to end the meeting still gets the minutes: once
// nobody has been connected for IdleEndAfter, the meeting ends by itself,
// the way POST /end does. A meeting nobody has joined yet is left alone,
// and one with someone connected is not ended however long it lasts.
func TestFaultMeetingNobodyIsInEndsByItself(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{idleEndAfter: time.Second})
	ctx := context.Background()
	var m, waiting meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"participants": []map[string]any{{"identity": "alice"}}}, &m))
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{}, &waiting))
	pub, err := sfutest.Publish(ctx, sfutest.PublishOptions{WHIPURL: b.url + "/v1/whip", Token: m.Join[0].Token,
		OggPath: filepath.Join(fixtures, "alice.opus")})
	require.NoError(t, err)
	<-pub.Done() // 9 s, many times IdleEndAfter
	var now meetingAnswer
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &now))
	require.Equal(t, "live", now.State, "someone is connected")
	require.NoError(t, pub.Close(ctx))
	faulttest.Report(t, faulttest.FaultsInjected, 1)
	b.waitIdleEnd(t, m.ID, 2)
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+waiting.ID, nil, &now))
	require.Equal(t, "created", now.State, "a meeting nobody joined yet waits for its participants")
}

// A server restarted during a meeting that nobody rejoins: the meeting,
// live in the database with no session, ends by itself after
// IdleEndAfter, and its minutes come.
func TestFaultMeetingLeftLiveByARestartEndsByItself(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := setup(t, setupOptions{dataDir: dir})
	ctx := context.Background()
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"participants": []map[string]any{{"identity": "alice"}}}, &m))
	pub, err := sfutest.Publish(ctx, sfutest.PublishOptions{WHIPURL: b.url + "/v1/whip", Token: m.Join[0].Token,
		OggPath: filepath.Join(fixtures, "alice.opus")})
	require.NoError(t, err)
	<-pub.Done()
	b.stop(t) // the meeting is live, alice connected
	require.NoError(t, pub.CloseWithoutDelete())
	faulttest.Report(t, faulttest.FaultsInjected, 1)

	again := setup(t, setupOptions{dataDir: dir, idleEndAfter: time.Second})
	again.waitIdleEnd(t, m.ID, 2)
}
