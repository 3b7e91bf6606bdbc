package recorder

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/internal/store"
)

// readJournal returns the track's journal as stored, or false.
func (b *testBundle) journal(t *testing.T, trackID string) (journal, bool) {
	t.Helper()
	j, ok, err := b.rec.readJournal(context.Background(), "mtg_1", trackID)
	require.NoError(t, err)
	return j, ok
}

func journalBlocks(j journal) int {
	n := 0
	for _, c := range j.Chunks {
		n += c.Blocks
	}
	return n
}

// waitSpooled waits until the spool file holds n blocks.
func waitSpooled(t *testing.T, b *testBundle, w *Writer, n int) {
	t.Helper()
	spoolPath, _ := b.rec.paths("mtg_1", w.ID())
	require.Eventually(t, func() bool {
		data, err := os.ReadFile(spoolPath)
		require.NoError(t, err)
		return len(countBlocks(t, data)) >= n
	}, 5*time.Second, time.Millisecond)
}

// TestCheckpointRecoverAfterDiskLoss: checkpoints reach storage while the
// track records; then storage stops taking writes, the process gives up,
// and the spool disk is lost. A new process on a new disk rebuilds the
// track from its chunks: one seamless file holding the checkpointed audio.
func TestCheckpointRecoverAfterDiskLoss(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	b := setup(t, func(c *Config) { c.FlushInterval = 2 * time.Millisecond; c.CheckpointInterval = 5 * time.Millisecond })
	w := b.open(t)
	clean := cleanStream(fx, 100, 100)
	feed(b, w, clean[:40])
	require.Eventually(t, func() bool { j, _ := b.journal(t, w.ID()); return journalBlocks(j) >= 30 },
		5*time.Second, time.Millisecond, "a first checkpoint")
	feed(b, w, clean[40:100])
	require.Eventually(t, func() bool { j, _ := b.journal(t, w.ID()); return journalBlocks(j) >= 90 },
		5*time.Second, time.Millisecond, "a later checkpoint")
	feed(b, w, clean[100:])

	b.blobs.failures.Store(-1) // storage gone: the final upload cannot happen
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, w.Close(ctx), context.DeadlineExceeded)
	require.Equal(t, store.TrackFailed, b.catalog.row(w.ID()).State)
	b.rec.Close() // the process ends before storage is back: no retry

	b.blobs.failures.Store(0)
	j, ok := b.journal(t, w.ID())
	require.True(t, ok)
	require.GreaterOrEqual(t, len(j.Chunks), 2)
	for i, c := range j.Chunks {
		require.Equal(t, i, c.N)
		if i > 0 {
			require.Equal(t, j.Chunks[i-1].ToMS, c.FromMS, "chunks are contiguous")
		}
	}
	// Each chunk alone is a valid WebM starting at 0.
	chunk := readBlob(t, b, layout.TrackChunk("mtg_1", w.ID(), 1))
	p := parseWebM(t, chunk)
	require.Len(t, p.blockTimes(), j.Chunks[1].Blocks)
	require.Equal(t, int64(0), p.blockTimes()[0])
	require.Equal(t, float64(j.Chunks[1].ToMS-j.Chunks[1].FromMS), p.Segment.Info.Duration)
	_, n := ffprobe(t, chunk)
	require.Equal(t, j.Chunks[1].Blocks, n)

	require.NoError(t, os.RemoveAll(b.cfg.SpoolDir)) // the disk is lost
	b2 := setupWith(t, b.blobs, t.TempDir())
	b2.catalog.rows[w.ID()] = b.catalog.row(w.ID())
	require.NoError(t, b2.rec.Recover(context.Background()))

	row := b2.catalog.row(w.ID())
	require.Equal(t, store.TrackRecovered, row.State, row.Failure)
	require.Equal(t, int64(1500), row.StartMS)
	want := make([]int64, journalBlocks(j))
	for i := range want {
		want[i] = int64(i) * 20
	}
	require.Equal(t, j.Chunks[len(j.Chunks)-1].ToMS, row.DurationMS)
	require.Equal(t, int64(len(want))*20, row.DurationMS)
	// The journal's last checkpoint was taken at or after the last
	// checkpointed block arrived.
	require.GreaterOrEqual(t, row.GapMS, int64(0))
	data := readBlob(t, b2, row.BlobKey)
	require.Equal(t, layout.Track("mtg_1", w.ID()), row.BlobKey)
	p = parseWebM(t, data)
	require.Equal(t, want, p.blockTimes())
	probeMS, packets := ffprobe(t, data)
	require.Equal(t, len(want), packets)
	require.InDelta(t, row.DurationMS, probeMS, 10)

	_, ok = b2.journal(t, w.ID())
	require.False(t, ok, "journal deleted once the track is stored")
	left, err := b2.blobs.List(context.Background(), layout.TrackChunks("mtg_1", w.ID()))
	require.NoError(t, err)
	require.Empty(t, left, "chunks deleted once the track is stored")
	require.False(t, b2.rec.spoolExists("mtg_1", w.ID()))
	require.NoError(t, b2.rec.Recover(context.Background()))
	require.Equal(t, 1, b2.catalog.finishes, "nothing left to recover")
}

// TestCheckpointsDeletedAfterStore: a track closed normally is stored
// whole, and its checkpoints go.
func TestCheckpointsDeletedAfterStore(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	b := setup(t, func(c *Config) { c.FlushInterval = 2 * time.Millisecond; c.CheckpointInterval = 5 * time.Millisecond })
	w := b.open(t)
	feed(b, w, cleanStream(fx, 1, 1)[:80])
	require.Eventually(t, func() bool { _, ok := b.journal(t, w.ID()); return ok }, 5*time.Second, time.Millisecond)
	feed(b, w, cleanStream(fx, 1, 1)[80:])
	require.NoError(t, w.Close(context.Background()))

	row := b.catalog.row(w.ID())
	require.Equal(t, store.TrackStored, row.State)
	require.Len(t, parseWebM(t, readBlob(t, b, row.BlobKey)).blockTimes(), len(fx.packets))
	_, ok := b.journal(t, w.ID())
	require.False(t, ok)
	left, err := b.blobs.List(context.Background(), "meetings/mtg_1/")
	require.NoError(t, err)
	require.Len(t, left, 1, "only the track itself: %+v", left)
}

// TestCheckpointRunOnce drives the checkpointer by hand: a failed upload
// is retried at the next checkpoint with the longer stretch, and each
// chunk starts where the previous one ended.
func TestCheckpointRunOnce(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	b := setup(t, func(c *Config) { c.FlushInterval = 2 * time.Millisecond; c.CheckpointInterval = -1 })
	w := b.open(t)
	require.Nil(t, w.ckptStop, "checkpoints disabled")
	c := newCheckpointer(w)
	defer c.close()
	ctx := context.Background()

	made, err := c.runOnce(ctx)
	require.NoError(t, err)
	require.False(t, made, "nothing spooled yet")

	clean := cleanStream(fx, 1, 1)
	feed(b, w, clean[:40])
	waitSpooled(t, b, w, 40) // in order, every packet fed leaves the reorder window
	b.blobs.failures.Store(1)
	made, err = c.runOnce(ctx)
	require.ErrorContains(t, err, "injected put failure")
	require.False(t, made)
	_, ok := b.journal(t, w.ID())
	require.False(t, ok)

	feed(b, w, clean[40:80])
	waitSpooled(t, b, w, 80)
	// A checkpoint whose context ends (Close is waiting) stops reading and
	// leaves the stretch to the next one, the spool not taken for damaged.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	made, err = c.runOnce(cancelled)
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, made)
	require.False(t, c.broken)
	made, err = c.runOnce(ctx)
	require.NoError(t, err)
	require.True(t, made)
	j, ok := b.journal(t, w.ID())
	require.True(t, ok)
	require.Len(t, j.Chunks, 1)
	require.Equal(t, 80, j.Chunks[0].Blocks, "the retry carries the failed stretch too")
	require.Equal(t, int64(0), j.Chunks[0].FromMS)

	made, err = c.runOnce(ctx)
	require.NoError(t, err)
	require.False(t, made, "nothing new")

	feed(b, w, clean[80:])
	waitSpooled(t, b, w, len(clean))
	made, err = c.runOnce(ctx)
	require.NoError(t, err)
	require.True(t, made)
	j, _ = b.journal(t, w.ID())
	require.Len(t, j.Chunks, 2)
	require.Equal(t, j.Chunks[0].ToMS, j.Chunks[1].FromMS)
	require.Equal(t, int64(80*20), j.Chunks[1].FromMS)
	require.Equal(t, len(clean)-80, j.Chunks[1].Blocks)
	require.False(t, j.CheckpointedAt.IsZero())
	require.Equal(t, int64(1500), j.Track.StartMS)

	require.NoError(t, w.Close(ctx))
	_, ok = b.journal(t, w.ID())
	require.False(t, ok)
}

// TestRecoverNeverReplacesStoredTrack: the whole file reached storage,
// then the disk was lost before the journal was deleted. Recover records
// the stored file and does not overwrite it with its checkpoints.
func TestRecoverNeverReplacesStoredTrack(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	b := setup(t, func(c *Config) { c.FlushInterval = 2 * time.Millisecond; c.CheckpointInterval = -1 })
	w := b.open(t)
	c := newCheckpointer(w)
	feed(b, w, cleanStream(fx, 1, 1)[:50])
	waitSpooled(t, b, w, 40)
	made, err := c.runOnce(context.Background())
	c.close()
	require.NoError(t, err)
	require.True(t, made)
	j, _ := b.journal(t, w.ID())
	raw, err := json.Marshal(j)
	require.NoError(t, err)
	feed(b, w, cleanStream(fx, 1, 1)[50:])
	require.NoError(t, w.Close(context.Background()))
	stored := b.catalog.row(w.ID())

	// Put the journal back as if its deletion had never happened.
	_, err = b.rec.putBytes(context.Background(), layout.RecordingJournal("mtg_1", w.ID()), raw)
	require.NoError(t, err)
	_, err = b.rec.putBytes(context.Background(), layout.TrackChunk("mtg_1", w.ID(), 0), []byte("stale"))
	require.NoError(t, err)
	b2 := setupWith(t, b.blobs, t.TempDir())
	b2.catalog.rows[w.ID()] = store.Track{ID: w.ID(), MeetingID: "mtg_1", Identity: "alice", State: store.TrackRecording}
	require.NoError(t, b2.rec.Recover(context.Background()))
	row := b2.catalog.row(w.ID())
	require.Equal(t, store.TrackStored, row.State)
	require.Equal(t, stored.SHA256, row.SHA256)
	require.Equal(t, stored.DurationMS, row.DurationMS)
	_, err = b2.blobs.Stat(context.Background(), layout.TrackChunk("mtg_1", w.ID(), 0))
	require.ErrorIs(t, err, blob.ErrNotFound)
	_, ok := b2.journal(t, w.ID())
	require.False(t, ok)
}

// TestSpoolIsSyncedOnTheCheckpointCadence: the spool is written to its
// file every FlushInterval but fsynced only every CheckpointInterval (and
// when the track ends), not at every flush nor per packet.
func TestSpoolIsSyncedOnTheCheckpointCadence(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	const cadence = 50 * time.Millisecond
	start := time.Now()
	b := setup(t, func(c *Config) { c.FlushInterval = 2 * time.Millisecond; c.CheckpointInterval = cadence })
	w := b.open(t)
	feed(b, w, cleanStream(fx, 100, 100))
	require.Eventually(t, func() bool { return w.file.syncs.Load() >= 3 }, 10*time.Second, time.Millisecond,
		"the spool is synced while the track records")
	syncs := w.file.syncs.Load()
	// A busy machine delays the ticks, never hastens them: each sync
	// comes a whole cadence after the previous one (flushes came 25 times
	// as often).
	require.LessOrEqual(t, syncs, int64(time.Since(start)/cadence)+1, "synced more often than the checkpoints")
	require.NoError(t, w.Close(context.Background()))
}
