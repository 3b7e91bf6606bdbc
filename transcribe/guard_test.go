package transcribe_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/transcribe"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

// fakeClock is the breaker's time, moved by the test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type guardBundle struct {
	srv   *transcribetest.Server
	clock *fakeClock
	guard *transcribe.Guard
}

// setupGuard runs a Guard with a fake clock over an OpenAI backend over
// the double; cfg's Clock and openai's BaseURL are filled in.
func setupGuard(t *testing.T, opts transcribetest.Options, openai transcribe.OpenAIConfig, cfg transcribe.GuardConfig) *guardBundle {
	t.Helper()
	srv := transcribetest.NewServer(opts)
	t.Cleanup(srv.Close)
	if openai.BaseURL == "" {
		openai.BaseURL = srv.BaseURL()
		if opts.Path != "" {
			openai.BaseURL, openai.Path = srv.URL(), opts.Path
		}
	}
	tr, err := transcribe.NewOpenAI(openai)
	require.NoError(t, err)
	clock := newFakeClock()
	cfg.Clock = clock
	return &guardBundle{srv: srv, clock: clock, guard: transcribe.NewGuard(tr, cfg)}
}

// asJobs calls a Transcriber as the job layer calls the Guard: once per
// attempt, again after any failure but an invalid request or the caller's
// end, up to attempts calls. It keeps each failure, and puts nothing aside
// for a snooze: it only records how long the job layer would wait.
type asJobs struct {
	tr       transcribe.Transcriber
	attempts int

	mu       sync.Mutex
	calls    int
	failures []error
	snoozes  []time.Duration
}

func (j *asJobs) Transcribe(ctx context.Context, req transcribe.Request) (transcribe.Result, error) {
	var err error
	for range j.attempts {
		var res transcribe.Result
		res, err = j.tr.Transcribe(ctx, req)
		j.mu.Lock()
		j.calls++
		if err != nil {
			j.failures = append(j.failures, err)
			if d, ok := transcribe.SnoozeFor(err, time.Now()); ok {
				j.snoozes = append(j.snoozes, d)
			}
		}
		j.mu.Unlock()
		if err == nil || errors.Is(err, transcribe.ErrInvalidRequest) || ctx.Err() != nil {
			return res, err
		}
	}
	return transcribe.Result{}, err
}

func (j *asJobs) Calls() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.calls
}

// transcriberFunc is a backend whose behaviour a test scripts directly,
// for what a network double cannot make exact (permits, probes, deadlines).
type transcriberFunc func(ctx context.Context, req transcribe.Request) (transcribe.Result, error)

func (f transcriberFunc) Transcribe(ctx context.Context, req transcribe.Request) (transcribe.Result, error) {
	return f(ctx, req)
}

func TestGuardRecoversFromEveryMisbehaviour(t *testing.T) {
	t.Parallel()
	want, audio := speech(t)
	for name, tc := range map[string]struct {
		opts     transcribetest.Options
		openai   transcribe.OpenAIConfig
		guard    transcribe.GuardConfig
		requests int
		tol      time.Duration
	}{
		"503 while the model loads": {opts: transcribetest.Options{FailFirst: 2}, requests: 3},
		"500 once":                  {opts: transcribetest.Options{FailFirst: 1, FailStatus: 500}, requests: 2},
		"429 with Retry-After":      {opts: transcribetest.Options{FailFirst: 2, FailStatus: 429, RetryAfter: 2 * time.Second}, requests: 3},
		"truncated JSON once":       {opts: transcribetest.Options{Lie: transcribetest.LieTruncated, LieFirst: 1}, requests: 2},
		"times outside the audio":   {opts: transcribetest.Options{Lie: transcribetest.LieOutsideAudio, LieFirst: 1}, requests: 2},
		"times going backwards":     {opts: transcribetest.Options{Lie: transcribetest.LieBackwards, LieFirst: 1}, requests: 2},
		"empty text for speech":     {opts: transcribetest.Options{Lie: transcribetest.LieEmpty, LieFirst: 1}, requests: 2},
		"whisper.cpp nested words after a 503": {
			opts:     transcribetest.Options{Quirk: transcribetest.QuirkWhisperCpp, Path: "/inference", FailFirst: 1},
			requests: 2,
		},
		"vLLM string duration after a truncated answer": {
			opts:     transcribetest.Options{Quirk: transcribetest.QuirkVLLM, Lie: transcribetest.LieTruncated, LieFirst: 1},
			requests: 2,
			tol:      150 * time.Millisecond, // words estimated
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setupGuard(t, tc.opts, tc.openai, tc.guard)
			jobs := &asJobs{tr: b.guard, attempts: 8}
			res, err := jobs.Transcribe(t.Context(), transcribe.Request{Audio: audio, Language: "en", ExpectSpeech: true})
			require.NoError(t, err)
			require.Equal(t, "alpha bravo charlie november xray", res.Text)
			tol := tc.tol
			if tol == 0 {
				tol = 20 * time.Millisecond
			}
			requireWords(t, want, res.Words, tol)
			require.Equal(t, tc.requests, b.srv.Requests())
			require.Equal(t, tc.requests, jobs.Calls(), "one request per call: the job layer owns the retries")
			s := b.guard.Stats()
			require.EqualValues(t, tc.requests, s.Attempts)
			require.EqualValues(t, 1, s.Successes)
			require.EqualValues(t, tc.requests-1, s.Failures)
			require.Zero(t, s.ConsecutiveFailures)
			require.Equal(t, transcribe.BreakerClosed, s.State)
			if tc.opts.RetryAfter > 0 {
				require.Len(t, jobs.snoozes, tc.requests-1, "each failure hands its Retry-After back")
				for _, d := range jobs.snoozes {
					require.GreaterOrEqual(t, d, tc.opts.RetryAfter, "Retry-After honoured")
				}
			}
		})
	}
}

func TestGuardTimesOutASlowAnswer(t *testing.T) {
	t.Parallel()
	want, audio := speech(t)
	// 4 s of audio: each attempt's deadline is 800 ms + 4 s/20, long
	// enough for a healthy answer on a loaded machine, far short of the
	// first answer's minute.
	b := setupGuard(t, transcribetest.Options{Delay: time.Minute, DelayFirst: 1}, transcribe.OpenAIConfig{},
		transcribe.GuardConfig{TimeoutBase: 800 * time.Millisecond, TimeoutFactor: 0.05})
	began := time.Now()
	_, err := b.guard.Transcribe(t.Context(), transcribe.Request{Audio: audio})
	require.GreaterOrEqual(t, time.Since(began), 800*time.Millisecond)
	timeout, ok := errors.AsType[*transcribe.HTTPError](err)
	require.True(t, ok, "%v", err)
	require.True(t, timeout.Temporary(), "the job layer retries it")
	res, err := b.guard.Transcribe(t.Context(), transcribe.Request{Audio: audio})
	require.NoError(t, err)
	requireWords(t, want, res.Words, 20*time.Millisecond)
	require.GreaterOrEqual(t, time.Since(began), time.Second)
	require.Equal(t, 2, b.srv.Requests())
	s := b.guard.Stats()
	he, ok := errors.AsType[*transcribe.HTTPError](s.LastFailure)
	require.True(t, ok, "%v", s.LastFailure)
	require.True(t, he.Timeout)
	require.Zero(t, he.StatusCode)
	require.ErrorContains(t, he, "deadline")
	t.Log(he)
}

func TestGuardBadAnswersAreReported(t *testing.T) {
	t.Parallel()
	_, audio := speech(t)
	for name, tc := range map[string]struct {
		lie    transcribetest.Lie
		expect bool
		err    error
	}{
		"truncated":           {lie: transcribetest.LieTruncated, err: transcribe.ErrBadAnswer},
		"outside":             {lie: transcribetest.LieOutsideAudio, err: transcribe.ErrBadAnswer},
		"backwards":           {lie: transcribetest.LieBackwards, err: transcribe.ErrBadAnswer},
		"empty for speech":    {lie: transcribetest.LieEmpty, expect: true, err: transcribe.ErrEmptyTranscript},
		"empty, maybe silent": {lie: transcribetest.LieEmpty},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setupGuard(t, transcribetest.Options{Lie: tc.lie}, transcribe.OpenAIConfig{}, transcribe.GuardConfig{})
			res, err := b.guard.Transcribe(t.Context(), transcribe.Request{Audio: audio, ExpectSpeech: tc.expect})
			if tc.err == nil {
				require.NoError(t, err)
				require.Empty(t, res.Text)
				require.Equal(t, 1, b.srv.Requests())
				return
			}
			require.ErrorIs(t, err, tc.err)
			require.ErrorIs(t, err, transcribe.ErrBadAnswer)
			require.Equal(t, 1, b.srv.Requests(), "the job layer retries a bad answer, not the guard")
			_, snooze := transcribe.SnoozeFor(err, time.Now())
			require.False(t, snooze, "a bad answer uses an attempt")
			s := b.guard.Stats()
			require.EqualValues(t, 1, s.Failures)
			require.Zero(t, s.ConsecutiveFailures, "a backend that answers is up")
		})
	}
}

func TestGuardHandsRetryAfterBack(t *testing.T) {
	t.Parallel()
	_, audio := speech(t)
	for _, retryAfter := range []time.Duration{7 * time.Second, 5 * time.Minute} {
		t.Run(retryAfter.String(), func(t *testing.T) {
			t.Parallel()
			b := setupGuard(t, transcribetest.Options{FailFirst: 1, FailStatus: 429, RetryAfter: retryAfter},
				transcribe.OpenAIConfig{}, transcribe.GuardConfig{})
			_, err := b.guard.Transcribe(t.Context(), transcribe.Request{Audio: audio})
			he, ok := errors.AsType[*transcribe.HTTPError](err)
			require.True(t, ok, "%v", err)
			require.Equal(t, 429, he.StatusCode)
			require.Equal(t, retryAfter, he.RetryAfter, "kept for the caller to reschedule")
			require.Equal(t, 1, b.srv.Requests())
			d, snooze := transcribe.SnoozeFor(err, time.Now())
			require.True(t, snooze, "waited for without using an attempt")
			require.GreaterOrEqual(t, d, retryAfter, "never shorter")
			require.LessOrEqual(t, d, retryAfter+retryAfter/10, "jitter of at most a tenth")
		})
	}
}

func TestGuardCallsTheBackendOncePerCall(t *testing.T) {
	t.Parallel()
	_, audio := speech(t)
	b := setupGuard(t, transcribetest.Options{FailFirst: 100, FailStatus: 500}, transcribe.OpenAIConfig{},
		transcribe.GuardConfig{BreakerThreshold: 100})
	for call := 1; call <= 3; call++ {
		_, err := b.guard.Transcribe(t.Context(), transcribe.Request{Audio: audio})
		he, ok := errors.AsType[*transcribe.HTTPError](err)
		require.True(t, ok, "%v", err)
		require.Equal(t, 500, he.StatusCode)
		require.True(t, he.Temporary(), "the job layer retries it")
		require.NotErrorIs(t, err, transcribe.ErrBackendDown)
		require.Equal(t, call, b.srv.Requests(), "one request per call")
	}
	s := b.guard.Stats()
	require.EqualValues(t, 3, s.Attempts)
	require.EqualValues(t, 3, s.Failures)
	require.Equal(t, 3, s.ConsecutiveFailures)
}

func TestGuardDoesNotRetryWhatCannotSucceed(t *testing.T) {
	t.Parallel()
	_, audio := speech(t)
	b := setupGuard(t, transcribetest.Options{APIKey: "right"}, transcribe.OpenAIConfig{APIKey: "wrong"}, transcribe.GuardConfig{})
	_, err := b.guard.Transcribe(t.Context(), transcribe.Request{Audio: audio})
	he, ok := errors.AsType[*transcribe.HTTPError](err)
	require.True(t, ok, "%v", err)
	require.Equal(t, http.StatusUnauthorized, he.StatusCode)
	require.Equal(t, 1, b.srv.Requests())

	_, err = b.guard.Transcribe(t.Context(), transcribe.Request{Audio: []byte("not a wav")})
	require.ErrorIs(t, err, transcribe.ErrInvalidRequest)
	require.Equal(t, 1, b.srv.Requests(), "nothing sent")
	require.Zero(t, b.guard.Stats().ConsecutiveFailures)
}

func TestGuardBreaker(t *testing.T) {
	t.Parallel()
	_, audio := speech(t)
	req := transcribe.Request{Audio: audio}
	// The backend fails three times, then works again.
	b := setupGuard(t, transcribetest.Options{FailFirst: 3}, transcribe.OpenAIConfig{},
		transcribe.GuardConfig{BreakerThreshold: 3, BreakerCoolDown: 30 * time.Second})

	for range 2 {
		_, err := b.guard.Transcribe(t.Context(), req)
		require.Error(t, err)
		require.NotErrorIs(t, err, transcribe.ErrBackendDown, "two failures: still closed")
		require.Equal(t, transcribe.BreakerClosed, b.guard.Stats().State)
	}

	// The third failure opens the breaker: its caller is told to wait
	// out the cool-down rather than spend an attempt.
	_, err := b.guard.Transcribe(t.Context(), req)
	require.ErrorIs(t, err, transcribe.ErrBackendDown)
	down, ok := errors.AsType[*transcribe.BackendDownError](err)
	require.True(t, ok)
	require.Equal(t, b.clock.Now().Add(30*time.Second), down.Until)
	he, ok := errors.AsType[*transcribe.HTTPError](err)
	require.True(t, ok, "the last failure stays reachable: %v", err)
	require.Equal(t, 503, he.StatusCode)
	require.Equal(t, 3, b.srv.Requests())

	// While open: fail fast, without a request.
	began := time.Now()
	for range 10 {
		_, err = b.guard.Transcribe(t.Context(), req)
		require.ErrorIs(t, err, transcribe.ErrBackendDown)
	}
	require.Less(t, time.Since(began), 100*time.Millisecond)
	require.Equal(t, 3, b.srv.Requests())
	s := b.guard.Stats()
	require.Equal(t, transcribe.BreakerOpen, s.State)
	require.EqualValues(t, 11, s.Rejected)
	require.EqualValues(t, 2, s.Failures)
	require.EqualValues(t, 1, s.Opened)
	require.Equal(t, 3, s.ConsecutiveFailures)
	require.Error(t, s.LastFailure)

	// After the cool-down one probe goes through; the backend is back.
	b.clock.Advance(30 * time.Second)
	res, err := b.guard.Transcribe(t.Context(), req)
	require.NoError(t, err)
	require.NotEmpty(t, res.Words)
	require.Equal(t, 4, b.srv.Requests())
	s = b.guard.Stats()
	require.Equal(t, transcribe.BreakerClosed, s.State)
	require.Zero(t, s.ConsecutiveFailures)
}

func TestGuardFailedProbeReopens(t *testing.T) {
	t.Parallel()
	_, audio := speech(t)
	b := setupGuard(t, transcribetest.Options{FailFirst: 1000}, transcribe.OpenAIConfig{},
		transcribe.GuardConfig{BreakerThreshold: 2, BreakerCoolDown: time.Minute})
	_, err := b.guard.Transcribe(t.Context(), transcribe.Request{Audio: audio})
	require.NotErrorIs(t, err, transcribe.ErrBackendDown)
	_, err = b.guard.Transcribe(t.Context(), transcribe.Request{Audio: audio})
	require.ErrorIs(t, err, transcribe.ErrBackendDown)
	require.Equal(t, 2, b.srv.Requests())

	b.clock.Advance(time.Minute)
	_, err = b.guard.Transcribe(t.Context(), transcribe.Request{Audio: audio})
	require.ErrorIs(t, err, transcribe.ErrBackendDown)
	require.Equal(t, 3, b.srv.Requests(), "one probe")
	s := b.guard.Stats()
	require.Equal(t, transcribe.BreakerOpen, s.State)
	require.EqualValues(t, 2, s.Opened)
	require.True(t, s.OpenUntil.After(b.clock.Now()))
}

func TestGuardLetsOneProbeThrough(t *testing.T) {
	t.Parallel()
	var (
		failing  atomic.Bool
		calls    atomic.Int64
		entered  = make(chan struct{}, 1)
		release  = make(chan struct{})
		blocking atomic.Bool
	)
	failing.Store(true)
	inner := transcriberFunc(func(ctx context.Context, req transcribe.Request) (transcribe.Result, error) {
		calls.Add(1)
		if failing.Load() {
			return transcribe.Result{}, &transcribe.HTTPError{StatusCode: 502}
		}
		if blocking.Load() {
			entered <- struct{}{}
			<-release
		}
		return transcribe.Result{Text: "ok"}, nil
	})
	clock := newFakeClock()
	g := transcribe.NewGuard(inner, transcribe.GuardConfig{BreakerThreshold: 1, BreakerCoolDown: time.Second, Clock: clock})
	req := transcribe.Request{Audio: []byte("x"), Duration: time.Second}
	_, err := g.Transcribe(t.Context(), req)
	require.ErrorIs(t, err, transcribe.ErrBackendDown, "the failure that opens the breaker says so")
	require.Equal(t, transcribe.BreakerOpen, g.Stats().State)

	failing.Store(false)
	blocking.Store(true)
	clock.Advance(time.Second)
	probe := make(chan error, 1)
	go func() {
		_, err := g.Transcribe(t.Context(), req)
		probe <- err
	}()
	<-entered
	require.Equal(t, transcribe.BreakerHalfOpen, g.Stats().State)
	_, err = g.Transcribe(t.Context(), req)
	require.ErrorIs(t, err, transcribe.ErrBackendDown, "a second call while the probe runs")
	close(release)
	require.NoError(t, <-probe)
	require.Equal(t, transcribe.BreakerClosed, g.Stats().State)
	blocking.Store(false)
	_, err = g.Transcribe(t.Context(), req)
	require.NoError(t, err)
	require.EqualValues(t, 3, calls.Load())
}

func TestGuardConcurrencyLimit(t *testing.T) {
	t.Parallel()
	var (
		running, peak atomic.Int64
		release       = make(chan struct{})
	)
	inner := transcriberFunc(func(ctx context.Context, req transcribe.Request) (transcribe.Result, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		select {
		case <-release:
			return transcribe.Result{Text: "ok"}, nil
		case <-ctx.Done():
			return transcribe.Result{}, ctx.Err()
		}
	})
	g := transcribe.NewGuard(inner, transcribe.GuardConfig{Concurrency: 2, Clock: newFakeClock()})
	req := transcribe.Request{Audio: []byte("x"), Duration: time.Second}
	errs := make(chan error, 5)
	for range 5 {
		go func() {
			_, err := g.Transcribe(t.Context(), req)
			errs <- err
		}()
	}
	require.Eventually(t, func() bool {
		s := g.Stats()
		return s.InFlight == 2 && s.Waiting == 3
	}, 5*time.Second, time.Millisecond)

	// A caller that gives up while waiting for a permit leaves at once, and
	// says nothing about the backend.
	ctx, cancel := context.WithCancel(t.Context())
	waiting := make(chan error, 1)
	go func() {
		_, err := g.Transcribe(ctx, req)
		waiting <- err
	}()
	require.Eventually(t, func() bool { return g.Stats().Waiting == 4 }, 5*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, <-waiting, context.Canceled)

	close(release)
	for range 5 {
		require.NoError(t, <-errs)
	}
	require.EqualValues(t, 2, peak.Load())
	s := g.Stats()
	require.EqualValues(t, 5, s.Successes)
	require.EqualValues(t, 5, s.Attempts)
	require.Zero(t, s.ConsecutiveFailures)
	require.Zero(t, s.Waiting)
	require.Zero(t, s.InFlight)
}

func TestGuardTimeoutScalesWithAudio(t *testing.T) {
	t.Parallel()
	deadlines := make(chan time.Duration, 2)
	inner := transcriberFunc(func(ctx context.Context, req transcribe.Request) (transcribe.Result, error) {
		d, ok := ctx.Deadline()
		if !ok {
			return transcribe.Result{}, errors.New("no deadline")
		}
		deadlines <- time.Until(d)
		return transcribe.Result{}, nil
	})
	g := transcribe.NewGuard(inner, transcribe.GuardConfig{TimeoutBase: 10 * time.Second, TimeoutFactor: 3})
	_, err := g.Transcribe(t.Context(), transcribe.Request{Audio: []byte("x"), Duration: 20 * time.Second})
	require.NoError(t, err)
	require.InDelta(t, 70*time.Second, <-deadlines, float64(time.Second))
	// The duration read from the WAV header when the request has none.
	_, audio := speech(t) // 4 s
	_, err = g.Transcribe(t.Context(), transcribe.Request{Audio: audio})
	require.NoError(t, err)
	require.InDelta(t, 22*time.Second, <-deadlines, float64(time.Second))
}

func TestGuardChecksEveryBackendsAnswer(t *testing.T) {
	t.Parallel()
	for name, res := range map[string]transcribe.Result{
		"word past the end": {Text: "a", Words: []transcribe.Word{{Text: "a", Start: 900 * time.Millisecond, End: 2 * time.Second}}},
		"words backwards": {Text: "a b", Words: []transcribe.Word{
			{Text: "a", Start: 500 * time.Millisecond, End: 600 * time.Millisecond},
			{Text: "b", Start: 100 * time.Millisecond, End: 200 * time.Millisecond}}},
		"phrase ends before it starts": {Text: "a", Phrases: []transcribe.Phrase{{Text: "a", Start: 500 * time.Millisecond, End: 100 * time.Millisecond}}},
		"negative start":               {Text: "a", Words: []transcribe.Word{{Text: "a", Start: -time.Second, End: 0}}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int64
			g := transcribe.NewGuard(transcriberFunc(func(context.Context, transcribe.Request) (transcribe.Result, error) {
				calls.Add(1)
				return res, nil
			}), transcribe.GuardConfig{Clock: newFakeClock()})
			_, err := g.Transcribe(t.Context(), transcribe.Request{Audio: []byte("x"), Duration: time.Second})
			require.ErrorIs(t, err, transcribe.ErrBadAnswer)
			require.EqualValues(t, 1, calls.Load())
		})
	}
}

func TestGuardConfig(t *testing.T) {
	t.Parallel()
	def := transcribe.GuardConfig{}.WithDefaults()
	require.Equal(t, transcribe.DefaultGuardConcurrency, def.Concurrency)
	require.Equal(t, transcribe.DefaultTimeoutBase, def.TimeoutBase)
	require.InDelta(t, float64(transcribe.DefaultTimeoutFactor), def.TimeoutFactor, 0)
	require.Equal(t, transcribe.DefaultBreakerThreshold, def.BreakerThreshold)
	require.Equal(t, transcribe.DefaultBreakerCoolDown, def.BreakerCoolDown)
	require.NotNil(t, def.Clock)
	require.NotNil(t, def.Logger)
	require.NoError(t, transcribe.GuardConfig{}.Validate())

	err := transcribe.GuardConfig{Concurrency: -1, BreakerCoolDown: -time.Second}.Validate()
	require.ErrorContains(t, err, "Concurrency")
	require.ErrorContains(t, err, "BreakerCoolDown")
	require.Equal(t, transcribe.DefaultBreakerCoolDown, transcribe.GuardConfig{BreakerCoolDown: -time.Second}.WithDefaults().BreakerCoolDown)
}

// BenchmarkGuardOverhead is what Guard adds to a call: permit, breaker,
// deadline, answer check.
func BenchmarkGuardOverhead(b *testing.B) {
	res := transcribe.Result{Text: "a b", Words: []transcribe.Word{{Text: "a", End: time.Millisecond}, {Text: "b", Start: time.Millisecond, End: 2 * time.Millisecond}}}
	g := transcribe.NewGuard(transcriberFunc(func(context.Context, transcribe.Request) (transcribe.Result, error) {
		return res, nil
	}), transcribe.GuardConfig{})
	req := transcribe.Request{Audio: []byte("x"), Duration: time.Second}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Transcribe(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSnoozeFor(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	for name, tc := range map[string]struct {
		err  error
		want time.Duration
		ok   bool
	}{
		"breaker open":            {fmt.Errorf("job: %w", &transcribe.BackendDownError{Until: now.Add(20 * time.Second), Cause: &transcribe.HTTPError{StatusCode: 503}}), 20 * time.Second, true},
		"probe running":           {&transcribe.BackendDownError{Until: now.Add(-time.Second)}, time.Second, true},
		"rate limited":            {fmt.Errorf("x: %w", &transcribe.HTTPError{StatusCode: 429, RetryAfter: 5 * time.Minute}), 5 * time.Minute, true},
		"rate limited, jittered":  {&transcribe.HTTPError{StatusCode: 503, RetryAfter: 10 * time.Second}, 10 * time.Second, true},
		"503 without Retry-After": {&transcribe.HTTPError{StatusCode: 503}, 0, false},
		"401 with Retry-After":    {&transcribe.HTTPError{StatusCode: 401, RetryAfter: time.Second}, 0, false},
		"bad answer":              {transcribe.ErrBadAnswer, 0, false},
	} {
		d, ok := transcribe.SnoozeFor(tc.err, now)
		require.Equal(t, tc.ok, ok, name)
		if _, isHTTP := errors.AsType[*transcribe.HTTPError](tc.err); isHTTP && ok && !errors.Is(tc.err, transcribe.ErrBackendDown) {
			// A server's Retry-After: never shorter, up to a tenth longer.
			require.GreaterOrEqual(t, d, tc.want, name)
			require.LessOrEqual(t, d, tc.want+tc.want/10, name)
			continue
		}
		require.Equal(t, tc.want, d, name)
	}
}
