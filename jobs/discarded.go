package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/greffier/greffier/internal/store"
)

// A job that will not run again (discarded after its last attempt, or
// cancelled) must leave its unit failed with a reason, or the meeting
// waits for it forever. Workers record the failure themselves when their
// last attempt fails with an error, but a job can also end without its
// worker having the last word: a panic or a timeout on the last attempt,
// a failure to record the failure, River's rescuer, or the node rescuer
// (nodes.go) discarding the job of a process that died on its last
// attempt. So a sweep looks at the discarded and cancelled jobs of the
// current run and fails the units they left pending. It reads only the
// database, so what a crash interrupted is done by the next sweep: at
// start, then every fifth of NodeTimeout.

// unitKinds are the kinds whose jobs own a unit the minutes wait for.
var unitKinds = []string{DetectSpeechArgs{}.Kind(), VoicesArgs{}.Kind(), TranscribeArgs{}.Kind(), AssembleArgs{}.Kind()}

// settleMargin widens each sweep back over the previous one: a job
// finalized (by another node's clock) just before the last sweep may have
// been committed just after it.
const settleMargin = time.Minute

// unitArgs are the arguments every unit kind shares, enough to name the
// unit.
type unitArgs struct {
	MeetingID string `json:"meeting_id"`
	TrackID   string `json:"track_id"`
	StartMS   int64  `json:"start_ms"`
	Run       int    `json:"run"`
}

func unitOf(j *rivertype.JobRow) (unitArgs, string, error) {
	var a unitArgs
	if err := json.Unmarshal(j.EncodedArgs, &a); err != nil {
		return a, "", fmt.Errorf("job %d: decode arguments: %w", j.ID, err)
	}
	return a, j.Kind + "|" + a.MeetingID + "|" + a.TrackID + "|" + strconv.FormatInt(a.StartMS, 10) + "|" + strconv.Itoa(a.Run), nil
}

// settleDiscarded fails the units that discarded or cancelled jobs of
// their meeting's current run left pending, and returns how many it
// failed. Jobs finalized before the previous sweep (less settleMargin)
// were looked at then.
func (p *Pipeline) settleDiscarded(ctx context.Context) (int, error) {
	p.settleMu.Lock()
	defer p.settleMu.Unlock()
	began := time.Now()
	var ended []*rivertype.JobRow
	params := river.NewJobListParams().Kinds(unitKinds...).
		States(rivertype.JobStateDiscarded, rivertype.JobStateCancelled).
		OrderBy(river.JobListOrderByFinalizedAt, river.SortOrderDesc).First(500)
list:
	for {
		res, err := p.client.JobList(ctx, params)
		if err != nil {
			return 0, fmt.Errorf("list discarded jobs: %w", err)
		}
		for _, j := range res.Jobs {
			if !p.settled.IsZero() && j.FinalizedAt != nil && j.FinalizedAt.Before(p.settled.Add(-settleMargin)) {
				break list
			}
			ended = append(ended, j)
		}
		if len(res.Jobs) < 500 {
			break
		}
		params = params.After(res.LastCursor)
	}
	failed := 0
	var live map[string]bool // read once, when a pending unit is found
	for _, j := range ended {
		a, key, err := unitOf(j)
		if err != nil {
			p.log.Warn("a discarded job names no unit", "job", j.ID, "err", err)
			continue
		}
		pending, err := p.unitPending(ctx, j.Kind, a)
		if err != nil {
			return failed, err
		}
		if !pending {
			continue
		}
		if live == nil {
			if live, err = p.liveUnitJobs(ctx); err != nil {
				return failed, err
			}
		}
		if live[key] {
			continue // asked for again since: that job decides
		}
		reason := discardReason(j)
		ok, err := p.failUnit(ctx, j.Kind, a, reason)
		if err != nil {
			return failed, fmt.Errorf("record the failure of job %d's %s: %w", j.ID, j.Kind, err)
		}
		if ok {
			failed++
			p.log.Error("a job will not run again: its unit is marked failed", "job", j.ID, "kind", j.Kind,
				"meeting", a.MeetingID, "reason", reason)
		}
	}
	p.settled = began
	return failed, nil
}

// liveUnitJobs returns the keys of the unit jobs that may still run.
func (p *Pipeline) liveUnitJobs(ctx context.Context) (map[string]bool, error) {
	live := map[string]bool{}
	params := river.NewJobListParams().Kinds(unitKinds...).
		States(rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
			rivertype.JobStateRunning, rivertype.JobStateScheduled).First(1000)
	for {
		res, err := p.client.JobList(ctx, params)
		if err != nil {
			return nil, fmt.Errorf("list unfinished jobs: %w", err)
		}
		for _, j := range res.Jobs {
			if _, key, err := unitOf(j); err == nil {
				live[key] = true
			}
		}
		if len(res.Jobs) < 1000 {
			return live, nil
		}
		params = params.After(res.LastCursor)
	}
}

// unitPending reports whether the unit a job of kind with arguments a was
// for is still waiting, in its meeting's current run.
func (p *Pipeline) unitPending(ctx context.Context, kind string, a unitArgs) (bool, error) {
	m, err := p.store.Meeting(ctx, a.MeetingID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if m.Run != a.Run {
		return false, nil // a re-run replaced it
	}
	return p.pendingIn(ctx, p.store.Queries, kind, a, m)
}

func (p *Pipeline) pendingIn(ctx context.Context, q store.Queries, kind string, a unitArgs, m store.Meeting) (bool, error) {
	switch kind {
	case DetectSpeechArgs{}.Kind(), VoicesArgs{}.Kind():
		t, err := q.Track(ctx, a.TrackID)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if kind == (DetectSpeechArgs{}).Kind() {
			return needsDetection(t), nil
		}
		return needsVoices(t), nil
	case TranscribeArgs{}.Kind():
		s, err := q.SpeechSegment(ctx, a.TrackID, a.StartMS)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return s.Status == store.SegmentPending, nil
	case AssembleArgs{}.Kind():
		return m.State == store.MeetingEnded, nil
	}
	return false, nil
}

// failUnit records, in one transaction with the meeting locked, that the
// unit of a job of kind with arguments a failed for reason, and lets the
// meeting go on. It reports false when the unit was no longer pending.
func (p *Pipeline) failUnit(ctx context.Context, kind string, a unitArgs, reason string) (bool, error) {
	done := false
	var failedMeeting *store.Meeting
	err := p.store.InTx(ctx, func(tx *sql.Tx, q store.Queries) error {
		done, failedMeeting = false, nil
		if err := q.LockMeeting(ctx, a.MeetingID); err != nil {
			return err
		}
		m, err := q.Meeting(ctx, a.MeetingID)
		if err != nil {
			return err
		}
		if m.Run != a.Run {
			return nil
		}
		if pending, err := p.pendingIn(ctx, q, kind, a, m); err != nil || !pending {
			return err
		}
		switch kind {
		case DetectSpeechArgs{}.Kind():
			err = q.MarkSpeechDetected(ctx, a.TrackID, "speech detection: "+reason)
		case VoicesArgs{}.Kind():
			err = q.SetVoices(ctx, a.TrackID, nil, "diarization: "+reason)
		case TranscribeArgs{}.Kind():
			err = q.FailSegment(ctx, a.TrackID, a.StartMS, "transcription: "+reason)
		case AssembleArgs{}.Kind():
			to, event := finalState(false, false)
			failed, terr := q.Transition(ctx, a.MeetingID, to, "assembling minutes: "+reason)
			if terr != nil {
				return terr
			}
			done, failedMeeting = true, &failed
			return p.notify(ctx, tx, failed, event, 0)
		}
		if err != nil {
			return err
		}
		done = true
		return p.maybeAssemble(ctx, tx, q, a.MeetingID)
	})
	if err == nil && failedMeeting != nil {
		_, event := finalState(false, false)
		p.announce(*failedMeeting, event, 0)
	}
	return done, err
}

// discardReason says why a job ended without its unit: its last error.
func discardReason(j *rivertype.JobRow) string {
	last := "no error was recorded"
	if n := len(j.Errors); n > 0 {
		last = j.Errors[n-1].Error
	}
	last = clip(last)
	if j.State == rivertype.JobStateCancelled {
		return "the job was cancelled: " + last
	}
	return fmt.Sprintf("gave up after %d attempts: %s", j.Attempt, last)
}
