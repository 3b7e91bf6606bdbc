package backend_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/backend"
)

// sleeps records the waits of a Backoff instead of waiting them.
type sleeps struct{ waits []time.Duration }

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.waits = append(s.waits, d)
	return nil
}

// failing returns an op that fails with errs in turn, then succeeds, and
// counts its calls.
func failing(calls *int, errs ...error) func(context.Context) error {
	return func(context.Context) error {
		*calls++
		if *calls <= len(errs) {
			return errs[*calls-1]
		}
		return nil
	}
}

func always(error) bool { return true }

func TestBackoffIsJitteredAndBounded(t *testing.T) {
	t.Parallel()
	b := backend.Backoff{Base: time.Second, Max: 4 * time.Second}
	for range 200 {
		for n, ceiling := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second} {
			d := b.Delay(n + 1)
			require.GreaterOrEqual(t, d, ceiling/2, "wait %d", n+1)
			require.LessOrEqual(t, d, ceiling, "wait %d", n+1)
		}
	}
	require.LessOrEqual(t, b.Delay(1000), 4*time.Second, "no overflow past Max")
	require.GreaterOrEqual(t, b.Delay(1000), 2*time.Second)
	seen := map[time.Duration]bool{}
	for range 50 {
		seen[b.Delay(3)] = true
	}
	require.Greater(t, len(seen), 1, "jittered, not one fixed wait")
}

func TestBackoffRetriesUntilSuccess(t *testing.T) {
	t.Parallel()
	var s sleeps
	b := backend.Backoff{Base: time.Second, Max: 4 * time.Second, Sleep: s.sleep}
	calls, notified := 0, 0
	temp := &backend.HTTPError{StatusCode: 503}
	n, err := b.Retry(t.Context(), 0, failing(&calls, temp, temp, temp), always,
		func(n int, wait time.Duration, err error) {
			notified++
			require.Equal(t, notified, n)
			require.ErrorIs(t, err, temp)
		})
	require.NoError(t, err)
	require.Equal(t, 4, n)
	require.Equal(t, 4, calls)
	require.Equal(t, 3, notified)
	require.Len(t, s.waits, 3, "one wait before each retry")
	for i, ceiling := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		require.GreaterOrEqual(t, s.waits[i], ceiling/2)
		require.LessOrEqual(t, s.waits[i], ceiling)
	}
}

func TestBackoffGivesUpAfterTries(t *testing.T) {
	t.Parallel()
	var s sleeps
	b := backend.Backoff{Base: time.Millisecond, Max: time.Millisecond, Sleep: s.sleep}
	calls := 0
	temp := &backend.HTTPError{StatusCode: 503}
	n, err := b.Retry(t.Context(), 3, failing(&calls, temp, temp, temp, temp), always, nil)
	require.ErrorIs(t, err, temp)
	require.Equal(t, 3, n)
	require.Equal(t, 3, calls)
	require.Len(t, s.waits, 2)
}

func TestBackoffDoesNotRetryWhatCannotSucceed(t *testing.T) {
	t.Parallel()
	var s sleeps
	b := backend.Backoff{Base: time.Millisecond, Max: time.Millisecond, Sleep: s.sleep}
	calls := 0
	final := &backend.HTTPError{StatusCode: 401}
	n, err := b.Retry(t.Context(), 0, failing(&calls, final), func(err error) bool {
		he, ok := errors.AsType[*backend.HTTPError](err)
		return ok && he.Temporary()
	}, nil)
	require.ErrorIs(t, err, final)
	require.Equal(t, 1, n)
	require.Empty(t, s.waits)
}

func TestBackoffHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	t.Run("waited out, never shorter, jittered by at most a tenth", func(t *testing.T) {
		t.Parallel()
		var s sleeps
		b := backend.Backoff{Base: time.Millisecond, Max: time.Millisecond, MaxRetryAfter: time.Minute, Sleep: s.sleep}
		calls := 0
		limited := fmt.Errorf("call: %w", &backend.HTTPError{StatusCode: 429, RetryAfter: 7 * time.Second})
		_, err := b.Retry(t.Context(), 0, failing(&calls, limited, limited, limited), always, nil)
		require.NoError(t, err)
		require.Len(t, s.waits, 3)
		for _, d := range s.waits {
			require.GreaterOrEqual(t, d, 7*time.Second)
			require.LessOrEqual(t, d, 7700*time.Millisecond)
		}
	})
	t.Run("longer than MaxRetryAfter goes back to the caller", func(t *testing.T) {
		t.Parallel()
		var s sleeps
		b := backend.Backoff{Base: time.Millisecond, Max: time.Millisecond, MaxRetryAfter: time.Minute, Sleep: s.sleep}
		calls := 0
		limited := &backend.HTTPError{StatusCode: 429, RetryAfter: 5 * time.Minute}
		n, err := b.Retry(t.Context(), 0, failing(&calls, limited), always, nil)
		he, ok := errors.AsType[*backend.HTTPError](err)
		require.True(t, ok, "%v", err)
		require.Equal(t, 5*time.Minute, he.RetryAfter, "kept for the caller to reschedule")
		require.Equal(t, 1, n)
		require.Empty(t, s.waits)
		wait, ok := b.After(1, limited)
		require.False(t, ok)
		require.Equal(t, 5*time.Minute, wait)
	})
}

func TestBackoffStopsWhenTheContextEnds(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	b := backend.Backoff{Base: time.Hour, Max: time.Hour}
	temp := &backend.HTTPError{StatusCode: 503}
	calls := 0
	done := make(chan error, 1)
	go func() {
		_, err := b.Retry(ctx, 0, failing(&calls, temp, temp), always, func(int, time.Duration, error) { cancel() })
		done <- err
	}()
	err := <-done
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, err, temp, "the last failure stays reachable")
	require.Equal(t, 1, calls)
}

func TestBackoffSaysTheContextEndedDuringATry(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
	defer cancel()
	temp := &backend.HTTPError{StatusCode: 503}
	calls := 0
	n, err := backend.Backoff{Base: time.Millisecond, Max: time.Millisecond}.Retry(ctx, 0, func(ctx context.Context) error {
		calls++
		<-ctx.Done()
		return temp // a failure that does not say the deadline passed
	}, always, nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorIs(t, err, temp)
	require.Equal(t, 1, n)
	require.Equal(t, 1, calls)
}

func TestSleep(t *testing.T) {
	t.Parallel()
	require.NoError(t, backend.Sleep(t.Context(), time.Millisecond))
	ctx, cancel := context.WithCancelCause(t.Context())
	stop := errors.New("closing")
	cancel(stop)
	require.ErrorIs(t, backend.Sleep(ctx, time.Hour), stop)
}
