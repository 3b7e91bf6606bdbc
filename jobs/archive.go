package jobs

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/riverqueue/river"

	"github.com/greffier/greffier/archive"
	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/internal/store"
)

// ArchiveArgs asks for a meeting's whole-meeting files: one multi-track
// WebM and one mixed-down FLAC, built from the stored tracks.
type ArchiveArgs struct {
	MeetingID string `json:"meeting_id"`
	Run       int    `json:"run"`
	// DurationMS is the tracks' total length, for the timeout.
	DurationMS int64 `json:"duration_ms"`
}

func (ArchiveArgs) Kind() string { return "archive_meeting" }

// InsertOpts makes the archive of a run unique.
func (ArchiveArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

type archiveWorker struct {
	river.WorkerDefaults[ArchiveArgs]
	p *Pipeline
}

// Timeout: mixing decodes every track (about 500× real time per core).
func (w *archiveWorker) Timeout(job *river.Job[ArchiveArgs]) time.Duration {
	return 5*time.Minute + time.Duration(job.Args.DurationMS)*time.Millisecond/50
}

func (w *archiveWorker) Work(ctx context.Context, job *river.Job[ArchiveArgs]) error {
	p, a := w.p, job.Args
	if stale, err := p.stale(ctx, a.MeetingID, a.Run); stale || err != nil {
		return err
	}
	// The minutes may be ready before every recording is stored (the live
	// path heard them already): the archive waits for the last upload.
	all, err := p.store.Tracks(ctx, a.MeetingID)
	if err != nil {
		return err
	}
	for _, t := range all {
		if t.State == store.TrackRecording {
			return river.JobSnooze(2 * time.Second)
		}
	}
	tracks, err := p.archiveTracks(ctx, a.MeetingID)
	if err != nil || len(tracks) == 0 {
		return err
	}
	if err := p.archiveFile(ctx, layout.ArchiveWebM(a.MeetingID), func(f *os.File) error {
		_, err := archive.WriteMultitrack(ctx, f, tracks)
		return err
	}); err != nil {
		return err
	}
	if err := p.archiveFile(ctx, layout.ArchiveMix(a.MeetingID), func(f *os.File) error {
		_, err := archive.Mixdown(ctx, f, tracks)
		return err
	}); err != nil {
		return err
	}
	return p.store.InTx(ctx, func(tx *sql.Tx, q store.Queries) error {
		m, err := q.Meeting(ctx, a.MeetingID)
		if err != nil {
			return err
		}
		return p.notify(ctx, tx, m, EventArchiveReady, 0)
	})
}

// archiveTracks lists the stored tracks as the archive reads them.
func (p *Pipeline) archiveTracks(ctx context.Context, meetingID string) ([]archive.Track, error) {
	ts, err := p.store.Tracks(ctx, meetingID)
	if err != nil {
		return nil, err
	}
	parts, err := p.store.Participants(ctx, meetingID)
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	for _, pa := range parts {
		names[pa.Identity] = pa.DisplayName
	}
	var out []archive.Track
	for _, t := range ts {
		if t.State != store.TrackStored && t.State != store.TrackRecovered {
			continue
		}
		key := t.BlobKey
		out = append(out, archive.Track{Identity: t.Identity, Name: names[t.Identity], StartMS: t.StartMS,
			Open: func(ctx context.Context) (io.ReadCloser, error) { return p.blobs.Get(ctx, key) }})
	}
	return out, nil
}

// archiveFile writes one archive file locally (the writers need to seek),
// then stores it under key.
func (p *Pipeline) archiveFile(ctx context.Context, key string, write func(*os.File) error) error {
	f, err := os.CreateTemp(p.cfg.TempDir, "archive-*")
	if err != nil {
		return fmt.Errorf("archive %s: %w", key, err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := write(f); err != nil {
		return fmt.Errorf("archive %s: %w", key, err)
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("archive %s: %w", key, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("archive %s: %w", key, err)
	}
	if _, err := p.blobs.Put(ctx, key, f, size); err != nil {
		return fmt.Errorf("store archive %s: %w", key, err)
	}
	return nil
}
