package blob

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Defaults for S3Config, applied by WithDefaults.
const (
	// DefaultS3Region suits AWS's default region and servers that ignore it.
	DefaultS3Region = "us-east-1"
	// DefaultS3PartSize bounds the memory of one upload. minio-go would
	// otherwise size parts for a 5 TiB object and allocate 528 MiB buffers.
	DefaultS3PartSize uint64 = 16 << 20
	// MinS3PartSize is S3's smallest part (except the last one).
	MinS3PartSize uint64 = 5 << 20
	// DefaultS3MaxAttempts is how many times Put tries one object: once.
	// Its callers own their retries (River a job's, the recorder its
	// uploads'), so a failing server is not asked again at two levels; a
	// Put that is its caller's only chance may ask for more.
	DefaultS3MaxAttempts = 1
	// DefaultS3RetryDelay is the first pause between Put attempts; it
	// doubles after each failure up to MaxS3RetryDelay, jittered down by
	// up to half (backend.Backoff).
	DefaultS3RetryDelay = 500 * time.Millisecond
	// MaxS3RetryDelay caps the pause between Put attempts.
	MaxS3RetryDelay = 15 * time.Second
)

// S3Config says how to reach an S3-compatible bucket.
type S3Config struct {
	// Endpoint is host:port of the S3 API, without scheme (e.g.
	// "s3.eu-west-3.amazonaws.com" or "127.0.0.1:7070"). Required.
	Endpoint string
	// Bucket holds all objects; NewS3 creates it if missing. Required.
	Bucket string
	// AccessKey and SecretKey are static credentials. Required.
	AccessKey string
	SecretKey string
	// Region defaults to DefaultS3Region.
	Region string
	// UseSSL selects https. Default false (plain http, for loopback).
	UseSSL bool
	// PartSize is the multipart part size in bytes: objects larger than it
	// go up in parts, each buffered in memory at most once. Default
	// DefaultS3PartSize; at least MinS3PartSize.
	PartSize uint64
	// SpoolDir holds temporary copies of uploads whose reader cannot seek
	// (the SHA-256 must be known before the upload starts). Default
	// os.TempDir().
	SpoolDir string
	// MaxAttempts is how many times Put tries before giving up on transient
	// errors (network, 5xx, throttling). Default DefaultS3MaxAttempts.
	MaxAttempts int
	// RetryDelay is the first pause between Put attempts. Default
	// DefaultS3RetryDelay.
	RetryDelay time.Duration
	// Logger receives retry warnings. Default slog.Default().
	Logger *slog.Logger
	// SSEKMSKeyID, when set, asks the S3 service to encrypt every object
	// it stores with this KMS key (SSE-KMS). Reads need nothing more: the
	// service decrypts for whoever may read the object.
	SSEKMSKeyID string
}

// WithDefaults returns a copy with every unset field at its default.
func (c S3Config) WithDefaults() S3Config {
	if c.Region == "" {
		c.Region = DefaultS3Region
	}
	if c.PartSize == 0 {
		c.PartSize = DefaultS3PartSize
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultS3MaxAttempts
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = DefaultS3RetryDelay
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c S3Config) validate() error {
	var errs []error
	if c.Endpoint == "" {
		errs = append(errs, errors.New("empty Endpoint: set host:port of the S3 API"))
	}
	if c.Bucket == "" {
		errs = append(errs, errors.New("empty Bucket: set the bucket name"))
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		errs = append(errs, errors.New("missing AccessKey or SecretKey: set both"))
	}
	if c.PartSize < MinS3PartSize {
		errs = append(errs, fmt.Errorf("PartSize %d is below S3's minimum part size %d", c.PartSize, MinS3PartSize))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("MaxAttempts %d must be at least 1", c.MaxAttempts))
	}
	if c.RetryDelay < 0 {
		errs = append(errs, fmt.Errorf("RetryDelay %s must not be negative", c.RetryDelay))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("blob: S3 config: %w", err)
	}
	return nil
}
