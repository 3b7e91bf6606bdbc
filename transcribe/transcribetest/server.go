// Package transcribetest is a test double for OpenAI-compatible
// transcription servers, and the "tone speech" it understands.
//
// The double is a real HTTP server on loopback that speaks the wire format
// of backends.md (multipart request, verbose_json answer, errors, and the
// quirks of vLLM and whisper.cpp). It reads WAV and Ogg Opus files, as
// OpenAI, speaches and vLLM do; as whisper.cpp's server (without
// --convert), QuirkWhisperCpp reads only WAV and answers anything else
// with 200 and {"error":"failed to read audio data"}. Its answers are
// derived from the audio it receives (Ogg Opus decoded at 16 kHz, pre-skip
// dropped): every word of Vocabulary is a pure tone, which the server finds
// with Goertzel filters, so a test that sends the wrong audio, or loses
// time on the way, gets a wrong transcript. Synthesize makes such audio.
//
// Options make it misbehave as real servers do: fail the first requests
// (503 while loading, 429 with Retry-After, 5xx), answer slowly (Delay),
// or answer 200 with a lie (truncated JSON, times outside the audio or
// going backwards, no text for speech). With response_format
// diarized_json it answers as gpt-4o-transcribe-diarize, telling speakers
// apart by Voice (the tone band), and names them after known speakers'
// reference clips.
//
// It is for tests and fixture generation only: no production package may
// import it, and it imports nothing of Greffier but the Ogg Opus reader
// the transcribe package uses itself (internal/audio).
package transcribetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Quirk selects which real server's answer shape the double imitates.
type Quirk int

const (
	// QuirkOpenAI answers as OpenAI's whisper-1 does: numeric duration,
	// top-level words when asked for, segments when asked for (or when no
	// granularity is given).
	QuirkOpenAI Quirk = iota
	// QuirkVLLM answers as vLLM does: duration as a JSON string, never any
	// words, segments always, no_speech_prob null.
	QuirkVLLM
	// QuirkWhisperCpp answers as whisper.cpp's server does: words nested in
	// each segment as token pieces (" al", "pha"), no top-level words; a
	// file that is not WAV (Ogg Opus among them) gets status 200 and
	// WhisperCppReadError.
	QuirkWhisperCpp
)

// WhisperCppReadError is the body whisper.cpp's server answers, with
// status 200, to audio it cannot read.
const WhisperCppReadError = `{"error":"failed to read audio data"}`

// DefaultPath is where the double listens unless Options.Path says otherwise.
const DefaultPath = "/v1/audio/transcriptions"

// DefaultFailStatus is the status of the failures Options.FailFirst asks for.
const DefaultFailStatus = http.StatusServiceUnavailable

// maxUpload is OpenAI's and vLLM's default upload limit.
const maxUpload = 25 << 20

// Options shape the double's behaviour. The zero value is a well-behaved
// OpenAI endpoint with no authentication at DefaultPath.
type Options struct {
	// APIKey, when set, is the only bearer token accepted; others get 401.
	APIKey string
	// Path is the endpoint's path. Default: DefaultPath (whisper.cpp
	// serves "/inference").
	Path string
	// Quirk is the answer shape. Default: QuirkOpenAI.
	Quirk Quirk
	// FailFirst makes the first FailFirst requests fail with FailStatus,
	// before the audio is looked at.
	FailFirst int
	// FailStatus is the status of those failures. Default: DefaultFailStatus.
	FailStatus int
	// RetryAfter, when positive, is sent (in whole seconds, rounded up) as
	// Retry-After with every failure FailFirst causes.
	RetryAfter time.Duration
	// Language is reported when a request names none. Default: "english",
	// as whisper reports a detected language.
	Language string
	// Delay slows answers down: the double waits this long after reading
	// a request (or until the client gives up, or Release) before
	// answering it.
	// Default: none.
	Delay time.Duration
	// DelayFirst limits Delay to the first DelayFirst requests that get
	// past FailFirst. Default: 0, every request.
	DelayFirst int
	// Speed makes the double a backend of fixed speed, as a real one
	// busy with the audio would be: each answer is sent Speed times faster
	// than real time, audio length / Speed after the request was read
	// (Speed 20 answers a 10 s segment after 500 ms), however long the
	// double itself took to find the words. Requests are served in
	// parallel, each at this speed: a server with several workers. With
	// Delay as well, the answer waits for both. Default: 0, answer as
	// soon as the words are found.
	Speed float64
	// Lie makes successful answers wrong in the way it names. Default:
	// LieNone.
	Lie Lie
	// LieFirst limits Lie to the first LieFirst successful answers.
	// Default: 0, every answer.
	LieFirst int
}

// Lie is a way a server answers 200 with something unusable, as real
// ones do when overloaded, cut off by a proxy, or hallucinating.
type Lie int

const (
	// LieNone answers truthfully.
	LieNone Lie = iota
	// LieTruncated cuts the JSON body in half, as a proxy dropping the
	// connection mid-answer does.
	LieTruncated
	// LieOutsideAudio moves the last segment and word past the end of
	// the audio.
	LieOutsideAudio
	// LieBackwards lists segments and words in reverse order, so their
	// times go back (needs at least two of them to show).
	LieBackwards
	// LieEmpty answers no text, no segments and no words, although the
	// audio holds speech.
	LieEmpty
)

// WithDefaults returns a copy of o with every unset field at its default.
func (o Options) WithDefaults() Options {
	if o.Path == "" {
		o.Path = DefaultPath
	}
	if o.FailStatus == 0 {
		o.FailStatus = DefaultFailStatus
	}
	if o.Language == "" {
		o.Language = "english"
	}
	return o
}

// Received is what one request carried, as the double parsed it.
type Received struct {
	Model, Language, Prompt, ResponseFormat string
	Granularities                           []string
	// Filename and ContentType are the file part's.
	Filename, ContentType string
	Size                  int
	// ChunkingStrategy and KnownSpeakerNames are diarized_json's fields;
	// KnownSpeakerReferences counts the data URLs sent.
	ChunkingStrategy       string
	KnownSpeakerNames      []string
	KnownSpeakerReferences int
	// Heard is the text the double recognised in the audio (set once the
	// audio decoded), so a test can tell which request carried which
	// stretch of speech, and what it was prompted with.
	Heard string
}

// Server is a running double. Close it when done.
type Server struct {
	opts     Options
	srv      *httptest.Server
	requests atomic.Int64
	delayed  atomic.Int64
	answers  atomic.Int64
	// released ends every Delay at once (Release).
	released    chan struct{}
	releaseOnce sync.Once

	mu       sync.Mutex
	received []Received
}

// NewServer starts a double on a loopback port.
func NewServer(opts Options) *Server {
	s := &Server{opts: opts.WithDefaults(), released: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc(s.opts.Path, s.transcribe)
	s.srv = httptest.NewServer(mux)
	return s
}

// Close stops the server and waits for its requests to finish.
func (s *Server) Close() { s.Release(); s.srv.Close() }

// Release ends Options.Delay for every request, waiting or to come: with a
// long Delay, the double holds requests until the test releases them.
func (s *Server) Release() { s.releaseOnce.Do(func() { close(s.released) }) }

// URL is the server's root, e.g. "http://127.0.0.1:41234".
func (s *Server) URL() string { return s.srv.URL }

// BaseURL is URL plus "/v1", what OpenAI clients take as their base when
// Path is DefaultPath.
func (s *Server) BaseURL() string { return s.srv.URL + "/v1" }

// Requests is how many requests reached the endpoint, failed ones included.
func (s *Server) Requests() int { return int(s.requests.Load()) }

// Received lists the requests whose form was parsed, in arrival order.
func (s *Server) Received() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.received)
}

func (s *Server) transcribe(w http.ResponseWriter, r *http.Request) {
	n := s.requests.Add(1)
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	if s.opts.APIKey != "" && r.Header.Get("Authorization") != "Bearer "+s.opts.APIKey {
		writeError(w, http.StatusUnauthorized, "Incorrect API key provided.")
		return
	}
	if n <= int64(s.opts.FailFirst) {
		if s.opts.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(s.opts.RetryAfter.Seconds()))))
		}
		writeError(w, s.opts.FailStatus, fmt.Sprintf("failure %d of %d asked of the test double", n, s.opts.FailFirst))
		return
	}

	r.Body = http.MaxBytesReader(w, r.Body, maxUpload+1<<20)
	if err := r.ParseMultipartForm(maxUpload + 1<<20); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, "Maximum content size limit exceeded.")
			return
		}
		writeError(w, http.StatusBadRequest, "could not parse multipart form: "+err.Error())
		return
	}
	file, header, err := r.FormFile("file")
	if err != nil {
		writeError(w, http.StatusBadRequest, "missing 'file' in request")
		return
	}
	audio, err := io.ReadAll(file)
	_ = file.Close()
	read := time.Now()
	if err != nil {
		writeError(w, http.StatusBadRequest, "could not read 'file': "+err.Error())
		return
	}
	rec := Received{
		Model:          r.FormValue("model"),
		Language:       r.FormValue("language"),
		Prompt:         r.FormValue("prompt"),
		ResponseFormat: r.FormValue("response_format"),
		Granularities:  r.MultipartForm.Value["timestamp_granularities[]"],
		Filename:       header.Filename,
		ContentType:    header.Header.Get("Content-Type"),
		Size:           len(audio),

		ChunkingStrategy:       r.FormValue("chunking_strategy"),
		KnownSpeakerNames:      r.MultipartForm.Value["known_speaker_names[]"],
		KnownSpeakerReferences: len(r.MultipartForm.Value["known_speaker_references[]"]),
	}
	s.mu.Lock()
	idx := len(s.received)
	s.received = append(s.received, rec)
	s.mu.Unlock()

	if len(audio) == 0 {
		writeError(w, http.StatusBadRequest, "The audio file is empty.")
		return
	}
	if rec.Model == "" && s.opts.Quirk != QuirkWhisperCpp {
		writeError(w, http.StatusBadRequest, "you must provide a model parameter")
		return
	}
	format := rec.ResponseFormat
	if format == "" {
		format = "json"
	}
	if len(rec.Granularities) > 0 && format != "verbose_json" && s.opts.Quirk == QuirkOpenAI {
		writeError(w, http.StatusBadRequest, "timestamp_granularities requires response_format=verbose_json")
		return
	}
	if format != "json" && format != "text" && format != "verbose_json" && format != "diarized_json" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("response_format %q is not supported by the test double", format))
		return
	}
	decode := DecodeAudio
	if s.opts.Quirk == QuirkWhisperCpp {
		decode = DecodeWAV
	}
	pcm, rate, err := decode(audio)
	if err != nil && s.opts.Quirk == QuirkWhisperCpp {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, WhisperCppReadError)
		return
	}
	if err != nil {
		writeError(w, http.StatusUnsupportedMediaType, "could not decode audio: "+err.Error())
		return
	}
	det, err := NewDetector(rate)
	if err != nil {
		writeError(w, http.StatusUnsupportedMediaType, "could not decode audio: "+err.Error())
		return
	}
	words := det.Detect(pcm)
	heard := make([]string, len(words))
	for i, w := range words {
		heard[i] = w.Text
	}
	s.mu.Lock()
	s.received[idx].Heard = strings.Join(heard, " ")
	s.mu.Unlock()
	var voices map[int]string
	if format == "diarized_json" {
		duration := time.Duration(len(pcm)) * time.Second / time.Duration(rate)
		if voices, err = diarizeRequest(r, rec, duration); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	if !s.slowDown(w, r) {
		return
	}
	if !s.atSpeed(w, r, read, time.Duration(len(pcm))*time.Second/time.Duration(rate)) {
		return
	}
	lie := s.opts.Lie
	if n := s.answers.Add(1); s.opts.LieFirst > 0 && n > int64(s.opts.LieFirst) {
		lie = LieNone
	}
	language := rec.Language
	if language == "" {
		language = s.opts.Language
	}
	ans := answer{
		quirk:         s.opts.Quirk,
		language:      language,
		duration:      float64(len(pcm)) / float64(rate),
		words:         words,
		granularities: rec.Granularities,
	}
	if lie == LieEmpty {
		ans.words = nil
	}
	var body any
	switch format {
	case "text":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, ans.text()+"\n")
		return
	case "json":
		body = map[string]string{"text": ans.text()}
	case "diarized_json":
		d := ans.diarized(voices)
		lieAbout(lie, ans.duration+1, d.Segments, func(i int, by float64) { d.Segments[i].Start += by; d.Segments[i].End += by })
		body = d
	default:
		v := ans.verbose()
		lieAbout(lie, ans.duration+1, v.Segments, func(i int, by float64) { v.Segments[i].Start += by; v.Segments[i].End += by })
		lieAbout(lie, ans.duration+1, v.Words, func(i int, by float64) { v.Words[i].Start += by; v.Words[i].End += by })
		body = v
	}
	raw, err := json.Marshal(body)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encode answer: "+err.Error())
		return
	}
	if lie == LieTruncated {
		raw = raw[:len(raw)/2]
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(raw)
}

// slowDown applies Options.Delay, and reports false when the client left
// before the delay was over.
func (s *Server) slowDown(w http.ResponseWriter, r *http.Request) bool {
	if s.opts.Delay <= 0 {
		return true
	}
	if n := s.delayed.Add(1); s.opts.DelayFirst > 0 && n > int64(s.opts.DelayFirst) {
		return true
	}
	t := time.NewTimer(s.opts.Delay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.released:
		return true
	case <-r.Context().Done():
		writeError(w, http.StatusServiceUnavailable, "client left before the answer was ready")
		return false
	}
}

// atSpeed holds the answer to audio of length d, read at read, until
// Options.Speed says it is ready, and reports false when the client left
// before that.
func (s *Server) atSpeed(w http.ResponseWriter, r *http.Request, read time.Time, d time.Duration) bool {
	if s.opts.Speed <= 0 {
		return true
	}
	wait := time.Until(read.Add(time.Duration(float64(d) / s.opts.Speed)))
	if wait <= 0 {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.released:
		return true
	case <-r.Context().Done():
		writeError(w, http.StatusServiceUnavailable, "client left before the answer was ready")
		return false
	}
}

// lieAbout applies the time lies to a list of segments or words; shift
// moves element i by so many seconds. outside is a shift that takes any
// time in the audio past its end.
func lieAbout[E any](lie Lie, outside float64, list []E, shift func(i int, by float64)) {
	switch {
	case len(list) == 0:
	case lie == LieOutsideAudio:
		shift(len(list)-1, outside)
	case lie == LieBackwards:
		slices.Reverse(list)
	}
}

// answer builds the body of a successful reply from the detected words.
type answer struct {
	quirk         Quirk
	language      string
	duration      float64
	words         []TimedWord
	granularities []string
}

type wireWord struct {
	Word        string   `json:"word"`
	Start       float64  `json:"start"`
	End         float64  `json:"end"`
	Probability *float64 `json:"probability,omitempty"`
}

type wireSegment struct {
	ID               int        `json:"id"`
	Seek             int        `json:"seek"`
	Start            float64    `json:"start"`
	End              float64    `json:"end"`
	Text             string     `json:"text"`
	Tokens           []int      `json:"tokens"`
	Temperature      float64    `json:"temperature"`
	AvgLogprob       float64    `json:"avg_logprob"`
	CompressionRatio float64    `json:"compression_ratio"`
	NoSpeechProb     *float64   `json:"no_speech_prob"`
	Words            []wireWord `json:"words,omitempty"`
}

type wireVerbose struct {
	Task     string        `json:"task"`
	Language string        `json:"language"`
	Duration any           `json:"duration"`
	Text     string        `json:"text"`
	Segments []wireSegment `json:"segments,omitempty"`
	Words    []wireWord    `json:"words,omitempty"`
}

func (a answer) text() string {
	parts := make([]string, len(a.words))
	for i, w := range a.words {
		parts[i] = w.Text
	}
	return strings.Join(parts, " ")
}

func (a answer) verbose() wireVerbose {
	v := wireVerbose{Task: "transcribe", Language: a.language, Duration: round2(a.duration), Text: a.text()}
	wantWords := slices.Contains(a.granularities, "word")
	wantSegments := len(a.granularities) == 0 || slices.Contains(a.granularities, "segment")
	switch a.quirk {
	case QuirkVLLM:
		v.Duration = strconv.FormatFloat(round2(a.duration), 'f', 2, 64)
		v.Segments = a.segments(false)
		for i := range v.Segments {
			v.Segments[i].NoSpeechProb = nil
		}
	case QuirkWhisperCpp:
		v.Segments = a.segments(true)
	default:
		if wantSegments {
			v.Segments = a.segments(false)
		}
		if wantWords {
			for _, w := range a.words {
				v.Words = append(v.Words, wireWord{Word: w.Text, Start: seconds(w.Start), End: seconds(w.End)})
			}
		}
	}
	return v
}

// segments groups the words at pauses longer than SegmentPause. With
// tokens, each segment carries its words as whisper.cpp does: one entry per
// token, a word's first token starting with a space.
func (a answer) segments(tokens bool) []wireSegment {
	var out []wireSegment
	for i := 0; i < len(a.words); {
		j := i + 1
		for j < len(a.words) && a.words[j].Start-a.words[j-1].End <= SegmentPause {
			j++
		}
		group := a.words[i:j]
		seg := wireSegment{
			ID:               len(out),
			Start:            seconds(group[0].Start),
			End:              seconds(group[len(group)-1].End),
			Temperature:      0,
			AvgLogprob:       -0.2,
			CompressionRatio: 1,
			NoSpeechProb:     new(0.01),
		}
		texts := make([]string, len(group))
		for k, w := range group {
			texts[k] = w.Text
			f, _ := Frequency(w.Text)
			seg.Tokens = append(seg.Tokens, 50000+int(f))
			if tokens {
				seg.Words = append(seg.Words, tokenPieces(w)...)
			}
		}
		seg.Text = " " + strings.Join(texts, " ")
		out = append(out, seg)
		i = j
	}
	return out
}

// tokenPieces splits a word into two whisper.cpp-style tokens when it is
// long enough, sharing its time in proportion to their lengths.
func tokenPieces(w TimedWord) []wireWord {
	p := 0.9
	text := " " + w.Text
	if len(w.Text) < 4 {
		return []wireWord{{Word: text, Start: seconds(w.Start), End: seconds(w.End), Probability: &p}}
	}
	cut := 1 + len(w.Text)/2
	mid := w.Start + (w.End-w.Start)*time.Duration(cut)/time.Duration(len(text))
	return []wireWord{
		{Word: text[:cut], Start: seconds(w.Start), End: seconds(mid), Probability: &p},
		{Word: text[cut:], Start: seconds(mid), End: seconds(w.End), Probability: &p},
	}
}

func seconds(d time.Duration) float64 { return round2(d.Seconds()) }

// round2 keeps centiseconds, the resolution whisper servers report.
func round2(s float64) float64 { return math.Round(s*100) / 100 }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers in OpenAI's error shape.
func writeError(w http.ResponseWriter, status int, msg string) {
	typ := "invalid_request_error"
	if status >= 500 {
		typ = "server_error"
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"message": msg, "type": typ, "param": nil, "code": nil,
	}})
}
