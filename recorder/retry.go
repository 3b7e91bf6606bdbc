package recorder

import (
	"context"

	"github.com/greffier/greffier/internal/backend"
)

// pendingOp is bookkeeping the recorder could not finish (the database or
// the spool disk was full, storage was down): it is tried again until it
// succeeds, so a track never stays "recording" once the fault is gone.
type pendingOp struct {
	gen int
	run func(context.Context) error
}

// later keeps op under key (a track id; a newer op replaces an older one)
// and retries it in the background, with the shared backoff from
// RetryBackoff to MaxRetryBackoff, until it succeeds or the Recorder is
// closed. After a
// close, Recover at the next start finishes what is left from the spool.
func (r *Recorder) later(key string, op func(context.Context) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.gen++
	r.pending[key] = pendingOp{gen: r.gen, run: op}
	if !r.retrying {
		r.retrying = true
		r.wg.Add(1)
		go r.retryLoop()
	}
}

// retryLoop runs every pending op in rounds, waiting longer before each
// round, until none remain or the Recorder closes.
func (r *Recorder) retryLoop() {
	defer r.wg.Done()
	b := r.backoff()
	for round := 1; ; round++ {
		if backend.Sleep(r.ctx, b.Delay(round)) != nil {
			return
		}
		if r.retryOnce() == 0 {
			return
		}
	}
}

// retryOnce runs every pending op once and returns how many remain; the
// loop ends (and retrying is cleared) when none do.
func (r *Recorder) retryOnce() int {
	r.mu.Lock()
	ops := make(map[string]pendingOp, len(r.pending))
	for k, op := range r.pending {
		ops[k] = op
	}
	r.mu.Unlock()
	for key, op := range ops {
		ctx, cancel := context.WithTimeout(r.ctx, r.cfg.UploadTimeout)
		err := op.run(ctx)
		cancel()
		r.mu.Lock()
		if cur, ok := r.pending[key]; err == nil && ok && cur.gen == op.gen {
			delete(r.pending, key)
		}
		r.mu.Unlock()
		if err != nil {
			r.log.Warn("recorder: unfinished track still cannot be finished; retrying", "track", key, "err", err)
		} else {
			r.log.Info("recorder: unfinished track finished", "track", key)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.pending)
	if n == 0 {
		r.retrying = false
	}
	return n
}

// pendingCount is how many tracks wait for a retry.
func (r *Recorder) pendingCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// Close stops the background retries (call it after every Writer is
// closed); what they had not finished is left to Recover at the next
// start. It does not close open Writers.
func (r *Recorder) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}
