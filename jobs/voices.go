package jobs

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/riverqueue/river"

	"github.com/greffier/greffier/diarize"
	"github.com/greffier/greffier/internal/audio"
	"github.com/greffier/greffier/internal/store"
)

// Voices tells apart the voices on one track (a pyannote-style backend).
type Voices interface {
	// Upload hands the backend the audio under key and returns the URL
	// Diarize reads it from.
	Upload(ctx context.Context, key string, r io.Reader, size int64) (string, error)
	Diarize(ctx context.Context, audioURL string, audioLength time.Duration) ([]diarize.Turn, error)
}

// VoicesArgs asks for a shared-microphone track's voices to be told apart.
type VoicesArgs struct {
	MeetingID  string `json:"meeting_id"`
	TrackID    string `json:"track_id"`
	DurationMS int64  `json:"duration_ms"`
	Run        int    `json:"run"`
}

func (VoicesArgs) Kind() string { return "diarize_track" }

// InsertOpts makes a track's diarization in a run unique.
func (VoicesArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

func voicesArgs(t store.Track, run int) VoicesArgs {
	return VoicesArgs{MeetingID: t.MeetingID, TrackID: t.ID, DurationMS: t.DurationMS, Run: run}
}

func needsVoices(t store.Track) bool {
	return t.VoicesState == store.VoicesPending && (t.State == store.TrackStored || t.State == store.TrackRecovered)
}

type voicesWorker struct {
	river.WorkerDefaults[VoicesArgs]
	p *Pipeline
}

// Timeout allows for a backend that takes as long as the audio, and more.
func (w *voicesWorker) Timeout(job *river.Job[VoicesArgs]) time.Duration {
	return 15*time.Minute + 2*time.Duration(job.Args.DurationMS)*time.Millisecond
}

func (w *voicesWorker) Work(ctx context.Context, job *river.Job[VoicesArgs]) error {
	p, a := w.p, job.Args
	if stale, err := p.stale(ctx, a.MeetingID, a.Run); stale || err != nil {
		return err
	}
	t, err := p.store.Track(ctx, a.TrackID)
	if err != nil {
		return fmt.Errorf("diarize: %w", err)
	}
	if !needsVoices(t) {
		return p.store.InTx(ctx, func(tx *sql.Tx, q store.Queries) error { return p.maybeAssemble(ctx, tx, q, t.MeetingID) })
	}
	turns, err := p.diarizeTrack(ctx, t)
	failure := ""
	if err != nil {
		if !lastAttempt(job.JobRow) && p.voices != nil {
			return err
		}
		failure = err.Error()
		p.log.Error("diarization failed for good: the track's speech stays with its participant", "track", t.ID, "err", err)
	}
	dctx, cancel := detached(ctx)
	defer cancel()
	return p.store.InTx(dctx, func(tx *sql.Tx, q store.Queries) error {
		if err := q.SetVoices(dctx, t.ID, turns, failure); err != nil {
			return err
		}
		return p.maybeAssemble(dctx, tx, q, t.MeetingID)
	})
}

// diarizeTrack decodes the track to a 16 kHz WAV (through a temporary file:
// an hour is 115 MB), hands it to the backend, and returns its turns.
func (p *Pipeline) diarizeTrack(ctx context.Context, t store.Track) ([]store.VoiceTurn, error) {
	if p.voices == nil {
		return nil, fmt.Errorf("no diarization backend is configured (GREFFIER_DIARIZE_URL)")
	}
	rc, err := p.blobs.Get(ctx, t.BlobKey)
	if err != nil {
		return nil, fmt.Errorf("open recording %s: %w", t.BlobKey, err)
	}
	defer rc.Close()
	pcm, err := os.CreateTemp(p.cfg.TempDir, "voices-*.pcm")
	if err != nil {
		return nil, fmt.Errorf("diarize: %w", err)
	}
	defer os.Remove(pcm.Name())
	defer pcm.Close()
	var frameBuf [audio.FrameSamples * 2]byte
	samples := 0
	if _, err := audio.DecodeWebM(ctx, rc, func(frame []int16) error {
		for i, s := range frame {
			frameBuf[2*i], frameBuf[2*i+1] = byte(s), byte(uint16(s)>>8)
		}
		samples += len(frame)
		_, err := pcm.Write(frameBuf[:2*len(frame)])
		return err
	}); err != nil {
		return nil, fmt.Errorf("decode recording %s: %w", t.BlobKey, err)
	}
	header, err := audio.WAVHeader(samples)
	if err != nil {
		return nil, err
	}
	if _, err := pcm.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("diarize: %w", err)
	}
	length := time.Duration(samples) * time.Second / audio.SampleRate
	url, err := p.voices.Upload(ctx, "greffier-"+t.ID, io.MultiReader(bytes.NewReader(header), pcm), int64(len(header)+2*samples))
	if err != nil {
		return nil, fmt.Errorf("upload audio for diarization: %w", err)
	}
	turns, err := p.voices.Diarize(ctx, url, length)
	if err != nil {
		return nil, fmt.Errorf("diarize: %w", err)
	}
	out := make([]store.VoiceTurn, len(turns))
	for i, tu := range turns {
		out[i] = store.VoiceTurn{Label: tu.Label, StartMS: tu.StartMS, EndMS: tu.EndMS}
	}
	return out, nil
}
