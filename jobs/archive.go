package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/greffier/greffier/archive"
	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/internal/store"
)

// ArchiveArgs asks for a meeting's whole-meeting files, built from the
// stored recordings alone (no transcript): one multi-track WebM, one
// mixed-down FLAC, and one FLAC per speaker on the meeting's timing.
type ArchiveArgs struct {
	MeetingID string `json:"meeting_id"`
	// Run keeps a re-run's request apart from the first one's; the files
	// do not depend on it.
	Run int `json:"run"`
	// DurationMS is the tracks' total length, for the timeout.
	DurationMS int64 `json:"duration_ms"`
}

func (ArchiveArgs) Kind() string { return "archive_meeting" }

// InsertOpts makes the archive of a run unique.
func (ArchiveArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// maybeArchive enqueues the whole-meeting files once the meeting has ended
// and every track is final: they need the recordings only, so they do not
// wait for transcription (a speech backend that is down delays the
// minutes, never the archive). Call it with the meeting's row locked.
func (p *Pipeline) maybeArchive(ctx context.Context, tx *sql.Tx, q store.Queries, meetingID string) error {
	m, err := q.Meeting(ctx, meetingID)
	if err != nil {
		return err
	}
	if m.State == store.MeetingCreated || m.State == store.MeetingLive || !m.KeepAudio {
		return nil
	}
	tracks, err := q.Tracks(ctx, meetingID)
	if err != nil {
		return err
	}
	var total int64
	stored := 0
	for _, t := range tracks {
		if t.State == store.TrackRecording {
			return nil // its FinishTrack calls again
		}
		if archivable(t) {
			stored++
		}
		total += t.DurationMS
	}
	if stored == 0 {
		return nil
	}
	if _, err := p.client.InsertTx(ctx, tx, ArchiveArgs{MeetingID: meetingID, Run: m.Run, DurationMS: total}, nil); err != nil {
		return fmt.Errorf("enqueue archive of %s: %w", meetingID, err)
	}
	return nil
}

func archivable(t store.Track) bool {
	return t.State == store.TrackStored || t.State == store.TrackRecovered
}

type archiveWorker struct {
	river.WorkerDefaults[ArchiveArgs]
	p *Pipeline
}

// Timeout: the mix and the speakers' files each decode every track (about
// 500× real time per core).
func (w *archiveWorker) Timeout(job *river.Job[ArchiveArgs]) time.Duration {
	return 5*time.Minute + time.Duration(job.Args.DurationMS)*time.Millisecond/50
}

// Work builds each file that is missing or was found damaged; files there
// and sound are kept, so a re-run (or a retry) never replaces a file a
// client may be downloading, and rebuilds what a re-run is for.
func (w *archiveWorker) Work(ctx context.Context, job *river.Job[ArchiveArgs]) error {
	p, a := w.p, job.Args
	all, err := p.store.Tracks(ctx, a.MeetingID)
	if err != nil {
		return err
	}
	for _, t := range all {
		if t.State == store.TrackRecording {
			return river.JobSnooze(2 * time.Second)
		}
	}
	m, err := p.store.Meeting(ctx, a.MeetingID)
	if err != nil {
		return err
	}
	in, err := p.archiveTracks(ctx, m.ID)
	if err != nil || len(in.tracks) == 0 {
		return err
	}
	damaged, err := p.store.Damaged(ctx, m.ID)
	if err != nil {
		return err
	}
	rebuild := map[string]bool{}
	for _, d := range damaged {
		rebuild[d.BlobKey] = true
	}
	// A speaker's file lasts as long as the meeting, so that it lines up
	// with the others.
	var length time.Duration
	if !m.StartedAt.IsZero() && m.EndedAt.After(m.StartedAt) {
		length = m.EndedAt.Sub(m.StartedAt)
	}
	files := []struct {
		key   string
		write func(f *os.File) error
	}{
		{layout.ArchiveWebM(m.ID), func(f *os.File) error {
			_, err := archive.WriteMultitrack(ctx, f, in.tracks)
			return err
		}},
		{layout.ArchiveMix(m.ID), func(f *os.File) error {
			_, err := archive.Mixdown(ctx, f, in.tracks)
			return err
		}},
	}
	for _, s := range in.speakers {
		files = append(files, struct {
			key   string
			write func(f *os.File) error
		}{layout.SpeakerAudio(m.ID, s.firstTrackID), func(f *os.File) error {
			_, err := archive.MixdownTo(ctx, f, s.tracks, length)
			return err
		}})
	}
	built := 0
	for _, f := range files {
		if !rebuild[f.key] {
			if _, err := p.blobs.Stat(ctx, f.key); err == nil {
				continue
			} else if !errors.Is(err, blob.ErrNotFound) {
				return err
			}
		}
		if err := p.archiveFile(ctx, f.key, f.write); err != nil {
			return p.archiveFailed(ctx, m.ID, in, err)
		}
		if err := p.store.ClearDamage(ctx, f.key); err != nil {
			return err
		}
		built++
	}
	if built == 0 {
		return nil
	}
	var ready store.Meeting
	err = p.store.InTx(ctx, func(tx *sql.Tx, q store.Queries) error {
		var err error
		if ready, err = q.Meeting(ctx, a.MeetingID); err != nil {
			return err
		}
		return p.notify(ctx, tx, ready, EventArchiveReady, 0)
	})
	if err == nil {
		p.announce(ready, EventArchiveReady, 0)
	}
	return err
}

// archiveFailed records the recordings a build found damaged: retrying
// cannot mend them, so the job stops and the damage shows where the
// meeting's tracks are listed (restored, a re-run builds the files).
func (p *Pipeline) archiveFailed(ctx context.Context, meetingID string, in *archiveInput, err error) error {
	if !errors.Is(err, blob.ErrCorrupt) {
		return err
	}
	dctx, cancel := detached(ctx)
	defer cancel()
	var merr error
	for key, found := range in.damaged() {
		merr = errors.Join(merr, p.store.MarkDamaged(dctx, meetingID, key, found.Error()))
	}
	return river.JobCancel(errors.Join(fmt.Errorf("archive of %s: a recording is damaged: %w", meetingID, err), merr))
}

// archiveInput is what the archive reads: every stored track, and each
// speaker's tracks with the id of their first.
type archiveInput struct {
	tracks   []archive.Track
	speakers []archiveSpeaker

	mu      sync.Mutex
	corrupt map[string]error // blob key -> what its reader found
}

type archiveSpeaker struct {
	firstTrackID string
	tracks       []archive.Track
}

func (in *archiveInput) damaged() map[string]error {
	in.mu.Lock()
	defer in.mu.Unlock()
	return maps.Clone(in.corrupt)
}

// archiveTracks lists the stored tracks as the archive reads them, in the
// store's order (meeting clock, then id): a speaker's first is the one
// that names their file, as the API finds it.
func (p *Pipeline) archiveTracks(ctx context.Context, meetingID string) (*archiveInput, error) {
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
	in := &archiveInput{corrupt: map[string]error{}}
	bySpeaker := map[string]int{}
	for _, t := range ts {
		if !archivable(t) {
			continue
		}
		key := t.BlobKey
		at := archive.Track{Identity: t.Identity, Name: names[t.Identity], StartMS: t.StartMS,
			Open: func(ctx context.Context) (io.ReadCloser, error) {
				rc, err := p.blobs.Get(ctx, key)
				if err != nil {
					return nil, err
				}
				return &damageWatch{ReadCloser: rc, key: key, in: in}, nil
			}}
		in.tracks = append(in.tracks, at)
		k, ok := bySpeaker[t.Identity]
		if !ok {
			k = len(in.speakers)
			bySpeaker[t.Identity] = k
			in.speakers = append(in.speakers, archiveSpeaker{firstTrackID: t.ID})
		}
		in.speakers[k].tracks = append(in.speakers[k].tracks, at)
	}
	return in, nil
}

// damageWatch notes which recording's reader found its bytes damaged.
type damageWatch struct {
	io.ReadCloser
	key string
	in  *archiveInput
}

func (d *damageWatch) Read(b []byte) (int, error) {
	n, err := d.ReadCloser.Read(b)
	if err != nil && errors.Is(err, blob.ErrCorrupt) {
		d.in.mu.Lock()
		d.in.corrupt[d.key] = err
		d.in.mu.Unlock()
	}
	return n, err
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
