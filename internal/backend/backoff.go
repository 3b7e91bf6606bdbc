package backend

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Backoff is the one policy of Greffier's waits between tries: the River
// jobs' retries, and the few loops that rightly stay in process (the
// recorder's uploads and bookkeeping, S3 puts, a summary's calls, a
// streaming server's busy channels, a rate-limited diarization submit).
// The wait doubles from Base up to Max and is jittered down by up to half,
// so that callers turned away together do not come back together; a
// server's Retry-After replaces it, never shortened. The zero value is
// not usable: set Base and Max.
type Backoff struct {
	// Base is the wait before the first retry; Max caps every wait but
	// a Retry-After.
	Base, Max time.Duration
	// MaxRetryAfter is the longest Retry-After waited out; a longer one
	// ends the tries, for the caller to reschedule. 0: no limit.
	MaxRetryAfter time.Duration
	// Sleep waits between tries; nil waits on a timer (see Sleep). Tests
	// give it a fake clock.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Delay is the wait after the n-th failed try (n from 1): Base doubled
// n-1 times, at most Max, then jittered into [d/2, d].
func (b Backoff) Delay(n int) time.Duration {
	d := b.Base << min(max(n-1, 0), 30)
	if d <= 0 || d > b.Max {
		d = b.Max
	}
	if d <= 0 {
		return 0
	}
	return d - rand.N(d/2+1)
}

// After is the wait after the n-th failed try, which failed with err: the
// server's Retry-After when err carries one (an *HTTPError), plus up to a
// tenth so that the callers it turned away spread out, else Delay(n). ok
// is false when that Retry-After is longer than MaxRetryAfter.
func (b Backoff) After(n int, err error) (wait time.Duration, ok bool) {
	if ra := RetryAfter(err); ra > 0 {
		if b.MaxRetryAfter > 0 && ra > b.MaxRetryAfter {
			return ra, false
		}
		return Jitter(ra), true
	}
	return b.Delay(n), true
}

// RetryAfter is the Retry-After an *HTTPError in err's chain carries, 0
// when none does.
func RetryAfter(err error) time.Duration {
	if he, ok := errors.AsType[*HTTPError](err); ok {
		return he.RetryAfter
	}
	return 0
}

// Jitter lengthens d by up to a tenth: a wait a server named, spread out
// so that everyone it named it to does not come back at the same instant.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d + rand.N(d/10+1)
}

// Retry calls op until it succeeds, fails with an error retryable says is
// final, has been tried tries times (0: until ctx ends), or sends a
// Retry-After past MaxRetryAfter, waiting After between tries. notify,
// when set, hears each failure about to be retried. It returns the count
// of tries and op's last error; when ctx ends before a retry, the error
// wraps both ctx's cause and that last error.
func (b Backoff) Retry(ctx context.Context, tries int, op func(context.Context) error,
	retryable func(error) bool, notify func(n int, wait time.Duration, err error)) (int, error) {
	sleep := b.Sleep
	if sleep == nil {
		sleep = Sleep
	}
	for n := 1; ; n++ {
		err := op(ctx)
		if err == nil || (tries > 0 && n >= tries) || !retryable(err) {
			return n, err
		}
		if cerr := context.Cause(ctx); cerr != nil {
			if errors.Is(err, cerr) {
				return n, err
			}
			return n, fmt.Errorf("not retrying: %w (last failure: %w)", cerr, err)
		}
		wait, ok := b.After(n, err)
		if !ok {
			return n, err
		}
		if notify != nil {
			notify(n, wait, err)
		}
		if serr := sleep(ctx, wait); serr != nil {
			return n, fmt.Errorf("waiting %v to retry: %w (last failure: %w)", wait, serr, err)
		}
	}
}

// Sleep waits d, or less when ctx ends first: then it returns ctx's cause.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
