package recorder

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/faulttest"
	"github.com/greffier/greffier/internal/store"
)

// countBlocks returns the times of the blocks scanBlocks finds in data.
func countBlocks(t *testing.T, data []byte) []int64 {
	t.Helper()
	var times []int64
	err := scanBlocks(bytes.NewReader(data), func(ms int64, frame []byte) error {
		times = append(times, ms)
		return nil
	})
	require.NoError(t, err)
	return times
}

// crashCopy records n packets, waits until the periodic flush has put at
// least min blocks on disk, and copies the spool and its sidecar as a
// crashed process would have left them. The writer is then closed.
func crashCopy(t *testing.T, fx opusFixture, n, min int) (spool, side []byte, trackID string) {
	t.Helper()
	b := setup(t, func(c *Config) { c.FlushInterval = 5 * time.Millisecond })
	w := b.open(t)
	feed(b, w, cleanStream(fx, 100, 100)[:n])
	spoolPath, sidePath := b.rec.paths("mtg_1", w.ID())
	require.Eventually(t, func() bool {
		data, err := os.ReadFile(spoolPath)
		require.NoError(t, err)
		return len(countBlocks(t, data)) >= min
	}, 5*time.Second, time.Millisecond, "the periodic flush puts blocks on disk")
	spool, side = readCrashed(t, spoolPath, sidePath)
	require.NoError(t, w.Close(context.Background()))
	return spool, side, w.ID()
}

// readCrashed copies a spool and its sidecar as a crashed process would
// have left them.
func readCrashed(t *testing.T, spoolPath, sidePath string) (spool, side []byte) {
	t.Helper()
	var err error
	spool, err = os.ReadFile(spoolPath)
	require.NoError(t, err)
	side, err = os.ReadFile(sidePath)
	require.NoError(t, err)
	return spool, side
}

// plant puts a crashed spool into a fresh spool dir.
func plant(t *testing.T, dir, trackID string, spool, side []byte) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "mtg_1"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "mtg_1", trackID+".webm"), spool, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "mtg_1", trackID+".json"), side, 0o600))
}

// seedRow gives the catalog the row the crashed process had created.
func seedRow(b *testBundle, id string) {
	b.catalog.rows[id] = store.Track{ID: id, MeetingID: "mtg_1", Identity: "alice", State: store.TrackRecording}
}

func newDisk(t *testing.T) *flakyStore {
	t.Helper()
	d, err := blob.NewDisk(t.TempDir())
	require.NoError(t, err)
	return &flakyStore{Store: d}
}

// TestFaultCrashedSpoolIsRecoveredWithWhatReachedTheDisk: a process killed
// while recording leaves its spool and sidecar; Recover makes of them a
// clean file holding every block that reached the disk.
func TestFaultCrashedSpoolIsRecoveredWithWhatReachedTheDisk(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	const fed = 100 // packets of 20 ms the crashed process was given
	spool, side, id := crashCopy(t, fx, fed, 90)
	onDisk := countBlocks(t, spool)
	require.GreaterOrEqual(t, len(onDisk), 90)

	dir := t.TempDir()
	plant(t, dir, id, spool, side)
	b := setupWith(t, newDisk(t), dir)
	seedRow(b, id)
	require.NoError(t, b.rec.Recover(context.Background()))

	row := b.catalog.row(id)
	faulttest.Report(t, faulttest.FaultsInjected, 1)
	faulttest.Report(t, faulttest.RecordingsLost, float64(b.catalog.recordingsLost()))
	require.Zero(t, b.catalog.recordingsLost())
	require.Equal(t, store.TrackRecovered, row.State, row.Failure)
	require.Equal(t, int64(len(onDisk)*20), row.DurationMS)
	require.Equal(t, int64(1500), row.StartMS)
	require.GreaterOrEqual(t, row.GapMS, int64(0))
	require.False(t, b.rec.spoolExists("mtg_1", id))
	_, err := os.Stat(filepath.Join(dir, "mtg_1", id+".json"))
	require.ErrorIs(t, err, os.ErrNotExist)

	data := readBlob(t, b, row.BlobKey)
	p := parseWebM(t, data)
	require.Equal(t, onDisk, p.blockTimes())
	require.Equal(t, float64(row.DurationMS), p.Segment.Info.Duration)
	probeMS, packets := ffprobe(t, data)
	require.Equal(t, len(onDisk), packets)
	require.InDelta(t, row.DurationMS, probeMS, 10)

	// Running it again finds nothing left to do.
	require.NoError(t, b.rec.Recover(context.Background()))
	require.Equal(t, 1, b.catalog.finishes)
}

// TestRecoverTruncated cuts a spool at many points, as a crash between
// two flushes can, and checks every cut yields a clean file holding
// exactly the whole blocks before the cut.
func TestRecoverTruncated(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	spool, side, id := crashCopy(t, fx, 60, 50)
	requireEveryCutRecovers(t, spool, side, id, func(b []byte) []int64 { return countBlocks(t, b) })
}

// requireEveryCutRecovers plants spool cut at many points and checks that
// Recover makes of each a track of exactly the whole blocks before the cut
// (blocksOf reads them from a cut spool).
func requireEveryCutRecovers(t *testing.T, spool, side []byte, id string, blocksOf func([]byte) []int64, tweak ...func(*Config)) {
	t.Helper()
	full := blocksOf(spool)
	prev := -1
	for cut := 0; cut <= len(spool); cut += 1 + len(spool)/40 {
		dir := t.TempDir()
		plant(t, dir, id, spool[:cut], side)
		b := setupWith(t, newDisk(t), dir, tweak...)
		seedRow(b, id)
		require.NoError(t, b.rec.Recover(context.Background()), "cut at %d", cut)
		want := blocksOf(spool[:cut])
		require.GreaterOrEqual(t, len(want), prev, "a longer prefix never holds fewer blocks")
		prev = len(want)
		if len(want) > 0 {
			require.Equal(t, full[:len(want)], want)
		}
		row := b.catalog.row(id)
		if len(want) == 0 {
			require.Equal(t, store.TrackFailed, row.State, "cut at %d", cut)
			require.False(t, b.rec.spoolExists("mtg_1", id))
			continue
		}
		require.Equal(t, store.TrackRecovered, row.State, "cut at %d: %s", cut, row.Failure)
		p := parseWebM(t, readBlob(t, b, row.BlobKey))
		require.Equal(t, want, p.blockTimes(), "cut at %d", cut)
		require.Equal(t, want[len(want)-1]+20, row.DurationMS)
	}
	require.Positive(t, prev)
}

// TestFaultDamagedSpoolKeepsTheBlocksBeforeTheDamage: a crashed spool
// whose bytes were damaged is still recovered, up to the damage.
func TestFaultDamagedSpoolKeepsTheBlocksBeforeTheDamage(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	spool, side, id := crashCopy(t, fx, 80, 70)
	full := countBlocks(t, spool)
	damaged := append([]byte(nil), spool...)
	// Damage the header of the first block past two thirds of the file
	// (SimpleBlock ID 0xA3, a size, track number 1): bytes inside a
	// block's Opus payload would not break the file's structure at all.
	mid := len(damaged) * 2 / 3
	for mid+2 < len(damaged) && (damaged[mid] != 0xA3 || damaged[mid+2] != 0x81) {
		mid++
	}
	require.Less(t, mid+16, len(damaged), "a block header past two thirds")
	for i := mid; i < mid+16; i++ {
		damaged[i] = 0xFF
	}
	dir := t.TempDir()
	plant(t, dir, id, damaged, side)
	b := setupWith(t, newDisk(t), dir)
	seedRow(b, id)
	require.NoError(t, b.rec.Recover(context.Background()))
	row := b.catalog.row(id)
	faulttest.Report(t, faulttest.FaultsInjected, 1)
	faulttest.Report(t, faulttest.RecordingsLost, float64(b.catalog.recordingsLost()))
	require.Zero(t, b.catalog.recordingsLost())
	require.Equal(t, store.TrackRecovered, row.State)
	got := parseWebM(t, readBlob(t, b, row.BlobKey)).blockTimes()
	require.NotEmpty(t, got)
	require.Less(t, len(got), len(full))
	require.Equal(t, full[:len(got)], got, "blocks before the damage survive unchanged")
}

func TestRecoverLeavesOpenTracksAlone(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	b := setup(t)
	w := b.open(t)
	feed(b, w, cleanStream(fx, 1, 1)[:20])
	require.NoError(t, b.rec.Recover(context.Background()))
	require.Equal(t, store.TrackRecording, b.catalog.row(w.ID()).State)
	require.True(t, b.rec.spoolExists("mtg_1", w.ID()))
	require.NoError(t, w.Close(context.Background()))
	require.Equal(t, store.TrackStored, b.catalog.row(w.ID()).State)
}

// TestFlushEveryInterval: far less than the write buffer reaches the disk
// because of the periodic flush alone.
func TestFlushEveryInterval(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	b := setup(t, func(c *Config) { c.FlushInterval = 5 * time.Millisecond })
	w := b.open(t)
	feed(b, w, cleanStream(fx, 1, 1)[:20])
	spoolPath, _ := b.rec.paths("mtg_1", w.ID())
	require.Eventually(t, func() bool {
		data, err := os.ReadFile(spoolPath)
		require.NoError(t, err)
		if first := bytes.Index(data, []byte{0x1F, 0x43, 0xB6, 0x75}); first > 0 {
			require.Less(t, len(data)-first, spoolBufSize, "the buffer alone would not have flushed the blocks")
		}
		return len(countBlocks(t, data)) == 20
	}, 5*time.Second, time.Millisecond)
	require.NoError(t, w.Close(context.Background()))
}

// TestRecoverBeforeCreate: the process died after writing the sidecar and
// before the catalog knew the track.
func TestRecoverBeforeCreate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sc := sidecar{TrackID: "trk_1", MeetingID: "mtg_1", Identity: "bob", Channels: 2}
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "mtg_1"), 0o700))
	require.NoError(t, (&Recorder{}).writeSidecar(filepath.Join(dir, "mtg_1", "trk_1.json"), sc))
	b := setupWith(t, newDisk(t), dir)
	require.NoError(t, b.rec.Recover(context.Background()))
	row := b.catalog.row("trk_1")
	require.Equal(t, store.TrackFailed, row.State)
	require.Contains(t, row.Failure, "before any audio")
	_, err := os.Stat(filepath.Join(dir, "mtg_1", "trk_1.json"))
	require.ErrorIs(t, err, os.ErrNotExist)
}
