package jobs

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/backend"
	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/internal/store"
)

// setupIdle is setup with the pipeline built (River's tables migrated) but
// not started: no job runs but those a test works itself.
func setupIdle(t *testing.T, d store.Dialect) *testBundle {
	t.Helper()
	b, _ := newBundle(t, d, bundleOptions{})
	return b
}

// work runs one job of worker through River's test worker, as a River
// client would: the job is inserted, moved to running, worked with
// River's context and timeout, and completed, retried or snoozed by what
// the worker answered. The job's own row lives in a transaction rolled
// back afterwards. On Postgres that is a transaction of the store's
// database, as rivertest intends; SQLite has one writer, which that
// transaction would hold while the worker writes through the store, so
// there the row lives in a database of River's tables alone. The error is
// the one the worker returned.
func work[T river.JobArgs](t *testing.T, b *testBundle, w river.Worker[T], args T, opts *river.InsertOpts) (*rivertest.WorkResult, error) {
	t.Helper()
	ctx := context.Background()
	var (
		db     = b.store.DB()
		driver riverdriver.Driver[*sql.Tx]
	)
	if b.store.Dialect() == store.SQLite {
		var err error
		db, err = sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "river.db")+"?_pragma=busy_timeout(10000)")
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		migrator, err := rivermigrate.New(riversqlite.New(db), nil)
		require.NoError(t, err)
		_, err = migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
		require.NoError(t, err)
		driver = riversqlite.New(nil)
	} else {
		driver = riverdatabasesql.New(nil)
	}
	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	cfg := &river.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxAttempts: b.p.cfg.MaxAttempts,
		RetryPolicy: retryPolicy{backend.Backoff{Base: b.p.cfg.RetryBase, Max: b.p.cfg.RetryMax}}}
	return rivertest.NewWorker(t, driver, cfg, w).Work(ctx, t, tx, args, opts)
}

// liveMeeting is a meeting alice joined and spoke in: her fixture's WebM
// is a stored track, of which the pipeline has not heard.
func (b *testBundle) liveMeeting(t *testing.T) (store.Meeting, store.Track) {
	t.Helper()
	ctx := context.Background()
	m, err := b.store.CreateMeeting(ctx, "Conseil", "fr")
	require.NoError(t, err)
	_, err = b.store.Join(ctx, m.ID, "alice", "Alice")
	require.NoError(t, err)
	data, err := os.ReadFile(fixtureWebM(t, "alice"))
	require.NoError(t, err)
	return m, b.storedTrack(t, m.ID, "alice", data)
}

// storedTrack stores data as identity's finished track, without the
// pipeline hearing of it.
func (b *testBundle) storedTrack(t *testing.T, meetingID, identity string, data []byte) store.Track {
	t.Helper()
	ctx := context.Background()
	tr := store.Track{ID: store.NewID("trk"), MeetingID: meetingID, Identity: identity, SSRC: 1, StartMS: 700}
	tr.BlobKey = layout.Track(meetingID, tr.ID)
	info, err := b.blobs.Put(ctx, tr.BlobKey, bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	require.NoError(t, b.store.CreateTrack(ctx, tr))
	tr.State, tr.DurationMS, tr.Size, tr.SHA256 = store.TrackStored, 9000, info.Size, info.SHA256
	require.NoError(t, b.store.FinishTrack(ctx, tr))
	return tr
}

// cutSegments cuts tr into speech segments and stores them, pending, as
// detection would.
func (b *testBundle) cutSegments(t *testing.T, tr store.Track) []store.SpeechSegment {
	t.Helper()
	segs, err := b.p.cutSpeech(context.Background(), tr)
	require.NoError(t, err)
	for _, s := range segs {
		require.NoError(t, b.store.UpsertSpeechSegment(context.Background(), s))
	}
	return segs
}

// queued lists the jobs of kind waiting to run.
func (b *testBundle) queued(t *testing.T, kind string) []*rivertype.JobRow {
	t.Helper()
	res, err := b.p.client.JobList(context.Background(), river.NewJobListParams().Kinds(kind).
		States(rivertype.JobStateAvailable, rivertype.JobStateScheduled))
	require.NoError(t, err)
	return res.Jobs
}

func eachDialect(t *testing.T, test func(t *testing.T, b *testBundle)) {
	t.Helper()
	t.Parallel()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			test(t, setupIdle(t, d))
		})
	}
}

func TestDetectWorkerCutsATrackIntoSegmentsAndQueuesTheirTranscription(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		m, tr := b.liveMeeting(t)
		segs, err := b.store.SpeechSegments(ctx, m.ID)
		require.NoError(t, err)
		require.Empty(t, segs)

		res, err := work(t, b, &detectWorker{p: b.p}, detectArgs(tr, 0), nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
		got, err := b.store.Track(ctx, tr.ID)
		require.NoError(t, err)
		require.True(t, got.SpeechDetected)
		segs, err = b.store.SpeechSegments(ctx, m.ID)
		require.NoError(t, err)
		require.Len(t, segs, 2, "alice says two sentences")
		for _, s := range segs {
			require.Equal(t, store.SegmentPending, s.Status)
			_, err := b.blobs.Stat(ctx, s.AudioKey)
			require.NoError(t, err, "each segment's audio is stored")
		}
		// A speaker's segments are transcribed in order, each prompted
		// with the words before it: the first is queued, the second waits.
		queued := b.queued(t, TranscribeArgs{}.Kind())
		require.Len(t, queued, 1, "one transcription at a time per speaker")
		var a TranscribeArgs
		require.NoError(t, json.Unmarshal(queued[0].EncodedArgs, &a))
		require.Equal(t, segs[0].StartMS, a.StartMS, "the first segment goes first")
		require.Empty(t, b.queued(t, AssembleArgs{}.Kind()), "the meeting goes on: no minutes yet")
	})
}

// TestDetectWorkerRetriesAnUnreadableTrackThenMarksItFailed: a recording
// that cannot be read is retried while attempts remain; on the last one
// its track is marked done with the failure, so the minutes go on and say
// what is missing.
func TestDetectWorkerRetriesAnUnreadableTrackThenMarksItFailed(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		m, err := b.store.CreateMeeting(ctx, "t", "en")
		require.NoError(t, err)
		tr := b.storedTrack(t, m.ID, "bob", []byte("not a webm"))
		_, err = b.store.Transition(ctx, m.ID, store.MeetingEnded, "")
		require.NoError(t, err)

		res, err := work(t, b, &detectWorker{p: b.p}, detectArgs(tr, 0), nil)
		require.ErrorContains(t, err, "read recording")
		require.Equal(t, river.EventKindJobFailed, res.EventKind)
		require.Contains(t, []rivertype.JobState{rivertype.JobStateRetryable, rivertype.JobStateAvailable}, res.Job.State,
			"to be tried again: attempts remain")
		require.Less(t, res.Job.Attempt, res.Job.MaxAttempts)
		require.Len(t, res.Job.Errors, 1)
		require.Contains(t, res.Job.Errors[0].Error, "read recording")
		got, err := b.store.Track(ctx, tr.ID)
		require.NoError(t, err)
		require.False(t, got.SpeechDetected)

		res, err = work(t, b, &detectWorker{p: b.p}, detectArgs(tr, 0), &river.InsertOpts{MaxAttempts: 1})
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind, "the failure is recorded; nothing left to retry")
		got, err = b.store.Track(ctx, tr.ID)
		require.NoError(t, err)
		require.True(t, got.SpeechDetected)
		require.Contains(t, got.DetectFailure, "speech detection")
		require.Len(t, b.queued(t, AssembleArgs{}.Kind()), 1, "the ended meeting's minutes go on without it")
	})
}

func TestTranscribeWorkerSavesTheTranscriptOfItsRunOnly(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		m, tr := b.liveMeeting(t)
		segs := b.cutSegments(t, tr)
		args := TranscribeArgs{MeetingID: m.ID, TrackID: tr.ID, StartMS: segs[0].StartMS, DurationMS: segs[0].EndMS - segs[0].AudioStartMS}

		// A job of an earlier run does nothing.
		stale := args
		stale.Run = 1
		res, err := work(t, b, &transcribeWorker{p: b.p}, stale, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		require.Zero(t, b.double.Requests())

		res, err = work(t, b, &transcribeWorker{p: b.p}, args, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		require.Equal(t, 1, b.double.Requests())
		got, err := b.store.SpeechSegments(ctx, m.ID)
		require.NoError(t, err)
		require.Equal(t, store.SegmentTranscribed, got[0].Status)
		require.NotEmpty(t, got[0].Text)
		require.NotEmpty(t, got[0].Words)
		require.Equal(t, store.SegmentPending, got[1].Status, "its own job transcribes the other")

		// Again, as River's at-least-once delivery may: the backend is not asked twice.
		res, err = work(t, b, &transcribeWorker{p: b.p}, args, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		require.Equal(t, 1, b.double.Requests())
	})
}

func TestAssembleWorkerSavesTheMinutesAndReadiesTheMeeting(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		m, tr := b.liveMeeting(t)
		for i, s := range b.cutSegments(t, tr) {
			require.NoError(t, b.store.SaveTranscript(ctx, tr.ID, s.StartMS, []string{"Bonjour.", "Au revoir."}[i], "fr", nil))
		}
		require.NoError(t, b.store.MarkSpeechDetected(ctx, tr.ID, ""))
		_, err := b.store.Transition(ctx, m.ID, store.MeetingEnded, "")
		require.NoError(t, err)
		_, err = b.store.LatestMinutes(ctx, m.ID)
		require.ErrorIs(t, err, store.ErrNotFound)

		res, err := work(t, b, &assembleWorker{p: b.p}, AssembleArgs{MeetingID: m.ID}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		cur, err := b.store.Meeting(ctx, m.ID)
		require.NoError(t, err)
		require.Equal(t, store.MeetingReady, cur.State)
		doc := latestMinutes(t, b, m.ID)
		require.Equal(t, 1, doc.Version)
		require.True(t, doc.Complete)
		require.NotEmpty(t, doc.Turns)
		require.Equal(t, "Alice", doc.Turns[0].Name)
		require.Contains(t, doc.Turns[0].Text, "Bonjour.")

		// Assembled again from the same transcript: the same version.
		_, err = b.store.Transition(ctx, m.ID, store.MeetingEnded, "")
		require.NoError(t, err)
		res, err = work(t, b, &assembleWorker{p: b.p}, AssembleArgs{MeetingID: m.ID}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		require.Equal(t, 1, latestMinutes(t, b, m.ID).Version)
	})
}

func TestArchiveWorkerBuildsTheWholeMeetingFiles(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		m, tr := b.liveMeeting(t)
		_, err := b.store.Transition(ctx, m.ID, store.MeetingEnded, "")
		require.NoError(t, err)
		keys := []string{layout.ArchiveWebM(m.ID), layout.ArchiveMix(m.ID), layout.SpeakerAudio(m.ID, tr.ID)}
		for _, k := range keys {
			_, err := b.blobs.Stat(ctx, k)
			require.Error(t, err, "no %s before", k)
		}

		res, err := work(t, b, &archiveWorker{p: b.p}, ArchiveArgs{MeetingID: m.ID, DurationMS: tr.DurationMS}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		for _, k := range keys {
			info, err := b.blobs.Stat(ctx, k)
			require.NoError(t, err, k)
			require.Positive(t, info.Size, k)
		}

		// A track still recording: the archive waits for it.
		late := store.Track{ID: store.NewID("trk"), MeetingID: m.ID, Identity: "bob", SSRC: 2}
		late.BlobKey = layout.Track(m.ID, late.ID)
		require.NoError(t, b.store.CreateTrack(ctx, late))
		res, err = work(t, b, &archiveWorker{p: b.p}, ArchiveArgs{MeetingID: m.ID, Run: 1}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobSnoozed, res.EventKind)
		require.True(t, res.Job.ScheduledAt.After(time.Now()), "tried again later: %s", res.Job.ScheduledAt)
	})
}
