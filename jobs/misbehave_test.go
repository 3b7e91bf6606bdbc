package jobs

import (
	"context"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/faulttest"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/minutes"
	"github.com/greffier/greffier/transcribe"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

// TestFaultMinutesThroughMisbehavingBackends runs the pipeline through
// every way a real backend misbehaves (500s, 429s, garbage, timeouts): the
// minutes come out complete when the backend recovers, and say what is
// missing, stretch by stretch, when it never does. No word is lost without
// a stated gap and no job is left waiting.
func TestFaultMinutesThroughMisbehavingBackends(t *testing.T) {
	t.Parallel()
	script, err := transcribetest.ReadScript(filepath.Join(fixtures, "script.json"))
	require.NoError(t, err)
	for name, tc := range map[string]struct {
		opts     transcribetest.Options
		timeout  time.Duration // of each transcription call; 0 for the default
		complete bool
		// faults counts the misbehaving answers the double gave, out of
		// the requests it received.
		faults func(requests int) int
	}{
		"5xx then recovers":         {opts: transcribetest.Options{FailFirst: 2, FailStatus: http.StatusBadGateway}, complete: true, faults: upTo(2)},
		"429 with Retry-After":      {opts: transcribetest.Options{FailFirst: 1, FailStatus: http.StatusTooManyRequests, RetryAfter: time.Second}, complete: true, faults: upTo(1)},
		"slow answers":              {opts: transcribetest.Options{Delay: 300 * time.Millisecond}, complete: true, faults: every},
		"timeout then fine":         {opts: transcribetest.Options{Delay: time.Minute, DelayFirst: 1}, timeout: 2 * time.Second, complete: true, faults: upTo(1)},
		"truncated JSON then fine":  {opts: transcribetest.Options{Lie: transcribetest.LieTruncated, LieFirst: 1}, complete: true, faults: upTo(1)},
		"times outside then fine":   {opts: transcribetest.Options{Lie: transcribetest.LieOutsideAudio, LieFirst: 1}, complete: true, faults: upTo(1)},
		"backwards times then fine": {opts: transcribetest.Options{Lie: transcribetest.LieBackwards, LieFirst: 1}, complete: true, faults: upTo(1)},
		"vLLM string duration":      {opts: transcribetest.Options{Quirk: transcribetest.QuirkVLLM}, complete: true, faults: upTo(0)},
		"whisper.cpp nested words":  {opts: transcribetest.Options{Quirk: transcribetest.QuirkWhisperCpp, Path: "/inference"}, complete: true, faults: upTo(0)},
		"always empty":              {opts: transcribetest.Options{Lie: transcribetest.LieEmpty}, complete: false, faults: every},
		"always 503":                {opts: transcribetest.Options{FailFirst: 1 << 30, FailStatus: http.StatusServiceUnavailable}, complete: false, faults: every},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setupWith(t, store.SQLite, tc.opts, func(double *transcribetest.Server) Transcriber {
				base := double.BaseURL()
				if tc.opts.Path != "" {
					base = double.URL() // whisper.cpp serves at the root
				}
				tr, err := transcribe.NewOpenAI(transcribe.OpenAIConfig{BaseURL: base, Path: tc.opts.Path, Timeout: tc.timeout})
				require.NoError(t, err)
				return transcribe.NewGuard(tr, transcribe.GuardConfig{BreakerCoolDown: 100 * time.Millisecond})
			}, Config{MaxAttempts: 3, SnoozeBudget: 2 * time.Second})
			ctx := context.Background()
			m, err := b.store.CreateMeeting(ctx, "", "")
			require.NoError(t, err)
			_, err = b.store.Join(ctx, m.ID, "alice", "Alice")
			require.NoError(t, err)
			b.storeFixtureTrack(t, m.ID, "alice", 0)
			_, err = b.p.EndMeeting(ctx, m.ID)
			require.NoError(t, err)
			require.Eventually(t, func() bool {
				cur, err := b.store.Meeting(ctx, m.ID)
				require.NoError(t, err)
				return cur.State.Finished()
			}, 60*time.Second, 50*time.Millisecond)
			doc := latestMinutes(t, b, m.ID)
			faulttest.Report(t, faulttest.FaultsInjected, float64(tc.faults(b.double.Requests())))
			segs, err := b.store.SpeechSegments(ctx, m.ID)
			require.NoError(t, err)
			waiting := 0
			for _, s := range segs {
				if s.Status == store.SegmentPending {
					waiting++
				}
			}
			faulttest.Report(t, faulttest.JobsStuck, float64(waiting))
			require.Zero(t, waiting, "every segment was transcribed or failed")
			lost := wordsLost(doc, script, "alice", 0)
			faulttest.Report(t, faulttest.WordsLost, float64(lost))
			require.Zero(t, lost, "every word is in the minutes or inside a stated gap")
			require.Equal(t, tc.complete, doc.Complete, "missing: %+v", doc.Missing)
			cur, err := b.store.Meeting(ctx, m.ID)
			require.NoError(t, err)
			if tc.complete {
				require.Equal(t, store.MeetingReady, cur.State)
			} else {
				require.Equal(t, store.MeetingIncomplete, cur.State, "minutes missing speech must not read as ready")
			}
			if tc.complete {
				require.Len(t, doc.Turns, 2)
				require.Equal(t, "alpha bravo charlie delta", doc.Turns[0].Text)
				require.Equal(t, "india juliett kilo", doc.Turns[1].Text)
				require.Len(t, doc.Turns[0].Words, 4)
				return
			}
			require.Len(t, doc.Missing, 2, "each stretch of alice's speech is listed as missing")
			for _, g := range doc.Missing {
				require.Equal(t, "alice", g.Speaker)
				require.NotEmpty(t, g.Reason)
			}
		})
	}
}

// TestBackendAnsweringErrorsIsCalledOncePerJobAttempt checks that River
// owns the retries of a transcription: a backend answering 500 to every
// request gets exactly one request per attempt of each segment's job, not
// a guard's retries inside each attempt, and each segment is marked
// failed with the backend's last error once its attempts are used.
func TestBackendAnsweringErrorsIsCalledOncePerJobAttempt(t *testing.T) {
	t.Parallel()
	const attempts = 3
	b := setupWith(t, store.SQLite, transcribetest.Options{FailFirst: 1 << 30, FailStatus: http.StatusInternalServerError},
		func(double *transcribetest.Server) Transcriber {
			tr, err := transcribe.NewOpenAI(transcribe.OpenAIConfig{BaseURL: double.BaseURL()})
			require.NoError(t, err)
			// A breaker that never opens: every attempt reaches the backend.
			return transcribe.NewGuard(tr, transcribe.GuardConfig{BreakerThreshold: 1 << 20})
		}, Config{MaxAttempts: attempts})
	ctx := context.Background()
	m, err := b.store.CreateMeeting(ctx, "", "")
	require.NoError(t, err)
	_, err = b.store.Join(ctx, m.ID, "alice", "Alice")
	require.NoError(t, err)
	b.storeFixtureTrack(t, m.ID, "alice", 0)
	_, err = b.p.EndMeeting(ctx, m.ID)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		cur, err := b.store.Meeting(ctx, m.ID)
		require.NoError(t, err)
		return cur.State.Finished()
	}, 60*time.Second, 50*time.Millisecond)

	segs, err := b.store.SpeechSegments(ctx, m.ID)
	require.NoError(t, err)
	require.NotEmpty(t, segs)
	for _, s := range segs {
		require.Equal(t, store.SegmentFailed, s.Status)
		require.Contains(t, s.Failure, "500", "the last error is the backend's")
	}
	jobs, err := b.p.client.JobList(ctx, river.NewJobListParams().Kinds(TranscribeArgs{}.Kind()).First(100))
	require.NoError(t, err)
	require.Len(t, jobs.Jobs, len(segs))
	tried := 0
	for _, j := range jobs.Jobs {
		require.Equal(t, attempts, j.Attempt, "each segment's job used its attempts")
		require.Len(t, j.Errors, attempts-1, "River retried each failure")
		tried += j.Attempt
	}
	require.Equal(t, tried, b.double.Requests(), "one request per attempt: %d segments, %d attempts each", len(segs), attempts)
	faulttest.Report(t, faulttest.FaultsInjected, float64(b.double.Requests()))
}

// upTo counts the first n requests as faults.
func upTo(n int) func(int) int { return func(requests int) int { return min(n, requests) } }

// every counts every request as a fault.
func every(requests int) int { return requests }

// wordsLost counts the script's words of speaker (whose file starts at
// startMS on the meeting clock) that the minutes neither hold (the same
// word within a second of where it was said) nor place inside a stated gap
// of that speaker.
func wordsLost(doc minutes.Document, script transcribetest.Script, speaker string, startMS int64) int {
	lost := 0
	for _, u := range script.Utterances {
		if u.Speaker != speaker {
			continue
		}
		for _, w := range u.Words {
			at := startMS + int64(w.Start*1000)
			found := slices.ContainsFunc(doc.Missing, func(g minutes.Gap) bool {
				return g.Speaker == speaker && g.Start.MS() <= at+500 && g.End.MS() >= at-500
			})
			for _, turn := range doc.Turns {
				found = found || turn.Speaker == speaker && slices.ContainsFunc(turn.Words, func(tw minutes.Word) bool {
					return strings.EqualFold(tw.Word, w.Text) && max(tw.Start.MS()-at, at-tw.Start.MS()) < 1000
				})
			}
			if !found {
				lost++
			}
		}
	}
	return lost
}
