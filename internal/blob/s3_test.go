package blob_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/blob/blobtest"
	"github.com/greffier/greffier/internal/testenv"
)

// s3UnderTest corrupts objects by rewriting them with minio directly,
// keeping the SHA-256 metadata our store wrote.
type s3UnderTest struct {
	*blob.S3
	raw    *minio.Client
	bucket string
}

func (s s3UnderTest) Corrupt(t *testing.T, key string) {
	ctx := context.Background()
	st, err := s.raw.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, st.UserMetadata["Sha256"], "store wrote no sha256 metadata")
	obj, err := s.raw.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	require.NoError(t, err)
	data, err := io.ReadAll(obj)
	require.NoError(t, err)
	data[10] ^= 0xff
	_, err = s.raw.PutObject(ctx, s.bucket, key, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{UserMetadata: map[string]string{"Sha256": st.UserMetadata["Sha256"]}})
	require.NoError(t, err)
}

func rawClient(t *testing.T, cfg blob.S3Config) *minio.Client {
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Region:       cfg.Region,
		BucketLookup: minio.BucketLookupPath,
	})
	require.NoError(t, err)
	return c
}

func openS3(t *testing.T) blob.Store {
	cfg := testenv.S3(t)
	s, err := blob.NewS3(context.Background(), cfg)
	require.NoError(t, err)
	return s3UnderTest{S3: s, raw: rawClient(t, cfg), bucket: cfg.Bucket}
}

func TestS3Conformance(t *testing.T) {
	t.Parallel()
	blobtest.RunConformance(t, openS3)
}

func TestNewS3CreatesBucket(t *testing.T) {
	t.Parallel()
	cfg := testenv.S3(t)
	cfg.Bucket += "-new"
	ctx := context.Background()
	_, err := blob.NewS3(ctx, cfg)
	require.NoError(t, err)
	ok, err := rawClient(t, cfg).BucketExists(ctx, cfg.Bucket)
	require.NoError(t, err)
	require.True(t, ok)
	_, err = blob.NewS3(ctx, cfg) // again: existing bucket is fine
	require.NoError(t, err)
}

func TestS3ConfigValidation(t *testing.T) {
	t.Parallel()
	_, err := blob.NewS3(context.Background(), blob.S3Config{PartSize: 1 << 20})
	require.ErrorContains(t, err, "Endpoint")
	require.ErrorContains(t, err, "Bucket")
	require.ErrorContains(t, err, "AccessKey")
	require.ErrorContains(t, err, "PartSize")

	d := blob.S3Config{}.WithDefaults()
	require.Equal(t, blob.DefaultS3PartSize, d.PartSize)
	require.Equal(t, uint64(16<<20), d.PartSize)
	require.Equal(t, blob.DefaultS3Region, d.Region)
	require.Equal(t, blob.DefaultS3MaxAttempts, d.MaxAttempts)
}

func TestS3PresignGet(t *testing.T) {
	t.Parallel()
	s := openS3(t).(s3UnderTest)
	ctx := context.Background()
	_, err := s.Put(ctx, "archive/m.zip", strings.NewReader("zip bytes"), -1)
	require.NoError(t, err)

	u, err := s.PresignGet(ctx, "archive/m.zip", time.Minute)
	require.NoError(t, err)
	resp, err := http.Get(u.String())
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "zip bytes", string(b))

	for _, d := range []time.Duration{0, time.Millisecond, 8 * 24 * time.Hour} {
		_, err := s.PresignGet(ctx, "archive/m.zip", d)
		require.ErrorContains(t, err, "expiry", "expiry %s", d)
	}
}

func TestS3AbortIncompleteUploads(t *testing.T) {
	t.Parallel()
	s := openS3(t).(s3UnderTest)
	ctx := context.Background()
	core := &minio.Core{Client: s.raw}
	for _, k := range []string{"crashed/a", "crashed/a", "crashed/b", "other/c"} {
		id, err := core.NewMultipartUpload(ctx, s.bucket, k, minio.PutObjectOptions{})
		require.NoError(t, err)
		_, err = core.PutObjectPart(ctx, s.bucket, k, id, 1, strings.NewReader("part"), 4, minio.PutObjectPartOptions{})
		require.NoError(t, err)
	}
	n, err := s.AbortIncompleteUploads(ctx, "crashed/")
	require.NoError(t, err)
	require.Equal(t, 3, n)

	var left []string
	for u := range s.raw.ListIncompleteUploads(ctx, s.bucket, "", true) {
		require.NoError(t, u.Err)
		left = append(left, u.Key)
	}
	require.Equal(t, []string{"other/c"}, left)

	n, err = s.AbortIncompleteUploads(ctx, "crashed/")
	require.NoError(t, err)
	require.Zero(t, n)
}

// recordingHandler lets a test wait for the store's retry warning.
type recordingHandler struct {
	mu      sync.Mutex
	retries int
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "retrying") {
		h.mu.Lock()
		h.retries++
		h.mu.Unlock()
	}
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }
func (h *recordingHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.retries
}

func TestS3PutRetriesAcrossServerRestart(t *testing.T) {
	t.Parallel()
	srv := testenv.StartS3Server(t)
	h := &recordingHandler{}
	cfg := srv.Config()
	cfg.Logger = slog.New(h)
	cfg.MaxAttempts = 1000 // bounded by the test's context instead
	cfg.RetryDelay = 20 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := blob.NewS3(ctx, cfg)
	require.NoError(t, err)

	require.NoError(t, srv.Stop())
	data := bytes.Repeat([]byte("audio"), 1000)
	done := make(chan error, 1)
	go func() {
		_, err := s.Put(ctx, "after/restart", bytes.NewReader(data), int64(len(data)))
		done <- err
	}()
	require.Eventually(t, func() bool { return h.count() >= 2 }, 20*time.Second, 10*time.Millisecond,
		"Put did not retry while the server was down")
	require.NoError(t, srv.Start())
	require.NoError(t, <-done)

	st, err := s.Stat(ctx, "after/restart")
	require.NoError(t, err)
	sum := sha256.Sum256(data)
	require.Equal(t, hex.EncodeToString(sum[:]), st.SHA256)
}

func TestS3PutGivesUpOnPermanentErrors(t *testing.T) {
	t.Parallel()
	srv := testenv.StartS3Server(t)
	h := &recordingHandler{}
	cfg := srv.NewBucket(t)
	cfg.Logger = slog.New(h)
	ctx := context.Background()
	s, err := blob.NewS3(ctx, cfg)
	require.NoError(t, err)

	// The bucket vanishes behind the store's back: NoSuchBucket will not
	// heal by itself, so Put must fail at once instead of retrying.
	require.NoError(t, os.RemoveAll(filepath.Join(srv.DataDir(), cfg.Bucket)))
	_, err = s.Put(ctx, "k", strings.NewReader("x"), 1)
	require.ErrorContains(t, err, "attempt 1 of")
	require.Zero(t, h.count())
}

func TestS3BigObjectGoesUpInParts(t *testing.T) {
	t.Parallel()
	s := openS3(t).(s3UnderTest)
	ctx := context.Background()
	data := bytes.Repeat([]byte{7}, blobtest.BigSize)
	_, err := s.Put(ctx, "big", io.MultiReader(bytes.NewReader(data)), -1)
	require.NoError(t, err)
	st, err := s.raw.StatObject(ctx, s.bucket, "big", minio.StatObjectOptions{})
	require.NoError(t, err)
	// A multipart object's ETag ends in "-<number of parts>".
	require.True(t, strings.HasSuffix(st.ETag, "-3"), "ETag %q: want a 3-part upload at PartSize %d", st.ETag, blob.MinS3PartSize)
}

// versitygw's posix backend accepts SSE-KMS headers and stores the bytes in
// clear: a store configured for SSE-KMS must refuse it rather than promise
// encryption it does not get.
func TestS3RefusesSSEKMSTheServiceIgnores(t *testing.T) {
	cfg := testenv.S3(t)
	cfg.SSEKMSKeyID = "arn:aws:kms:us-east-1:000000000000:key/greffier-test"
	_, err := blob.NewS3(t.Context(), cfg)
	require.ErrorContains(t, err, "does not say it applied it")
	require.ErrorContains(t, err, "stored unencrypted")
}
