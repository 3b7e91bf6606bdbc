package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/faulttest"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/transcribe"
)

// newUnstarted builds a pipeline whose nodes time out in a second,
// without starting it, so a test can arrange its jobs first.
func newUnstarted(t *testing.T, d store.Dialect, tr Transcriber, cfg Config) (b *testBundle, start func()) {
	t.Helper()
	cfg.NodeTimeout = time.Second
	return newBundle(t, d, bundleOptions{transcriber: tr, cfg: cfg})
}

// panics is a speech backend whose every call panics.
type panics struct{}

func (panics) Transcribe(context.Context, transcribe.Request) (transcribe.Result, error) {
	panic("the speech backend's client fell over")
}

// TestFaultDiscardedJobMarksItsUnitFailed: a job that will not run again
// because it was discarded where its worker could not record why (a node
// that died on the job's last attempt, rescued at the next start; a panic
// on the last attempt) leaves its unit failed with a reason, and the
// meeting moves on to incomplete instead of staying ended.
func TestFaultDiscardedJobMarksItsUnitFailed(t *testing.T) {
	t.Parallel()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d)+"/node died on the last attempt", func(t *testing.T) {
			t.Parallel()
			b, start := newUnstarted(t, d, panics{}, Config{MaxAttempts: 3})
			ctx := context.Background()
			m := endedMeetingWithAliceTrack(t, b)
			// The previous process took the detection's last attempt and
			// was killed during it.
			jobs, err := b.p.client.JobList(ctx, river.NewJobListParams().Kinds(DetectSpeechArgs{}.Kind()))
			require.NoError(t, err)
			require.Len(t, jobs.Jobs, 1)
			then := time.Now().Add(-time.Minute)
			_, err = b.p.driver.GetExecutor().JobUpdateFull(ctx, &riverdriver.JobUpdateFullParams{ID: jobs.Jobs[0].ID,
				StateDoUpdate: true, State: rivertype.JobStateRunning,
				AttemptDoUpdate: true, Attempt: 3, AttemptedAtDoUpdate: true, AttemptedAt: &then,
				AttemptedByDoUpdate: true, AttemptedBy: []string{"node_killed"}})
			require.NoError(t, err)
			start()

			waitMovedOn(t, b, m.ID, store.MeetingIncomplete)
			tracks, err := b.store.Tracks(ctx, m.ID)
			require.NoError(t, err)
			require.Contains(t, tracks[0].DetectFailure, "node node_killed stopped while it ran this job")
			doc := latestMinutes(t, b, m.ID)
			require.False(t, doc.Complete)
			require.Len(t, doc.Missing, 1)
			require.Equal(t, "alice", doc.Missing[0].Speaker)
			require.Contains(t, doc.Missing[0].Reason, "speech detection")
		})
		t.Run(string(d)+"/panic on the last attempt", func(t *testing.T) {
			t.Parallel()
			b, start := newUnstarted(t, d, panics{}, Config{MaxAttempts: 2})
			start()
			ctx := context.Background()
			m := endedMeetingWithAliceTrack(t, b)

			waitMovedOn(t, b, m.ID, store.MeetingIncomplete)
			prog, err := b.store.Progress(ctx, m.ID)
			require.NoError(t, err)
			require.Equal(t, 2, prog.SegmentsFailed)
			for _, f := range prog.Failures {
				require.Equal(t, "transcribe", f.Stage)
				require.Contains(t, f.Reason, "fell over", "the panic says why")
			}
			doc := latestMinutes(t, b, m.ID)
			require.False(t, doc.Complete)
			require.Len(t, doc.Missing, 2)
		})
	}
}

func endedMeetingWithAliceTrack(t *testing.T, b *testBundle) store.Meeting {
	t.Helper()
	ctx := context.Background()
	m, err := b.store.CreateMeeting(ctx, "", "")
	require.NoError(t, err)
	_, err = b.store.Join(ctx, m.ID, "alice", "Alice")
	require.NoError(t, err)
	b.storeFixtureTrack(t, m.ID, "alice", 0)
	m, err = b.p.EndMeeting(ctx, m.ID)
	require.NoError(t, err)
	return m
}

// waitMovedOn waits for the meeting to reach want with none of its unit
// jobs left to run, and reports the jobs left stuck: unfinished unit jobs,
// or the meeting itself, waiting on a job that will not run again.
func waitMovedOn(t *testing.T, b *testBundle, meetingID string, want store.MeetingState) {
	t.Helper()
	ctx := context.Background()
	faulttest.Report(t, faulttest.FaultsInjected, 1)
	settled := func() (store.Meeting, int) {
		cur, err := b.store.Meeting(ctx, meetingID)
		require.NoError(t, err)
		live, err := b.p.liveUnitJobs(ctx)
		require.NoError(t, err)
		stuck := len(live)
		if cur.State != want {
			stuck++
		}
		return cur, stuck
	}
	assert.Eventually(t, func() bool {
		_, stuck := settled()
		return stuck == 0
	}, 30*time.Second, 50*time.Millisecond)
	cur, stuck := settled()
	faulttest.Report(t, faulttest.JobsStuck, float64(stuck))
	require.Equal(t, want, cur.State, "the meeting must move on, not wait for a job that will not run again")
	require.Zero(t, stuck)
}

func TestFinalStateIsFailedOnlyWithoutMinutes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		made, complete bool
		want           store.MeetingState
		event          string
	}{
		{true, true, store.MeetingReady, EventMinutesReady},
		{true, false, store.MeetingIncomplete, EventMinutesIncomplete},
		{false, false, store.MeetingFailed, EventMeetingFailed},
		{false, true, store.MeetingFailed, EventMeetingFailed},
	} {
		got, event := finalState(tc.made, tc.complete)
		require.Equal(t, tc.want, got, "made %t complete %t", tc.made, tc.complete)
		require.Equal(t, tc.event, event)
	}
}

// A meeting none of whose tracks could be recorded still gets minutes,
// which say whose speech is missing and why: incomplete, not failed (which
// is kept for minutes that could not be made at all).
func TestEveryTrackFailedMakesTheMeetingIncomplete(t *testing.T) {
	t.Parallel()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			b := setup(t, d)
			ctx := context.Background()
			m, err := b.store.CreateMeeting(ctx, "", "")
			require.NoError(t, err)
			for i, who := range []string{"alice", "bob"} {
				_, err = b.store.Join(ctx, m.ID, who, who)
				require.NoError(t, err)
				tr := store.Track{ID: store.NewID("trk"), MeetingID: m.ID, Identity: who, StartMS: int64(i) * 100}
				require.NoError(t, b.cat.CreateTrack(ctx, tr))
				require.NoError(t, b.cat.FailTrack(ctx, tr.ID, "the local disk holding the spool is full"))
			}
			_, err = b.p.EndMeeting(ctx, m.ID)
			require.NoError(t, err)
			require.Eventually(t, func() bool {
				cur, err := b.store.Meeting(ctx, m.ID)
				require.NoError(t, err)
				return cur.State.Finished()
			}, 30*time.Second, 50*time.Millisecond)
			cur, err := b.store.Meeting(ctx, m.ID)
			require.NoError(t, err)
			require.Equal(t, store.MeetingIncomplete, cur.State)
			doc := latestMinutes(t, b, m.ID)
			require.False(t, doc.Complete)
			require.Empty(t, doc.Turns)
			require.Len(t, doc.Missing, 2)
			for _, g := range doc.Missing {
				require.Contains(t, g.Reason, "disk holding the spool is full")
			}
		})
	}
}
