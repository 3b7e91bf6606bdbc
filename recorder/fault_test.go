package recorder

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
// SFU side never notices, Close reports it and marks the track failed,
// and Recover later salvages what reached the disk.
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
	require.Equal(t, store.TrackFailed, row.State)
	require.Contains(t, row.Failure, "local disk")
	_, err = os.Stat(sidePath)
	require.NoError(t, err, "the sidecar stays for Recover")

	require.NoError(t, b.rec.Recover(context.Background()))
	row = b.catalog.row(w.ID())
	require.Equal(t, store.TrackRecovered, row.State, row.Failure)
	require.Equal(t, int64(60*20), row.DurationMS)
	p := parseWebM(t, readBlob(t, b, row.BlobKey))
	require.Len(t, p.blockTimes(), 60)
}
