package diarize

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/greffier/greffier/internal/backend"
)

// Defaults of PyannoteConfig.
const (
	DefaultPyannoteBaseURL = "https://api.pyannote.ai"
	// DefaultPollInterval is how often a job is polled when no webhook is
	// configured: pyannoteAI allows 100 requests a minute per key.
	DefaultPollInterval = 5 * time.Second
	// DefaultFallbackPollInterval is how often a job is polled while a
	// webhook is expected, in case it never comes (the receiver was down
	// through all three deliveries, or sits behind another replica).
	DefaultFallbackPollInterval = time.Minute
	// DefaultRequestTimeout bounds each API call but the upload.
	DefaultRequestTimeout = 30 * time.Second
	// DefaultTimeoutBase and DefaultTimeoutFactor make the default
	// Timeout: base + factor x the audio's length. Hosted pyannote runs an
	// hour in about a minute but may queue; a self-hosted CPU server runs
	// slower than real time.
	DefaultTimeoutBase   = 10 * time.Minute
	DefaultTimeoutFactor = 2
	// DefaultMaxWebhookAge is how old (or how far in the future) a
	// webhook's timestamp may be: older ones are replays.
	DefaultMaxWebhookAge = 5 * time.Minute
	// DefaultMaxPollErrors is how many polls in a row may fail with a
	// temporary error (5xx, no answer) before Diarize gives up.
	DefaultMaxPollErrors = 5
)

// Limits of the pyannote API.
const (
	// MaxUploadSize is the largest file the API takes: 1 GiB.
	MaxUploadSize = 1 << 30
	// maxAnswerSize bounds an answer read into memory: a day of audio
	// diarized is a few MB of JSON.
	maxAnswerSize = 64 << 20
	// maxSubmitAttempts bounds retries of a rate-limited submission.
	maxSubmitAttempts = 5
	// defaultRateLimitWait is the wait after a 429 without Retry-After.
	defaultRateLimitWait = 5 * time.Second
)

// PyannoteConfig configures a Pyannote backend. Only BaseURL has a default
// that reaches a real server; everything else may stay zero.
type PyannoteConfig struct {
	// BaseURL is the API's root, without "/v1". Default:
	// DefaultPyannoteBaseURL.
	BaseURL string
	// APIKey is sent as a bearer token when set. Default: none (some
	// self-hosted servers need none).
	APIKey string
	// Model is the model to ask for ("precision-2", "community-1").
	// Default: none, the server's choice.
	Model string
	// WebhookURL is where the backend should POST a finished job: the
	// public address at which WebhookHandler is mounted. Default: none,
	// jobs are polled every PollInterval.
	WebhookURL string
	// WebhookSecret is the key the backend signs webhooks with (pyannoteAI
	// shows it in its dashboard). Required with WebhookURL: an unsigned
	// webhook would let anyone write minutes.
	WebhookSecret string
	// PollInterval is the wait between polls of a job when no webhook is
	// configured. Default: DefaultPollInterval.
	PollInterval time.Duration
	// FallbackPollInterval is the wait between polls while a webhook is
	// expected. Default: DefaultFallbackPollInterval.
	FallbackPollInterval time.Duration
	// Timeout bounds one Diarize call, upload excluded. Default: 0,
	// meaning DefaultTimeoutBase + DefaultTimeoutFactor x the audio length.
	Timeout time.Duration
	// RequestTimeout bounds each API call but the upload's PUT. Default:
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
	// MaxWebhookAge is the largest difference between a webhook's
	// timestamp and now that WebhookHandler accepts. Default:
	// DefaultMaxWebhookAge.
	MaxWebhookAge time.Duration
	// MaxPollErrors is how many polls in a row may fail with a temporary
	// error before Diarize gives up. Default: DefaultMaxPollErrors.
	MaxPollErrors int
	// HTTPClient sends the requests. Default: a client without an overall
	// timeout (RequestTimeout and the context bound each call).
	HTTPClient *http.Client
	// NumSpeakers, when positive, tells the model how many voices there
	// are. Otherwise MinSpeakers and MaxSpeakers, when positive, bound
	// its guess. Default: 0, the model decides.
	NumSpeakers, MinSpeakers, MaxSpeakers int
	// Exclusive asks for one voice at a time (exclusiveDiarization), which
	// is what a transcript with one speaker per line needs. Default: false,
	// overlapping turns are kept.
	Exclusive bool
	// Logger gets one line per job and per webhook. Default: discards.
	Logger *slog.Logger
	// Now is the clock that judges webhook timestamps. Default: time.Now.
	Now func() time.Time
}

// WithDefaults returns a copy of c with every unset field at its default.
func (c PyannoteConfig) WithDefaults() PyannoteConfig {
	if c.BaseURL == "" {
		c.BaseURL = DefaultPyannoteBaseURL
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.FallbackPollInterval == 0 {
		c.FallbackPollInterval = DefaultFallbackPollInterval
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MaxWebhookAge == 0 {
		c.MaxWebhookAge = DefaultMaxWebhookAge
	}
	if c.MaxPollErrors == 0 {
		c.MaxPollErrors = DefaultMaxPollErrors
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (c PyannoteConfig) validate() error {
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("diarize: BaseURL %q must be an http(s) URL such as %s", c.BaseURL, DefaultPyannoteBaseURL)
	}
	if c.WebhookURL != "" {
		w, err := url.Parse(c.WebhookURL)
		if err != nil || (w.Scheme != "http" && w.Scheme != "https") || w.Host == "" {
			return fmt.Errorf("diarize: WebhookURL %q must be an http(s) URL where WebhookHandler is mounted", c.WebhookURL)
		}
		if c.WebhookSecret == "" {
			return errors.New("diarize: WebhookURL needs WebhookSecret (the backend's signing key): unsigned webhooks cannot be trusted")
		}
	}
	for name, d := range map[string]time.Duration{
		"PollInterval": c.PollInterval, "FallbackPollInterval": c.FallbackPollInterval,
		"RequestTimeout": c.RequestTimeout, "MaxWebhookAge": c.MaxWebhookAge,
	} {
		if d < 0 {
			return fmt.Errorf("diarize: %s %v must be positive, or 0 for the default", name, d)
		}
	}
	if c.Timeout < 0 {
		return fmt.Errorf("diarize: Timeout %v must be 0 (scaled to the audio) or positive", c.Timeout)
	}
	if c.MaxPollErrors < 0 {
		return fmt.Errorf("diarize: MaxPollErrors %d must be positive, or 0 for the default", c.MaxPollErrors)
	}
	if c.NumSpeakers < 0 || c.MinSpeakers < 0 || c.MaxSpeakers < 0 {
		return errors.New("diarize: NumSpeakers, MinSpeakers and MaxSpeakers must not be negative")
	}
	if c.NumSpeakers > 0 && (c.MinSpeakers > 0 || c.MaxSpeakers > 0) {
		return errors.New("diarize: set NumSpeakers or MinSpeakers/MaxSpeakers, not both")
	}
	if c.MaxSpeakers > 0 && c.MinSpeakers > c.MaxSpeakers {
		return fmt.Errorf("diarize: MinSpeakers %d exceeds MaxSpeakers %d", c.MinSpeakers, c.MaxSpeakers)
	}
	return nil
}

// Pyannote is a client of a pyannote-style diarization API (pyannoteAI and
// the self-hosted servers that copy its shape). It is safe for concurrent
// use: one Pyannote serves every Diarize call and the webhook receiver.
type Pyannote struct {
	cfg PyannoteConfig
	log *slog.Logger

	// mu guards the webhook rendezvous: waiters are Diarize calls waiting
	// for a job; early holds finished jobs whose webhook beat the caller
	// (a fast job can finish before submit's answer is read).
	mu      sync.Mutex
	waiters map[string]chan wireJob
	early   map[string]wireJob
	order   []string // early's keys, oldest first
}

// maxEarly bounds the webhooks kept for jobs nobody waits for yet (or any
// more: a retried delivery after the waiter left).
const maxEarly = 256

// NewPyannote checks cfg and returns a backend.
func NewPyannote(cfg PyannoteConfig) (*Pyannote, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Pyannote{
		cfg:     cfg,
		log:     cfg.Logger.With("backend", "pyannote"),
		waiters: make(map[string]chan wireJob),
		early:   make(map[string]wireJob),
	}, nil
}

// Check asks GET /v1/test whether the server answers and takes the key.
func (p *Pyannote) Check(ctx context.Context) error {
	_, err := p.call(ctx, "test", http.MethodGet, "/v1/test", nil)
	return err
}

// Diarize submits the audio reachable at audioURL (an https presigned GET
// of the recording, or the media:// URL Upload returned) and waits for the
// job: by webhook when WebhookURL is set, by polling otherwise, and by
// polling as a fallback either way. audioLength is the audio's duration:
// it scales the timeout and every answered time must lie inside it.
//
// Errors: ErrInvalidRequest before sending; *HTTPError for a refused or
// unanswered call (Temporary says if retrying may help); *JobError for a
// job the server failed or canceled; ErrBadAnswer for an answer that
// cannot be placed on a timeline; the context's error, wrapped with the
// job id, when the timeout passed.
func (p *Pyannote) Diarize(ctx context.Context, audioURL string, audioLength time.Duration) ([]Turn, error) {
	if err := checkAudioURL(audioURL); err != nil {
		return nil, err
	}
	if audioLength <= 0 {
		return nil, fmt.Errorf("%w: audio length %v, want the duration of the audio sent", ErrInvalidRequest, audioLength)
	}
	timeout := p.cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeoutBase + DefaultTimeoutFactor*audioLength
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	started := time.Now()
	jobID, err := p.submit(ctx, audioURL)
	if err != nil {
		return nil, err
	}
	log := p.log.With("job", jobID)
	log.DebugContext(ctx, "diarization job submitted", "audio_length", audioLength)

	done := p.watch(jobID)
	defer p.unwatch(jobID)
	job, via, err := p.wait(ctx, jobID, done)
	if err != nil {
		return nil, err
	}
	if job.Status != statusSucceeded {
		return nil, &JobError{JobID: jobID, Status: job.Status, Message: job.failureMessage()}
	}
	turns, warning, err := parseOutput(job.Output, audioLength, p.cfg.Exclusive)
	if err != nil {
		return nil, fmt.Errorf("diarization job %s: %w", jobID, err)
	}
	if warning != "" {
		log.WarnContext(ctx, "diarization answer came with a warning", "warning", warning)
	}
	log.InfoContext(ctx, "diarization job done", "via", via, "turns", len(turns),
		"audio_length", audioLength, "took", time.Since(started))
	return turns, nil
}

func checkAudioURL(audioURL string) error {
	u, err := url.Parse(audioURL)
	if err != nil {
		return fmt.Errorf("%w: audio URL: %w", ErrInvalidRequest, err)
	}
	switch u.Scheme {
	case "https", "http":
		if u.Host == "" {
			return fmt.Errorf("%w: audio URL %q has no host", ErrInvalidRequest, audioURL)
		}
	case "media":
		if err := checkMediaKey(strings.TrimPrefix(audioURL, "media://")); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: audio URL %q must be https:// (a presigned GET) or media:// (after Upload)", ErrInvalidRequest, audioURL)
	}
	return nil
}

type diarizeRequest struct {
	URL         string `json:"url"`
	Webhook     string `json:"webhook,omitempty"`
	Model       string `json:"model,omitempty"`
	NumSpeakers int    `json:"numSpeakers,omitempty"`
	MinSpeakers int    `json:"minSpeakers,omitempty"`
	MaxSpeakers int    `json:"maxSpeakers,omitempty"`
	Exclusive   bool   `json:"exclusive,omitempty"`
}

// submit creates the job. It retries only a rate limit, in process with
// the shared backoff: the server has created nothing then, whereas a
// retried 5xx or timeout might start the same job twice (the job layer
// decides about those).
func (p *Pyannote) submit(ctx context.Context, audioURL string) (string, error) {
	req := diarizeRequest{
		URL: audioURL, Webhook: p.cfg.WebhookURL, Model: p.cfg.Model,
		NumSpeakers: p.cfg.NumSpeakers, MinSpeakers: p.cfg.MinSpeakers, MaxSpeakers: p.cfg.MaxSpeakers,
		Exclusive: p.cfg.Exclusive,
	}
	var body []byte
	b := backend.Backoff{Base: defaultRateLimitWait, Max: defaultRateLimitWait}
	_, err := b.Retry(ctx, maxSubmitAttempts, func(ctx context.Context) (err error) {
		body, err = p.call(ctx, "submit", http.MethodPost, "/v1/diarize", req)
		return err
	}, func(err error) bool {
		var he *HTTPError
		return errors.As(err, &he) && he.StatusCode == http.StatusTooManyRequests
	}, func(_ int, wait time.Duration, _ error) {
		p.log.DebugContext(ctx, "diarization submit rate limited", "retry_after", wait)
	})
	if err != nil && ctx.Err() != nil {
		if he, ok := errors.AsType[*HTTPError](err); ok && he.StatusCode == http.StatusTooManyRequests {
			return "", fmt.Errorf("diarization submit rate limited, no time left to retry: %w", he)
		}
	}
	if err != nil {
		return "", err
	}
	var ans struct {
		JobID string `json:"jobId"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return "", fmt.Errorf("diarization submit: %w: %w", ErrBadAnswer, err)
	}
	if ans.JobID == "" {
		return "", fmt.Errorf("diarization submit: %w: no jobId in %q", ErrBadAnswer, excerpt(body))
	}
	return ans.JobID, nil
}

// wait returns the job once it is finished, by whichever path tells first.
func (p *Pyannote) wait(ctx context.Context, jobID string, done <-chan wireJob) (wireJob, string, error) {
	interval := p.cfg.PollInterval
	if p.cfg.WebhookURL != "" {
		interval = p.cfg.FallbackPollInterval
	}
	timer := time.NewTimer(interval)
	defer timer.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return wireJob{}, "", fmt.Errorf("diarization job %s not finished in time: %w", jobID, context.Cause(ctx))
		case job := <-done:
			return job, "webhook", nil
		case <-timer.C:
		}
		job, err := p.poll(ctx, jobID)
		if err != nil && ctx.Err() != nil {
			return wireJob{}, "", fmt.Errorf("diarization job %s not finished in time: %w", jobID, context.Cause(ctx))
		}
		next := interval
		var he *HTTPError
		switch {
		case err == nil && terminal(job.Status):
			return job, "poll", nil
		case err == nil:
			failures = 0
		case errors.As(err, &he) && he.StatusCode == http.StatusTooManyRequests:
			// A rate limit is the server working as designed: wait, do not count it.
			next = max(next, cmp.Or(he.RetryAfter, defaultRateLimitWait))
		case errors.As(err, &he) && he.Temporary():
			failures++
			if failures >= p.cfg.MaxPollErrors {
				return wireJob{}, "", fmt.Errorf("diarization job %s: %d polls failed in a row: %w", jobID, failures, err)
			}
			next = max(next, he.RetryAfter)
		default:
			return wireJob{}, "", fmt.Errorf("diarization job %s: %w", jobID, err)
		}
		timer.Reset(next)
	}
}

func (p *Pyannote) poll(ctx context.Context, jobID string) (wireJob, error) {
	body, err := p.call(ctx, "poll", http.MethodGet, "/v1/jobs/"+url.PathEscape(jobID), nil)
	if err != nil {
		return wireJob{}, err
	}
	var job wireJob
	if err := json.Unmarshal(body, &job); err != nil {
		return wireJob{}, fmt.Errorf("%w: job: %w", ErrBadAnswer, err)
	}
	if job.JobID != "" && job.JobID != jobID {
		return wireJob{}, fmt.Errorf("%w: asked for job %s, got job %s", ErrBadAnswer, jobID, job.JobID)
	}
	switch job.Status {
	case statusPending, statusCreated, statusRunning, statusSucceeded, statusFailed, statusCanceled:
	default:
		return wireJob{}, fmt.Errorf("%w: unknown job status %q", ErrBadAnswer, job.Status)
	}
	return job, nil
}

// call makes one JSON API call and returns a 2xx answer's body.
func (p *Pyannote) call(ctx context.Context, op, method, path string, in any) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("diarization %s: encode request: %w", op, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.cfg.BaseURL+path, body)
	if err != nil {
		return nil, fmt.Errorf("diarization %s: %w", op, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if p.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+p.cfg.APIKey)
	}
	return p.do(ctx, op, req)
}

func (p *Pyannote) do(ctx context.Context, op string, req *http.Request) ([]byte, error) {
	resp, err := p.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, newTransportError(op, err, ctx.Err() != nil)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerSize+1))
	if err != nil {
		return nil, newTransportError(op, fmt.Errorf("read answer: %w", err), ctx.Err() != nil)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, newStatusError(op, resp.StatusCode, resp.Header, b, p.cfg.Now())
	}
	if len(b) > maxAnswerSize {
		return nil, fmt.Errorf("diarization %s: %w: answer larger than %d bytes", op, ErrBadAnswer, maxAnswerSize)
	}
	return b, nil
}

func excerpt(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return strings.ToValidUTF8(string(b), "?")
}
