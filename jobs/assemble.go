package jobs

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/minutes"
)

// AssembleArgs asks for a meeting's minutes to be assembled from its
// transcript pieces.
type AssembleArgs struct {
	MeetingID string `json:"meeting_id"`
}

func (AssembleArgs) Kind() string { return "assemble_minutes" }

// InsertOpts collapses the assemblies that several finishing stages ask
// for at once into one.
func (AssembleArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
		rivertype.JobStateRunning, rivertype.JobStateScheduled,
	}}}
}

type assembleWorker struct {
	river.WorkerDefaults[AssembleArgs]
	p *Pipeline
}

func (w *assembleWorker) Timeout(*river.Job[AssembleArgs]) time.Duration { return 2 * time.Minute }

func (w *assembleWorker) Work(ctx context.Context, job *river.Job[AssembleArgs]) error {
	p := w.p
	err := p.assemble(ctx, job.Args.MeetingID)
	if err == nil || !lastAttempt(job.JobRow) {
		return err
	}
	dctx, cancel := detached(ctx)
	defer cancel()
	_, terr := p.store.Transition(dctx, job.Args.MeetingID, store.MeetingFailed, "assembling minutes: "+err.Error())
	return errors.Join(err, terr)
}

func (p *Pipeline) assemble(ctx context.Context, meetingID string) error {
	m, err := p.store.Meeting(ctx, meetingID)
	if err != nil {
		return fmt.Errorf("assemble minutes: %w", err)
	}
	in, err := p.minutesInput(ctx, m)
	if err != nil {
		return err
	}
	doc := minutes.Build(in)
	digest := doc.Digest()
	latest, err := p.store.LatestMinutes(ctx, meetingID)
	switch {
	case err == nil && latest.Digest == digest:
		// Assembled before (a retried job, or a re-run that heard the
		// same): keep that version and its summary.
	case err == nil || errors.Is(err, store.ErrNotFound):
		if p.sum != nil && len(doc.Turns) > 0 {
			doc.SetSummary(p.sum.Summarize(ctx, doc.Transcript()))
			if doc.SummaryError != "" {
				p.log.Warn("minutes without summary", "meeting", meetingID, "err", doc.SummaryError)
			}
		}
	default:
		return err
	}
	var saved store.MinutesVersion
	err = p.store.InTx(ctx, func(tx *sql.Tx, q store.Queries) error {
		latest, err := q.LatestMinutes(ctx, meetingID)
		switch {
		case err == nil && latest.Digest == digest:
			saved = latest
		case err == nil || errors.Is(err, store.ErrNotFound):
			doc.Version = latest.Version + 1
			body, err := json.Marshal(doc)
			if err != nil {
				return fmt.Errorf("encode minutes: %w", err)
			}
			if saved, _, err = q.SaveMinutes(ctx, meetingID, digest, body); err != nil {
				return err
			}
		default:
			return err
		}
		cur, err := q.Meeting(ctx, meetingID)
		if err != nil {
			return err
		}
		if cur.State != store.MeetingEnded {
			return nil
		}
		if _, err = q.Transition(ctx, meetingID, store.MeetingReady, ""); err != nil {
			return err
		}
		// The whole-meeting files come after the minutes: they take
		// longer and nobody waits for them to read the minutes.
		tracks, err := q.Tracks(ctx, meetingID)
		if err != nil {
			return err
		}
		var total int64
		for _, t := range tracks {
			total += t.DurationMS
		}
		_, err = p.client.InsertTx(ctx, tx, ArchiveArgs{MeetingID: meetingID, Run: cur.Run, DurationMS: total}, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("save minutes of %s: %w", meetingID, err)
	}
	// The archive copy: same key for the same version, so a retry
	// rewrites it rather than adding one.
	key := layout.Minutes(meetingID, saved.Version)
	if _, err := p.blobs.Put(ctx, key, bytes.NewReader(saved.Body), int64(len(saved.Body))); err != nil {
		return fmt.Errorf("archive minutes %s: %w", key, err)
	}
	return nil
}

func (p *Pipeline) minutesInput(ctx context.Context, m store.Meeting) (minutes.Input, error) {
	in := minutes.Input{MeetingID: m.ID, Title: m.Title, Language: m.Language, StartedAt: m.StartedAt}
	parts, err := p.store.Participants(ctx, m.ID)
	if err != nil {
		return in, err
	}
	for _, pa := range parts {
		in.Speakers = append(in.Speakers, minutes.Speaker{ID: pa.Identity, Name: pa.DisplayName})
	}
	tracks, err := p.store.Tracks(ctx, m.ID)
	if err != nil {
		return in, err
	}
	for _, t := range tracks {
		switch {
		case t.State == store.TrackFailed:
			in.Pieces = append(in.Pieces, minutes.Piece{Speaker: t.Identity, StartMS: t.StartMS,
				EndMS: t.StartMS + t.DurationMS, Failure: "recording: " + t.Failure})
		case t.DetectFailure != "":
			in.Pieces = append(in.Pieces, minutes.Piece{Speaker: t.Identity, StartMS: t.StartMS,
				EndMS: t.StartMS + t.DurationMS, Failure: t.DetectFailure})
		}
	}
	segs, err := p.store.SpeechSegments(ctx, m.ID)
	if err != nil {
		return in, err
	}
	for _, s := range segs {
		piece := minutes.Piece{Speaker: s.Identity, StartMS: s.StartMS, EndMS: s.EndMS, Text: s.Text}
		switch s.Status {
		case store.SegmentFailed:
			piece.Failure = s.Failure
		case store.SegmentPending:
			piece.Failure = "not transcribed"
		}
		for _, w := range s.Words {
			piece.Words = append(piece.Words, minutes.PieceWord{Text: w.Text, StartMS: w.StartMS, EndMS: w.EndMS})
		}
		in.Pieces = append(in.Pieces, piece)
	}
	return in, nil
}
