package recorder

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/store"
)

// logBuffer is a slog handler's output, safe to read while written.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func TestOpenRefusesLowDisk(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.MinFreeBytes = 1 << 62 })
	_, err := b.rec.Open(context.Background(), Track{MeetingID: "mtg_1", Identity: "a"})
	require.ErrorIs(t, err, ErrDiskFull)
	var dse *DiskSpaceError
	require.ErrorAs(t, err, &dse)
	require.Equal(t, b.cfg.SpoolDir, dse.Dir)
	require.Positive(t, dse.Free)
	require.Less(t, dse.Free, dse.Min)
	require.ErrorContains(t, err, "MiB free")
	require.ErrorContains(t, err, "point SpoolDir at a larger disk")
	left, err := filepath.Glob(filepath.Join(b.cfg.SpoolDir, "*"))
	require.NoError(t, err)
	require.Empty(t, left)
	// The refusal is recorded: the participant shows as not recorded.
	require.Len(t, b.catalog.rows, 1)
	for _, row := range b.catalog.rows {
		require.Equal(t, store.TrackFailed, row.State)
		require.Equal(t, "a", row.Identity)
		require.Contains(t, row.Failure, "not recorded: spool disk nearly full")
	}

	b = setup(t, func(c *Config) { c.MinFreeBytes = -1 })
	w, err := b.rec.Open(context.Background(), Track{MeetingID: "mtg_1", Identity: "a"})
	require.NoError(t, err, "a negative MinFreeBytes disables the check")
	require.ErrorIs(t, w.Close(context.Background()), ErrNoAudio)
}

// smallDisk returns a 2 MiB tmpfs, or "" where mounting is not allowed.
func smallDisk(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Logf("no tmpfs (%v: %s); the spool's file is swapped for /dev/full instead", err, out)
		return ""
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	return dir
}

// fill writes to dir until its disk is full.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	require.NoError(t, err)
	defer f.Close()
	block := make([]byte, 64<<10)
	for {
		if _, err := f.Write(block); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			break
		}
	}
	for n := len(block) / 2; n > 0; n /= 2 { // tmpfs fills by pages
		for {
			if _, err := f.Write(block[:n]); err != nil {
				break
			}
		}
	}
}

// TestSpoolDiskFull: the disk fills up mid-track. The track is marked
// failed at once with a reason saying so, an error is logged, new tracks
// are refused, and Close reports it.
func TestSpoolDiskFull(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	disk := smallDisk(t)
	spoolDir := disk
	if spoolDir == "" {
		spoolDir = t.TempDir()
	}
	logs := &logBuffer{}
	b := setupWith(t, newDisk(t), spoolDir, func(c *Config) {
		c.FlushInterval = 2 * time.Millisecond
		c.MinFreeBytes = 256 << 10
	})
	rec, err := New(b.cfg, b.blobs, b.catalog, slog.New(slog.NewTextHandler(logs, nil)))
	require.NoError(t, err)
	t.Cleanup(rec.Close)
	b.rec = rec
	w := b.open(t)
	clean := cleanStream(fx, 1, 1)
	feed(b, w, clean[:20])
	waitSpooled(t, b, w, 10)
	if disk != "" {
		fill(t, disk)
	} else {
		full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
		require.NoError(t, err)
		w.file.mu.Lock()
		_ = w.file.f.Close()
		w.file.f = full
		w.file.bw.Reset(full)
		w.file.mu.Unlock()
	}
	feed(b, w, clean[20:])

	require.Eventually(t, func() bool { return len(b.catalog.trackGaps(w.ID())) == 1 },
		5*time.Second, time.Millisecond, "a gap is stated while the track is still open")
	gap := b.catalog.trackGaps(w.ID())[0]
	require.Contains(t, gap.Reason, "disk holding the spool is full")
	require.Contains(t, gap.Reason, "no space left on device")
	require.Equal(t, store.TrackRecording, b.catalog.row(w.ID()).State, "the track goes on until it ends")
	require.Contains(t, logs.String(), "level=ERROR")
	require.Contains(t, logs.String(), "spool not writable")

	if disk != "" {
		_, err = b.rec.Open(context.Background(), Track{MeetingID: "mtg_1", Identity: "bob"})
		var dse *DiskSpaceError
		require.ErrorAs(t, err, &dse)
		require.Less(t, dse.Free, int64(256<<10))
	}

	// What reached the disk is stored at once (built in memory: the disk
	// is still full), the rest is a stated gap up to the track's end.
	err = w.Close(context.Background())
	require.True(t, errors.Is(err, syscall.ENOSPC), "%v", err)
	row := b.catalog.row(w.ID())
	require.Equal(t, store.TrackRecovered, row.State, row.Failure)
	require.Positive(t, row.DurationMS)
	gaps := b.catalog.trackGaps(w.ID())
	require.Len(t, gaps, 1)
	require.Equal(t, row.StartMS+row.DurationMS, gaps[0].StartMS)
	require.Equal(t, row.StartMS+int64(len(clean))*20, gaps[0].EndMS, "the gap runs to the end of what was heard")
	require.Contains(t, gaps[0].Reason, "is full")
	p := parseWebM(t, readBlob(t, b, row.BlobKey))
	require.Len(t, p.blockTimes(), int(row.DurationMS/20))
}
