package recorder

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/store"
)

// fixedKeys gives every meeting the same spool key, as the keyring would
// give one meeting's across restarts.
type fixedKeys []byte

func (k fixedKeys) SpoolKey(context.Context, string) ([]byte, error) { return k, nil }

var testSpoolKey = fixedKeys(bytes.Repeat([]byte{7}, 32))

// openTestSpool opens an encrypted spool's bytes with the test key.
func openTestSpool(t *testing.T, raw []byte) *spoolReader {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.webm")
	require.NoError(t, os.WriteFile(path, raw, 0o600))
	k, err := (&Recorder{cfg: Config{SpoolKeys: testSpoolKey}}).spoolKey(context.Background(), "mtg_1")
	require.NoError(t, err)
	s, err := openSpool(path, k)
	require.NoError(t, err)
	return s
}

// plainBlocks decrypts a (possibly cut) encrypted spool and returns the
// times of its whole blocks.
func plainBlocks(t *testing.T, raw []byte) []int64 {
	t.Helper()
	s := openTestSpool(t, raw)
	defer s.Close()
	sec, err := s.section(0)
	require.NoError(t, err)
	plain, err := io.ReadAll(sec)
	require.NoError(t, err)
	return countBlocks(t, plain)
}

// TestEncryptedSpoolHoldsNoClearAudioAndRecoversEveryCut is the crash
// recovery test with encryption on: the spool and its sidecar on disk hold
// no WebM, Opus or JSON in clear, and a spool cut anywhere (kill -9
// between two flushes) is recovered to exactly the whole blocks before
// the cut.
func TestEncryptedSpoolHoldsNoClearAudioAndRecoversEveryCut(t *testing.T) {
	t.Parallel()
	spool, side, id := encryptedCrashCopy(t, 60, 50)

	for name, raw := range map[string][]byte{"spool": spool, "sidecar": side} {
		for _, sig := range [][]byte{{0x1a, 0x45, 0xdf, 0xa3}, []byte("OpusHead"), []byte("OggS"), []byte(`"identity"`), []byte("alice")} {
			require.False(t, bytes.Contains(raw, sig), "the %s holds %q in clear", name, sig)
		}
		require.NotEqual(t, byte('{'), raw[0], name)
	}
	require.True(t, bytes.HasPrefix(spool, []byte(spoolMagic)))
	require.True(t, bytes.HasPrefix(side, []byte(sidecarMagic)))

	requireEveryCutRecovers(t, spool, side, id, func(b []byte) []int64 { return plainBlocks(t, b) },
		func(c *Config) { c.SpoolKeys = testSpoolKey })

	// Without the key, a crashed encrypted spool is not taken for audio.
	dir := t.TempDir()
	plant(t, dir, id, spool, side)
	nb := setupWith(t, newDisk(t), dir)
	seedRow(nb, id)
	_ = nb.rec.Recover(context.Background())
	require.NotEqual(t, store.TrackRecovered, nb.catalog.row(id).State)
}

// encryptedCrashCopy is crashCopy with the spool encrypted.
func encryptedCrashCopy(t *testing.T, n, least int) (spool, side []byte, trackID string) {
	t.Helper()
	fx := loadOpus(t)
	b := setup(t, func(c *Config) { c.FlushInterval = 5 * time.Millisecond; c.SpoolKeys = testSpoolKey })
	w := b.open(t)
	spoolPath, sidePath := b.rec.paths("mtg_1", w.ID())
	// Fed in stretches, each let reach the disk, so the spool holds
	// several drain writes (records).
	stream, prev := cleanStream(fx, 100, 100)[:n], 0
	for i := 0; i < n; i += 20 {
		feed(b, w, stream[i:min(n, i+20)])
		want := max(prev+1, least*min(n, i+20)/n)
		require.Eventually(t, func() bool {
			data, err := os.ReadFile(spoolPath)
			require.NoError(t, err)
			prev = len(plainBlocks(t, data))
			return prev >= want
		}, 5*time.Second, time.Millisecond, "the periodic flush puts blocks on disk")
	}
	spool, side = readCrashed(t, spoolPath, sidePath)
	require.NoError(t, w.Close(context.Background()))
	return spool, side, w.ID()
}

// spoolRecords opens an encrypted spool's bytes and returns its reader,
// refreshed to the end: its head and records.
func spoolRecords(t *testing.T, raw []byte) *recordReader {
	t.Helper()
	s := openTestSpool(t, raw)
	t.Cleanup(func() { _ = s.Close() })
	_, _, err := s.size()
	require.NoError(t, err)
	require.NotNil(t, s.rec)
	return s.rec
}

// TestEncryptedSpoolFlippedByteIsDamageNotAudio: one byte flipped in a
// record of a crashed encrypted spool (in clear, a byte of Opus payload
// that would be decoded as other sound) is detected: Recover keeps the
// blocks of the records before it, and the track's minutes state the rest
// as a gap saying the spool was altered or damaged. A byte flipped in the
// last record is damage too, not a torn tail; one in the header fails the
// track with that reason.
func TestEncryptedSpoolFlippedByteIsDamageNotAudio(t *testing.T) {
	t.Parallel()
	spool, side, id := encryptedCrashCopy(t, 80, 70)
	rr := spoolRecords(t, spool)
	require.NoError(t, rr.damage)
	require.GreaterOrEqual(t, len(rr.recs), 3, "the drain writes several records")
	full := plainBlocks(t, spool)

	// The plaintext of records before i, as the recovery should keep it.
	blocksBefore := func(i int) []int64 {
		sec := io.NewSectionReader(rr, 0, rr.recs[i].plain)
		plain, err := io.ReadAll(sec)
		require.NoError(t, err)
		return countBlocks(t, plain)
	}
	for _, i := range []int{len(rr.recs) / 2, len(rr.recs) - 1} {
		t.Run(fmt.Sprintf("record %d of %d", i, len(rr.recs)), func(t *testing.T) {
			rec := rr.recs[i]
			damaged := append([]byte(nil), spool...)
			damaged[rec.file+int64(rec.n)/2] ^= 0x10
			want := blocksBefore(i)
			require.NotEmpty(t, want)
			require.Less(t, len(want), len(full))

			b := recoverPlanted(t, id, damaged, side)
			row := b.catalog.row(id)
			require.Equal(t, store.TrackRecovered, row.State, row.Failure)
			p := parseWebM(t, readBlob(t, b, row.BlobKey))
			require.Equal(t, want, p.blockTimes(), "the blocks before the damaged record, and nothing of it")
			require.Equal(t, want[len(want)-1]+20, row.DurationMS)
			gaps := b.catalog.trackGaps(id)
			require.Len(t, gaps, 1)
			require.Equal(t, row.StartMS+row.DurationMS, gaps[0].StartMS)
			require.Greater(t, gaps[0].EndMS, gaps[0].StartMS)
			require.Contains(t, gaps[0].Reason, "altered or damaged on disk")
			require.Contains(t, gaps[0].Reason, fmt.Sprintf("record %d ", i))
		})
	}
	t.Run("header", func(t *testing.T) {
		damaged := append([]byte(nil), spool...)
		damaged[spoolHeader+4+slotFixed+len(rr.head)+30] ^= 0x01 // inside slot 1, the only one written
		row := recoverPlanted(t, id, damaged, side).catalog.row(id)
		require.Equal(t, store.TrackFailed, row.State)
		require.Contains(t, row.Failure, "spool was damaged")
		require.Contains(t, row.Failure, "header")
	})
}

// recoverPlanted runs Recover, with the test key, on a crashed encrypted
// spool planted in a fresh spool dir.
func recoverPlanted(t *testing.T, id string, spool, side []byte) *testBundle {
	t.Helper()
	dir := t.TempDir()
	plant(t, dir, id, spool, side)
	b := setupWith(t, newDisk(t), dir, func(c *Config) { c.SpoolKeys = testSpoolKey })
	seedRow(b, id)
	require.NoError(t, b.rec.Recover(context.Background()))
	return b
}

// TestEncryptedSpoolHeaderPatchNeverReusesANonce: each patch of the WebM
// header (Duration, Cues) is sealed under a fresh random nonce, distinct
// from every other slot's and record's; the newest patch is what is read;
// a patch torn by a crash leaves the previous header readable.
func TestEncryptedSpoolHeaderPatchNeverReusesANonce(t *testing.T) {
	t.Parallel()
	k, err := (&Recorder{cfg: Config{SpoolKeys: testSpoolKey}}).spoolKey(context.Background(), "mtg_1")
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "t.webm")
	f, err := createSpool(path, os.O_EXCL, k)
	require.NoError(t, err)
	head := bytes.Repeat([]byte{'h'}, 100)
	_, err = f.Write(head)
	require.NoError(t, err)
	for range 3 {
		_, err = f.Write(bytes.Repeat([]byte{'r'}, 500))
		require.NoError(t, err)
	}
	slot := int64(slotFixed + len(head))
	slotNonce := func(raw []byte, i int64) string {
		at := int64(spoolHeader+4) + i*slot + 8
		return string(raw[at : at+gcmNonce])
	}
	seen := map[string]bool{}
	recs := spoolRecords(t, mustRead(t, path)).recs
	require.Len(t, recs, 3)
	for i := range recs {
		var n [gcmNonce]byte
		var aad [spoolIDLen + 8]byte
		recordNonce(&n, &aad, &f.(*cryptFile).id, uint64(i))
		require.False(t, seen[string(n[:])])
		seen[string(n[:])] = true
	}
	var before []byte
	for p := range 6 {
		before = mustRead(t, path)
		_, err = f.WriteAt([]byte{byte('0' + p)}, 10)
		require.NoError(t, err)
		raw := mustRead(t, path)
		gen := uint64(p + 2)
		nonce := slotNonce(raw, int64(gen%2))
		require.False(t, seen[nonce], "patch %d reuses a nonce", p)
		seen[nonce] = true
		rr := spoolRecords(t, raw)
		require.NoError(t, rr.damage)
		require.Equal(t, byte('0'+p), rr.head[10], "the newest patch is read")
		require.Equal(t, int64(100+1500), rr.plain)
	}
	require.NoError(t, f.Close())

	// The last patch torn: its slot does not open, the one before is read.
	raw := mustRead(t, path)
	torn := int64(spoolHeader+4) + int64(7%2)*slot + slot - 3
	raw[torn] ^= 0xff
	rr := spoolRecords(t, raw)
	require.NoError(t, rr.damage)
	require.Equal(t, spoolRecords(t, before).head, rr.head)
	require.Equal(t, byte('4'), rr.head[10])
	require.Equal(t, int64(100+1500), rr.plain, "the records are untouched by the head's slots")

	// A patch outside the head is refused, not written in place.
	_, err = f.WriteAt([]byte{1}, 200)
	require.Error(t, err)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

// TestEncryptedFinishedSpoolDamagedIsStoredUpToTheDamage: a track whose
// spool was finished (Duration, Cues) but not uploaded, then damaged on
// disk, is neither uploaded as it is nor retried forever: Recover keeps
// the blocks before the damaged record and states the rest as a gap.
func TestEncryptedFinishedSpoolDamagedIsStoredUpToTheDamage(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	b := setup(t, func(c *Config) { c.SpoolKeys = testSpoolKey })
	b.blobs.failures.Store(-1)
	w := b.open(t)
	clean := cleanStream(fx, 1, 1)
	feed(b, w, clean)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, w.Close(ctx), context.DeadlineExceeded)
	row := b.catalog.row(w.ID())
	require.Equal(t, store.TrackFailed, row.State)
	b.rec.Close() // the process ends before storage is back: no retry
	spoolPath, _ := b.rec.paths("mtg_1", w.ID())
	raw := mustRead(t, spoolPath)
	rr := spoolRecords(t, raw)
	require.GreaterOrEqual(t, len(rr.recs), 2)
	i := len(rr.recs) / 2
	plain, err := io.ReadAll(io.NewSectionReader(rr, 0, rr.recs[i].plain))
	require.NoError(t, err)
	want := countBlocks(t, plain)
	require.NotEmpty(t, want)
	raw[rr.recs[i].file+3] ^= 0x80
	require.NoError(t, os.WriteFile(spoolPath, raw, 0o600))

	b.blobs.failures.Store(0)
	b2 := setupWith(t, b.blobs, b.cfg.SpoolDir, func(c *Config) { c.SpoolKeys = testSpoolKey })
	b2.catalog.rows[w.ID()] = row
	require.NoError(t, b2.rec.Recover(context.Background()))
	row = b2.catalog.row(w.ID())
	require.Equal(t, store.TrackRecovered, row.State, row.Failure)
	p := parseWebM(t, readBlob(t, b2, row.BlobKey))
	require.Equal(t, want, p.blockTimes())
	gaps := b2.catalog.trackGaps(w.ID())
	require.Len(t, gaps, 1)
	require.Equal(t, row.StartMS+row.DurationMS, gaps[0].StartMS)
	require.Contains(t, gaps[0].Reason, "altered or damaged on disk")
	require.False(t, b2.rec.spoolExists("mtg_1", w.ID()))
}
