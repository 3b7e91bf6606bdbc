package main

import (
	"context"
	"net/http"
	"path/filepath"
	"time"

	"github.com/pion/webrtc/v4"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/faulttest"
	"github.com/greffier/greffier/internal/testenv"
	"github.com/greffier/greffier/minutes"
	"github.com/greffier/greffier/sfu/sfutest"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

// TestFaultBackendFailingThenRecoveringCostsRetriesNotText: a backend that
// fails a few times and then recovers costs retries, not text.
func TestFaultBackendFailingThenRecoveringCostsRetriesNotText(t *testing.T) {
	t.Parallel()
	const failures = 3
	b := setup(t, setupOptions{backend: transcribetest.Options{FailFirst: failures, FailStatus: http.StatusServiceUnavailable}})
	script, err := transcribetest.ReadScript(filepath.Join(fixtures, "script.json"))
	require.NoError(t, err)
	mt, now := b.holdMeeting(t, map[string]string{"alice": "Alice", "bob": "Bob"}, holdOptions{})
	var doc minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+mt.id+"/minutes", nil, &doc))
	var tr trackAnswer
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+mt.id+"/tracks", nil, &tr))
	starts := map[string]int64{}
	for _, x := range tr.Tracks {
		starts[x.Identity] = x.StartMS
	}
	faulttest.Report(t, faulttest.FaultsInjected, float64(min(failures, b.double.Requests())))
	faulttest.Report(t, faulttest.JobsStuck, float64(now.Pipeline.Segments-now.Pipeline.SegmentsTranscribed-now.Pipeline.SegmentsFailed))
	words := wordsLost(doc, script, starts)
	faulttest.Report(t, faulttest.WordsLost, float64(words))
	require.Zero(t, words)
	require.Len(t, starts, 2)
	require.Equal(t, "ready", now.State)
	require.Zero(t, now.Pipeline.SegmentsFailed)
	require.True(t, doc.Complete)
	require.Len(t, doc.Turns, 4)
	require.Greater(t, b.double.Requests(), 4, "the failed requests were retried")
	// Without a chat backend the minutes say they are the transcript alone.
	require.Equal(t, "transcript", doc.Content)
	require.Nil(t, doc.Summary)
	var md string
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+mt.id+"/minutes.md", nil, &md))
	require.Contains(t, md, "transcript only, no summary")
}

// A backend that never answers: while segments wait for it, the meeting's
// progress says so (which backend, since when, its last error); once the
// wait is over the minutes say, stretch by stretch, what is missing and
// why, and the meeting is incomplete, never ready.
func TestFaultBackendDownShowsTheWaitThenMakesTheMeetingIncomplete(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{maxAttempts: 2, snoozeBudget: 4 * time.Second,
		backend: transcribetest.Options{FailFirst: 1 << 30, FailStatus: http.StatusInternalServerError}})
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"participants": []map[string]any{{"identity": "alice", "display_name": "Alice"}, {"identity": "bob", "display_name": "Bob"}}}, &m))
	ctx := context.Background()
	for _, p := range b.publishAll(t, m) {
		require.NoError(t, p.Close(ctx))
	}
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, nil))

	type waitAnswer struct {
		State    string `json:"state"`
		Pipeline struct {
			SegmentsWaiting int `json:"segments_waiting"`
			Waiting         []struct {
				Stage, Identity, Backend string
				Since                    time.Time
				LastError                string `json:"last_error"`
				StartMS                  int64  `json:"start_ms"`
				EndMS                    int64  `json:"end_ms"`
			} `json:"waiting"`
		} `json:"pipeline"`
	}
	var w waitAnswer
	require.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &w)
		return len(w.Pipeline.Waiting) > 0
	}, 10*time.Second, 20*time.Millisecond, "segments waiting for the backend are shown as they wait")
	require.Equal(t, "ended", w.State)
	require.Equal(t, len(w.Pipeline.Waiting), w.Pipeline.SegmentsWaiting)
	for _, wt := range w.Pipeline.Waiting {
		require.Equal(t, "transcribe", wt.Stage)
		require.Contains(t, []string{"alice", "bob"}, wt.Identity)
		require.Contains(t, wt.Backend, b.double.BaseURL())
		require.False(t, wt.Since.IsZero())
		require.False(t, wt.Since.After(time.Now()))
		require.Contains(t, wt.LastError, "500")
		require.Less(t, wt.StartMS, wt.EndMS)
	}

	var now meetingAnswer
	require.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &now)
		return now.State != "ended"
	}, 60*time.Second, 100*time.Millisecond)
	faulttest.Report(t, faulttest.FaultsInjected, float64(b.double.Requests()))
	require.Equal(t, "incomplete", now.State, "minutes missing speech must not read as ready")
	b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &w)
	require.Empty(t, w.Pipeline.Waiting, "nothing waits any more")
	require.Equal(t, 4, now.Pipeline.SegmentsFailed)
	require.Len(t, now.Pipeline.Failures, 4)
	for _, f := range now.Pipeline.Failures {
		require.Equal(t, "transcribe", f.Stage)
		require.Contains(t, f.Reason, "500")
	}
	var doc minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &doc))
	require.False(t, doc.Complete)
	require.Empty(t, doc.Turns)
	require.Len(t, doc.Missing, 4)
	// Both speakers' stretches are listed, by name (in the order they
	// start on the meeting clock, which depends on who connected first).
	var names []string
	for _, g := range doc.Missing {
		names = append(names, g.Name)
	}
	require.ElementsMatch(t, []string{"Alice", "Alice", "Bob", "Bob"}, names)
	// Every stretch of speech is either in the minutes or stated missing.
	faulttest.Report(t, faulttest.WordsLost, float64(now.Pipeline.Segments-len(doc.Missing)))
	faulttest.Report(t, faulttest.JobsStuck, float64(len(w.Pipeline.Waiting)))
	var md string
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes.md", nil, &md))
	require.Contains(t, md, "## Missing from this transcript")
	require.Contains(t, md, "incomplete")
}

// A host always has a way out of a stuck pipeline: the backend holds every
// request of the first run forever (its jobs stay running, the meeting
// stays ended), and a re-run of the ended meeting still brings the minutes.
func TestFaultRerunRescuesAStuckEndedMeeting(t *testing.T) {
	t.Parallel()
	// The first run sends each speaker's first segment (their second waits
	// for it, in speaker order): the backend holds both forever.
	b := setup(t, setupOptions{backend: transcribetest.Options{Delay: 10 * time.Minute, DelayFirst: 2}})
	t.Cleanup(b.double.Release) // before the app stops, so that the held jobs end
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"participants": []map[string]any{{"identity": "alice", "display_name": "Alice"}, {"identity": "bob", "display_name": "Bob"}}}, &m))
	ctx := context.Background()
	for _, p := range b.publishAll(t, m) {
		require.NoError(t, p.Close(ctx))
	}
	var ended meetingAnswer
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, &ended))
	require.Eventually(t, func() bool { return b.double.Requests() >= 2 }, 20*time.Second, 20*time.Millisecond)
	var stuck meetingAnswer
	b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &stuck)
	require.Equal(t, "ended", stuck.State)
	require.Zero(t, stuck.Pipeline.SegmentsTranscribed)

	var rerun meetingAnswer
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/rerun", nil, &rerun))
	require.Equal(t, "ended", rerun.State)
	var now meetingAnswer
	require.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &now)
		return now.State != "ended"
	}, 30*time.Second, 50*time.Millisecond)
	faulttest.Report(t, faulttest.FaultsInjected, 4)
	faulttest.Report(t, faulttest.JobsStuck, float64(now.Pipeline.Segments-now.Pipeline.SegmentsTranscribed))
	require.Equal(t, "ready", now.State, "pipeline: %+v", now.Pipeline)
	var doc minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &doc))
	require.True(t, doc.Complete)
	require.Len(t, doc.Turns, 4)
	require.Equal(t, ended.EndedAt, now.EndedAt, "a re-run keeps the meeting's end time")

	// A meeting that never ended has nothing to re-run.
	var other meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{}, &other))
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	require.Equal(t, http.StatusConflict, b.call(t, "POST", "/v1/meetings/"+other.ID+"/rerun", nil, &e))
	require.Contains(t, e.Error.Message, "end it first")
}

func TestBadInputAnswersClearly(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"participants": []map[string]any{{"identity": "alice"}}}, &m))

	type errBody struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	post := func(path, auth, contentType, body string) (int, errBody) {
		req, err := http.NewRequest("POST", b.url+path, strings.NewReader(body))
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		req.Header.Set("Content-Type", contentType)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var e errBody
		_ = jsonDecode(resp.Body, &e)
		return resp.StatusCode, e
	}

	t.Run("api without token", func(t *testing.T) {
		code, e := post("/v1/meetings", "", "application/json", `{}`)
		require.Equal(t, http.StatusUnauthorized, code)
		require.Equal(t, "unauthorized", e.Error.Code)
		code, _ = post("/v1/meetings", "wrong", "application/json", `{}`)
		require.Equal(t, http.StatusUnauthorized, code)
	})
	t.Run("malformed json", func(t *testing.T) {
		code, e := post("/v1/meetings", b.token, "application/json", `{"title":`)
		require.Equal(t, http.StatusBadRequest, code)
		require.Equal(t, "bad_json", e.Error.Code)
	})
	t.Run("unknown meeting", func(t *testing.T) {
		var e errBody
		require.Equal(t, http.StatusNotFound, b.call(t, "GET", "/v1/meetings/mtg_nope", nil, &e))
		require.Equal(t, "not_found", e.Error.Code)
		require.Equal(t, http.StatusNotFound, b.call(t, "POST", "/v1/meetings/mtg_nope/end", nil, &e))
		require.Equal(t, http.StatusNotFound, b.call(t, "GET", "/v1/meetings/mtg_nope/minutes.vtt", nil, &e))
	})
	t.Run("forged join token", func(t *testing.T) {
		tok := m.Join[0].Token
		forged := tok[:len(tok)-4] + "AAAA"
		code, e := post("/v1/whip", forged, "application/sdp", "v=0\r\n")
		require.Equal(t, http.StatusUnauthorized, code)
		require.NotEmpty(t, e.Error.Message)
	})
	t.Run("malformed sdp", func(t *testing.T) {
		code, e := post("/v1/whip", m.Join[0].Token, "application/sdp", "this is not sdp")
		require.Equal(t, http.StatusBadRequest, code, "%+v", e)
	})
	t.Run("minutes before the meeting ends", func(t *testing.T) {
		var e errBody
		require.Equal(t, http.StatusNotFound, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &e))
		require.Equal(t, "no_minutes", e.Error.Code)
	})
	t.Run("ending twice", func(t *testing.T) {
		var e errBody
		require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, nil))
		require.Equal(t, http.StatusConflict, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, &e))
		require.Equal(t, "already_ended", e.Error.Code)
		code, _ := post("/v1/whip", m.Join[0].Token, "application/sdp", opusOffer(t))
		require.Equal(t, http.StatusConflict, code, "nobody joins an ended meeting")
	})
}

// opusOffer is a browser-like offer to send Opus audio.
func opusOffer(t *testing.T) string {
	t.Helper()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	require.NoError(t, err)
	defer pc.Close()
	_, err = pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	require.NoError(t, err)
	offer, err := pc.CreateOffer(nil)
	require.NoError(t, err)
	return offer.SDP
}

// TestFaultS3UnreachableForAMinuteLosesNothing: S3 goes away while a
// participant speaks and stays away for a minute, past the meeting's end.
// Nothing is lost: the recording waits in the spool, ending the meeting
// waits for it to reach S3, and the minutes are whole.
func TestFaultS3UnreachableForAMinuteLosesNothing(t *testing.T) {
	t.Parallel()
	srv := testenv.StartS3Server(t)
	b := setup(t, setupOptions{scaleOut: true, s3: srv})
	script, err := transcribetest.ReadScript(filepath.Join(fixtures, "script.json"))
	require.NoError(t, err)
	ctx := context.Background()
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"participants": []map[string]any{{"identity": "alice", "display_name": "Alice"}}}, &m))
	pub, err := sfutest.Publish(ctx, sfutest.PublishOptions{WHIPURL: b.url + "/v1/whip", Token: m.Join[0].Token,
		OggPath: filepath.Join(fixtures, "alice.opus")})
	require.NoError(t, err)

	// S3 goes away 2 s into the meeting, before alice's first sentence
	// ends, and comes back a minute later.
	require.Eventually(t, func() bool { return len(pub.Sent()) >= 100 }, 20*time.Second, 10*time.Millisecond)
	require.NoError(t, srv.Stop())
	const outage = time.Minute
	stopped := time.Now()
	restarted := make(chan error, 1)
	time.AfterFunc(outage, func() { restarted <- srv.Start() })
	select {
	case <-pub.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("publisher did not finish sending its file")
	}
	require.NoError(t, pub.Close(ctx))
	var ended meetingAnswer
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, &ended))
	require.GreaterOrEqual(t, time.Since(stopped), outage, "ending waited for the recording to reach S3")
	require.NoError(t, <-restarted)
	t.Logf("ended %v after S3 went away", time.Since(stopped).Round(time.Millisecond))

	var now meetingAnswer
	ok := assert.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &now)
		return now.State != "ended"
	}, 30*time.Second, 100*time.Millisecond)
	faulttest.Report(t, faulttest.FaultsInjected, 1)
	faulttest.Report(t, faulttest.JobsStuck, float64(now.Pipeline.Segments-now.Pipeline.SegmentsTranscribed-now.Pipeline.SegmentsFailed))
	require.True(t, ok, "state %s, pipeline %+v", now.State, now.Pipeline)
	lost := b.recordingsLost(t, m.ID, "alice")
	faulttest.Report(t, faulttest.RecordingsLost, float64(lost))
	require.Zero(t, lost)
	var doc minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &doc))
	var tr trackAnswer
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/tracks", nil, &tr))
	require.Len(t, tr.Tracks, 1)
	words := wordsLost(doc, script, map[string]int64{"alice": tr.Tracks[0].StartMS})
	faulttest.Report(t, faulttest.WordsLost, float64(words))
	require.Zero(t, words)
	require.Equal(t, "ready", now.State)
	require.True(t, doc.Complete, "missing: %+v", doc.Missing)
	require.Len(t, doc.Turns, 2)
	b.requireTracksDownloadClean(t, m.ID, 1)
}
