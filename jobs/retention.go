package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/internal/store"
)

// DeleteMeetingArgs asks for every trace of a meeting to be removed: its
// objects, the spool leftovers on this node, its jobs and its rows.
type DeleteMeetingArgs struct {
	MeetingID string `json:"meeting_id"`
}

func (DeleteMeetingArgs) Kind() string { return "delete_meeting" }

// InsertOpts makes one deletion per meeting at a time.
func (DeleteMeetingArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true,
		ByState: []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending,
			rivertype.JobStateRetryable, rivertype.JobStateRunning, rivertype.JobStateScheduled}}}
}

// RetentionSweepArgs asks for the data past its retention to be deleted.
// It is a periodic job (Config.RetentionSweepInterval).
type RetentionSweepArgs struct{}

func (RetentionSweepArgs) Kind() string { return "retention_sweep" }

// InsertOpts keeps one sweep waiting or running at a time.
func (RetentionSweepArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByState: []rivertype.JobState{rivertype.JobStateAvailable,
		rivertype.JobStatePending, rivertype.JobStateRetryable, rivertype.JobStateRunning, rivertype.JobStateScheduled}}}
}

// sweepBatch bounds the meetings one sweep expires; the next sweep takes
// the rest.
const sweepBatch = 200

// DeleteMeeting moves a meeting to deleting and, in the same transaction,
// cancels its unfinished jobs and enqueues its deletion. A meeting under
// legal hold is refused (store.ErrLegalHold), a live one too (a
// *store.TransitionError: end it first). Asking again while it is being
// deleted changes nothing.
func (p *Pipeline) DeleteMeeting(ctx context.Context, meetingID string) (store.Meeting, error) {
	var m store.Meeting
	err := p.store.InTx(ctx, func(tx *sql.Tx, q store.Queries) error {
		var err error
		if m, err = q.StartDeleting(ctx, meetingID); err != nil {
			return err
		}
		if _, err := p.cancelMeetingJobs(ctx, tx, meetingID, 0); err != nil {
			return err
		}
		if _, err := p.client.InsertTx(ctx, tx, DeleteMeetingArgs{MeetingID: meetingID}, nil); err != nil {
			return fmt.Errorf("enqueue deletion of %s: %w", meetingID, err)
		}
		return nil
	})
	return m, err
}

// meetingJobs selects the jobs whose arguments name the meeting; every
// stage's arguments carry it as meeting_id. The JSON operator reads
// River's args in both its Postgres (jsonb) and SQLite (JSONB) schemas.
func meetingJobs(meetingID string) (string, river.NamedArgs) {
	return "args ->> 'meeting_id' = @meeting_id", river.NamedArgs{"meeting_id": meetingID}
}

// cancelMeetingJobs cancels every unfinished job of a meeting but except
// (a deletion's own), and says how many of them are still running: a
// cancelled running job stops when its context ends, here or on the node
// that runs it, and must have stopped before the meeting's objects go.
func (p *Pipeline) cancelMeetingJobs(ctx context.Context, tx *sql.Tx, meetingID string, except int64) (running int, err error) {
	where, args := meetingJobs(meetingID)
	params := river.NewJobListParams().Where(where, args).
		States(rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
			rivertype.JobStateRunning, rivertype.JobStateScheduled).
		First(1000)
	for {
		var res *river.JobListResult
		if tx != nil {
			res, err = p.client.JobListTx(ctx, tx, params)
		} else {
			res, err = p.client.JobList(ctx, params)
		}
		if err != nil {
			return 0, fmt.Errorf("list the jobs of %s: %w", meetingID, err)
		}
		for _, j := range res.Jobs {
			if j.ID == except || j.Kind == (DeleteMeetingArgs{}).Kind() {
				continue
			}
			if j.State == rivertype.JobStateRunning {
				running++
			}
			if tx != nil {
				_, err = p.client.JobCancelTx(ctx, tx, j.ID)
			} else {
				_, err = p.client.JobCancel(ctx, j.ID)
			}
			if err != nil && !errors.Is(err, rivertype.ErrNotFound) {
				return 0, fmt.Errorf("cancel job %d of %s: %w", j.ID, meetingID, err)
			}
		}
		if len(res.Jobs) < 1000 {
			return running, nil
		}
		params = params.After(res.LastCursor)
	}
}

type deleteWorker struct {
	river.WorkerDefaults[DeleteMeetingArgs]
	p *Pipeline
}

// Timeout leaves room for a meeting with many objects on a slow store.
func (w *deleteWorker) Timeout(*river.Job[DeleteMeetingArgs]) time.Duration { return 10 * time.Minute }

// Work deletes the meeting (work). An attempt that fails says why on the
// meeting, which GET shows beside its state, deleting; the job is retried,
// and once its attempts are used up the retention sweep enqueues it again
// (resumeDeletions), so a deletion asked for always ends.
func (w *deleteWorker) Work(ctx context.Context, job *river.Job[DeleteMeetingArgs]) error {
	err := w.work(ctx, job)
	var snooze *rivertype.JobSnoozeError
	var cancel *rivertype.JobCancelError
	if err == nil || errors.As(err, &snooze) || errors.As(err, &cancel) {
		return err
	}
	note := fmt.Sprintf("deletion attempt %d failed, will be retried: %v", job.Attempt, err)
	if nerr := w.p.store.NoteDeletionFailure(context.WithoutCancel(ctx), job.Args.MeetingID, note); nerr != nil {
		w.p.log.Error("recording a deletion's failure on its meeting", "meeting", job.Args.MeetingID, "err", nerr)
	}
	return err
}

// work removes the meeting's objects, then its spool leftovers, then its
// rows and jobs in one transaction: every step can be done again, so a
// crash part-way is finished by the next attempt, and the rows, which
// say the meeting exists, go last.
func (w *deleteWorker) work(ctx context.Context, job *river.Job[DeleteMeetingArgs]) error {
	p, id := w.p, job.Args.MeetingID
	m, err := p.store.Meeting(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted already
	}
	if err != nil {
		return err
	}
	if m.State != store.MeetingDeleting {
		return river.JobCancel(fmt.Errorf("meeting %s is %s: only a meeting being deleted is deleted", id, m.State))
	}
	running, err := p.cancelMeetingJobs(ctx, nil, id, job.ID)
	if err != nil {
		return err
	}
	if running > 0 {
		// They were cancelled with the request; wait for them to stop
		// writing (a snooze uses no attempt).
		return river.JobSnooze(time.Second)
	}
	if err := p.deleteObjects(ctx, id); err != nil {
		return err
	}
	if p.cfg.SpoolDirs != nil {
		for _, dir := range p.cfg.SpoolDirs(id) {
			if err := os.RemoveAll(dir); err != nil {
				return fmt.Errorf("delete spool of %s: %w", id, err)
			}
		}
	}
	err = p.store.InTx(ctx, func(tx *sql.Tx, q store.Queries) error {
		if err := q.DeleteMeeting(ctx, id); err != nil {
			return err
		}
		// Finished and cancelled jobs name the meeting too; running ones
		// (this one) are left to River.
		where, args := meetingJobs(id)
		for {
			res, err := p.client.JobDeleteManyTx(ctx, tx, river.NewJobDeleteManyParams().Where(where, args).First(1000))
			if err != nil {
				return fmt.Errorf("delete the jobs of %s: %w", id, err)
			}
			if len(res.Jobs) < 1000 {
				return nil
			}
		}
	})
	if err != nil {
		return err
	}
	// An object written while the rows went (the live path storing the
	// last speech of a meeting just ended) has no row left to find it by:
	// look once more, and destroy the data key such a write may have made.
	if err := p.deleteObjects(ctx, id); err != nil {
		return err
	}
	if err := p.store.DeleteDataKey(ctx, id); err != nil {
		return err
	}
	p.announce(m, EventMeetingDeleted, 0)
	return nil
}

// deleteObjects deletes every object of a meeting: its tree, and the
// recorder's checkpoint journals kept outside it.
func (p *Pipeline) deleteObjects(ctx context.Context, meetingID string) error {
	for _, prefix := range []string{layout.MeetingPrefix(meetingID), layout.RecordingJournals + meetingID + "/"} {
		if _, err := p.blobs.DeletePrefix(ctx, prefix); err != nil {
			return fmt.Errorf("delete objects of %s: %w", meetingID, err)
		}
	}
	return nil
}

type sweepWorker struct {
	river.WorkerDefaults[RetentionSweepArgs]
	p *Pipeline
}

func (w *sweepWorker) Timeout(*river.Job[RetentionSweepArgs]) time.Duration { return 30 * time.Minute }

func (w *sweepWorker) Work(ctx context.Context, _ *river.Job[RetentionSweepArgs]) error {
	_, err := w.p.SweepRetention(ctx)
	return err
}

// SweepRetention deletes what is past its retention (up to a batch of
// meetings; the next sweep takes the rest) and forgets the finished
// deletion jobs, the last rows naming deleted meetings. It says how many
// meetings it expired data of. Running it twice does nothing more.
func (p *Pipeline) SweepRetention(ctx context.Context) (int, error) {
	due, err := p.store.ExpiryDue(ctx, time.Now(), p.cfg.RetainRecordings, p.cfg.RetainTranscripts, sweepBatch)
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, e := range due {
		if err := p.expire(ctx, e); err != nil {
			errs = append(errs, err)
		}
	}
	expired := len(due) - len(errs)
	if err := p.resumeDeletions(ctx); err != nil {
		errs = append(errs, err)
	}
	if _, err := p.client.JobDeleteMany(ctx, river.NewJobDeleteManyParams().Kinds(DeleteMeetingArgs{}.Kind()).
		States(rivertype.JobStateCompleted).First(1000)); err != nil {
		errs = append(errs, fmt.Errorf("forget finished deletions: %w", err))
	}
	return expired, errors.Join(errs...)
}

// resumeDeletions enqueues again the deletion of every meeting still
// deleting (up to a batch; the next sweep takes the rest). A deletion
// under way is not doubled (the job is unique while waiting or running);
// one whose attempts were used up (storage away for longer than they
// last) starts again, so a meeting never stays deleting for good.
func (p *Pipeline) resumeDeletions(ctx context.Context) error {
	ms, err := p.store.MeetingsPage(ctx, store.MeetingFilter{State: store.MeetingDeleting, Limit: sweepBatch})
	if err != nil {
		return fmt.Errorf("list meetings being deleted: %w", err)
	}
	for _, m := range ms {
		if _, err := p.client.Insert(ctx, DeleteMeetingArgs{MeetingID: m.ID}, nil); err != nil {
			return fmt.Errorf("enqueue deletion of %s again: %w", m.ID, err)
		}
	}
	return nil
}

// expire deletes one meeting's expired recordings and/or transcripts:
// objects first, then the rows that say they are gone.
func (p *Pipeline) expire(ctx context.Context, e store.Expiry) error {
	// A hold set since the listing wins.
	r, err := p.store.Retention(ctx, e.MeetingID)
	if err != nil {
		return err
	}
	if r.LegalHold {
		return nil
	}
	if e.Recordings {
		for _, prefix := range layout.RecordingPrefixes(e.MeetingID) {
			if _, err := p.blobs.DeletePrefix(ctx, prefix); err != nil {
				return fmt.Errorf("expire recordings of %s: %w", e.MeetingID, err)
			}
		}
		if err := p.store.MarkRecordingsExpired(ctx, e.MeetingID); err != nil {
			return err
		}
		p.log.Info("recordings expired", "meeting", e.MeetingID)
	}
	if e.Transcripts {
		if _, err := p.blobs.DeletePrefix(ctx, layout.MinutesPrefix(e.MeetingID)); err != nil {
			return fmt.Errorf("expire transcripts of %s: %w", e.MeetingID, err)
		}
		if err := p.store.InTx(ctx, func(_ *sql.Tx, q store.Queries) error {
			return q.ExpireTranscripts(ctx, e.MeetingID)
		}); err != nil {
			return err
		}
		p.log.Info("transcripts expired", "meeting", e.MeetingID)
	}
	return nil
}
