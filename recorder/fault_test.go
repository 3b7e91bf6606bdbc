package recorder

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/faulttest"
	"github.com/greffier/greffier/internal/store"
)

func TestOpenCatalogFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.catalog.failCreate = 1
	_, err := b.rec.Open(context.Background(), Track{MeetingID: "mtg_1", Identity: "a"})
	require.ErrorContains(t, err, "injected create failure")
	left, err := filepath.Glob(filepath.Join(b.cfg.SpoolDir, "mtg_1", "*"))
	require.NoError(t, err)
	require.Empty(t, left, "no sidecar or spool for a track the catalog never knew")
	require.NoError(t, b.rec.Recover(context.Background()))
}

// TestFinishFailureKeepsSpool: the blob is stored but the row could not
// say so; the spool stays until a later Recover records it.
func TestFinishFailureKeepsSpool(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	b := setup(t)
	b.catalog.failFinish = 1
	w := b.open(t)
	feed(b, w, cleanStream(fx, 1, 1))
	require.ErrorContains(t, w.Close(context.Background()), "injected finish failure")
	require.Equal(t, store.TrackRecording, b.catalog.row(w.ID()).State)
	require.True(t, b.rec.spoolExists("mtg_1", w.ID()))

	require.NoError(t, b.rec.Recover(context.Background()))
	row := b.catalog.row(w.ID())
	require.Equal(t, store.TrackStored, row.State)
	require.Equal(t, int64(len(fx.packets)*20), row.DurationMS)
	require.False(t, b.rec.spoolExists("mtg_1", w.ID()))
}

// TestSpoolDiskFailure: the spool file becomes unwritable mid-track. The
// SFU side never notices; Close reports it, stores what reached the disk
// and states the rest as a gap.
func TestSpoolDiskFailure(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	b := setup(t, func(c *Config) { c.FlushInterval = 5 * time.Millisecond })
	w := b.open(t)
	clean := cleanStream(fx, 1, 1)
	feed(b, w, clean[:60])
	spoolPath, sidePath := b.rec.paths("mtg_1", w.ID())
	require.Eventually(t, func() bool {
		data, err := os.ReadFile(spoolPath)
		require.NoError(t, err)
		return len(countBlocks(t, data)) == 60
	}, 5*time.Second, time.Millisecond)

	w.file.mu.Lock()
	require.NoError(t, w.file.f.Close()) // every later write fails
	w.file.mu.Unlock()
	feed(b, w, clean[60:])
	err := w.Close(context.Background())
	require.ErrorContains(t, err, "spool")
	row := b.catalog.row(w.ID())
	require.Equal(t, store.TrackRecovered, row.State, row.Failure)
	require.Equal(t, int64(60*20), row.DurationMS)
	gaps := b.catalog.trackGaps(w.ID())
	require.Len(t, gaps, 1)
	require.Equal(t, row.StartMS+60*20, gaps[0].StartMS)
	require.Equal(t, row.StartMS+int64(len(clean))*20, gaps[0].EndMS)
	require.Contains(t, gaps[0].Reason, "local disk")
	_, err = os.Stat(sidePath)
	require.ErrorIs(t, err, os.ErrNotExist, "the spool is gone once salvaged")
	p := parseWebM(t, readBlob(t, b, row.BlobKey))
	require.Len(t, p.blockTimes(), 60)
	require.NoError(t, b.rec.Recover(context.Background()))
	require.Equal(t, store.TrackRecovered, b.catalog.row(w.ID()).State, "nothing left to recover")
}

// recordingsLost counts the tracks the catalog still holds as recording
// once everything should have ended: published, neither stored nor stated
// failed.
func (c *fakeCatalog) recordingsLost() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.rows {
		if r.State == store.TrackRecording {
			n++
		}
	}
	return n
}

// TestFaultDamagedSidecarAtStartIsQuarantinedAndStated: one unreadable
// sidecar in the spool does not stop the start. It is moved, with its
// spool, to the quarantine with a reason file, its track is marked failed
// (keeping its place on the meeting clock) so the minutes say it is
// missing, and the other spools are recovered as usual.
func TestFaultDamagedSidecarAtStartIsQuarantinedAndStated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "mtg_1"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "mtg_1", "trk_bad.json"), []byte("{not json"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "mtg_1", "trk_bad.webm"), []byte("spooled bytes"), 0o600))
	// A sidecar naming another track is as unusable.
	require.NoError(t, (&Recorder{}).writeSidecar(filepath.Join(dir, "mtg_1", "trk_odd.json"),
		sidecar{TrackID: "trk_else", MeetingID: "mtg_1", Identity: "carol"}))
	require.NoError(t, (&Recorder{}).writeSidecar(filepath.Join(dir, "mtg_1", "trk_ok.json"),
		sidecar{TrackID: "trk_ok", MeetingID: "mtg_1", Identity: "bob", Channels: 2}))
	b := setupWith(t, newDisk(t), dir)
	b.catalog.rows["trk_bad"] = store.Track{ID: "trk_bad", MeetingID: "mtg_1", Identity: "alice",
		State: store.TrackRecording, StartMS: 1500, DurationMS: 0}

	require.NoError(t, b.rec.Recover(ctx), "damaged sidecars do not stop the start")

	row := b.catalog.row("trk_bad")
	require.Equal(t, store.TrackFailed, row.State)
	require.Contains(t, row.Failure, "sidecar was damaged")
	require.Contains(t, row.Failure, filepath.Join(dir, QuarantineDir, "mtg_1"))
	require.Equal(t, int64(1500), row.StartMS, "the track keeps its place on the meeting clock")
	q := filepath.Join(dir, QuarantineDir, "mtg_1")
	spool, err := os.ReadFile(filepath.Join(q, "trk_bad.webm"))
	require.NoError(t, err)
	require.Equal(t, "spooled bytes", string(spool), "kept as found")
	reason, err := os.ReadFile(filepath.Join(q, "trk_bad.reason.txt"))
	require.NoError(t, err)
	require.Contains(t, string(reason), "decode sidecar")
	require.FileExists(t, filepath.Join(q, "trk_bad.json"))
	odd, err := os.ReadFile(filepath.Join(q, "trk_odd.reason.txt"))
	require.NoError(t, err)
	require.Contains(t, string(odd), "names another track")
	for _, p := range []string{"trk_bad.json", "trk_bad.webm", "trk_odd.json", "trk_ok.json"} {
		require.NoFileExists(t, filepath.Join(dir, "mtg_1", p))
	}
	require.Equal(t, store.TrackFailed, b.catalog.row("trk_ok").State, "the sound spool was recovered as usual")

	require.NoError(t, b.rec.Recover(ctx), "the quarantine is not read again")
	require.Zero(t, b.rec.pendingCount())
	faulttest.Report(t, faulttest.FaultsInjected, 2)
	faulttest.Report(t, faulttest.RecordingsLost, float64(b.catalog.recordingsLost()))
	require.Zero(t, b.catalog.recordingsLost())
}

// fullSpool makes every later write to w's spool fail with ENOSPC, as a
// full disk does, by putting /dev/full under it.
func fullSpool(t *testing.T, w *Writer) {
	t.Helper()
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full to stand for a full disk: %v", err)
	}
	w.file.mu.Lock()
	defer w.file.mu.Unlock()
	_ = w.file.f.Close()
	w.file.f = full
	w.file.bw.Reset(full)
}

// TestFaultDiskFullMidTrackThenSpaceBackFinishesWithoutRestart: the spool
// disk fills mid-track and the catalog cannot be written either (the
// database sits on the same disk). Closing the track does not hang and
// does not leave it recording for good: once the catalog takes writes
// again, the recorder stores what reached the disk and states the rest,
// up to the track's end, as a gap, without a restart.
func TestFaultDiskFullMidTrackThenSpaceBackFinishesWithoutRestart(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	b := setup(t, func(c *Config) { c.FlushInterval = 2 * time.Millisecond })
	w := b.open(t)
	clean := cleanStream(fx, 1, 1)
	feed(b, w, clean[:40])
	waitSpooled(t, b, w, 40)
	fullSpool(t, w)
	b.catalog.mu.Lock()
	b.catalog.failFinish = 1 << 30 // the database is on the full disk
	b.catalog.mu.Unlock()
	feed(b, w, clean[40:])

	err := w.Close(context.Background())
	require.ErrorIs(t, err, syscall.ENOSPC)
	require.Equal(t, store.TrackRecording, b.catalog.row(w.ID()).State, "nothing could be written yet")
	require.Equal(t, 1, b.rec.pendingCount(), "the track waits for a retry, not for a restart")

	b.catalog.mu.Lock()
	b.catalog.failFinish = 0 // space is back
	b.catalog.mu.Unlock()
	require.Eventually(t, func() bool { return b.rec.pendingCount() == 0 }, 10*time.Second, 5*time.Millisecond)
	row := b.catalog.row(w.ID())
	require.Equal(t, store.TrackRecovered, row.State, row.Failure)
	require.Equal(t, int64(40*20), row.DurationMS)
	gaps := b.catalog.trackGaps(w.ID())
	require.Len(t, gaps, 1)
	require.Equal(t, row.StartMS+40*20, gaps[0].StartMS)
	require.Equal(t, row.StartMS+int64(len(clean))*20, gaps[0].EndMS)
	require.Contains(t, gaps[0].Reason, "disk holding the spool is full")
	require.False(t, b.rec.spoolExists("mtg_1", w.ID()))
	p := parseWebM(t, readBlob(t, b, row.BlobKey))
	require.Len(t, p.blockTimes(), 40)

	faulttest.Report(t, faulttest.FaultsInjected, 2)
	faulttest.Report(t, faulttest.RecordingsLost, float64(b.catalog.recordingsLost()))
	require.Zero(t, b.catalog.recordingsLost())
}
