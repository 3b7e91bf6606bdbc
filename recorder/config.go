package recorder

import (
	"errors"
	"time"

	"github.com/greffier/greffier/internal/store"
)

// Defaults for Config's zero fields.
const (
	DefaultFlushInterval   = time.Second
	DefaultUploadTimeout   = 5 * time.Minute
	DefaultRetryBackoff    = 200 * time.Millisecond
	DefaultMaxRetryBackoff = 30 * time.Second
	DefaultTimestampSlack  = 5 * time.Second
	DefaultFinishTimeout   = 10 * time.Second
	// DefaultCheckpointInterval bounds what losing the spool disk costs.
	DefaultCheckpointInterval = 2 * time.Minute
	// DefaultMinFreeBytes is about 17 hours of one 32 kbit/s track, or
	// 7 minutes of 150 of them: enough to finish what is open.
	DefaultMinFreeBytes = 256 << 20
	// DefaultSenderClockSkew is the most a sender's wall clock may
	// disagree with ours (network delay included) for its RTCP sender
	// reports to place the track.
	DefaultSenderClockSkew = time.Second
	// DefaultMaxConcealedLoss is ten 20 ms packets: a decoder conceals a
	// packet or two of loss unheard, while a fifth of a second can hold a
	// short word.
	DefaultMaxConcealedLoss = 200 * time.Millisecond
)

// Config configures a Recorder.
type Config struct {
	// SpoolDir holds tracks while they are recorded, as
	// <meeting>/<track>.webm plus a small <track>.json for recovery.
	// Required; created if missing.
	SpoolDir string
	// SpoolKeys, when set, encrypts every spool file and sidecar with its
	// meeting's key (nil: spool in clear).
	SpoolKeys SpoolKeys
	// FlushInterval is how often buffered spool bytes are written to the
	// file, so a crash loses at most about this much audio. Default 1s.
	FlushInterval time.Duration
	// UploadTimeout bounds one attempt to Put a track to blob storage.
	// Default 5m.
	UploadTimeout time.Duration
	// RetryBackoff is the first wait after a failed Put; it doubles up to
	// MaxRetryBackoff, jittered down by up to half (backend.Backoff).
	// Defaults 200ms and 30s.
	RetryBackoff    time.Duration
	MaxRetryBackoff time.Duration
	// TimestampSlack is how far a packet's RTP time may run ahead of the
	// wall clock (or behind the newest packet) before it is treated as
	// corrupt rather than as a gap. Default 5s.
	TimestampSlack time.Duration
	// FinishTimeout bounds marking a track failed after the caller's
	// context has ended, so the failure is still recorded. Default 10s.
	FinishTimeout time.Duration
	// CheckpointInterval is how often the audio spooled since the last
	// checkpoint is uploaded as a small standalone WebM chunk, so that
	// losing the machine's disk mid-meeting loses at most about this
	// much; Recover rebuilds such a track from its chunks. Default 2m;
	// negative disables checkpoints.
	CheckpointInterval time.Duration
	// MinFreeBytes is the free space SpoolDir's file system must have for
	// Open to start a track (a full disk fails loudly before a meeting,
	// not silently in its middle). Default 256 MiB; negative disables
	// the check.
	MinFreeBytes int64
	// SenderClockSkew is how far the track start given by RTCP sender
	// reports may lie from the one given by the first packet's arrival
	// before the sender's wall clock is distrusted and arrival kept.
	// Default 1s.
	SenderClockSkew time.Duration
	// MaxConcealedLoss is the longest stretch of audio lost in the
	// network (consecutive packets that never arrived, or arrived too late
	// to be put back in order) left to the decoder's concealment; a
	// longer one is stated as a gap of the track, so the minutes do not
	// claim to hold what was said in it. Default 200ms.
	MaxConcealedLoss time.Duration
	// Now is the clock packets' arrival is read from. Default time.Now.
	Now func() time.Time
	// Listen, when set, is asked for a Listener for each track once the
	// track's place on the meeting clock is known (its first block); the
	// Listener then hears every block as it is written, and codecDelay is
	// the Opus pre-skip written in the file. Default none.
	Listen func(t store.Track, codecDelay time.Duration) Listener
}

// WithDefaults returns a copy of c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.UploadTimeout == 0 {
		c.UploadTimeout = DefaultUploadTimeout
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	if c.MaxRetryBackoff == 0 {
		c.MaxRetryBackoff = DefaultMaxRetryBackoff
	}
	if c.TimestampSlack == 0 {
		c.TimestampSlack = DefaultTimestampSlack
	}
	if c.FinishTimeout == 0 {
		c.FinishTimeout = DefaultFinishTimeout
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = DefaultCheckpointInterval
	}
	if c.MinFreeBytes == 0 {
		c.MinFreeBytes = DefaultMinFreeBytes
	}
	if c.SenderClockSkew == 0 {
		c.SenderClockSkew = DefaultSenderClockSkew
	}
	if c.MaxConcealedLoss == 0 {
		c.MaxConcealedLoss = DefaultMaxConcealedLoss
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.SpoolDir == "" {
		errs = append(errs, errors.New("recorder: SpoolDir is required: set it to a directory on local disk (e.g. <data>/spool)"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"FlushInterval", c.FlushInterval}, {"UploadTimeout", c.UploadTimeout},
		{"RetryBackoff", c.RetryBackoff}, {"MaxRetryBackoff", c.MaxRetryBackoff},
		{"TimestampSlack", c.TimestampSlack}, {"FinishTimeout", c.FinishTimeout},
		{"SenderClockSkew", c.SenderClockSkew}, {"MaxConcealedLoss", c.MaxConcealedLoss},
	} {
		if d.v < 0 {
			errs = append(errs, errors.New("recorder: "+d.name+" must not be negative (0 means the default)"))
		}
	}
	if c.MaxRetryBackoff < c.RetryBackoff {
		errs = append(errs, errors.New("recorder: MaxRetryBackoff must be at least RetryBackoff"))
	}
	return errors.Join(errs...)
}
