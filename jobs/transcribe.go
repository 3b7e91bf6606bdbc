package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/riverqueue/river"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/transcribe"
)

// TranscribeArgs asks for one speech segment to be transcribed.
type TranscribeArgs struct {
	MeetingID string `json:"meeting_id"`
	TrackID   string `json:"track_id"`
	StartMS   int64  `json:"start_ms"`
	// DurationMS is the segment audio's length, for the timeout.
	DurationMS int64 `json:"duration_ms"`
	// Run is the meeting's pipeline run this job belongs to.
	Run int `json:"run"`
}

func (TranscribeArgs) Kind() string { return "transcribe_segment" }

// InsertOpts puts transcription on its own queue, whose worker count is the
// backend's concurrency.
func (TranscribeArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: transcribeQueue, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

type transcribeWorker struct {
	river.WorkerDefaults[TranscribeArgs]
	p *Pipeline
}

// Timeout leaves room for waiting for one of the guard's permits and for one
// slow answer (the guard's own deadline is shorter): ten minutes plus ten
// times the audio.
func (w *transcribeWorker) Timeout(job *river.Job[TranscribeArgs]) time.Duration {
	return 10*time.Minute + 10*time.Duration(job.Args.DurationMS)*time.Millisecond
}

func (w *transcribeWorker) Work(ctx context.Context, job *river.Job[TranscribeArgs]) error {
	p, a := w.p, job.Args
	if stale, err := p.stale(ctx, a.MeetingID, a.Run); stale || err != nil {
		return err
	}
	seg, err := p.store.SpeechSegment(ctx, a.TrackID, a.StartMS)
	if errors.Is(err, store.ErrNotFound) {
		return nil // replaced by speech detection over the whole recording
	}
	if err != nil {
		return fmt.Errorf("transcribe: %w", err)
	}
	m, err := p.store.Meeting(ctx, seg.MeetingID)
	if err != nil {
		return fmt.Errorf("transcribe: %w", err)
	}
	if seg.Status != store.SegmentPending {
		if err := p.dropSpokenAudio(ctx, m, seg); err != nil {
			return err
		}
		return p.store.InTx(ctx, func(tx *sql.Tx, q store.Queries) error { return p.maybeAssemble(ctx, tx, q, seg.MeetingID) })
	}
	req, turn, err := p.segmentRequest(ctx, m, seg)
	if err != nil {
		return fmt.Errorf("transcribe: %w", err)
	}
	if !turn && time.Since(job.CreatedAt)+turnWait < p.cfg.SnoozeBudget {
		// Enqueued before an earlier segment of the speaker was found
		// (a track's detection moved an edge): its words come first.
		return river.JobSnooze(turnWait)
	}
	// One call to the backend per attempt: River owns the retries (the
	// attempts and their backoff, the snoozes below), so a failing backend
	// is hit once per attempt, and the segment shows it waits between them.
	text, lang, words, err := p.transcribe(ctx, seg, req)
	// A re-run may have replaced this job's run (and cancelled it) while
	// the backend worked: what it learnt belongs to no segment of the new
	// run, whose own job transcribes the same key.
	if stale, serr := p.stale(context.WithoutCancel(ctx), a.MeetingID, a.Run); stale || serr != nil {
		return errors.Join(err, serr)
	}
	if err != nil {
		// A backend that is down, or asked us to come back later, gets
		// waited for without using up the segment's attempts, within
		// the snooze budget: past it the stretch is marked failed.
		if d, ok := transcribe.SnoozeFor(err, time.Now()); ok && time.Since(job.CreatedAt)+d < p.cfg.SnoozeBudget {
			p.log.Info("transcription waits for its backend", "track", seg.TrackID, "start_ms", seg.StartMS, "for", d, "err", err)
			p.segmentWaits(ctx, seg, err)
			return river.JobSnooze(d)
		}
		if !lastAttempt(job.JobRow) {
			p.segmentWaits(ctx, seg, err)
			return err
		}
		dctx, cancel := detached(ctx)
		defer cancel()
		p.log.Error("transcription failed for good", "track", seg.TrackID, "start_ms", seg.StartMS, "err", err)
		if derr := p.dropSpokenAudio(dctx, m, seg); derr != nil {
			return derr
		}
		return p.store.InTx(dctx, func(tx *sql.Tx, q store.Queries) error {
			reason := fmt.Sprintf("transcription failed after %d attempts: %v", job.Attempt, err)
			if err := q.FailSegment(dctx, seg.TrackID, seg.StartMS, reason); err != nil {
				return err
			}
			return p.maybeAssemble(dctx, tx, q, seg.MeetingID)
		})
	}
	if err := p.dropSpokenAudio(ctx, m, seg); err != nil {
		return err
	}
	return p.store.InTx(ctx, func(tx *sql.Tx, q store.Queries) error {
		if err := q.SaveTranscript(ctx, seg.TrackID, seg.StartMS, text, lang, words); err != nil {
			return err
		}
		return p.maybeAssemble(ctx, tx, q, seg.MeetingID)
	})
}

// dropSpokenAudio deletes a segment's audio once its words are known (or
// will never be), for a meeting that keeps only its words. It comes
// before the transaction that makes the segment final, so that minutes
// assembled after it find no audio left; should that transaction fail,
// the retry finds the audio gone and the segment is stated failed.
func (p *Pipeline) dropSpokenAudio(ctx context.Context, m store.Meeting, seg store.SpeechSegment) error {
	if m.KeepAudio {
		return nil
	}
	if err := p.blobs.Delete(ctx, seg.AudioKey); err != nil {
		return fmt.Errorf("delete the transcribed audio %s of a meeting that keeps none: %w", seg.AudioKey, err)
	}
	return nil
}

// segmentWaits shows in the meeting's progress that seg waits for the
// backend, which last failed with err. It is only shown: a failure to
// record it is logged, and the transcription goes on.
func (p *Pipeline) segmentWaits(ctx context.Context, seg store.SpeechSegment, err error) {
	dctx, cancel := detached(ctx)
	defer cancel()
	if werr := p.store.SegmentWaits(dctx, seg.TrackID, seg.StartMS, p.trName, clip(waitReason(err))); werr != nil {
		p.log.Warn("could not show that a segment waits for its backend", "track", seg.TrackID, "start_ms", seg.StartMS, "err", werr)
	}
}

// waitReason is what a waiting segment shows of err: a backend that
// nothing answers at its address is said to be unreachable in so many
// words, since the fix (start it, or correct its URL) differs from that
// of a backend that answers with errors.
func waitReason(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return "backend unreachable: nothing answers at its address (is it running, is its URL right?): " + err.Error()
	}
	return err.Error()
}

// maxWaitError bounds an error kept where hosts look (a waiting segment,
// a failed unit, a webhook delivery).
const maxWaitError = 1000

// clip bounds msg to maxWaitError bytes, on a character boundary.
func clip(msg string) string {
	if len(msg) <= maxWaitError {
		return msg
	}
	n := maxWaitError
	for n > 0 && !utf8.RuneStart(msg[n]) {
		n--
	}
	return msg[:n] + "…"
}

// turnWait is how long a segment whose turn has not come waits before it
// looks again.
const turnWait = time.Second

// segmentRequest returns what seg's request says besides its audio: the
// language, the vocabulary and the speaker's previous words, all read from
// the store, so a re-run asks the same. turn is false when an earlier
// segment of the speaker is still to be transcribed.
func (p *Pipeline) segmentRequest(ctx context.Context, m store.Meeting, seg store.SpeechSegment) (transcribe.Request, bool, error) {
	o, err := readSpeakerOrder(ctx, p.store.Queries, m.ID)
	if err != nil {
		return transcribe.Request{}, false, err
	}
	parts, err := p.store.Participants(ctx, m.ID)
	if err != nil {
		return transcribe.Request{}, false, err
	}
	req := transcribe.Request{Language: m.Language, Vocabulary: vocabulary(m, parts, seg)}
	i := o.index(seg.TrackID, seg.StartMS)
	if i < 0 {
		return req, true, nil
	}
	req.Prompt = o.previousWords(i)
	return req, o.turnCame(i), nil
}

func (p *Pipeline) transcribe(ctx context.Context, seg store.SpeechSegment, req transcribe.Request) (string, string, []store.Word, error) {
	rc, err := p.blobs.Get(ctx, seg.AudioKey)
	if err != nil {
		return "", "", nil, fmt.Errorf("open speech audio %s: %w", seg.AudioKey, err)
	}
	file, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return "", "", nil, fmt.Errorf("read speech audio %s: %w", seg.AudioKey, err)
	}
	req.Audio = file
	req.Duration = time.Duration(seg.EndMS-seg.AudioStartMS) * time.Millisecond
	req.ExpectSpeech = true // voice activity found speech here: an empty answer is a bad one
	res, err := p.tr.Transcribe(ctx, req)
	if err != nil {
		return "", "", nil, fmt.Errorf("transcribe %s@%d: %w", seg.TrackID, seg.StartMS, err)
	}
	words := make([]store.Word, 0, len(res.Words))
	for _, w := range res.Words {
		words = append(words, store.Word{
			Text:    strings.TrimSpace(w.Text),
			StartMS: onMeetingClock(seg.AudioStartMS, w.Start),
			EndMS:   onMeetingClock(seg.AudioStartMS, w.End),
		})
	}
	return strings.TrimSpace(res.Text), res.Language, words, nil
}
