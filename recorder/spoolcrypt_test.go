package recorder

import (
	"bytes"
	"context"
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

// plainBlocks decrypts a (possibly cut) encrypted spool and returns the
// times of its whole blocks.
func plainBlocks(t *testing.T, raw []byte) []int64 {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.webm")
	require.NoError(t, os.WriteFile(path, raw, 0o600))
	k, err := (&Recorder{cfg: Config{SpoolKeys: testSpoolKey}}).spoolKey(context.Background(), "mtg_1")
	require.NoError(t, err)
	s, err := openSpool(path, k)
	require.NoError(t, err)
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
	fx := loadOpus(t)
	b := setup(t, func(c *Config) { c.FlushInterval = 5 * time.Millisecond; c.SpoolKeys = testSpoolKey })
	w := b.open(t)
	feed(b, w, cleanStream(fx, 100, 100)[:60])
	spoolPath, sidePath := b.rec.paths("mtg_1", w.ID())
	require.Eventually(t, func() bool {
		data, err := os.ReadFile(spoolPath)
		require.NoError(t, err)
		return len(plainBlocks(t, data)) >= 50
	}, 5*time.Second, time.Millisecond, "the periodic flush puts blocks on disk")
	spool, err := os.ReadFile(spoolPath)
	require.NoError(t, err)
	side, err := os.ReadFile(sidePath)
	require.NoError(t, err)
	require.NoError(t, w.Close(context.Background()))
	id := w.ID()

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
