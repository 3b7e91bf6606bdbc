package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/seal"
)

// writeKEK makes a key-encryption key file, in base64 as an operator would.
func writeKEK(t *testing.T) string {
	t.Helper()
	k := make([]byte, seal.KeySize)
	_, _ = rand.Read(k)
	path := filepath.Join(t.TempDir(), "kek")
	require.NoError(t, os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(k)+"\n"), 0o600))
	return path
}

// rawBlobs is the store beneath the sealing one: what a copy of the disk
// or the bucket holds.
func (b *testBundle) rawBlobs(t *testing.T) blob.Store {
	t.Helper()
	if b.cfg.S3Endpoint == "" {
		d, err := blob.NewDisk(filepath.Join(b.cfg.DataDir, "blobs"))
		require.NoError(t, err)
		return d
	}
	s, err := blob.NewS3(t.Context(), blob.S3Config{Endpoint: b.cfg.S3Endpoint, Bucket: b.cfg.S3Bucket,
		AccessKey: b.cfg.S3AccessKey, SecretKey: b.cfg.S3SecretKey, SpoolDir: t.TempDir()})
	require.NoError(t, err)
	return s
}

func rawCopy(t *testing.T, s blob.Store, prefix string) map[string][]byte {
	t.Helper()
	infos, err := s.List(t.Context(), prefix)
	require.NoError(t, err)
	out := map[string][]byte{}
	for _, info := range infos {
		rc, err := s.Get(t.Context(), info.Key)
		require.NoError(t, err)
		out[info.Key], err = io.ReadAll(rc)
		_ = rc.Close()
		require.NoError(t, err)
	}
	return out
}

// clearSignatures are what a recording, a cut, an archive or the minutes
// start with or hold in clear.
var clearSignatures = [][]byte{{0x1a, 0x45, 0xdf, 0xa3}, []byte("OpusHead"), []byte("OggS"), []byte("fLaC"), []byte(`"segments"`)}

func requireSealed(t *testing.T, what string, b []byte) {
	t.Helper()
	require.True(t, seal.IsSealed(b), "%s is not sealed", what)
	requireNoClearSignature(t, what, b)
}

func requireNoClearSignature(t *testing.T, what string, b []byte) {
	t.Helper()
	require.NotEmpty(t, b, what)
	require.NotEqual(t, byte('{'), b[0], "%s starts like JSON", what)
	for _, sig := range clearSignatures {
		require.False(t, bytes.Contains(b, sig), "%s holds %q in clear", what, sig)
	}
}

// download GETs an API path, with a Range header when rng is not empty.
func (b *testBundle) download(t *testing.T, path, rng string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", b.url+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+b.token)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, body, resp.Header
}

type sealedTrackList struct {
	Tracks []struct {
		ID, URL, SHA256 string
	} `json:"tracks"`
}

// meetingDownloads fetches every track and whole-meeting file of a meeting.
func (b *testBundle) meetingDownloads(t *testing.T, id string) map[string][]byte {
	t.Helper()
	var list sealedTrackList
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+id+"/tracks", nil, &list))
	require.NotEmpty(t, list.Tracks)
	out := map[string][]byte{}
	for _, tr := range list.Tracks {
		status, body, h := b.download(t, tr.URL, "")
		require.Equal(t, http.StatusOK, status, tr.URL)
		sum := sha256.Sum256(body)
		require.Equal(t, tr.SHA256, hex.EncodeToString(sum[:]), "the listed checksum is of the bytes downloaded")
		require.Equal(t, `"`+tr.SHA256+`"`, h.Get("ETag"))
		out[tr.URL] = body
	}
	for _, p := range []string{"/v1/meetings/" + id + "/archive.webm", "/v1/meetings/" + id + "/mix.flac", "/v1/meetings/" + id + "/minutes"} {
		status, body, _ := b.download(t, p, "")
		require.Equal(t, http.StatusOK, status, p)
		out[p] = body
	}
	return out
}

func TestEncryptedAtRestMeetingStoresNothingInClear(t *testing.T) {
	t.Parallel()
	for name, scaleOut := range map[string]bool{"sqlite+disk": false, "postgres+s3": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			kek := writeKEK(t)
			b := setup(t, setupOptions{scaleOut: scaleOut, configure: func(c *Config) { c.KEKFile = kek }})
			_, ready, _ := b.download(t, "/readyz", "")
			require.Contains(t, string(ready), "at rest: encrypted (AES-256-GCM per meeting")

			mt, now := b.holdMeeting(t, map[string]string{"alice": "Alice", "bob": "Bob"}, holdOptions{})
			require.Equal(t, "ready", now.State, "pipeline: %+v", now.Pipeline)
			require.Eventually(t, func() bool {
				var s string
				return b.call(t, "GET", "/v1/meetings/"+mt.id+"/mix.flac", nil, &s) == http.StatusOK
			}, 60*time.Second, 100*time.Millisecond)
			b.requireTracksDownloadClean(t, mt.id, 2)
			downloads := b.meetingDownloads(t, mt.id)

			raw := b.rawBlobs(t)
			stored := rawCopy(t, raw, "")
			kinds := map[string]bool{}
			for key, obj := range stored {
				if seal.MeetingOf(key) == "" {
					continue // the readiness probe's, outside every meeting
				}
				requireSealed(t, key, obj)
				kinds[strings.SplitN(strings.TrimPrefix(key, "meetings/"+mt.id+"/"), "/", 2)[0]] = true
			}
			for _, k := range []string{"tracks", "speech", "archive"} {
				require.True(t, kinds[k], "no %s object was stored: %v", k, kinds)
			}
			if !scaleOut {
				// The disk store's files themselves, besides its metadata
				// (which holds the sealed bytes' SHA-256 and length).
				root := filepath.Join(b.cfg.DataDir, "blobs")
				require.NoError(t, filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
					require.NoError(t, err)
					if d.IsDir() && d.Name() == ".meta" {
						return filepath.SkipDir
					}
					if d.IsDir() || !strings.HasPrefix(p, filepath.Join(root, "meetings")) {
						return nil
					}
					obj, err := os.ReadFile(p)
					require.NoError(t, err)
					requireSealed(t, p, obj)
					return nil
				}))
			}

			// Ranges equal slices of the whole download.
			for path, whole := range downloads {
				if !strings.Contains(path, "/tracks/") && !strings.HasSuffix(path, ".webm") {
					continue
				}
				n := len(whole)
				for _, r := range [][2]int{{0, 0}, {10, 4000}, {n / 2, n - 1}, {n - 7, n - 1}} {
					status, part, h := b.download(t, path, fmt.Sprintf("bytes=%d-%d", r[0], r[1]))
					require.Equal(t, http.StatusPartialContent, status, "%s %v", path, r)
					require.Equal(t, whole[r[0]:r[1]+1], part, "%s %v", path, r)
					require.Equal(t, fmt.Sprintf("bytes %d-%d/%d", r[0], r[1], n), h.Get("Content-Range"))
				}
			}

			// A damaged sealed track: its range is refused as damage, before
			// any byte, and the listing says so.
			var list sealedTrackList
			require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+mt.id+"/tracks", nil, &list))
			victim := "meetings/" + mt.id + "/tracks/" + list.Tracks[0].ID + ".webm"
			damaged := bytes.Clone(stored[victim])
			damaged[seal.HeaderSize+100] ^= 0x10
			_, err := raw.Put(t.Context(), victim, bytes.NewReader(damaged), int64(len(damaged)))
			require.NoError(t, err)
			status, body, _ := b.download(t, list.Tracks[0].URL, "bytes=50-150")
			require.Equal(t, http.StatusConflict, status, string(body))
			require.Contains(t, string(body), "damaged")
			_, err = raw.Put(t.Context(), victim, bytes.NewReader(stored[victim]), int64(len(stored[victim])))
			require.NoError(t, err)

			// Deletion: a copy of the store taken before it no longer opens.
			backup := rawCopy(t, raw, "")
			require.Equal(t, http.StatusAccepted, b.call(t, "DELETE", "/v1/meetings/"+mt.id, nil, nil))
			require.Eventually(t, func() bool {
				return b.call(t, "GET", "/v1/meetings/"+mt.id, nil, nil) == http.StatusNotFound
			}, 60*time.Second, 100*time.Millisecond)
			restored := 0
			for key, obj := range backup {
				if seal.MeetingOf(key) != mt.id {
					continue
				}
				_, err := raw.Put(t.Context(), key, bytes.NewReader(obj), int64(len(obj)))
				require.NoError(t, err)
				restored++
			}
			require.NotZero(t, restored)
			for key := range backup {
				if seal.MeetingOf(key) != mt.id {
					continue
				}
				_, err := b.app.blobs.Get(t.Context(), key)
				require.ErrorIs(t, err, seal.ErrNoKey, key)
			}
		})
	}
}

// Rotation at start: a new KEK, the old one named as previous, and every
// download is byte for byte what it was.
func TestKEKRotationAtStartKeepsEveryDownloadIdentical(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	oldKEK, newKEK := writeKEK(t), writeKEK(t)
	b := setup(t, setupOptions{dataDir: dir, configure: func(c *Config) { c.KEKFile = oldKEK }})
	mt, now := b.holdMeeting(t, map[string]string{"alice": "Alice", "bob": "Bob"}, holdOptions{})
	require.Equal(t, "ready", now.State)
	require.Eventually(t, func() bool {
		var s string
		return b.call(t, "GET", "/v1/meetings/"+mt.id+"/mix.flac", nil, &s) == http.StatusOK
	}, 60*time.Second, 100*time.Millisecond)
	before := b.meetingDownloads(t, mt.id)
	storedBefore := rawCopy(t, b.rawBlobs(t), "")
	b.stop(t)

	// The new key alone is refused, with what to do.
	cfg := b.cfg
	cfg.KEKFile = newKEK
	_, err := NewApp(t.Context(), cfg, b.app.log)
	require.ErrorContains(t, err, "kek-previous-file")

	b = setup(t, setupOptions{dataDir: dir, configure: func(c *Config) { c.KEKFile, c.KEKPreviousFile = newKEK, oldKEK }})
	require.Equal(t, before, b.meetingDownloads(t, mt.id))
	storedAfter := rawCopy(t, b.rawBlobs(t), "")
	for key, obj := range storedBefore {
		require.Equal(t, obj, storedAfter[key], "%s was rewritten", key)
	}
	b.stop(t)

	// Once re-wrapped, the new key alone serves.
	b = setup(t, setupOptions{dataDir: dir, configure: func(c *Config) { c.KEKFile = newKEK }})
	require.Equal(t, before, b.meetingDownloads(t, mt.id))
}
