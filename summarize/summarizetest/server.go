// Package summarizetest is a test double for OpenAI-compatible chat
// completion servers asked to summarise meetings.
//
// The double is a real HTTP server on loopback speaking the chat
// completions wire format (POST /v1/chat/completions). It checks what it is
// given: the prompt must hold the transcript as numbered turns with
// meeting-clock times ("[T12 00:03:14–00:03:40] Alice Martin: ..."), in
// time order, or partial summaries to combine, within the model's context.
// It records every request, and derives its answer from the transcript it
// received, never from canned text:
//   - the abstract cites the first and last turn it was shown;
//   - a turn that speaks of deciding ("decide", "decision", "agreed",
//     "décid") becomes a decision citing it;
//   - "<Name> will <do X> by <date>" becomes an action item with owner and
//     due date ("by <date>" is optional);
//   - the three most frequent long words become topics, citing the first
//     four turns they occur in;
//   - combining merges the parts: topics with the same text join their
//     citations (four at most) and the three most cited stay, decisions and action items
//     are kept, the abstract cites the first part's first citation and the
//     last part's last.
//
// A reply longer than the request's max_tokens is cut off there with
// finish_reason "length", as a model's would be.
//
// Options make it misbehave: error statuses, replies that are not JSON,
// JSON wrapped in prose, citations of turns that do not exist.
//
// It is for tests only: no production package may import it, and it
// imports nothing of Greffier.
package summarizetest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
)

// Path is where the double listens.
const Path = "/v1/chat/completions"

// DefaultFailStatus is the status of the failures Options.FailFirst asks for.
const DefaultFailStatus = http.StatusServiceUnavailable

// maxTopicCitations is how many turns a topic cites at most, the first
// ones it occurs in, as a model cites a few examples rather than every
// mention.
const maxTopicCitations = 4

// BogusTurnOffset is added to the highest turn id shown to make the ids
// Options.UnknownCitations cites.
const BogusTurnOffset = 1000

// Options shape the double's behaviour. The zero value is a well-behaved
// server without authentication or context limit.
type Options struct {
	// APIKey, when set, is the only bearer token accepted; others get 401.
	APIKey string
	// MaxContextTokens, when positive, rejects with 400 (as vLLM does) any
	// request whose messages and max_tokens together exceed it; messages
	// are counted at four bytes a token plus four a message.
	MaxContextTokens int
	// FailFirst makes the first FailFirst requests fail with FailStatus.
	FailFirst int
	// FailStatus is the status of those failures. Default: DefaultFailStatus.
	FailStatus int
	// RetryAfter, when positive, is sent (whole seconds, rounded up) as
	// Retry-After with every failure FailFirst causes.
	RetryAfter time.Duration
	// BadJSON makes the first BadJSON replies (after any failures) a
	// truncated JSON object instead of the summary.
	BadJSON int
	// Prose wraps every reply's JSON in prose and a ``` fence, as servers
	// that ignore response_format do.
	Prose bool
	// UnknownCitations adds a nonexistent turn id to every point's
	// citations, and one decision that cites only such an id.
	UnknownCitations bool
	// Stall makes every request wait, unanswered, until the client gives
	// up (or the server closes).
	Stall bool
	// StallFirst limits Stall to the first StallFirst requests that get
	// past FailFirst, so that a client that gave up (or died) is answered
	// when it asks again. Default: 0, every request.
	StallFirst int
}

// WithDefaults returns a copy of o with every unset field at its default.
func (o Options) WithDefaults() Options {
	if o.FailStatus == 0 {
		o.FailStatus = DefaultFailStatus
	}
	return o
}

// Turn is one transcript line the double was shown.
type Turn struct {
	ID         int
	Start, End time.Duration // as shown, to the second
	Name, Text string
}

// Received is what one request carried, as the double parsed it.
type Received struct {
	Model          string
	ResponseFormat string
	MaxTokens      int
	// Language is the ISO-639-1 code the prompt asked for; empty when it
	// asked for the transcript's own language.
	Language string
	// Combine is true for a call that merges partial summaries; Parts is
	// then how many it was given.
	Combine bool
	Parts   int
	// Turns are the transcript lines of a part call.
	Turns []Turn
	// PromptTokens is the double's estimate of the messages' size.
	PromptTokens int
	System, User string
}

// Server is a running double. Close it when done.
type Server struct {
	opts     Options
	srv      *httptest.Server
	requests atomic.Int64
	replies  atomic.Int64
	stalled  atomic.Int64

	closing   chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex
	received []Received
}

// NewServer starts a double on a loopback port.
func NewServer(opts Options) *Server {
	s := &Server{opts: opts.WithDefaults(), closing: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc(Path, s.complete)
	s.srv = httptest.NewServer(mux)
	return s
}

// Close stops the server and waits for its requests to finish; stalled
// requests are dropped unanswered.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
	s.srv.Close()
}

// URL is the server's root, e.g. "http://127.0.0.1:41234".
func (s *Server) URL() string { return s.srv.URL }

// BaseURL is URL plus "/v1", what OpenAI clients take as their base.
func (s *Server) BaseURL() string { return s.srv.URL + "/v1" }

// Requests is how many requests reached the endpoint, failed ones included.
func (s *Server) Requests() int { return int(s.requests.Load()) }

// Received lists the requests that passed the checks, in arrival order.
func (s *Server) Received() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.received)
}

type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
	MaxTokens           int `json:"max_tokens"`
	MaxCompletionTokens int `json:"max_completion_tokens"`
	ResponseFormat      *struct {
		Type       string `json:"type"`
		JSONSchema *struct {
			Name   string          `json:"name"`
			Schema json.RawMessage `json:"schema"`
		} `json:"json_schema"`
	} `json:"response_format"`
	Stream bool `json:"stream"`
}

var (
	turnLine     = regexp.MustCompile(`(?m)^\[T(\d+) (\d\d):(\d\d):(\d\d)[–-](\d\d):(\d\d):(\d\d)\] ([^:\n]+): (.*)$`)
	askedLang    = regexp.MustCompile(`ISO-639-1 code "([^"]+)"`)
	autoLang     = "the language the transcript is spoken in"
	partsMarker  = "consecutive parts of the meeting, in order, as JSON:\n"
	decisionWord = regexp.MustCompile(`(?i)\b(decide|decided|decision|agreed|décid)`)
	actionPhrase = regexp.MustCompile(`\b(\p{Lu}\p{L}+(?: \p{Lu}\p{L}+)?) will ([^.!?]+?)(?: by ([^.,;!?]+))?(?:[.!?]|$)`)
)

func (s *Server) complete(w http.ResponseWriter, r *http.Request) {
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
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 8<<20))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "request too large")
		return
	}
	if s.opts.Stall && (s.opts.StallFirst <= 0 || s.stalled.Add(1) <= int64(s.opts.StallFirst)) {
		// The request's context ends when the client hangs up, which the
		// server notices only once the body has been read.
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
		return
	}
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "request is not JSON: "+err.Error())
		return
	}
	rec, status, msg := s.parse(req)
	if status != 0 {
		writeError(w, status, msg)
		return
	}
	s.mu.Lock()
	s.received = append(s.received, rec)
	s.mu.Unlock()

	var content string
	if s.replies.Add(1) <= int64(s.opts.BadJSON) {
		content = `{"language": "` + rec.Language + `", "abstract": {"text": "The meeting was about`
	} else {
		var a answer
		if rec.Combine {
			a, err = combine(rec)
			if err != nil {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
		} else {
			a = summarise(rec)
		}
		if s.opts.UnknownCitations {
			bogus := fmt.Sprintf("T%d", maxID(rec)+BogusTurnOffset)
			a.addBogus(bogus)
		}
		js, err := json.Marshal(a)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		content = string(js)
		if s.opts.Prose {
			content = "Here is the summary {as requested}:\n```json\n" + content + "\n```\nI hope it helps."
		}
	}
	// A reply longer than max_tokens is cut off, as a model's would be.
	finish := "stop"
	if rec.MaxTokens > 0 && (len(content)+3)/4 > rec.MaxTokens {
		content, finish = content[:rec.MaxTokens*4], "length"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": fmt.Sprintf("chatcmpl-%d", n), "object": "chat.completion", "created": time.Now().Unix(), "model": req.Model,
		"choices": []map[string]any{{"index": 0, "finish_reason": finish,
			"message": map[string]any{"role": "assistant", "content": content}}},
		"usage": map[string]any{"prompt_tokens": rec.PromptTokens, "completion_tokens": (len(content) + 3) / 4,
			"total_tokens": rec.PromptTokens + (len(content)+3)/4},
	})
}

// parse checks a request and reads what it carries; status is nonzero when
// it is refused.
func (s *Server) parse(req chatRequest) (rec Received, status int, msg string) {
	if req.Stream {
		return rec, http.StatusBadRequest, "the double does not stream"
	}
	if req.Model == "" {
		return rec, http.StatusBadRequest, "you must provide a model parameter"
	}
	rec.Model = req.Model
	rec.MaxTokens = max(req.MaxTokens, req.MaxCompletionTokens)
	if req.ResponseFormat != nil {
		rec.ResponseFormat = req.ResponseFormat.Type
		switch rec.ResponseFormat {
		case "json_object", "text":
		case "json_schema":
			js := req.ResponseFormat.JSONSchema
			var schema map[string]any
			if js == nil || js.Name == "" || json.Unmarshal(js.Schema, &schema) != nil || schema["type"] != "object" {
				return rec, http.StatusBadRequest, "response_format json_schema needs a name and an object schema"
			}
		default:
			return rec, http.StatusBadRequest, fmt.Sprintf("invalid response_format type %q", rec.ResponseFormat)
		}
	}
	for _, m := range req.Messages {
		switch m.Role {
		case "system":
			rec.System += m.Content
		case "user":
			rec.User += m.Content
		default:
			return rec, http.StatusBadRequest, fmt.Sprintf("unexpected message role %q", m.Role)
		}
		rec.PromptTokens += (len(m.Content)+3)/4 + 4
	}
	if s.opts.MaxContextTokens > 0 && rec.PromptTokens+rec.MaxTokens > s.opts.MaxContextTokens {
		return rec, http.StatusBadRequest, fmt.Sprintf("This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the messages, %d in the completion). Please reduce the length of the messages or completion.",
			s.opts.MaxContextTokens, rec.PromptTokens+rec.MaxTokens, rec.PromptTokens, rec.MaxTokens)
	}
	if m := askedLang.FindStringSubmatch(rec.System); m != nil {
		rec.Language = m[1]
	} else if !strings.Contains(rec.System, autoLang) {
		return rec, http.StatusBadRequest, "the system prompt names no language to write in"
	}
	if !strings.Contains(rec.System, "JSON") {
		return rec, http.StatusBadRequest, "the system prompt does not ask for JSON"
	}
	if _, js, ok := strings.Cut(rec.User, partsMarker); ok {
		var in struct {
			Parts []json.RawMessage `json:"parts"`
		}
		if err := json.Unmarshal([]byte(js), &in); err != nil || len(in.Parts) < 2 {
			return rec, http.StatusBadRequest, "the partial summaries are not a JSON object with at least two parts"
		}
		rec.Combine, rec.Parts = true, len(in.Parts)
		return rec, 0, ""
	}
	lastStart := time.Duration(-1)
	for _, m := range turnLine.FindAllStringSubmatch(rec.User, -1) {
		t := Turn{ID: atoi(m[1]), Start: hms(m[2], m[3], m[4]), End: hms(m[5], m[6], m[7]),
			Name: strings.TrimSpace(m[8]), Text: m[9]}
		if t.End < t.Start {
			return rec, http.StatusBadRequest, fmt.Sprintf("turn T%d ends before it starts", t.ID)
		}
		if t.Start < lastStart {
			return rec, http.StatusBadRequest, fmt.Sprintf("turn T%d is out of time order", t.ID)
		}
		lastStart = t.Start
		rec.Turns = append(rec.Turns, t)
	}
	if len(rec.Turns) == 0 {
		return rec, http.StatusBadRequest, "the prompt holds no transcript lines ([T<id> hh:mm:ss–hh:mm:ss] Name: text) and no partial summaries"
	}
	return rec, 0, ""
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func hms(h, m, s string) time.Duration {
	return time.Duration(atoi(h))*time.Hour + time.Duration(atoi(m))*time.Minute + time.Duration(atoi(s))*time.Second
}

// detectLanguage tells French from English by their commonest words.
func detectLanguage(turns []Turn) string {
	fr, en := 0, 0
	for _, t := range turns {
		for _, w := range strings.Fields(strings.ToLower(t.Text)) {
			switch strings.Trim(w, ".,;:!?") {
			case "le", "la", "les", "et", "nous", "est", "une", "des":
				fr++
			case "the", "and", "we", "is", "a", "of", "to":
				en++
			}
		}
	}
	if fr > en {
		return "fr"
	}
	return "en"
}

// answer is the reply shape the summarize package asks for.
type answer struct {
	Language    string  `json:"language"`
	Abstract    point   `json:"abstract"`
	Topics      []point `json:"topics"`
	Decisions   []point `json:"decisions"`
	ActionItems []item  `json:"action_items"`
}

type point struct {
	Text  string   `json:"text"`
	Turns []string `json:"turns"`
}

type item struct {
	Text  string   `json:"text"`
	Owner string   `json:"owner"`
	Due   string   `json:"due"`
	Turns []string `json:"turns"`
}

func (a *answer) addBogus(id string) {
	a.Abstract.Turns = append(a.Abstract.Turns, id)
	for i := range a.Topics {
		a.Topics[i].Turns = append(a.Topics[i].Turns, id)
	}
	for i := range a.Decisions {
		a.Decisions[i].Turns = append(a.Decisions[i].Turns, id)
	}
	for i := range a.ActionItems {
		a.ActionItems[i].Turns = append(a.ActionItems[i].Turns, id)
	}
	a.Decisions = append(a.Decisions, point{Text: "a decision nobody took", Turns: []string{id}})
}

func maxID(rec Received) int {
	m := 0
	for _, t := range rec.Turns {
		m = max(m, t.ID)
	}
	for _, id := range turnIDs.FindAllStringSubmatch(rec.User, -1) {
		m = max(m, atoi(id[1]))
	}
	return m
}

var turnIDs = regexp.MustCompile(`"T(\d+)"`)

func tid(id int) string { return "T" + strconv.Itoa(id) }

// summarise derives a part's summary from its transcript lines.
func summarise(rec Received) answer {
	turns := rec.Turns
	lang := rec.Language
	if lang == "" {
		lang = detectLanguage(turns)
	}
	first, last := turns[0], turns[len(turns)-1]
	var names []string
	for _, t := range turns {
		if !slices.Contains(names, t.Name) {
			names = append(names, t.Name)
		}
	}
	a := answer{
		Language: lang,
		Abstract: point{
			Text: fmt.Sprintf("(%s) %d turns by %s, from %v to %v.", lang, len(turns),
				strings.Join(names, ", "), first.Start, last.End),
			Turns: []string{tid(first.ID), tid(last.ID)},
		},
		Topics: []point{}, Decisions: []point{}, ActionItems: []item{},
	}
	for _, t := range turns {
		if decisionWord.MatchString(t.Text) {
			a.Decisions = append(a.Decisions, point{Text: t.Text, Turns: []string{tid(t.ID)}})
		}
		for _, m := range actionPhrase.FindAllStringSubmatch(t.Text, -1) {
			a.ActionItems = append(a.ActionItems, item{Text: strings.TrimSpace(m[2]), Owner: m[1],
				Due: strings.TrimSpace(m[3]), Turns: []string{tid(t.ID)}})
		}
	}
	counts := map[string]int{}
	where := map[string][]string{}
	for _, t := range turns {
		seen := map[string]bool{}
		for _, w := range strings.FieldsFunc(strings.ToLower(t.Text), func(r rune) bool { return !unicode.IsLetter(r) }) {
			if len([]rune(w)) < 6 {
				continue
			}
			counts[w]++
			if !seen[w] && len(where[w]) < maxTopicCitations {
				seen[w] = true
				where[w] = append(where[w], tid(t.ID))
			}
		}
	}
	words := make([]string, 0, len(counts))
	for w := range counts {
		words = append(words, w)
	}
	sort.Slice(words, func(i, j int) bool {
		if counts[words[i]] != counts[words[j]] {
			return counts[words[i]] > counts[words[j]]
		}
		return words[i] < words[j]
	})
	for _, w := range words[:min(3, len(words))] {
		a.Topics = append(a.Topics, point{Text: "topic: " + w, Turns: where[w]})
	}
	return a
}

// combine merges the partial summaries of a combining call.
func combine(rec Received) (answer, error) {
	_, js, _ := strings.Cut(rec.User, partsMarker)
	var in struct {
		Parts []answer `json:"parts"`
	}
	if err := json.Unmarshal([]byte(js), &in); err != nil {
		return answer{}, fmt.Errorf("partial summaries: %w", err)
	}
	// The abstract cites the first and last turn any part's abstract cites.
	var from, to string
	for _, p := range in.Parts {
		if t := p.Abstract.Turns; len(t) > 0 {
			if from == "" {
				from = t[0]
			}
			to = t[len(t)-1]
		}
	}
	if from == "" {
		return answer{}, fmt.Errorf("no partial summary's abstract cites a turn")
	}
	lang := rec.Language
	if lang == "" {
		lang = in.Parts[0].Language
	}
	out := answer{
		Language: lang,
		Abstract: point{Text: fmt.Sprintf("(%s) %d partial summaries merged, from %s to %s.", lang, len(in.Parts), from, to),
			Turns: []string{from, to}},
		Topics: []point{}, Decisions: []point{}, ActionItems: []item{},
	}
	for _, p := range in.Parts {
		for _, t := range p.Topics {
			if i := slices.IndexFunc(out.Topics, func(o point) bool { return o.Text == t.Text }); i >= 0 {
				o := &out.Topics[i]
				o.Turns = append(o.Turns, t.Turns...)
				o.Turns = o.Turns[:min(len(o.Turns), maxTopicCitations)]
				continue
			}
			out.Topics = append(out.Topics, point{Text: t.Text, Turns: slices.Clone(t.Turns)})
		}
		out.Decisions = append(out.Decisions, p.Decisions...)
		out.ActionItems = append(out.ActionItems, p.ActionItems...)
	}
	// The three topics cited most, as a model keeps the main ones.
	sort.SliceStable(out.Topics, func(i, j int) bool { return len(out.Topics[i].Turns) > len(out.Topics[j].Turns) })
	out.Topics = out.Topics[:min(3, len(out.Topics))]
	return out, nil
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error", "code": status}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
