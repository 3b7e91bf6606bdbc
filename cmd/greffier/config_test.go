package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSpoolMinFreeIsConfigurable: the free space a publisher needs is set
// like every other setting (file, then environment, then flag), with units,
// and a nonsense value is refused at start with what to set.
func TestSpoolMinFreeIsConfigurable(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	cfg, err := LoadConfig(nil, env(nil))
	require.NoError(t, err)
	require.Equal(t, ByteSize(256<<20), cfg.SpoolMinFree)

	file := filepath.Join(t.TempDir(), "g.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"spool_min_free": "1GiB"}`), 0o600))
	cfg, err = LoadConfig(nil, env(map[string]string{"GREFFIER_CONFIG": file}))
	require.NoError(t, err)
	require.Equal(t, ByteSize(1<<30), cfg.SpoolMinFree)

	cfg, err = LoadConfig(nil, env(map[string]string{"GREFFIER_CONFIG": file, "GREFFIER_SPOOL_MIN_FREE": "512MiB"}))
	require.NoError(t, err)
	require.Equal(t, ByteSize(512<<20), cfg.SpoolMinFree)

	cfg, err = LoadConfig([]string{"--spool-min-free", "0"}, env(map[string]string{"GREFFIER_SPOOL_MIN_FREE": "512MiB"}))
	require.NoError(t, err)
	require.Equal(t, ByteSize(0), cfg.SpoolMinFree, "0 turns the check off")

	for in, want := range map[string]ByteSize{"1048576": 1 << 20, "64 KiB": 64 << 10, "2g": 2 << 30, "10MB": 10 << 20} {
		got, err := ParseByteSize(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "-1", "lots", "1.5GiB", "99999999999TiB"} {
		_, err := ParseByteSize(bad)
		require.Error(t, err, bad)
	}
	_, err = LoadConfig(nil, env(map[string]string{"GREFFIER_SPOOL_MIN_FREE": "-5"}))
	require.ErrorContains(t, err, "256MiB")
}

// TestSegmentLengthsAreConfigurable: the longest segment sent to the
// speech backend and how much a segment gathers across short pauses are
// settings; lengths the voice detector cannot keep are refused at start.
func TestSegmentLengthsAreConfigurable(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	cfg, err := LoadConfig(nil, env(nil))
	require.NoError(t, err)
	require.Equal(t, 30*time.Second, cfg.SegmentMax)
	require.Equal(t, 20*time.Second, cfg.SegmentMerge)

	cfg, err = LoadConfig([]string{"--segment-max", "25s"}, env(map[string]string{"GREFFIER_SEGMENT_MERGE": "-1s"}))
	require.NoError(t, err)
	require.Equal(t, 25*time.Second, cfg.SegmentMax)
	require.Equal(t, -time.Second, cfg.SegmentMerge, "no merging")

	for _, bad := range []map[string]string{
		{"GREFFIER_SEGMENT_MAX": "5s"},
		{"GREFFIER_SEGMENT_MAX": "15s", "GREFFIER_SEGMENT_MERGE": "20s"},
		{"GREFFIER_SEGMENT_MERGE": "0s"},
	} {
		_, err = LoadConfig(nil, env(bad))
		require.ErrorContains(t, err, "GREFFIER_SEGMENT_MAX", "%v", bad)
	}
}
