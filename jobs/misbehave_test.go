package jobs

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/transcribe"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

// The pipeline through every way a real backend misbehaves: the minutes
// come out complete when the backend recovers, and say what is missing,
// stretch by stretch, when it never does.
func TestMinutesThroughMisbehavingBackends(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		opts     transcribetest.Options
		complete bool
	}{
		"5xx then recovers":         {opts: transcribetest.Options{FailFirst: 2, FailStatus: http.StatusBadGateway}, complete: true},
		"429 with Retry-After":      {opts: transcribetest.Options{FailFirst: 1, FailStatus: http.StatusTooManyRequests, RetryAfter: time.Second}, complete: true},
		"slow answers":              {opts: transcribetest.Options{Delay: 300 * time.Millisecond}, complete: true},
		"truncated JSON then fine":  {opts: transcribetest.Options{Lie: transcribetest.LieTruncated, LieFirst: 1}, complete: true},
		"times outside then fine":   {opts: transcribetest.Options{Lie: transcribetest.LieOutsideAudio, LieFirst: 1}, complete: true},
		"backwards times then fine": {opts: transcribetest.Options{Lie: transcribetest.LieBackwards, LieFirst: 1}, complete: true},
		"vLLM string duration":      {opts: transcribetest.Options{Quirk: transcribetest.QuirkVLLM}, complete: true},
		"whisper.cpp nested words":  {opts: transcribetest.Options{Quirk: transcribetest.QuirkWhisperCpp, Path: "/inference"}, complete: true},
		"always empty":              {opts: transcribetest.Options{Lie: transcribetest.LieEmpty}, complete: false},
		"always 503":                {opts: transcribetest.Options{FailFirst: 1 << 30, FailStatus: http.StatusServiceUnavailable}, complete: false},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setupWith(t, store.SQLite, tc.opts, func(double *transcribetest.Server) Transcriber {
				base := double.BaseURL()
				if tc.opts.Path != "" {
					base = double.URL() // whisper.cpp serves at the root
				}
				tr, err := transcribe.NewOpenAI(transcribe.OpenAIConfig{BaseURL: base, Path: tc.opts.Path})
				require.NoError(t, err)
				return transcribe.NewGuard(tr, transcribe.GuardConfig{MaxAttempts: 2, BackoffBase: 20 * time.Millisecond,
					BreakerCoolDown: 100 * time.Millisecond})
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
