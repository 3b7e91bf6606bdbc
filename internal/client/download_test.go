package client

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDownloadResumesAndFinishes: against net/http's own Range handling
// (206, 200 when If-Range no longer holds, 416 past the end), a download
// resumes a part, restarts a stale one, and completes one cut after its
// last byte.
func TestDownloadResumesAndFinishes(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat([]byte("0123456789"), 1000)
	var ranges []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ranges = append(ranges, r.Header.Get("Range"))
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "f", time.Unix(0, 0), bytes.NewReader(body))
	}))
	t.Cleanup(srv.Close)
	c := &Client{BaseURL: srv.URL}
	dir := t.TempDir()
	dest := filepath.Join(dir, "f")
	var last [2]int64
	progress := func(done, total int64) { last = [2]int64{done, total} }

	// Resumed: only the rest is asked for.
	require.NoError(t, os.WriteFile(dest+".part", body[:4000], 0o644))
	require.NoError(t, os.WriteFile(dest+".part.etag", []byte(`"v1"`), 0o600))
	n, err := c.Download(context.Background(), "/f", dest, progress)
	require.NoError(t, err)
	require.Equal(t, int64(len(body)), n)
	require.Equal(t, [2]int64{int64(len(body)), int64(len(body))}, last)
	require.Equal(t, []string{"bytes=4000-"}, ranges)
	got, err := os.ReadFile(dest)
	require.NoError(t, err)
	require.Equal(t, body, got)
	for _, leftover := range []string{dest + ".part", dest + ".part.etag"} {
		_, err := os.Stat(leftover)
		require.ErrorIs(t, err, os.ErrNotExist)
	}

	// A part of another version: fetched whole.
	require.NoError(t, os.WriteFile(dest+".part", []byte("old"), 0o644))
	require.NoError(t, os.WriteFile(dest+".part.etag", []byte(`"v0"`), 0o600))
	_, err = c.Download(context.Background(), "/f", dest, nil)
	require.NoError(t, err)
	got, err = os.ReadFile(dest)
	require.NoError(t, err)
	require.Equal(t, body, got)

	// Cut after the last byte: the server has nothing more (416).
	require.NoError(t, os.WriteFile(dest+".part", body, 0o644))
	require.NoError(t, os.WriteFile(dest+".part.etag", []byte(`"v1"`), 0o600))
	require.NoError(t, os.Remove(dest))
	_, err = c.Download(context.Background(), "/f", dest, nil)
	require.NoError(t, err)
	got, err = os.ReadFile(dest)
	require.NoError(t, err)
	require.Equal(t, body, got)
}
