package diarize

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/greffier/greffier/internal/httperr"
)

// maxWebhookBody bounds a webhook read into memory, as for answers.
const maxWebhookBody = maxAnswerSize

// WebhookHandler receives the backend's webhooks (mount it at WebhookURL).
// It checks X-Signature = base64(HMAC-SHA256(WebhookSecret, "v0:" +
// X-Request-Timestamp + ":" + body)) and the timestamp's age, answers 401
// to anything forged, stale or replayed from long ago, and otherwise
// answers 200 at once and hands the job to the Diarize call waiting for it.
// Retried deliveries (x-retry-num) of a job already handed over change
// nothing. Without WebhookSecret it answers 404: nothing is expected.
func (p *Pyannote) WebhookHandler() http.Handler {
	return http.HandlerFunc(p.serveWebhook)
}

func (p *Pyannote) serveWebhook(w http.ResponseWriter, r *http.Request) {
	if p.cfg.WebhookSecret == "" {
		httperr.Write(w, http.StatusNotFound, "not_found", "no diarization webhook is configured here")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		httperr.Write(w, http.StatusMethodNotAllowed, "method_not_allowed", "POST the job")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxWebhookBody+1))
	if err != nil {
		httperr.Write(w, http.StatusBadRequest, "bad_body", "cannot read body")
		return
	}
	if len(body) > maxWebhookBody {
		httperr.Write(w, http.StatusRequestEntityTooLarge, "too_large", "body too large")
		return
	}
	ts := r.Header.Get("X-Request-Timestamp")
	retry := r.Header.Get("X-Retry-Num")
	if reason := p.checkSignature(ts, r.Header.Get("X-Signature"), body); reason != "" {
		p.log.WarnContext(r.Context(), "diarization webhook refused", "reason", reason, "retry", retry, "remote", r.RemoteAddr)
		httperr.Write(w, http.StatusUnauthorized, "unauthorized", reason)
		return
	}
	var job wireJob
	if err := json.Unmarshal(body, &job); err != nil || job.JobID == "" {
		p.log.WarnContext(r.Context(), "diarization webhook unreadable", "error", err, "body", excerpt(body))
		httperr.Write(w, http.StatusBadRequest, "bad_body", "body is not a job")
		return
	}
	p.log.DebugContext(r.Context(), "diarization webhook", "job", job.JobID, "status", job.Status, "retry", retry)
	if terminal(job.Status) {
		p.deliver(job)
	}
	w.WriteHeader(http.StatusOK)
}

// checkSignature returns why a webhook cannot be trusted, or "".
func (p *Pyannote) checkSignature(ts, sig string, body []byte) string {
	if ts == "" || sig == "" {
		return "missing X-Request-Timestamp or X-Signature"
	}
	secs, err := strconv.ParseInt(strings.TrimSpace(ts), 10, 64)
	if err != nil {
		return "X-Request-Timestamp is not a Unix time"
	}
	if secs > 1e12 { // milliseconds, as some servers send
		secs /= 1000
	}
	age := p.cfg.Now().Sub(time.Unix(secs, 0))
	if age > p.cfg.MaxWebhookAge || age < -p.cfg.MaxWebhookAge {
		return "stale X-Request-Timestamp"
	}
	got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(sig))
	if err != nil {
		return "X-Signature is not base64"
	}
	if !hmac.Equal(got, sign(p.cfg.WebhookSecret, ts, body)) {
		return "bad X-Signature"
	}
	return ""
}

// sign is the pyannote webhook signature: HMAC-SHA256(secret, "v0:" +
// timestamp + ":" + body), raw; X-Signature carries it in base64.
func sign(secret, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("v0:"))
	m.Write([]byte(timestamp))
	m.Write([]byte(":"))
	m.Write(body)
	return m.Sum(nil)
}

// watch registers a Diarize call's interest in a job and returns where the
// webhook will hand it over; a webhook that came first is handed at once.
func (p *Pyannote) watch(jobID string) <-chan wireJob {
	ch := make(chan wireJob, 1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if job, ok := p.early[jobID]; ok {
		ch <- job
	}
	p.waiters[jobID] = ch
	return ch
}

func (p *Pyannote) unwatch(jobID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.waiters, jobID)
	if _, ok := p.early[jobID]; ok {
		delete(p.early, jobID)
		p.order = slices.DeleteFunc(p.order, func(id string) bool { return id == jobID })
	}
}

// deliver hands a finished job to its waiter, once; a job with no waiter
// is kept a while in case its Diarize call has not registered yet.
func (p *Pyannote) deliver(job wireJob) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ch, ok := p.waiters[job.JobID]; ok {
		select {
		case ch <- job:
		default: // a retried delivery: the first is already there
		}
		return
	}
	if _, ok := p.early[job.JobID]; ok {
		return
	}
	if len(p.order) >= maxEarly {
		delete(p.early, p.order[0])
		p.order = p.order[1:]
	}
	p.early[job.JobID] = job
	p.order = append(p.order, job.JobID)
}
