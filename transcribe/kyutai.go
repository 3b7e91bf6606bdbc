package transcribe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/greffier/greffier/internal/audio"
)

// Defaults of KyutaiConfig.
const (
	// DefaultKyutaiModelDelay is stt-1b's delay: the server's word times
	// run this much behind the audio. stt-2.6b's is 2.5 s.
	DefaultKyutaiModelDelay = 500 * time.Millisecond
	// DefaultKyutaiChunk is one model step: the server re-frames any chunk
	// length to it, so sending it exactly costs no re-buffering.
	DefaultKyutaiChunk = 80 * time.Millisecond
	// DefaultKyutaiEndPadding is the silence sent after the audio, before
	// the Marker, so that the model's delay lets the last words out.
	DefaultKyutaiEndPadding = 5 * time.Second
	// DefaultKyutaiMaxTailPadding bounds the silence sent after the Marker
	// while waiting for its echo, as Kyutai's reference client does.
	DefaultKyutaiMaxTailPadding = 35 * time.Second
	// DefaultKyutaiBusyRetry and DefaultKyutaiBusyRetryMax are the first
	// and the largest wait after "no free channels".
	DefaultKyutaiBusyRetry    = time.Second
	DefaultKyutaiBusyRetryMax = 30 * time.Second
	// DefaultKyutaiMaxBuffered is 2 s of 24 kHz audio: how far the client
	// may run ahead of what the server has processed.
	DefaultKyutaiMaxBuffered = 2 * kyutaiRate
	// DefaultKyutaiIdleTimeout is how long the client waits, once it has
	// sent all its padding, for a server that says nothing.
	DefaultKyutaiIdleTimeout = 10 * time.Second
	// kyutaiReadLimit bounds one server frame: a Word is tens of bytes.
	kyutaiReadLimit = 1 << 20
	// kyutaiMarkerID is the id of the end-of-stream Marker: one per session.
	kyutaiMarkerID = 1
)

// ErrKyutaiBusy means every channel of a Kyutai server stayed busy ("no
// free channels") until the context ended. Retrying later may succeed.
var ErrKyutaiBusy = errors.New("kyutai server has no free channel")

// KyutaiError is an Error frame a Kyutai server sent mid-stream. It is
// wrapped in a *HTTPError with StatusCode 0 (Temporary): the server broke
// the exchange, as a reset connection would.
type KyutaiError struct {
	Message string
}

func (e *KyutaiError) Error() string { return "kyutai server error: " + e.Message }

// KyutaiConfig configures a Kyutai streaming speech-to-text backend
// (moshi-server's asr-streaming module).
type KyutaiConfig struct {
	// URL is the WebSocket endpoint, e.g.
	// "ws://127.0.0.1:8080/api/asr-streaming". Required.
	URL string
	// APIKey is sent in the kyutai-api-key header when set. Default: none.
	APIKey string
	// ModelDelay is subtracted from every time the server reports.
	// Default: DefaultKyutaiModelDelay (stt-1b); set 2.5 s for stt-2.6b,
	// or a negative value for a server whose times are already corrected.
	ModelDelay time.Duration
	// ChunkDuration is the audio sent per Audio frame. Default:
	// DefaultKyutaiChunk.
	ChunkDuration time.Duration
	// EndPadding is the silence sent after the audio, before the Marker.
	// Default: DefaultKyutaiEndPadding. It must exceed ModelDelay.
	EndPadding time.Duration
	// MaxTailPadding bounds the silence sent after the Marker while its
	// echo is awaited. Default: DefaultKyutaiMaxTailPadding.
	MaxTailPadding time.Duration
	// LeadingSilence is silence sent before the audio (some servers
	// misplace the first word of a stream that starts with speech). The
	// times returned are still from the start of the audio. Default: none.
	LeadingSilence time.Duration
	// BusyRetry is the first wait after "no free channels"; waits double,
	// jittered, up to BusyRetryMax, until the context ends. Defaults:
	// DefaultKyutaiBusyRetry, DefaultKyutaiBusyRetryMax.
	BusyRetry, BusyRetryMax time.Duration
	// MaxBuffered is how many 24 kHz samples the client lets wait on the
	// server (its buffered_pcm plus what was sent since) before it stops
	// sending. Servers that send no Step frames get audio at real time
	// once MaxBuffered is spent. Default: DefaultKyutaiMaxBuffered; at
	// least four model steps (7680).
	MaxBuffered int
	// IdleTimeout bounds the wait for the Marker's echo once all padding is
	// sent and the server has gone quiet. Default: DefaultKyutaiIdleTimeout.
	IdleTimeout time.Duration
	// Timeout bounds each Transcribe call, busy waits included. Default:
	// 0, meaning DefaultTimeoutBase + DefaultTimeoutFactor x the audio's
	// duration + EndPadding + MaxTailPadding.
	Timeout time.Duration
	// HTTPClient makes the WebSocket handshake (its Transport dials).
	// Default: a client without an overall timeout.
	HTTPClient *http.Client
	// Logger gets one debug line per session and an info line per busy
	// wait. Default: discards.
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with every unset field at its default.
func (c KyutaiConfig) WithDefaults() KyutaiConfig {
	if c.ModelDelay == 0 {
		c.ModelDelay = DefaultKyutaiModelDelay
	}
	if c.ChunkDuration == 0 {
		c.ChunkDuration = DefaultKyutaiChunk
	}
	if c.EndPadding == 0 {
		c.EndPadding = DefaultKyutaiEndPadding
	}
	if c.MaxTailPadding == 0 {
		c.MaxTailPadding = DefaultKyutaiMaxTailPadding
	}
	if c.BusyRetry == 0 {
		c.BusyRetry = DefaultKyutaiBusyRetry
	}
	if c.BusyRetryMax == 0 {
		c.BusyRetryMax = max(DefaultKyutaiBusyRetryMax, c.BusyRetry)
	}
	if c.MaxBuffered == 0 {
		c.MaxBuffered = DefaultKyutaiMaxBuffered
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultKyutaiIdleTimeout
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c KyutaiConfig) validate() error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return fmt.Errorf("transcribe: Kyutai URL %q must be a ws(s) URL such as ws://127.0.0.1:8080/api/asr-streaming", c.URL)
	}
	switch {
	case c.ChunkDuration < 10*time.Millisecond || c.ChunkDuration > time.Second:
		return fmt.Errorf("transcribe: Kyutai ChunkDuration %v must be 10 ms to 1 s (80 ms is one model step)", c.ChunkDuration)
	case c.EndPadding < 0 || c.MaxTailPadding < 0 || c.LeadingSilence < 0:
		return fmt.Errorf("transcribe: Kyutai EndPadding, MaxTailPadding and LeadingSilence must not be negative")
	case c.ModelDelay > 0 && c.EndPadding <= c.ModelDelay:
		return fmt.Errorf("transcribe: Kyutai EndPadding %v must exceed ModelDelay %v, or the last words never come out", c.EndPadding, c.ModelDelay)
	case c.BusyRetry < 0 || c.BusyRetryMax < c.BusyRetry:
		return fmt.Errorf("transcribe: Kyutai BusyRetry %v must be positive and at most BusyRetryMax %v", c.BusyRetry, c.BusyRetryMax)
	case c.MaxBuffered < 4*kyutaiFrame:
		return fmt.Errorf("transcribe: Kyutai MaxBuffered %d must be at least %d samples (four model steps)", c.MaxBuffered, 4*kyutaiFrame)
	case c.IdleTimeout < 0 || c.Timeout < 0:
		return fmt.Errorf("transcribe: Kyutai IdleTimeout and Timeout must not be negative")
	}
	return nil
}

// Kyutai transcribes through a Kyutai streaming server (moshi-server's
// asr-streaming): 24 kHz float PCM over a WebSocket in, Word and EndWord
// frames out. It serves finished audio (Transcribe) and live audio
// (Stream). It is safe for concurrent use; each call takes one of the
// server's channels for its duration. The protocol has no prompt nor hint
// field: Request.Prompt and Request.Vocabulary are not sent.
type Kyutai struct {
	cfg  KyutaiConfig
	taps *resampleTaps
	now  func() time.Time
}

var _ Transcriber = (*Kyutai)(nil)

// NewKyutai checks cfg and returns a backend. It does not contact the server.
func NewKyutai(cfg KyutaiConfig) (*Kyutai, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Kyutai{cfg: cfg, taps: newResampleTaps(), now: time.Now}, nil
}

// Transcribe streams req's audio to the server faster than real time, as
// fast as the server's back-pressure allows, and returns the checked
// words. A WAV is resampled from 16 to 24 kHz on the way; Ogg Opus is
// decoded straight to 24 kHz. Phrases stay empty: the server groups
// nothing. Errors are *HTTPError when the server refused the handshake
// (401: not Temporary), broke the stream (a *KyutaiError inside) or did
// not answer; wrap ErrKyutaiBusy when no channel came free before the
// deadline; wrap ErrBadAnswer when its words are unusable or its Marker
// never came back; wrap ErrInvalidRequest when req cannot be sent.
func (k *Kyutai) Transcribe(ctx context.Context, req Request) (Result, error) {
	in, err := kyutaiInput(req.Audio)
	if err != nil {
		return Result{}, fmt.Errorf("transcribe: %w: %w", ErrInvalidRequest, err)
	}
	audio := in.duration()
	if audio <= 0 {
		return Result{}, fmt.Errorf("transcribe: %w: no audio", ErrInvalidRequest)
	}
	timeout := k.cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeoutBase + DefaultTimeoutFactor*audio + k.cfg.EndPadding + k.cfg.MaxTailPadding
	}
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	began := k.now()
	var words []Word
	s, err := k.open(callCtx, in.pcm24k != nil, func(w Word, final bool) {
		if final {
			words = append(words, w)
		}
	})
	if err != nil {
		return Result{}, k.callError(ctx, err)
	}
	if err := k.sendAll(callCtx, s, in); err != nil {
		s.abort()
		return Result{}, k.callError(ctx, err)
	}
	// words is appended to by the reader goroutine; finish returns after it
	// has stopped, so reading it afterwards is safe.
	err = s.finish(callCtx, audio)
	k.cfg.Logger.DebugContext(ctx, "kyutai transcription", "url", k.cfg.URL, "audio", audio,
		"words", len(words), "took", k.now().Sub(began), "error", err)
	if err != nil {
		return Result{}, k.callError(ctx, err)
	}
	return checkKyutaiWords(words, audio, req.Language)
}

// kyutaiAudio is a request's audio as a session takes it: 16 kHz PCM16
// from a WAV, resampled on the way, or 24 kHz samples decoded from Ogg
// Opus, sent as they are.
type kyutaiAudio struct {
	pcm16k []int16
	pcm24k []float32
}

func kyutaiInput(b []byte) (kyutaiAudio, error) {
	if len(b) == 0 {
		return kyutaiAudio{}, errors.New("no audio")
	}
	switch detectFormat(b) {
	case formatWAV:
		pcm, err := decodePCM16WAV(b)
		return kyutaiAudio{pcm16k: pcm}, err
	case formatOggOpus:
		pcm, err := audio.DecodeOggOpus(b, kyutaiRate)
		if err != nil {
			return kyutaiAudio{}, fmt.Errorf("audio starts with OggS but is %w", err)
		}
		return kyutaiAudio{pcm24k: pcm}, nil
	}
	return kyutaiAudio{}, errUnknownFormat(b)
}

func (a kyutaiAudio) duration() time.Duration {
	if a.pcm24k != nil {
		return time.Duration(int64(len(a.pcm24k)) * int64(time.Second) / kyutaiRate)
	}
	return time.Duration(int64(len(a.pcm16k)) * int64(time.Second) / inputRate)
}

// sendAll sends the audio a chunk at a time.
func (k *Kyutai) sendAll(ctx context.Context, s *kyutaiSession, in kyutaiAudio) error {
	if in.pcm24k != nil {
		chunk := int(k.cfg.ChunkDuration * kyutaiRate / time.Second)
		for from := 0; from < len(in.pcm24k); from += chunk {
			if err := s.send24k(ctx, in.pcm24k[from:min(from+chunk, len(in.pcm24k))]); err != nil {
				return err
			}
		}
		return nil
	}
	chunk := int(k.cfg.ChunkDuration * inputRate / time.Second)
	for from := 0; from < len(in.pcm16k); from += chunk {
		if err := s.send(ctx, in.pcm16k[from:min(from+chunk, len(in.pcm16k))]); err != nil {
			return err
		}
	}
	return nil
}

// callError prefers the caller's own context error over what its
// cancellation caused further down.
func (k *Kyutai) callError(ctx context.Context, err error) error {
	if ctx.Err() != nil && !errors.Is(err, ErrKyutaiBusy) {
		return fmt.Errorf("transcribe: kyutai: %w", context.Cause(ctx))
	}
	return err
}

// checkKyutaiWords applies the checks every backend's answer gets: times
// finite, inside the audio give or take timeSlack, in order.
func checkKyutaiWords(words []Word, audio time.Duration, language string) (Result, error) {
	res := Result{Language: language, Duration: audio, Words: make([]Word, 0, len(words))}
	c := checker{limit: audio}
	texts := make([]string, 0, len(words))
	for i, w := range words {
		text := strings.TrimSpace(w.Text)
		if text == "" {
			continue
		}
		start, end, err := c.span(number{v: w.Start.Seconds(), set: true}, number{v: w.End.Seconds(), set: true})
		if err != nil {
			return Result{}, fmt.Errorf("transcribe: kyutai: %w: word %d %q: %w", ErrBadAnswer, i, text, err)
		}
		res.Words = append(res.Words, Word{Text: text, Start: start, End: end})
		texts = append(texts, text)
	}
	res.Text = strings.Join(texts, " ")
	return res, nil
}
