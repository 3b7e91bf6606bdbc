// Package summarize writes a meeting's summary (abstract, topics,
// decisions, action items with owner and due date) from its transcript,
// through an OpenAI-compatible chat completions backend. Every point cites
// the turns it came from; the model only ever names turn ids, which are
// checked and mapped to the turns' real times here. A transcript too long
// for the model's context is summarised in parts, then combined.
//
// It must not import any other Greffier package: minutes holds a *Summary,
// so summarize is a leaf below it, and the caller (the pipeline's assembly
// stage) converts a minutes.Document into a Transcript:
//
//	tr := summarize.Transcript{Language: doc.Language, Title: doc.Title}
//	for _, t := range doc.Turns {
//		tr.Turns = append(tr.Turns, summarize.Turn{Speaker: t.Speaker, Name: t.Name,
//			Start: summarize.Seconds(t.Start), End: summarize.Seconds(t.End), Text: t.Text})
//	}
//
// Without a chat backend (Config.BaseURL empty) New returns
// ErrNotConfigured, and the minutes are the transcript alone.
package summarize

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/greffier/greffier/internal/backend"
)

// Defaults of Config.
const (
	// DefaultMaxContextTokens is the context of most small local models.
	DefaultMaxContextTokens = 8192
	// DefaultMaxAnswerTokens leaves room for a summary of a dozen topics
	// and action items with their citations.
	DefaultMaxAnswerTokens = 2048
	DefaultTimeout         = 2 * time.Minute
	DefaultRetries         = 2
	DefaultRetryBackoff    = time.Second
	DefaultMaxRetryWait    = 30 * time.Second
	DefaultConcurrency     = 2
	DefaultResponseFormat  = ResponseFormatJSONObject
)

// NoRetries, as Config.Retries, makes every call a single attempt.
const NoRetries = -1

// ResponseFormat is how the model is asked for JSON.
type ResponseFormat string

const (
	// ResponseFormatJSONObject sends response_format json_object: OpenAI,
	// vLLM, llama.cpp's server and Ollama honour it.
	ResponseFormatJSONObject ResponseFormat = "json_object"
	// ResponseFormatJSONSchema sends response_format json_schema with the
	// summary's schema (strict): OpenAI and vLLM then constrain the reply
	// to it. Servers without schema support reject it.
	ResponseFormatJSONSchema ResponseFormat = "json_schema"
	// ResponseFormatNone sends no response_format, for servers that reject
	// it; the prompt alone asks for JSON.
	ResponseFormatNone ResponseFormat = "none"
)

// maxAnswer bounds a backend's answer: a summary is a few kilobytes.
const maxAnswer = 4 << 20

// Config configures a Summarizer.
type Config struct {
	// BaseURL is the API's base, e.g. "http://127.0.0.1:8000/v1" or
	// "https://api.openai.com/v1"; requests go to BaseURL +
	// "/chat/completions". Empty means no chat backend: New returns
	// ErrNotConfigured.
	BaseURL string
	// APIKey is sent as a bearer token when set. Default: none.
	APIKey string
	// Model is the model to ask for. Required: chat servers have no common
	// default.
	Model string
	// MaxContextTokens is the model's context (prompt plus answer), in
	// tokens as EstimateTokens counts them. Default: DefaultMaxContextTokens.
	MaxContextTokens int
	// MaxAnswerTokens is the room kept for the answer and sent as
	// max_tokens. Default: DefaultMaxAnswerTokens, or a quarter of
	// MaxContextTokens when that is smaller.
	MaxAnswerTokens int
	// ResponseFormat is how JSON is asked for. Default:
	// DefaultResponseFormat. Replies are parsed the same way either way.
	ResponseFormat ResponseFormat
	// Timeout bounds each call. Default: DefaultTimeout.
	Timeout time.Duration
	// Retries is how many more times a call is tried after a temporary
	// failure (see HTTPError.Temporary) or an unusable answer. Default:
	// DefaultRetries; NoRetries for none.
	Retries int
	// RetryBackoff is the wait before the first retry, doubled each time
	// and jittered down by up to half (backend.Backoff), unless the server
	// sent Retry-After. Default: DefaultRetryBackoff.
	RetryBackoff time.Duration
	// MaxRetryWait caps any wait between tries; a longer Retry-After ends
	// the tries with that error. Default: DefaultMaxRetryWait.
	MaxRetryWait time.Duration
	// Concurrency is how many part calls of one long meeting run at once.
	// Default: DefaultConcurrency.
	Concurrency int
	// HTTPClient sends the requests. Default: a client without an overall
	// timeout (Timeout bounds each call through its context).
	HTTPClient *http.Client
	// Logger gets one debug line per call. Default: discards.
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.MaxContextTokens == 0 {
		c.MaxContextTokens = DefaultMaxContextTokens
	}
	if c.MaxAnswerTokens == 0 {
		c.MaxAnswerTokens = min(DefaultMaxAnswerTokens, c.MaxContextTokens/4)
	}
	if c.ResponseFormat == "" {
		c.ResponseFormat = DefaultResponseFormat
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	switch c.Retries {
	case 0:
		c.Retries = DefaultRetries
	case NoRetries:
		c.Retries = 0
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	if c.MaxRetryWait == 0 {
		c.MaxRetryWait = DefaultMaxRetryWait
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// minPartTokens is the least room for transcript lines a call must have;
// below it, parts would hold a sentence each.
const minPartTokens = 256

func (c Config) validate() error {
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("summarize: BaseURL %q must be an http(s) URL such as http://127.0.0.1:8000/v1", c.BaseURL)
	}
	if c.Model == "" {
		return errors.New("summarize: Model is required: set the chat model's name")
	}
	if c.MaxAnswerTokens < 0 || c.MaxContextTokens < 0 {
		return errors.New("summarize: MaxContextTokens and MaxAnswerTokens must be positive")
	}
	// A call must have room for a fair part of transcript, and a combining
	// call for at least two partial summaries, each as long as an answer,
	// or merging would never shrink.
	if need := promptOverhead() + c.MaxAnswerTokens + max(2*c.MaxAnswerTokens, minPartTokens); c.MaxContextTokens < need {
		return fmt.Errorf("summarize: MaxContextTokens %d is too small for MaxAnswerTokens %d: set it to at least %d, or lower MaxAnswerTokens",
			c.MaxContextTokens, c.MaxAnswerTokens, need)
	}
	switch c.ResponseFormat {
	case ResponseFormatJSONObject, ResponseFormatJSONSchema, ResponseFormatNone:
	default:
		return fmt.Errorf("summarize: ResponseFormat %q must be %q, %q or %q", c.ResponseFormat,
			ResponseFormatJSONObject, ResponseFormatJSONSchema, ResponseFormatNone)
	}
	if c.Timeout < 0 || c.RetryBackoff < 0 || c.MaxRetryWait < 0 {
		return errors.New("summarize: Timeout, RetryBackoff and MaxRetryWait must be positive")
	}
	if c.Retries < 0 {
		return fmt.Errorf("summarize: Retries %d must be positive, or NoRetries", c.Retries)
	}
	if c.Concurrency < 0 {
		return fmt.Errorf("summarize: Concurrency %d must be positive", c.Concurrency)
	}
	return nil
}

// promptOverhead is the cost of everything in a call but its transcript
// lines or partial summaries: the longer system prompt (a language code
// of up to 16 bytes), a title line of up to maxTitle bytes, the part
// header, and both messages' framing.
func promptOverhead() int {
	sys := max(EstimateTokens(partSystemPrompt(strings.Repeat("x", 16))), EstimateTokens(combineSystemPrompt(strings.Repeat("x", 16))))
	header := EstimateTokens(strings.Repeat("x", maxTitle)) + 48
	return sys + header + 2*messageOverhead
}

// maxTitle bounds the title shown to the model.
const maxTitle = 200

// ErrNotConfigured is returned by New when no chat backend is configured:
// the minutes are then the transcript alone.
var ErrNotConfigured = errors.New("summarize: no chat backend configured (BaseURL is empty)")

// ErrEmptyTranscript is returned by Summarize for a transcript without
// turns: there is nothing to summarise, and no call is made.
var ErrEmptyTranscript = errors.New("summarize: the transcript has no turns")

// Summarizer writes summaries through one chat backend. It is safe for
// concurrent use.
type Summarizer struct {
	cfg  Config
	base openai.ClientConfig
	// budget is the room for transcript lines or partial summaries in
	// one call.
	budget int
	now    func() time.Time
}

// New checks cfg and returns a Summarizer. It does not contact the server.
func New(cfg Config) (*Summarizer, error) {
	if cfg.BaseURL == "" {
		return nil, ErrNotConfigured
	}
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	base := openai.DefaultConfig(cfg.APIKey)
	base.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	return &Summarizer{
		cfg:    cfg,
		base:   base,
		budget: cfg.MaxContextTokens - cfg.MaxAnswerTokens - promptOverhead(),
		now:    time.Now,
	}, nil
}

// Summarize writes tr's summary. A transcript that does not fit one call
// is cut into parts between turns (a turn too long for any part is cut
// between words), each part is summarised, then the partial summaries are
// combined, in several rounds if they do not fit one call together.
//
// Errors are *HTTPError when the backend failed or did not answer (see
// Temporary), wrap ErrBadAnswer when its answers stayed unusable, are
// ErrEmptyTranscript, or wrap ctx's error.
func (s *Summarizer) Summarize(ctx context.Context, tr Transcript) (*Summary, error) {
	if len(tr.Turns) == 0 {
		return nil, ErrEmptyTranscript
	}
	tr.Language = strings.ToLower(strings.TrimSpace(tr.Language))
	if len(tr.Title) > maxTitle {
		tr.Title = clipTitle(tr.Title)
	}
	parts := splitParts(tr.Turns, s.budget)
	drafts := make([]draft, len(parts))
	models := make([]string, len(parts))
	errs := make([]error, len(parts))

	callCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, s.cfg.Concurrency)
	var wg sync.WaitGroup
	for i, p := range parts {
		select {
		case sem <- struct{}{}:
		case <-callCtx.Done():
		}
		if callCtx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			where := "summary"
			if len(parts) > 1 {
				where = fmt.Sprintf("part %d of %d", i+1, len(parts))
			}
			d, model, err := s.ask(callCtx, partSystemPrompt(tr.Language), partUserPrompt(tr.Title, tr.Turns, p, i, len(parts)),
				func(n int) bool { return n >= p.first && n <= p.last }, where)
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", where, err)
				cancel() // the others' work is wasted once one part fails
				return
			}
			d.first, d.last = p.first, p.last
			drafts[i], models[i] = d, model
		}()
	}
	wg.Wait()
	if err := firstCause(ctx, errs); err != nil {
		return nil, err
	}
	var notes []string
	for _, d := range drafts {
		notes = append(notes, d.notes...)
	}
	final, model, err := s.combine(ctx, tr, drafts, models[len(models)-1], &notes)
	if err != nil {
		return nil, err
	}
	return final.summary(tr, model, len(parts), notes), nil
}

// firstCause picks the error to return when parts failed: the caller's
// cancellation if that is what happened, else the first part's own failure
// (not the cancellations it caused in the others).
func firstCause(ctx context.Context, errs []error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("summarize: %w", context.Cause(ctx))
	}
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("summarize: %w", err)
		}
	}
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("summarize: %w", err)
		}
	}
	return nil
}

// clipTitle cuts a title to maxTitle bytes, dropping a character cut in
// two.
func clipTitle(t string) string { return strings.ToValidUTF8(t[:maxTitle], "") }

// combine merges drafts into one, in rounds of as many drafts as fit one
// call.
func (s *Summarizer) combine(ctx context.Context, tr Transcript, drafts []draft, model string, notes *[]string) (draft, string, error) {
	for round := 1; len(drafts) > 1; round++ {
		var next []draft
		for start := 0; start < len(drafts); {
			end := s.batchEnd(tr.Title, drafts, start)
			batch := drafts[start:end]
			start = end
			if len(batch) == 1 {
				next = append(next, batch[0])
				continue
			}
			user, err := combineUserPrompt(tr.Title, batch)
			if err != nil {
				return draft{}, "", fmt.Errorf("summarize: %w", err)
			}
			shown := map[int]bool{}
			for _, d := range batch {
				for _, t := range d.cited() {
					shown[t] = true
				}
			}
			where := fmt.Sprintf("combining T%d–T%d (round %d)", batch[0].first, batch[len(batch)-1].last, round)
			d, m, err := s.ask(ctx, combineSystemPrompt(tr.Language), user, func(n int) bool { return shown[n] }, where)
			if err != nil {
				return draft{}, "", fmt.Errorf("summarize: %s: %w", where, err)
			}
			d.first, d.last = batch[0].first, batch[len(batch)-1].last
			*notes = append(*notes, d.notes...)
			next, model = append(next, d), m
		}
		drafts = next
	}
	return drafts[0], model, nil
}

// batchEnd is the end of the longest run of drafts from start that fits
// one combining call, and at least two so every round shrinks (validate
// keeps two answers within the budget).
func (s *Summarizer) batchEnd(title string, drafts []draft, start int) int {
	end := min(start+2, len(drafts))
	for end < len(drafts) {
		user, err := combineUserPrompt(title, drafts[start:end+1])
		if err != nil || EstimateTokens(user) > s.budget+EstimateTokens(title)+48 {
			break
		}
		end++
	}
	return end
}

// ask makes one call, with retries, and checks its answer. The retries
// stay in process, with the shared backoff: a summary is one part of the
// minutes' assembly, which must not be redone (nor fail) for it.
func (s *Summarizer) ask(ctx context.Context, system, user string, shown func(int) bool, where string) (draft, string, error) {
	var (
		d     draft
		model string
	)
	b := backend.Backoff{Base: s.cfg.RetryBackoff, Max: s.cfg.MaxRetryWait, MaxRetryAfter: s.cfg.MaxRetryWait}
	_, err := b.Retry(ctx, 1+s.cfg.Retries, func(ctx context.Context) error {
		content, m, err := s.call(ctx, system, user)
		if err != nil {
			return err
		}
		a, err := parseAnswer(content)
		if err != nil {
			return err
		}
		model = m
		d, err = check(a, shown, where)
		return err
	}, retryable, func(attempt int, wait time.Duration, err error) {
		s.cfg.Logger.WarnContext(ctx, "summary call failed, retrying", "where", where, "attempt", attempt, "wait", wait, "err", err)
	})
	if err != nil {
		return draft{}, "", err
	}
	return d, model, nil
}

// retryable says whether err is worth another try.
func retryable(err error) bool {
	var he *HTTPError
	switch {
	case errors.As(err, &he):
		return he.Temporary()
	case errors.Is(err, errCutOff):
		// The same request would be cut off again.
		return false
	case errors.Is(err, ErrBadAnswer):
		return true
	}
	return false
}
