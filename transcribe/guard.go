package transcribe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/greffier/greffier/internal/backend"
)

// Defaults of GuardConfig.
const (
	DefaultGuardName        = "transcription backend"
	DefaultGuardConcurrency = 4
	DefaultBreakerThreshold = 5
	DefaultBreakerCoolDown  = 30 * time.Second
)

var (
	// ErrBackendDown means Guard's circuit breaker is open: the backend
	// failed BreakerThreshold times in a row and is not called until its
	// cool-down ends. The error is a *BackendDownError, which also wraps
	// the last failure. Reschedule the work for BackendDownError.Until
	// instead of spending an attempt on it.
	ErrBackendDown = errors.New("transcription backend is down")
	// ErrEmptyTranscript means the backend heard nothing in audio the
	// caller said holds speech (Request.ExpectSpeech). It wraps
	// ErrBadAnswer.
	ErrEmptyTranscript = fmt.Errorf("%w: empty transcript of audio that holds speech", ErrBadAnswer)
)

// BackendDownError is what Guard returns while its breaker is open.
type BackendDownError struct {
	// Backend is GuardConfig.Name.
	Backend string
	// Until is when the breaker lets a probe call through; it may have
	// passed while another call is that probe.
	Until time.Time
	// Cause is the last failure before the breaker opened.
	Cause error
}

func (e *BackendDownError) Error() string {
	return fmt.Sprintf("%s is down, not called until %s; last failure: %v",
		e.Backend, e.Until.Format(time.RFC3339), e.Cause)
}

// Unwrap makes errors.Is(err, ErrBackendDown) true and keeps the cause
// (often an *HTTPError) reachable with errors.As.
func (e *BackendDownError) Unwrap() []error {
	if e.Cause == nil {
		return []error{ErrBackendDown}
	}
	return []error{ErrBackendDown, e.Cause}
}

// Clock is the time Guard's breaker runs on; tests give it a fake one.
type Clock interface {
	Now() time.Time
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// GuardConfig configures a Guard. The zero value is usable.
type GuardConfig struct {
	// Name names the backend in errors and logs. Default: DefaultGuardName.
	Name string
	// Concurrency is how many calls may be in flight at once; more wait
	// for a permit (or for their context). Default: DefaultGuardConcurrency.
	Concurrency int
	// TimeoutBase and TimeoutFactor bound each attempt: base + factor x
	// the audio's duration. Defaults: DefaultTimeoutBase and
	// DefaultTimeoutFactor.
	TimeoutBase   time.Duration
	TimeoutFactor float64
	// BreakerThreshold is how many failed attempts in a row open the
	// breaker. Default: DefaultBreakerThreshold.
	BreakerThreshold int
	// BreakerCoolDown is how long the breaker stays open before one probe
	// call may test the backend. Default: DefaultBreakerCoolDown.
	BreakerCoolDown time.Duration
	// Clock is the breaker's clock (not the attempt timeouts', which are
	// context deadlines). Default: real time.
	Clock Clock
	// Logger gets breaker changes. Default: discards.
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with every unset field at its default.
// Zero or negative numbers count as unset, so that NewGuard can never be
// handed a guard that does not work; Validate reports such values instead.
func (c GuardConfig) WithDefaults() GuardConfig {
	if c.Name == "" {
		c.Name = DefaultGuardName
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultGuardConcurrency
	}
	if c.TimeoutBase <= 0 {
		c.TimeoutBase = DefaultTimeoutBase
	}
	if c.TimeoutFactor <= 0 || math.IsNaN(c.TimeoutFactor) || math.IsInf(c.TimeoutFactor, 0) {
		c.TimeoutFactor = DefaultTimeoutFactor
	}
	if c.BreakerThreshold <= 0 {
		c.BreakerThreshold = DefaultBreakerThreshold
	}
	if c.BreakerCoolDown <= 0 {
		c.BreakerCoolDown = DefaultBreakerCoolDown
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports the values of a user-supplied config that
// WithDefaults would replace rather than use, naming each field.
func (c GuardConfig) Validate() error {
	var errs []string
	for _, f := range []struct {
		name string
		bad  bool
	}{
		{"Concurrency", c.Concurrency < 0},
		{"TimeoutBase", c.TimeoutBase < 0},
		{"TimeoutFactor", c.TimeoutFactor < 0 || math.IsNaN(c.TimeoutFactor) || math.IsInf(c.TimeoutFactor, 0)},
		{"BreakerThreshold", c.BreakerThreshold < 0},
		{"BreakerCoolDown", c.BreakerCoolDown < 0},
	} {
		if f.bad {
			errs = append(errs, f.name)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("transcribe: GuardConfig: %s must be positive (or 0 for the default)", strings.Join(errs, ", "))
	}
	return nil
}

// BreakerState is the state of Guard's circuit breaker.
type BreakerState int

const (
	// BreakerClosed lets every call through.
	BreakerClosed BreakerState = iota
	// BreakerOpen fails every call with ErrBackendDown until the cool-down ends.
	BreakerOpen
	// BreakerHalfOpen lets one probe call through; its outcome closes or
	// reopens the breaker.
	BreakerHalfOpen
)

func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("BreakerState(%d)", int(s))
}

// GuardStats is a snapshot of a Guard, for metrics and status pages.
type GuardStats struct {
	State BreakerState
	// OpenUntil is when an open breaker lets a probe through.
	OpenUntil time.Time
	// ConsecutiveFailures is the count of failed attempts in a row.
	ConsecutiveFailures int
	// InFlight are attempts running; Waiting are calls waiting for a permit.
	InFlight, Waiting int
	// Calls are Transcribe calls; Attempts are calls to the backend (at
	// most one per Transcribe); Successes and Failures are calls that
	// returned a result or an error other than ErrBackendDown; Rejected
	// are calls failed fast by the breaker, or whose failure opened it;
	// Opened is how often the breaker opened.
	Calls, Attempts, Successes, Failures, Rejected, Opened int64
	// LastFailure is the last failed attempt's error, nil if none yet.
	LastFailure error
}

// Guard wraps any Transcriber with what every backend needs to survive
// real servers: a concurrency limit, attempt timeouts scaled to the
// audio, answer checks, and a circuit breaker so that a dead backend fails
// calls fast (ErrBackendDown) instead of using up every job's attempts. It
// is safe for concurrent use; use one Guard per backend.
//
// Guard does not retry: each Transcribe calls the backend at most once, so
// that the job layer owns every retry (its attempts, with backoff, and its
// snoozes: see SnoozeFor) and a failing backend is hit once per attempt.
//
// An attempt counts as a failure for the breaker when its error is
// temporary (an error with a Temporary method saying true, such as
// *HTTPError, or an attempt timeout); any answer from the backend, even
// a refusal or a bad transcript, shows it is up. A cancelled caller
// counts as neither.
type Guard struct {
	inner   Transcriber
	cfg     GuardConfig
	permits chan struct{} // one per call in flight, up to Concurrency

	mu          sync.Mutex
	state       BreakerState
	openUntil   time.Time
	probing     bool
	consecutive int
	lastFailure error
	stats       GuardStats
}

var _ Transcriber = (*Guard)(nil)

// NewGuard wraps inner with cfg.WithDefaults(); check user-supplied
// configuration with cfg.Validate first.
func NewGuard(inner Transcriber, cfg GuardConfig) *Guard {
	cfg = cfg.WithDefaults()
	return &Guard{inner: inner, cfg: cfg, permits: make(chan struct{}, cfg.Concurrency)}
}

// Stats returns a snapshot of the guard's state and counters.
func (g *Guard) Stats() GuardStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.stats
	s.State, s.OpenUntil, s.ConsecutiveFailures, s.LastFailure = g.state, g.openUntil, g.consecutive, g.lastFailure
	return s
}

// Transcribe calls the backend once, as described on Guard. Besides the
// inner backend's errors it returns a *BackendDownError (ErrBackendDown)
// while the breaker is open or when this call's failure opened it (it
// wraps that failure), ErrEmptyTranscript, and ErrBadAnswer for answers
// whose times are out of the audio or out of order. An *HTTPError in the
// error keeps its Temporary and RetryAfter for the caller to reschedule.
func (g *Guard) Transcribe(ctx context.Context, req Request) (Result, error) {
	g.count(func(s *GuardStats) { s.Calls++ })
	audio := req.Duration
	if audio <= 0 {
		if d, err := audioDuration(req.Audio); err == nil {
			audio = d
		}
	}
	res, err := g.attempt(ctx, req, audio)
	if err == nil {
		g.count(func(s *GuardStats) { s.Successes++ })
		return res, nil
	}
	if errors.Is(err, ErrBackendDown) {
		g.count(func(s *GuardStats) { s.Rejected++ })
		return Result{}, fmt.Errorf("transcribe: %w", err)
	}
	if ctx.Err() == nil && temporary(err) {
		if _, down := g.admit(false); down != nil {
			// This failure opened the breaker: the caller's retry would
			// only meet it, so it is told to wait out the cool-down.
			g.count(func(s *GuardStats) { s.Rejected++ })
			return Result{}, fmt.Errorf("transcribe: %w", down)
		}
	}
	g.count(func(s *GuardStats) { s.Failures++ })
	return Result{}, fmt.Errorf("transcribe: %s: %w", g.cfg.Name, err)
}

// attempt makes one call to the backend, holding a permit for just that
// call.
func (g *Guard) attempt(ctx context.Context, req Request, audio time.Duration) (Result, error) {
	if _, err := g.admit(false); err != nil {
		return Result{}, err // fail fast rather than queue behind a dead backend
	}
	g.count(func(s *GuardStats) { s.Waiting++ })
	select {
	case g.permits <- struct{}{}:
		g.count(func(s *GuardStats) { s.Waiting-- })
	case <-ctx.Done():
		g.count(func(s *GuardStats) { s.Waiting-- })
		return Result{}, fmt.Errorf("waiting for a free permit: %w", context.Cause(ctx))
	}
	defer func() { <-g.permits }()
	// Admit again: the breaker may have opened while this call waited,
	// and only now does it claim the half-open probe.
	probe, err := g.admit(true)
	if err != nil {
		return Result{}, err
	}
	g.count(func(s *GuardStats) {
		s.Attempts++
		s.InFlight++
	})
	timeout := g.cfg.TimeoutBase + time.Duration(g.cfg.TimeoutFactor*float64(audio))
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	res, err := g.inner.Transcribe(callCtx, req)
	if err != nil && ctx.Err() == nil && callCtx.Err() != nil && !temporary(err) {
		// The backend did not answer within the attempt's deadline; to
		// the caller that is a slow backend, not its own cancellation.
		err = &HTTPError{Backend: backendName, Timeout: true, Err: fmt.Errorf("attempt deadline of %v passed: %w", timeout, err)}
	}
	cancel()
	if err == nil {
		err = checkResult(res, audio, req.ExpectSpeech)
	}
	g.record(ctx, probe, err)
	return res, err
}

// admit applies the breaker. Only a call holding a permit (claim) may
// become the half-open probe; probe says it did.
func (g *Guard) admit(claim bool) (probe bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.cfg.Clock.Now()
	switch g.state {
	case BreakerOpen:
		if now.Before(g.openUntil) {
			return false, g.downLocked(g.openUntil)
		}
		if !claim {
			return false, nil
		}
		g.state = BreakerHalfOpen
		fallthrough
	case BreakerHalfOpen:
		if g.probing {
			return false, g.downLocked(now)
		}
		if claim {
			g.probing = true
			g.cfg.Logger.Info("probing transcription backend", "backend", g.cfg.Name)
			return true, nil
		}
	}
	return false, nil
}

func (g *Guard) downLocked(until time.Time) error {
	return &BackendDownError{Backend: g.cfg.Name, Until: until, Cause: g.lastFailure}
}

// record feeds an attempt's outcome to the breaker.
func (g *Guard) record(ctx context.Context, probe bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stats.InFlight--
	if probe {
		g.probing = false
	}
	switch {
	case err != nil && (ctx.Err() != nil || errors.Is(err, ErrInvalidRequest)):
		// Says nothing of the backend; a half-open breaker waits for the
		// next probe.
	case err != nil && temporary(err):
		g.consecutive++
		g.lastFailure = err
		if probe || (g.state == BreakerClosed && g.consecutive >= g.cfg.BreakerThreshold) {
			g.state = BreakerOpen
			g.openUntil = g.cfg.Clock.Now().Add(g.cfg.BreakerCoolDown)
			g.stats.Opened++
			g.cfg.Logger.Warn("transcription backend down: breaker open", "backend", g.cfg.Name,
				"failures", g.consecutive, "until", g.openUntil, "err", err)
		}
	default:
		g.consecutive = 0
		if g.state != BreakerClosed {
			g.state = BreakerClosed
			g.cfg.Logger.Info("transcription backend back: breaker closed", "backend", g.cfg.Name)
		}
	}
}

func (g *Guard) count(f func(*GuardStats)) {
	g.mu.Lock()
	f(&g.stats)
	g.mu.Unlock()
}

// temporary reports whether err says the same request may succeed later.
// Context errors are not: context.DeadlineExceeded says Temporary, but
// whose deadline passed is for the caller to tell.
func temporary(err error) bool {
	if he, ok := errors.AsType[*HTTPError](err); ok {
		return he.Temporary()
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// checkResult applies to every backend the checks the OpenAI decoder
// makes of its own answers, so that a backend without them cannot hand
// the pipeline words out of the audio or out of order.
func checkResult(res Result, audio time.Duration, expectSpeech bool) error {
	if expectSpeech && strings.TrimSpace(res.Text) == "" && len(res.Words) == 0 {
		return ErrEmptyTranscript
	}
	limit := audio
	if limit <= 0 {
		limit = res.Duration
	}
	check := func(what string, i int, text string, start, end, last time.Duration) error {
		switch {
		case start < 0 || end < start:
			return fmt.Errorf("%w: %s %d %q spans %v-%v", ErrBadAnswer, what, i, text, start, end)
		case limit > 0 && end > limit+timeSlack:
			return fmt.Errorf("%w: %s %d %q ends at %v, after the audio's %v", ErrBadAnswer, what, i, text, end, limit)
		case start < last:
			return fmt.Errorf("%w: %s %d %q starts at %v, before the previous one at %v", ErrBadAnswer, what, i, text, start, last)
		}
		return nil
	}
	var last time.Duration
	for i, s := range res.Phrases {
		if err := check("phrase", i, s.Text, s.Start, s.End, last); err != nil {
			return err
		}
		last = s.Start
	}
	last = 0
	for i, w := range res.Words {
		if err := check("word", i, w.Text, w.Start, w.End, last); err != nil {
			return err
		}
		last = w.Start
	}
	return nil
}

// minSnooze keeps SnoozeFor from asking for a busy loop while another
// call is the breaker's probe.
const minSnooze = time.Second

// SnoozeFor tells a job layer how long to put err's work aside without
// counting it as a failed attempt: until the breaker lets a probe through
// (ErrBackendDown), or the server's Retry-After (a temporary *HTTPError
// that sent one), never less, lengthened by up to a tenth so that the
// work it turned away does not come back at one instant. ok is false for
// every other error, which deserves an attempt.
func SnoozeFor(err error, now time.Time) (d time.Duration, ok bool) {
	if down, isDown := errors.AsType[*BackendDownError](err); isDown {
		return max(down.Until.Sub(now), minSnooze), true
	}
	if he, isHTTP := errors.AsType[*HTTPError](err); isHTTP && he.Temporary() && he.RetryAfter > 0 {
		return backend.Jitter(he.RetryAfter), true
	}
	return 0, false
}
