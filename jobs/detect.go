package jobs

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/greffier/greffier/internal/audio"
	"github.com/greffier/greffier/internal/store"
)

// DetectSpeechArgs asks for one track to be cut into speech segments.
type DetectSpeechArgs struct {
	MeetingID string `json:"meeting_id"`
	TrackID   string `json:"track_id"`
	// DurationMS sizes the job's timeout; it is metadata, not audio.
	DurationMS int64 `json:"duration_ms"`
	// Run is the meeting's pipeline run this job belongs to.
	Run int `json:"run"`
}

func (DetectSpeechArgs) Kind() string { return "detect_speech" }

// InsertOpts makes the track's detection unique: the recorder and the end
// of the meeting may both ask for it.
func (DetectSpeechArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

func detectArgs(t store.Track, run int) DetectSpeechArgs {
	return DetectSpeechArgs{MeetingID: t.MeetingID, TrackID: t.ID, DurationMS: t.DurationMS, Run: run}
}

type detectWorker struct {
	river.WorkerDefaults[DetectSpeechArgs]
	p *Pipeline
}

// Timeout allows for decoding at a tenth of real time on a loaded core.
func (w *detectWorker) Timeout(job *river.Job[DetectSpeechArgs]) time.Duration {
	return 2*time.Minute + time.Duration(job.Args.DurationMS)*time.Millisecond/10
}

func (w *detectWorker) Work(ctx context.Context, job *river.Job[DetectSpeechArgs]) error {
	p, a := w.p, job.Args
	t, err := p.store.Track(ctx, a.TrackID)
	if err != nil {
		return fmt.Errorf("detect speech: %w", err)
	}
	if stale, err := p.stale(ctx, a.MeetingID, a.Run); stale || err != nil {
		return err
	}
	if t.SpeechDetected || !needsDetection(t) {
		return p.store.InTx(ctx, func(tx *sql.Tx, q store.Queries) error { return p.maybeAssemble(ctx, tx, q, t.MeetingID) })
	}
	segs, err := p.cutSpeech(ctx, t)
	if err != nil {
		if !lastAttempt(job.JobRow) {
			return err
		}
		dctx, cancel := detached(ctx)
		defer cancel()
		p.log.Error("speech detection failed for good", "track", t.ID, "err", err)
		return p.store.InTx(dctx, func(tx *sql.Tx, q store.Queries) error {
			if err := q.MarkSpeechDetected(dctx, t.ID, "speech detection: "+err.Error()); err != nil {
				return err
			}
			return p.maybeAssemble(dctx, tx, q, t.MeetingID)
		})
	}
	return p.store.InTx(ctx, func(tx *sql.Tx, q store.Queries) error {
		if err := p.dropOtherSegments(ctx, q, t, segs); err != nil {
			return err
		}
		if err := p.recordSegments(ctx, q, segs); err != nil {
			return err
		}
		if err := q.MarkSpeechDetected(ctx, t.ID, ""); err != nil {
			return err
		}
		return p.maybeAssemble(ctx, tx, q, t.MeetingID)
	})
}

// dropOtherSegments forgets what the live path stored for track t before it
// failed, where detection over the whole file found no segment starting at
// the same time: the live path cut by the sender's levels, this by levels
// measured here, an edge may have moved by a frame, and two overlapping
// segments would say the same words twice. A segment found again keeps
// its transcript (its transcription job is done and, being unique, would
// not run again).
func (p *Pipeline) dropOtherSegments(ctx context.Context, q store.Queries, t store.Track, segs []store.SpeechSegment) error {
	found := make(map[int64]bool, len(segs))
	for _, s := range segs {
		found[s.StartMS] = true
	}
	stored, err := q.SpeechSegments(ctx, t.MeetingID)
	if err != nil {
		return err
	}
	for _, s := range stored {
		if s.TrackID == t.ID && !found[s.StartMS] {
			if err := q.DeleteSpeechSegment(ctx, t.ID, s.StartMS); err != nil {
				return err
			}
		}
	}
	return nil
}

// cutSpeech streams the track's packets through voice activity detection
// (measuring each packet's level) and stores each speech segment's audio,
// the packets as Ogg Opus. Keys are deterministic, so a retry overwrites
// rather than duplicates.
func (p *Pipeline) cutSpeech(ctx context.Context, t store.Track) ([]store.SpeechSegment, error) {
	rc, err := p.blobs.Get(ctx, t.BlobKey)
	if err != nil {
		return nil, fmt.Errorf("open recording %s: %w", t.BlobKey, err)
	}
	defer rc.Close()
	controls, err := p.store.Controls(ctx, t.MeetingID)
	if err != nil {
		return nil, err
	}

	var (
		out []store.SpeechSegment
		c   = newCutter(p.cfg.VoiceActivity(), 1)
	)
	emit := func(cuts []cut, err error) error {
		if err != nil {
			return err
		}
		for _, cu := range cuts {
			s := speechSegment(t, cu.speech)
			if untranscribed(controls, s) {
				continue
			}
			if _, err := p.blobs.Put(ctx, s.AudioKey, bytes.NewReader(cu.ogg), int64(len(cu.ogg))); err != nil {
				return fmt.Errorf("store speech audio %s: %w", s.AudioKey, err)
			}
			out = append(out, s)
		}
		return nil
	}
	if _, err := audio.ReadWebMPackets(ctx, rc, func(ms int64, packet []byte) error {
		return emit(c.packet(ms, packet, -1))
	}); err != nil {
		return nil, fmt.Errorf("read recording %s: %w", t.BlobKey, err)
	}
	if err := emit(c.flush()); err != nil {
		return nil, err
	}
	return out, nil
}
