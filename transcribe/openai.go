package transcribe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// Defaults of OpenAIConfig.
const (
	DefaultModel = openai.Whisper1
	DefaultPath  = "/audio/transcriptions"
	// whisperCppPath is whisper.cpp's server's endpoint (under any
	// --request-path): a server that reads WAV, not Ogg Opus.
	whisperCppPath = "/inference"
	// DefaultMaxUpload is OpenAI's and vLLM's default upload limit.
	DefaultMaxUpload = 25 << 20
	// DefaultTimeoutBase and DefaultTimeoutFactor make the default
	// per-call timeout: base + factor x the audio's duration.
	DefaultTimeoutBase   = 30 * time.Second
	DefaultTimeoutFactor = 2
	// maxAnswer bounds a backend's answer: a verbose_json of an hour of
	// speech is about 2 MB.
	maxAnswer = 32 << 20
)

// OpenAIConfig configures an OpenAI-compatible transcription backend
// (OpenAI, speaches, vLLM, whisper.cpp's server, ...).
type OpenAIConfig struct {
	// BaseURL is the API's base, e.g. "http://127.0.0.1:8000/v1" or
	// "https://api.openai.com/v1". Required.
	BaseURL string
	// APIKey is sent as a bearer token when set. Default: none.
	APIKey string
	// Model is the model name to ask for. Default: DefaultModel.
	Model string
	// Language is the ISO-639-1 code used when a Request names none.
	// Default: none (the backend detects it).
	Language string
	// Path is the endpoint under BaseURL. Default: DefaultPath;
	// whisper.cpp's server uses "/inference" under its root, and a Path
	// ending in "/inference" implies SendWAV.
	Path string
	// SendWAV decodes Ogg Opus audio to a 16 kHz mono WAV before sending
	// it, for servers that read nothing else (whisper.cpp's, unless started
	// with --convert). MaxUpload then bounds the WAV. Default: false, audio
	// is sent as it comes (OpenAI, speaches and vLLM read Ogg Opus); true
	// when Path ends in "/inference".
	SendWAV bool
	// Timeout bounds each call. Default: 0, meaning DefaultTimeoutBase +
	// DefaultTimeoutFactor x the audio's duration.
	Timeout time.Duration
	// MaxUpload is the largest audio file sent; larger requests fail with
	// ErrInvalidRequest. Default: DefaultMaxUpload.
	MaxUpload int
	// Diarized asks for response_format=diarized_json, for models that
	// label speakers (OpenAI's gpt-4o-transcribe-diarize): Phrases get a
	// Speaker, Words are estimated from them, Prompt and Vocabulary are
	// not sent (the model takes no prompt), and
	// Request.KnownSpeakers are sent as named reference clips. Default:
	// false, verbose_json with word times.
	Diarized bool
	// HTTPClient sends the requests. Default: a client without an overall
	// timeout (Timeout bounds each call through its context).
	HTTPClient *http.Client
	// Logger gets one debug line per call. Default: discards.
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with every unset field at its default.
func (c OpenAIConfig) WithDefaults() OpenAIConfig {
	if c.Model == "" {
		c.Model = DefaultModel
	}
	if c.Path == "" {
		c.Path = DefaultPath
	}
	if strings.HasSuffix(c.Path, whisperCppPath) {
		c.SendWAV = true
	}
	if c.MaxUpload == 0 {
		c.MaxUpload = DefaultMaxUpload
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c OpenAIConfig) validate() error {
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("transcribe: BaseURL %q must be an http(s) URL such as http://127.0.0.1:8000/v1", c.BaseURL)
	}
	if !strings.HasPrefix(c.Path, "/") {
		return fmt.Errorf("transcribe: Path %q must start with /", c.Path)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("transcribe: Timeout %v must be 0 (scaled to the audio) or positive", c.Timeout)
	}
	if c.MaxUpload < 0 {
		return fmt.Errorf("transcribe: MaxUpload %d must be positive", c.MaxUpload)
	}
	return nil
}

// OpenAI transcribes through an OpenAI-compatible /audio/transcriptions
// endpoint, asking for verbose_json with word and segment times. It is
// safe for concurrent use.
//
// go-openai builds and sends each request (multipart form, auth headers),
// but its response type cannot hold what real servers answer (vLLM's string
// duration fails to decode, whisper.cpp's nested words are dropped). So the
// client is handed an exchange as its HTTPDoer: the exchange sends the
// request to our endpoint, keeps the raw answer, and gives go-openai an
// empty JSON object to decode on success; this package then decodes and
// checks the raw answer itself, and builds HTTPError from the raw status,
// headers and body on failure. Building the request by hand instead would
// duplicate go-openai's multipart and auth code for no gain.
type OpenAI struct {
	cfg      OpenAIConfig
	endpoint *url.URL
	base     openai.ClientConfig
	now      func() time.Time
}

var _ Transcriber = (*OpenAI)(nil)

// NewOpenAI checks cfg and returns a backend. It does not contact the server.
func NewOpenAI(cfg OpenAIConfig) (*OpenAI, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	endpoint, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/") + cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("transcribe: endpoint from BaseURL and Path: %w", err)
	}
	base := openai.DefaultConfig(cfg.APIKey)
	base.BaseURL = cfg.BaseURL
	return &OpenAI{cfg: cfg, endpoint: endpoint, base: base, now: time.Now}, nil
}

// Transcribe sends req's audio and returns the checked transcript. Errors
// are *HTTPError when the backend failed or did not answer (see
// Temporary), wrap ErrBadAnswer when its answer is unusable, wrap
// ErrInvalidRequest when req cannot be sent, or wrap ctx's error.
func (o *OpenAI) Transcribe(ctx context.Context, req Request) (Result, error) {
	up, err := o.upload(req)
	if err != nil {
		return Result{}, fmt.Errorf("transcribe: %w: %w", ErrInvalidRequest, err)
	}
	audio := up.duration
	language := req.Language
	if language == "" {
		language = o.cfg.Language
	}
	timeout := o.cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeoutBase + DefaultTimeoutFactor*audio
	}
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if o.cfg.Diarized {
		return o.transcribeDiarized(ctx, callCtx, req, up, language)
	}

	began := o.now()
	ex := &exchange{client: o.cfg.HTTPClient, endpoint: o.endpoint}
	cc := o.base
	cc.HTTPClient = ex
	_, sendErr := openai.NewClientWithConfig(cc).CreateTranscription(callCtx, openai.AudioRequest{
		Model:    o.cfg.Model,
		FilePath: up.name, // names the part, and so its content type
		Reader:   bytes.NewReader(up.audio),
		Prompt:   Prompt(req),
		Language: language,
		Format:   openai.AudioResponseFormatVerboseJSON,
		TimestampGranularities: []openai.TranscriptionTimestampGranularity{
			openai.TranscriptionTimestampGranularityWord,
			openai.TranscriptionTimestampGranularitySegment,
		},
	})
	o.cfg.Logger.DebugContext(ctx, "transcription call", "endpoint", o.endpoint.String(), "audio", audio,
		"status", ex.status, "bytes", len(ex.body), "took", o.now().Sub(began))

	if !ex.sent && ex.err == nil {
		return Result{}, fmt.Errorf("transcribe: build request: %w", sendErr)
	}
	if err := o.exchangeError(ctx, callCtx, ex); err != nil {
		return Result{}, err
	}
	res, err := parseAnswer(ex.body, audio, language)
	if err != nil {
		return Result{}, fmt.Errorf("transcribe: %w", err)
	}
	return res, nil
}

// upload is a request's audio as it is sent.
type upload struct {
	audio []byte
	// name is the file part's name, whose extension sets its content type.
	name     string
	duration time.Duration
}

// upload checks req's audio and makes what is sent of it: Ogg Opus as it
// is, unless the server reads only WAV, and WAV as it is.
func (o *OpenAI) upload(req Request) (upload, error) {
	if len(req.Audio) == 0 {
		return upload{}, errors.New("no audio")
	}
	if len(req.Audio) > o.cfg.MaxUpload {
		return upload{}, fmt.Errorf("%d bytes of audio, more than the %d the backend takes; cut it shorter", len(req.Audio), o.cfg.MaxUpload)
	}
	format := detectFormat(req.Audio)
	up := upload{audio: req.Audio, name: "audio.wav", duration: req.Duration}
	switch {
	case format == formatOggOpus:
		// Read through even when Duration is given: a damaged file is
		// refused here, with a clearer reason than a server gives.
		d, err := audioDuration(req.Audio)
		if err != nil {
			return upload{}, err
		}
		if up.duration <= 0 {
			up.duration = d
		}
	case up.duration <= 0:
		d, err := audioDuration(req.Audio)
		if err != nil {
			return upload{}, fmt.Errorf("no Duration given and %w", err)
		}
		up.duration = d
	}
	if format != formatOggOpus {
		return up, nil
	}
	if !o.cfg.SendWAV {
		up.name = "audio.ogg"
		return up, nil
	}
	if size := wavSize(up.duration); size > int64(o.cfg.MaxUpload) {
		return upload{}, fmt.Errorf("%v of audio decoded to WAV would be %d bytes, more than the %d the backend takes; cut it shorter", up.duration, size, o.cfg.MaxUpload)
	}
	wav, err := audioAsWAV(req.Audio)
	if err != nil {
		return upload{}, err
	}
	up.audio = wav
	return up, nil
}

// exchangeError turns a failed exchange into the error Transcribe
// returns, nil when the backend answered 2xx.
func (o *OpenAI) exchangeError(ctx, callCtx context.Context, ex *exchange) error {
	switch {
	case errors.Is(ex.err, ErrBadAnswer):
		return fmt.Errorf("transcribe: %w", ex.err)
	case ex.err != nil:
		if ctx.Err() != nil {
			return fmt.Errorf("transcribe: %w", context.Cause(ctx))
		}
		return newTransportError(ex.err, errors.Is(callCtx.Err(), context.DeadlineExceeded))
	case ex.status < 200 || ex.status > 299:
		return newStatusError(ex.status, ex.header, ex.body, o.now())
	}
	return nil
}

// exchange is the HTTPDoer of one go-openai call: it sends the request to
// the configured endpoint and keeps the raw answer (see OpenAI).
type exchange struct {
	client   *http.Client
	endpoint *url.URL

	sent   bool
	status int
	header http.Header
	body   []byte
	err    error
}

func (e *exchange) Do(req *http.Request) (*http.Response, error) {
	e.sent = true
	out := req.Clone(req.Context())
	// go-openai always appends /audio/transcriptions; whisper.cpp and
	// proxies may serve elsewhere.
	u := *e.endpoint
	out.URL, out.Host = &u, ""
	resp, err := e.client.Do(out)
	if err != nil {
		e.err = err
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		e.err = fmt.Errorf("read answer: %w", err)
		return nil, e.err
	}
	if len(body) > maxAnswer {
		e.err = fmt.Errorf("%w: answer larger than %d bytes", ErrBadAnswer, maxAnswer)
		return nil, e.err
	}
	e.status, e.header, e.body = resp.StatusCode, resp.Header, body
	handed := body
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		handed = []byte("{}")
	}
	return &http.Response{
		Status: resp.Status, StatusCode: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(handed)), ContentLength: int64(len(handed)), Request: out,
	}, nil
}
