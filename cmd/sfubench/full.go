package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/jobs"
	"github.com/greffier/greffier/meeting"
	"github.com/greffier/greffier/recorder"
	"github.com/greffier/greffier/sfu"
	"github.com/greffier/greffier/transcribe"
)

// fullServer is what `greffier serve` runs behind the SFU when nobody
// uses the API: the store (SQLite or Postgres), River and the pipeline's
// live path, the recorder spooling every track with its checkpoints, the
// meeting's event log, and the joins checked against the store. It is
// wired as cmd/greffier wires it (app.go); only the speech backend is
// replaced by one that answers at once with no words, so that the figures
// are Greffier's and not a transcription server's.
type fullServer struct {
	dir      string
	ownDir   bool
	store    *store.Store
	pipeline *jobs.Pipeline
	events   *meeting.EventLog
	rec      *recorder.Recorder
	tap      *keptTap
	meeting  store.Meeting
}

func openFull(ctx context.Context, o options, logger *slog.Logger) (_ *fullServer, err error) {
	f := &fullServer{dir: o.dataDir}
	if f.dir == "" {
		if f.dir, err = os.MkdirTemp("", "sfubench"); err != nil {
			return nil, err
		}
		f.ownDir = true
	}
	defer func() {
		if err != nil {
			f.close(context.WithoutCancel(ctx), logger)
		}
	}()
	if f.store, err = store.Open(ctx, store.Config{PostgresURL: o.postgres,
		SQLitePath: filepath.Join(f.dir, "greffier.db")}); err != nil {
		return nil, err
	}
	blobs, err := blob.NewDisk(filepath.Join(f.dir, "blobs"))
	if err != nil {
		return nil, fmt.Errorf("open blob storage: %w", err)
	}
	if f.pipeline, err = jobs.New(ctx, jobs.Config{TempDir: filepath.Join(f.dir, "spool")},
		jobs.Deps{Store: f.store, Blobs: blobs, Transcriber: silence{}, Logger: logger}); err != nil {
		return nil, err
	}
	if err = f.pipeline.Start(ctx); err != nil {
		return nil, err
	}
	live, err := meeting.NewLive(f.store, f.pipeline, nil, nil)
	if err != nil {
		return nil, err
	}
	if f.rec, err = recorder.New(recorder.Config{SpoolDir: filepath.Join(f.dir, "spool"),
		SenderClockSkew: time.Nanosecond, Listen: live.Listen}, blobs, jobs.NewCatalog(f.pipeline), logger); err != nil {
		return nil, err
	}
	f.events = meeting.NewEventLog(f.store, logger)
	f.events.Start()
	f.tap = &keptTap{tap: meeting.NewTap(f.rec, f.store, f.events, logger)}
	if f.meeting, err = f.store.CreateMeeting(ctx, "sfubench", "en"); err != nil {
		return nil, err
	}
	return f, nil
}

// close stops what openFull started; the SFU must have stopped first, so
// that every track is closed and stored.
func (f *fullServer) close(ctx context.Context, logger *slog.Logger) {
	if f.rec != nil {
		f.rec.Close()
	}
	if f.events != nil {
		f.events.Stop()
	}
	if f.pipeline != nil {
		if err := f.pipeline.Stop(ctx); err != nil {
			logger.Error("stop the pipeline", "err", err)
		}
	}
	if f.store != nil {
		_ = f.store.Close()
	}
	if f.ownDir {
		_ = os.RemoveAll(f.dir)
	}
}

// silence is the speech backend: every segment is answered at once, with
// no words.
type silence struct{}

func (silence) Transcribe(_ context.Context, req transcribe.Request) (transcribe.Result, error) {
	return transcribe.Result{Language: req.Language}, nil
}

// keptTap is the recorder's Tap, keeping each track's Writer so that the
// report can say what the recorder did with the packets.
type keptTap struct {
	tap     *meeting.Tap
	mu      sync.Mutex
	writers []*recorder.Writer
}

func (k *keptTap) OpenTrack(ctx context.Context, info sfu.TrackInfo) (sfu.TrackTap, error) {
	tt, err := k.tap.OpenTrack(ctx, info)
	if err != nil {
		return nil, err
	}
	if r, ok := tt.(interface{ Recording() *recorder.Writer }); ok && r.Recording() != nil {
		w := r.Recording()
		k.mu.Lock()
		k.writers = append(k.writers, w)
		k.mu.Unlock()
	}
	return tt, nil
}

func (k *keptTap) CanRecord(ctx context.Context, info sfu.TrackInfo) error {
	return k.tap.CanRecord(ctx, info)
}

// recorded sums what the recorder did with the packets: those written to
// the spools and those it dropped, and why.
func (k *keptTap) recorded() (tracks int, sum recorder.Stats) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, w := range k.writers {
		sum.Add(w.Stats())
	}
	return len(k.writers), sum
}
