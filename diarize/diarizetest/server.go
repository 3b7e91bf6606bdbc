// Package diarizetest is a test double for pyannote-style diarization
// APIs (pyannoteAI and the self-hosted servers copying its shape), and the
// pure-tone "voices" it hears.
//
// The double is a real HTTP server on loopback speaking the wire format of
// backends.md section 3: bearer auth, GET /v1/test, POST /v1/diarize with
// its validation errors, GET /v1/jobs/{id}, POST /v1/media/input and the
// presigned PUT it hands out, rate limits with Retry-After, and signed
// webhooks retried with x-retry-num. Its answers are derived from the
// audio it fetches (a 16 kHz mono WAV): every voice is a tone of its own
// pitch, so a client that sends the wrong audio, or loses time on the way,
// gets wrong turns. It can be told to misbehave.
//
// It is for tests only: no production package may import it, and it
// imports nothing of Greffier but internal/audio.
package diarizetest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/greffier/greffier/internal/audio"
)

// DefaultWebhookSecret signs webhooks unless Options.WebhookSecret is set.
const DefaultWebhookSecret = "diarizetest-webhook-secret"

// DefaultRetryAfter is the Retry-After of rate-limited answers.
const DefaultRetryAfter = time.Second

// maxMedia bounds an upload kept in memory.
const maxMedia = 64 << 20

// Lie selects a way for a succeeded job's output to be wrong.
type Lie int

const (
	// LieNone answers what was heard.
	LieNone Lie = iota
	// LieOutsideAudio shifts every turn past the audio's end.
	LieOutsideAudio
	// LieReversed swaps the first turn's start and end.
	LieReversed
	// LieUnsorted lists the turns last first.
	LieUnsorted
)

// Options shape the double's behaviour. The zero value is a well-behaved
// server that needs no key, fetches only https and media:// URLs, and
// delivers webhooks signed with DefaultWebhookSecret.
type Options struct {
	// APIKey, when set, is the only bearer token accepted; others get 401.
	APIKey string
	// WebhookSecret signs webhooks. Default: DefaultWebhookSecret.
	WebhookSecret string
	// FetchClient fetches https audio URLs (give it the TLS test server's
	// client). Default: a plain http.Client.
	FetchClient *http.Client
	// WebhookClient delivers webhooks. Default: a client with the 10 s
	// timeout pyannoteAI gives receivers.
	WebhookClient *http.Client
	// AllowHTTP accepts http:// audio URLs, as self-hosted servers do.
	// Default: false, https and media:// only, as pyannoteAI.
	AllowHTTP bool
	// JobDelay keeps each job running this long after hearing its audio:
	// a slow job.
	JobDelay time.Duration
	// Fail, when set, makes every job end "failed" with this message.
	Fail string
	// Cancel makes every job end "canceled".
	Cancel bool
	// Lie makes succeeded jobs' output wrong.
	Lie Lie
	// NoWebhook never delivers webhooks: clients must poll.
	NoWebhook bool
	// BadWebhookSignature signs webhooks with the wrong secret.
	BadWebhookSignature bool
	// WebhookAge dates webhooks this far in the past.
	WebhookAge time.Duration
	// WebhookRetryDelays are the waits before each retry of a webhook the
	// receiver did not take (no 2xx). Default: pyannoteAI's 0, 1 min, 5 min.
	WebhookRetryDelays []time.Duration
	// RateLimitFirst makes the first RateLimitFirst API requests (the
	// presigned PUT excluded) answer 429.
	RateLimitFirst int
	// RateLimitPolls makes the first RateLimitPolls GET /v1/jobs/{id}
	// answer 429, after RateLimitFirst is spent.
	RateLimitPolls int
	// RetryAfter is sent with every 429, in whole seconds rounded up.
	// Default: DefaultRetryAfter.
	RetryAfter time.Duration
}

// WithDefaults returns a copy of o with every unset field at its default.
func (o Options) WithDefaults() Options {
	if o.WebhookSecret == "" {
		o.WebhookSecret = DefaultWebhookSecret
	}
	if o.FetchClient == nil {
		o.FetchClient = &http.Client{Timeout: time.Minute}
	}
	if o.WebhookClient == nil {
		o.WebhookClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.WebhookRetryDelays == nil {
		o.WebhookRetryDelays = []time.Duration{0, time.Minute, 5 * time.Minute}
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = DefaultRetryAfter
	}
	return o
}

// Request is what one POST /v1/diarize carried.
type Request struct {
	URL               string `json:"url"`
	Webhook           string `json:"webhook,omitempty"`
	WebhookStatusOnly bool   `json:"webhookStatusOnly,omitempty"`
	Model             string `json:"model,omitempty"`
	NumSpeakers       *int   `json:"numSpeakers,omitempty"`
	MinSpeakers       *int   `json:"minSpeakers,omitempty"`
	MaxSpeakers       *int   `json:"maxSpeakers,omitempty"`
	Exclusive         bool   `json:"exclusive,omitempty"`
	Confidence        bool   `json:"confidence,omitempty"`
}

// Delivery is one webhook attempt and how the receiver answered.
type Delivery struct {
	JobID    string
	RetryNum int
	// Status is the receiver's HTTP status, 0 when it did not answer.
	Status int
}

type job struct {
	ID        string          `json:"jobId"`
	Status    string          `json:"status"`
	CreatedAt time.Time       `json:"createdAt"`
	UpdatedAt time.Time       `json:"updatedAt"`
	Output    json.RawMessage `json:"output,omitempty"`
	req       Request
}

// Server is a running double. Close it when done.
type Server struct {
	opts   Options
	srv    *httptest.Server
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	requests atomic.Int64 // API requests, rate-limited ones included
	polls    atomic.Int64
	pollHits atomic.Int64 // GET /v1/jobs/{id}, rate-limited ones included

	mu         sync.Mutex
	jobs       map[string]*job
	media      map[string][]byte // media key → bytes
	uploads    map[string]string // presigned PUT token → media key
	received   []Request
	deliveries []Delivery
}

// NewServer starts a double on a loopback port.
func NewServer(opts Options) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts: opts.WithDefaults(), ctx: ctx, cancel: cancel,
		jobs: map[string]*job{}, media: map[string][]byte{}, uploads: map[string]string{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/test", s.api(s.test))
	mux.HandleFunc("POST /v1/diarize", s.api(s.diarize))
	mux.HandleFunc("GET /v1/jobs/{id}", s.api(s.limitPolls(s.getJob)))
	mux.HandleFunc("POST /v1/media/input", s.api(s.mediaInput))
	mux.HandleFunc("PUT /presigned/{token}", s.put)
	s.srv = httptest.NewServer(mux)
	return s
}

// Close stops the server and every job and webhook it was running.
func (s *Server) Close() {
	s.cancel()
	s.srv.Close()
	s.wg.Wait()
	s.opts.FetchClient.CloseIdleConnections()
	s.opts.WebhookClient.CloseIdleConnections()
}

// URL is the server's root, e.g. "http://127.0.0.1:41234": a client's
// base URL (the API is under /v1).
func (s *Server) URL() string { return s.srv.URL }

// Requests is how many API requests arrived, rate-limited ones included.
func (s *Server) Requests() int { return int(s.requests.Load()) }

// Polls is how many GET /v1/jobs/{id} were answered (not rate-limited).
func (s *Server) Polls() int { return int(s.polls.Load()) }

// Received lists the accepted diarization requests, in arrival order.
func (s *Server) Received() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.received)
}

// Deliveries lists the webhook attempts made so far, in order.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deliveries)
}

// Media returns an uploaded file's bytes.
func (s *Server) Media(key string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.media[key]
	return b, ok
}

// Sign computes what X-Signature holds for a webhook: base64 of
// HMAC-SHA256(secret, "v0:" + timestamp + ":" + body).
func Sign(secret, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "v0:%s:", timestamp)
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// api wraps an API endpoint with the rate limit and bearer auth.
func (s *Server) api(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n := s.requests.Add(1)
		if n <= int64(s.opts.RateLimitFirst) {
			s.rateLimited(w)
			return
		}
		if s.opts.APIKey != "" && r.Header.Get("Authorization") != "Bearer "+s.opts.APIKey {
			writeError(w, http.StatusUnauthorized, "Invalid API key")
			return
		}
		h(w, r)
	}
}

// limitPolls applies RateLimitPolls.
func (s *Server) limitPolls(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.pollHits.Add(1) <= int64(s.opts.RateLimitPolls) {
			s.rateLimited(w)
			return
		}
		h(w, r)
	}
}

func (s *Server) rateLimited(w http.ResponseWriter) {
	secs := int64(math.Ceil(s.opts.RetryAfter.Seconds()))
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	w.Header().Set("X-RateLimit-Limit", "100")
	w.Header().Set("X-RateLimit-Remaining", "0")
	w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Unix()+secs, 10))
	writeError(w, http.StatusTooManyRequests, "Too many requests, retry later")
}

// writeError answers in the NestJS shape pyannoteAI uses.
func writeError(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"statusCode": status, "message": message, "error": http.StatusText(status),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) test(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "OK", "message": "API key is valid"})
}

func (s *Server) diarize(w http.ResponseWriter, r *http.Request) {
	var req Request
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return
	}
	if msg := s.validate(req); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	now := time.Now().UTC()
	j := &job{ID: newID(), Status: "created", CreatedAt: now, UpdatedAt: now, req: req}
	s.mu.Lock()
	s.jobs[j.ID] = j
	s.received = append(s.received, req)
	s.mu.Unlock()
	s.wg.Go(func() { s.run(j) })
	writeJSON(w, http.StatusOK, map[string]string{"jobId": j.ID, "status": "created"})
}

// validate returns the 400 message for a bad request, or "".
func (s *Server) validate(req Request) string {
	u, err := url.Parse(req.URL)
	switch {
	case req.URL == "" || err != nil:
		return "url must be a valid URL"
	case u.Scheme == "media":
		s.mu.Lock()
		_, ok := s.media[mediaKey(req.URL)]
		s.mu.Unlock()
		if !ok {
			return "media " + req.URL + " not found: upload it first"
		}
	case u.Scheme == "https", u.Scheme == "http" && s.opts.AllowHTTP:
	default:
		return "url must use https or media://"
	}
	if req.Webhook != "" {
		if w, err := url.Parse(req.Webhook); err != nil || (w.Scheme != "https" && w.Scheme != "http") || w.Host == "" {
			return "webhook must be a valid URL"
		}
	}
	if req.Model != "" && req.Model != "precision-2" && req.Model != "community-1" {
		return "model must be one of precision-2, community-1"
	}
	positive := func(p *int) bool { return p == nil || *p >= 1 }
	if !positive(req.NumSpeakers) || !positive(req.MinSpeakers) || !positive(req.MaxSpeakers) {
		return "numSpeakers, minSpeakers and maxSpeakers must be at least 1"
	}
	if req.NumSpeakers != nil && (req.MinSpeakers != nil || req.MaxSpeakers != nil) {
		return "numSpeakers cannot be combined with minSpeakers or maxSpeakers"
	}
	if req.MinSpeakers != nil && req.MaxSpeakers != nil && *req.MinSpeakers > *req.MaxSpeakers {
		return "minSpeakers must not exceed maxSpeakers"
	}
	return ""
}

func mediaKey(u string) string { return strings.TrimPrefix(u, "media://") }

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	s.polls.Add(1)
	s.mu.Lock()
	j, ok := s.jobs[r.PathValue("id")]
	var body []byte
	if ok {
		body, _ = json.Marshal(j)
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "job not found")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func (s *Server) mediaInput(w http.ResponseWriter, r *http.Request) {
	var req struct {
		URL string `json:"url"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return
	}
	if !strings.HasPrefix(req.URL, "media://") || len(req.URL) == len("media://") {
		writeError(w, http.StatusBadRequest, "url must be media://<key>")
		return
	}
	token := newID()
	s.mu.Lock()
	s.uploads[token] = mediaKey(req.URL)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]string{"url": s.srv.URL + "/presigned/" + token})
}

// put is the presigned PUT: the token in the path is the authorization.
func (s *Server) put(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	key, ok := s.uploads[r.PathValue("token")]
	s.mu.Unlock()
	if !ok {
		http.Error(w, "unknown or used upload URL", http.StatusForbidden)
		return
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxMedia+1))
	switch {
	case err != nil:
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	case len(b) > maxMedia:
		http.Error(w, "too large for the double", http.StatusRequestEntityTooLarge)
		return
	case r.ContentLength >= 0 && int64(len(b)) != r.ContentLength:
		http.Error(w, "body shorter than Content-Length", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	delete(s.uploads, r.PathValue("token"))
	s.media[key] = b
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// run takes a job from created to its end, then tells the webhook.
func (s *Server) run(j *job) {
	s.setStatus(j, "running", nil)
	turns, length, err := s.hear(j.req.URL)
	status, output := "succeeded", json.RawMessage(nil)
	switch {
	case err != nil:
		status, output = "failed", errorOutput(err.Error())
	case s.opts.Fail != "":
		status, output = "failed", errorOutput(s.opts.Fail)
	case s.opts.Cancel:
		status = "canceled"
	default:
		output = s.output(turns, length, j.req.Exclusive)
	}
	if s.opts.JobDelay > 0 {
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(s.opts.JobDelay):
		}
	}
	s.setStatus(j, status, output)
	if j.req.Webhook != "" && !s.opts.NoWebhook {
		s.sendWebhook(j)
	}
}

func errorOutput(msg string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"error": msg})
	return b
}

func (s *Server) setStatus(j *job, status string, output json.RawMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j.Status, j.Output, j.UpdatedAt = status, output, time.Now().UTC()
}

// hear fetches the audio and labels its voices.
func (s *Server) hear(audioURL string) ([]Turn, time.Duration, error) {
	var b []byte
	if strings.HasPrefix(audioURL, "media://") {
		s.mu.Lock()
		m, ok := s.media[mediaKey(audioURL)]
		s.mu.Unlock()
		if !ok {
			return nil, 0, errors.New("media not found")
		}
		b = m
	} else {
		req, err := http.NewRequestWithContext(s.ctx, http.MethodGet, audioURL, nil)
		if err != nil {
			return nil, 0, fmt.Errorf("cannot fetch audio: %w", err)
		}
		resp, err := s.opts.FetchClient.Do(req)
		if err != nil {
			return nil, 0, fmt.Errorf("cannot fetch audio: %w", err)
		}
		defer func() { _ = resp.Body.Close() }()
		if resp.StatusCode != http.StatusOK {
			return nil, 0, fmt.Errorf("cannot fetch audio: HTTP %d", resp.StatusCode)
		}
		if b, err = io.ReadAll(io.LimitReader(resp.Body, maxMedia)); err != nil {
			return nil, 0, fmt.Errorf("cannot fetch audio: %w", err)
		}
	}
	samples, rate, err := audio.ReadWAV(bytes.NewReader(b))
	if err != nil {
		return nil, 0, fmt.Errorf("cannot decode audio: %w", err)
	}
	if rate != SampleRate {
		return nil, 0, fmt.Errorf("cannot decode audio: %d Hz, the double hears only %d Hz", rate, SampleRate)
	}
	return Hear(samples), time.Duration(len(samples)) * time.Second / SampleRate, nil
}

type wireTurn struct {
	Speaker string  `json:"speaker"`
	Start   float64 `json:"start"`
	End     float64 `json:"end"`
}

// output is a succeeded job's output, in seconds to the millisecond as
// pyannoteAI writes them, with any lie asked for.
func (s *Server) output(turns []Turn, length time.Duration, exclusive bool) json.RawMessage {
	wire := make([]wireTurn, len(turns))
	for i, t := range turns {
		wire[i] = wireTurn{Speaker: t.Speaker, Start: seconds(t.Start), End: seconds(t.End)}
	}
	switch s.opts.Lie {
	case LieOutsideAudio:
		for i := range wire {
			wire[i].Start += length.Seconds() + 10
			wire[i].End += length.Seconds() + 10
		}
	case LieReversed:
		if len(wire) > 0 {
			wire[0].Start, wire[0].End = wire[0].End, wire[0].Start
		}
	case LieUnsorted:
		slices.Reverse(wire)
	}
	out := map[string]any{"diarization": wire}
	if exclusive {
		// Tones never overlap in what the double hears: the exclusive
		// answer is the same.
		out["exclusiveDiarization"] = wire
	}
	b, _ := json.Marshal(out)
	return b
}

func seconds(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }

// sendWebhook delivers a finished job, retrying as pyannoteAI does until
// the receiver answers 2xx.
func (s *Server) sendWebhook(j *job) {
	s.mu.Lock()
	payload := *j
	s.mu.Unlock()
	if j.req.WebhookStatusOnly {
		payload.Output = nil
	}
	body, _ := json.Marshal(payload)
	secret := s.opts.WebhookSecret
	if s.opts.BadWebhookSignature {
		secret = "not-" + secret
	}
	for attempt := 0; attempt <= len(s.opts.WebhookRetryDelays); attempt++ {
		if attempt > 0 {
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(s.opts.WebhookRetryDelays[attempt-1]):
			}
		}
		ts := strconv.FormatInt(time.Now().Add(-s.opts.WebhookAge).Unix(), 10)
		req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, j.req.Webhook, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Request-Timestamp", ts)
		req.Header.Set("X-Signature", Sign(secret, ts, body))
		if attempt > 0 {
			req.Header.Set("X-Retry-Num", strconv.Itoa(attempt))
		}
		status := 0
		if resp, err := s.opts.WebhookClient.Do(req); err == nil {
			status = resp.StatusCode
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		s.mu.Lock()
		s.deliveries = append(s.deliveries, Delivery{JobID: j.ID, RetryNum: attempt, Status: status})
		s.mu.Unlock()
		if status >= 200 && status < 300 {
			return
		}
	}
}
