package main

import (
	"os"
	"path/filepath"
	"testing"

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

// TestPublicURLMakesTheJoinLinks: join links start with GREFFIER_PUBLIC_URL,
// or with the HTTP address when it is not set; a URL that cannot be a
// link's base is refused at start.
func TestPublicURLMakesTheJoinLinks(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cfg, err := LoadConfig(nil, env(nil))
	require.NoError(t, err)
	require.Equal(t, "http://127.0.0.1:8080", cfg.publicURL())
	cfg, err = LoadConfig([]string{"--http", "0.0.0.0:9000"}, env(nil))
	require.NoError(t, err)
	require.Equal(t, "http://127.0.0.1:9000", cfg.publicURL(), "an unspecified host is reached on loopback")
	cfg, err = LoadConfig(nil, env(map[string]string{"GREFFIER_PUBLIC_URL": "https://greffier.example.org/meet"}))
	require.NoError(t, err)
	require.Equal(t, "https://greffier.example.org/meet", cfg.publicURL())
	for _, bad := range []string{"greffier.example.org", "ftp://x", "https://x/?a=b", "https://x/#f"} {
		_, err := LoadConfig(nil, env(map[string]string{"GREFFIER_PUBLIC_URL": bad}))
		require.ErrorContains(t, err, "GREFFIER_PUBLIC_URL", bad)
	}
}
