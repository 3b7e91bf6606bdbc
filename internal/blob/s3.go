package blob

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/encrypt"

	"github.com/greffier/greffier/internal/backend"
)

// s3HashMeta is the user metadata key (x-amz-meta-sha256) that carries an
// object's SHA-256, lowercase hex.
const s3HashMeta = "Sha256"

// Presigned URL lifetimes S3 accepts.
const (
	MinPresignExpiry = time.Second
	MaxPresignExpiry = 7 * 24 * time.Hour
)

// S3 stores objects in one bucket of an S3-compatible service, keys
// unchanged, each with its SHA-256 as user metadata.
type S3 struct {
	cfg    S3Config
	client *minio.Client
}

var _ Store = (*S3)(nil)

// NewS3 connects to the bucket described by cfg, creating the bucket if it
// does not exist.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:       cfg.UseSSL,
		Region:       cfg.Region,
		BucketLookup: minio.BucketLookupPath,
		// minio's own retries (10 tries per request) would nest inside
		// the callers' (River's, the recorder's) and multiply the delays.
		MaxRetries: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("blob: S3 client for %s: %w", cfg.Endpoint, err)
	}
	if cfg.SpoolDir != "" {
		// Uploads from readers that cannot seek (sealed objects, for one)
		// are spooled there.
		if err := os.MkdirAll(cfg.SpoolDir, 0o700); err != nil {
			return nil, fmt.Errorf("blob: S3 upload spool: %w", err)
		}
	}
	s := &S3{cfg: cfg, client: client}
	if err := s.ensureBucket(ctx); err != nil {
		return nil, err
	}
	if cfg.SSEKMSKeyID != "" {
		if err := s.probeSSEKMS(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// sseKMSProbe is the object written once at start to learn whether the
// service honours SSE-KMS. It is removed right after.
const sseKMSProbe = "readyz/sse-kms-probe"

// probeSSEKMS stores a small object with SSE-KMS and checks that the
// service says it encrypted it. Some S3 services (versitygw's posix
// backend, for one) accept the header and store the bytes in clear: with
// them the setting would be a false promise, so it is refused.
func (s *S3) probeSSEKMS(ctx context.Context) error {
	sse, err := encrypt.NewSSEKMS(s.cfg.SSEKMSKeyID, nil)
	if err != nil {
		return fmt.Errorf("blob: SSE-KMS key %q: %w", s.cfg.SSEKMSKeyID, err)
	}
	if _, err := s.client.PutObject(ctx, s.cfg.Bucket, sseKMSProbe, strings.NewReader("probe"), 5,
		minio.PutObjectOptions{ServerSideEncryption: sse}); err != nil {
		return fmt.Errorf("blob: S3 bucket %q refused an object encrypted with SSE-KMS key %q: %w", s.cfg.Bucket, s.cfg.SSEKMSKeyID, err)
	}
	st, err := s.client.StatObject(ctx, s.cfg.Bucket, sseKMSProbe, minio.StatObjectOptions{})
	_ = s.client.RemoveObject(ctx, s.cfg.Bucket, sseKMSProbe, minio.RemoveObjectOptions{})
	if err != nil {
		return s.wrap("stat", sseKMSProbe, err)
	}
	if got := st.Metadata.Get("X-Amz-Server-Side-Encryption"); !strings.HasPrefix(got, "aws:kms") {
		return fmt.Errorf("blob: the S3 service at %s accepted SSE-KMS but does not say it applied it "+
			"(x-amz-server-side-encryption is %q): objects would be stored unencrypted; unset the SSE-KMS key id, "+
			"or use a service with a KMS", s.cfg.Endpoint, got)
	}
	return nil
}

func (s *S3) ensureBucket(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.cfg.Bucket)
	if err != nil {
		return fmt.Errorf("blob: S3 bucket %q at %s: %w", s.cfg.Bucket, s.cfg.Endpoint, err)
	}
	if ok {
		return nil
	}
	err = s.client.MakeBucket(ctx, s.cfg.Bucket, minio.MakeBucketOptions{Region: s.cfg.Region})
	if err != nil {
		var er minio.ErrorResponse
		if errors.As(err, &er) && (er.Code == "BucketAlreadyOwnedByYou" || er.Code == "BucketAlreadyExists") {
			return nil // created concurrently by another instance
		}
		return fmt.Errorf("blob: create S3 bucket %q at %s: %w", s.cfg.Bucket, s.cfg.Endpoint, err)
	}
	return nil
}

// Put hashes the data before uploading it, since S3 metadata is sent first:
// a seekable reader with ReadAt (a file, a bytes.Reader) is read twice, any
// other reader is spooled to a temporary file. Transient failures are
// retried with exponential backoff, the whole object each time.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64) (Info, error) {
	if err := ValidateKey(key); err != nil {
		return Info{}, err
	}
	body, sum, n, cleanup, err := s.prepare(ctx, key, r)
	if err != nil {
		return Info{}, err
	}
	defer cleanup()
	if size >= 0 && n != size {
		return Info{}, fmt.Errorf("blob: put %q: read %d bytes, caller announced %d", key, n, size)
	}
	opts := minio.PutObjectOptions{
		UserMetadata: map[string]string{s3HashMeta: sum},
		ContentType:  "application/octet-stream",
		PartSize:     s.cfg.PartSize,
	}
	if s.cfg.SSEKMSKeyID != "" {
		if opts.ServerSideEncryption, err = encrypt.NewSSEKMS(s.cfg.SSEKMSKeyID, nil); err != nil {
			return Info{}, fmt.Errorf("blob: put %q: SSE-KMS key %q: %w", key, s.cfg.SSEKMSKeyID, err)
		}
	}
	b := backend.Backoff{Base: s.cfg.RetryDelay, Max: MaxS3RetryDelay}
	attempt, err := b.Retry(ctx, s.cfg.MaxAttempts, func(ctx context.Context) error {
		// A fresh section per attempt: a failed attempt leaves its reader
		// anywhere, and minio-go only uploads parts in parallel from a
		// ReaderAt.
		_, err := s.client.PutObject(ctx, s.cfg.Bucket, key, io.NewSectionReader(body, 0, n), n, opts)
		return err
	}, func(err error) bool { return transient(ctx, err) }, func(attempt int, delay time.Duration, err error) {
		s.cfg.Logger.WarnContext(ctx, "blob: S3 put failed, retrying",
			"key", key, "attempt", attempt, "max_attempts", s.cfg.MaxAttempts, "delay", delay, "err", err)
	})
	if err != nil {
		return Info{}, fmt.Errorf("blob: put %q to S3 bucket %q (attempt %d of %d): %w", key, s.cfg.Bucket, attempt, s.cfg.MaxAttempts, err)
	}
	// The confirming HEAD gives the server's modification time and proves
	// the object is there before a caller deletes its local copy.
	info, err := s.Stat(ctx, key)
	if err != nil {
		return Info{}, fmt.Errorf("blob: put %q: confirm upload: %w", key, err)
	}
	return info, nil
}

// prepare returns a ReaderAt over exactly the bytes to upload, their
// SHA-256 and length, and a cleanup for any spool file.
func (s *S3) prepare(ctx context.Context, key string, r io.Reader) (body io.ReaderAt, sum string, n int64, cleanup func(), err error) {
	noop := func() {}
	if rs, ok := r.(interface {
		io.ReadSeeker
		io.ReaderAt
	}); ok {
		start, err := rs.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, "", 0, noop, fmt.Errorf("blob: put %q: %w", key, err)
		}
		hr := newHashingReader(ctx, rs)
		if _, err := io.Copy(io.Discard, hr); err != nil {
			return nil, "", 0, noop, fmt.Errorf("blob: put %q: hash: %w", key, err)
		}
		return io.NewSectionReader(rs, start, hr.n), hr.sum(), hr.n, noop, nil
	}
	f, err := os.CreateTemp(s.cfg.SpoolDir, "greffier-blob-*")
	if err != nil {
		return nil, "", 0, noop, fmt.Errorf("blob: put %q: spool file (set SpoolDir?): %w", key, err)
	}
	cleanup = func() {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}
	hr := newHashingReader(ctx, r)
	if _, err := io.Copy(f, hr); err != nil {
		cleanup()
		return nil, "", 0, noop, fmt.Errorf("blob: put %q: spool: %w", key, err)
	}
	return f, hr.sum(), hr.n, cleanup, nil
}

// transient reports whether a failed request is worth repeating.
func transient(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		switch er.Code {
		case "RequestError", "RequestTimeout", "Throttling", "ThrottlingException",
			"RequestLimitExceeded", "RequestThrottled", "InternalError", "SlowDown",
			"ServiceUnavailable":
			return true
		}
		switch er.StatusCode {
		case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
			http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	if errors.As(err, &unknownCA) || errors.As(err, &hostname) {
		return false
	}
	// Everything else is the transport failing (refused, reset, EOF
	// mid-body): the server may be back in a moment.
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// Get opens the object; its reader fails with ErrCorrupt at EOF if the
// bytes do not match the SHA-256 stored at Put.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	obj, err := s.client.GetObject(ctx, s.cfg.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.wrap("get", key, err)
	}
	// Stat sends the GET, so a missing key is reported here, not at the
	// first Read, and gives the metadata in the same round trip.
	st, err := obj.Stat()
	if err != nil {
		_ = obj.Close()
		return nil, s.wrap("get", key, err)
	}
	return newVerifyingReader(obj, key, st.UserMetadata[s3HashMeta]), nil
}

// Stat describes the object with one HEAD request.
func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	if err := ValidateKey(key); err != nil {
		return Info{}, err
	}
	st, err := s.client.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return Info{}, s.wrap("stat", key, err)
	}
	return Info{Key: key, Size: st.Size, SHA256: st.UserMetadata[s3HashMeta], Modified: st.LastModified}, nil
}

// Delete removes the object; S3 itself treats a missing key as success.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.cfg.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return s.wrap("delete", key, err)
	}
	return nil
}

// List returns the objects under prefix. S3 listings carry no user
// metadata, so each object costs one HEAD to fill in its SHA-256: fine for
// one meeting's objects, not for a whole bucket.
func (s *S3) List(ctx context.Context, prefix string) ([]Info, error) {
	if err := validatePrefix(prefix); err != nil {
		return nil, err
	}
	var out []Info
	for obj := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("blob: list %q in S3 bucket %q: %w", prefix, s.cfg.Bucket, obj.Err)
		}
		info, err := s.Stat(ctx, obj.Key)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, fmt.Errorf("blob: list %q: %w", prefix, err)
		}
		out = append(out, info)
	}
	return out, nil
}

// PresignGet returns a URL that downloads the object without credentials
// until expiry (MinPresignExpiry to MaxPresignExpiry) has passed. It does
// not check that the object exists.
func (s *S3) PresignGet(ctx context.Context, key string, expiry time.Duration) (*url.URL, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	if expiry < MinPresignExpiry || expiry > MaxPresignExpiry {
		return nil, fmt.Errorf("blob: presign %q: expiry %s outside S3's range %s to %s", key, expiry, MinPresignExpiry, MaxPresignExpiry)
	}
	u, err := s.client.PresignedGetObject(ctx, s.cfg.Bucket, key, expiry, nil)
	if err != nil {
		return nil, s.wrap("presign", key, err)
	}
	return u, nil
}

// AbortIncompleteUploads aborts the multipart uploads under prefix that a
// crashed process left behind, and returns how many it aborted. Call it at
// start-up, before this process begins uploads of its own: it cannot tell
// an abandoned upload from one in progress.
func (s *S3) AbortIncompleteUploads(ctx context.Context, prefix string) (int, error) {
	if err := validatePrefix(prefix); err != nil {
		return 0, err
	}
	// Collect first: removing while the listing pages would shift it.
	perKey := map[string]int{}
	var keys []string
	for u := range s.client.ListIncompleteUploads(ctx, s.cfg.Bucket, prefix, true) {
		if u.Err != nil {
			return 0, fmt.Errorf("blob: list incomplete uploads under %q: %w", prefix, u.Err)
		}
		if perKey[u.Key] == 0 {
			keys = append(keys, u.Key)
		}
		perKey[u.Key]++
	}
	n := 0
	for _, k := range keys {
		if err := s.client.RemoveIncompleteUpload(ctx, s.cfg.Bucket, k); err != nil {
			return n, fmt.Errorf("blob: abort incomplete uploads of %q: %w", k, err)
		}
		n += perKey[k]
	}
	return n, nil
}

func (s *S3) wrap(op, key string, err error) error {
	var er minio.ErrorResponse
	if errors.As(err, &er) && (er.Code == "NoSuchKey" || er.StatusCode == http.StatusNotFound && er.Code != "NoSuchBucket") {
		return fmt.Errorf("blob: %s %q: %w", op, key, ErrNotFound)
	}
	return fmt.Errorf("blob: %s %q in S3 bucket %q: %w", op, key, s.cfg.Bucket, err)
}

// DeletePrefix removes every object under prefix in batches (S3's
// multi-object delete), then aborts the unfinished multipart uploads there,
// which hold bytes too.
func (s *S3) DeletePrefix(ctx context.Context, prefix string) (int, error) {
	if prefix == "" {
		return 0, errors.New("blob: delete prefix: the empty prefix would delete everything")
	}
	if err := validatePrefix(prefix); err != nil {
		return 0, err
	}
	objects := make(chan minio.ObjectInfo)
	var listErr error
	go func() {
		defer close(objects)
		for obj := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if obj.Err != nil {
				listErr = obj.Err
				return
			}
			select {
			case objects <- obj:
			case <-ctx.Done():
				return
			}
		}
	}()
	n := 0
	var errs []error
	for res := range s.client.RemoveObjectsWithResult(ctx, s.cfg.Bucket, objects, minio.RemoveObjectsOptions{}) {
		if res.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", res.ObjectName, res.Err))
			continue
		}
		n++
	}
	if listErr != nil {
		errs = append(errs, listErr)
	}
	if err := errors.Join(errs...); err != nil {
		return n, fmt.Errorf("blob: delete prefix %q in S3 bucket %q: %w", prefix, s.cfg.Bucket, err)
	}
	if _, err := s.AbortIncompleteUploads(ctx, prefix); err != nil {
		return n, err
	}
	return n, ctx.Err()
}

var _ Ranger = (*S3)(nil)

// GetRange reads part of the object with one ranged GET, unverified.
func (s *S3) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	var opts minio.GetObjectOptions
	var err error
	switch {
	case n == 0:
		return io.NopCloser(strings.NewReader("")), nil
	case n > 0:
		err = opts.SetRange(off, off+n-1)
	case off > 0: // minio's (off, 0) is "from off to the end"
		err = opts.SetRange(off, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("blob: get %q: %w", key, err)
	}
	obj, err := s.client.GetObject(ctx, s.cfg.Bucket, key, opts)
	if err != nil {
		return nil, s.wrap("get", key, err)
	}
	if _, err := obj.Stat(); err != nil {
		_ = obj.Close()
		return nil, s.wrap("get", key, err)
	}
	return obj, nil
}
