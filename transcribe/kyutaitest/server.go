// Package kyutaitest is a test double for Kyutai's streaming
// speech-to-text server (moshi-server's asr-streaming module).
//
// It is a real WebSocket server on loopback speaking the protocol of
// backends.md section 2: MessagePack frames tagged by "type" (Ready, Word,
// EndWord, Step with buffered_pcm, Marker echoes, Error), auth by the
// kyutai-api-key header or ?auth_id (401 before the upgrade), a fixed
// number of channels ("no free channels" then close), pings, idle drops and
// GET /api/modules_info. It takes audio as the real server does, 24 kHz
// float PCM in Audio frames or an Ogg Opus stream in OggOpus frames (cut
// anywhere, decoded to 24 kHz with its pre-skip dropped). Its words are
// derived from that audio: it decodes it as tone speech with
// transcribetest's Detector, so audio lost, mangled or misplaced on the
// way gives wrong words or wrong times. It processes audio in 80 ms steps at a chosen
// speed and reports times delayed by a model delay, as the real models do,
// and it can be told to misbehave (busy, late Marker, error mid-stream,
// slow processing, no EndWord).
//
// It is for tests only: no production package may import it, and it
// imports nothing of Greffier but transcribetest and the Ogg Opus reader
// the transcribe package uses itself (internal/audio).
package kyutaitest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/tinylib/msgp/msgp"

	"github.com/greffier/greffier/internal/audio"
)

// Defaults of Options.
const (
	DefaultPath         = "/api/asr-streaming"
	DefaultChannels     = 4
	DefaultModelDelay   = 500 * time.Millisecond
	DefaultPingInterval = 10 * time.Second
	DefaultIdleTimeout  = 20 * time.Second
	// SampleRate is what the server takes: mono float PCM at 24 kHz.
	SampleRate = 24000
	// FrameSize is one model step: 80 ms at SampleRate.
	FrameSize = 1920
	// NoFreeChannels is the Error message of a server whose channels are
	// all taken.
	NoFreeChannels = "no free channels"
)

// Options shape the double. The zero value is a well-behaved server with
// no authentication, DefaultChannels channels and stt-1b's delay,
// processing audio as fast as it arrives.
type Options struct {
	// APIKey, when set, must come as the kyutai-api-key header or the
	// auth_id query parameter; anything else gets 401 before the upgrade.
	APIKey string
	// Path is the streaming endpoint. Default: DefaultPath.
	Path string
	// Channels is how many streams run at once. Default: DefaultChannels.
	Channels int
	// ModelDelay is added to every time sent, and words come out only
	// once that much audio past them has been processed. Default:
	// DefaultModelDelay; negative means none.
	ModelDelay time.Duration
	// Speed is how fast audio is processed, in multiples of real time
	// (0.5 is a server falling behind). Default: 0, as fast as it arrives.
	Speed float64
	// BusyFirst turns the first BusyFirst connections away with
	// NoFreeChannels, as if every channel were taken.
	BusyFirst int
	// MarkerLate makes the server echo a Marker only once this much audio
	// past it has been processed (a pipeline longer than the model delay):
	// the client must keep sending silence.
	MarkerLate time.Duration
	// FailAfter, when positive, makes every stream fail with an Error
	// frame once this much of its audio has been processed.
	FailAfter time.Duration
	// NoEndWord leaves out EndWord frames, as some models do: a word ends
	// where the next one starts.
	NoEndWord bool
	// PingInterval is how often the server pings. Default:
	// DefaultPingInterval.
	PingInterval time.Duration
	// IdleTimeout drops a client that sends nothing for that long.
	// Default: DefaultIdleTimeout.
	IdleTimeout time.Duration
}

// WithDefaults returns a copy of o with every unset field at its default.
func (o Options) WithDefaults() Options {
	if o.Path == "" {
		o.Path = DefaultPath
	}
	if o.Channels == 0 {
		o.Channels = DefaultChannels
	}
	if o.ModelDelay == 0 {
		o.ModelDelay = DefaultModelDelay
	}
	if o.ModelDelay < 0 {
		o.ModelDelay = 0
	}
	if o.PingInterval == 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	return o
}

// Emission is one Word or EndWord the server sent.
type Emission struct {
	// Session numbers the accepted streams from 1.
	Session int
	// Text is the word's, also for its EndWord.
	Text string
	// Final is true for EndWord.
	Final bool
	// Time is the start_time or stop_time sent, in seconds (model delay
	// included).
	Time float64
	// At is when the frame was handed to the connection.
	At time.Time
}

// Server is a running double. Close it when done.
type Server struct {
	opts   Options
	srv    *httptest.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup

	handshakes  atomic.Int64 // requests to the endpoint
	accepted    atomic.Int64 // upgraded connections
	busy        atomic.Int64 // turned away with NoFreeChannels
	pings       atomic.Int64 // pings answered
	maxBuffered atomic.Int64

	mu       sync.Mutex
	inUse    int
	emitted  []Emission
	sessions []*SessionStats
}

// SessionStats is what one accepted stream did.
type SessionStats struct {
	// Received is how many samples of audio came in.
	Received int64
	// Markers lists the Marker ids echoed, in order.
	Markers []int64
	// Clean is true when the client closed with a normal closure.
	Clean bool
	// Err says why the stream ended otherwise.
	Err string
}

// NewServer starts a double on a loopback port.
func NewServer(opts Options) *Server {
	s := &Server{opts: opts.WithDefaults()}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	mux := http.NewServeMux()
	mux.HandleFunc(s.opts.Path, s.stream)
	mux.HandleFunc("GET /api/modules_info", s.modulesInfo)
	s.srv = httptest.NewUnstartedServer(mux)
	// Hijacked WebSocket connections outlive httptest's Close: their
	// handlers watch this context instead.
	s.srv.Config.BaseContext = func(net.Listener) context.Context { return ctx }
	s.srv.Start()
	return s
}

// Close ends every stream and stops the server.
func (s *Server) Close() {
	s.cancel()
	s.srv.Close()
	s.wg.Wait()
}

// URL is the streaming endpoint, e.g. "ws://127.0.0.1:41234/api/asr-streaming".
func (s *Server) URL() string { return "ws" + strings.TrimPrefix(s.srv.URL, "http") + s.opts.Path }

// HTTPURL is the server's root, e.g. "http://127.0.0.1:41234".
func (s *Server) HTTPURL() string { return s.srv.URL }

// Handshakes is how many requests reached the endpoint, refused ones included.
func (s *Server) Handshakes() int { return int(s.handshakes.Load()) }

// Busy is how many connections were turned away with NoFreeChannels.
func (s *Server) Busy() int { return int(s.busy.Load()) }

// Pings is how many pings clients answered.
func (s *Server) Pings() int { return int(s.pings.Load()) }

// MaxBuffered is the most samples any stream had received but not yet
// processed: what a client's back-pressure kept down.
func (s *Server) MaxBuffered() int { return int(s.maxBuffered.Load()) }

// InUse is how many channels streams hold now.
func (s *Server) InUse() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inUse
}

// Emitted lists every Word and EndWord sent, in order.
func (s *Server) Emitted() []Emission {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.emitted)
}

// Sessions lists the accepted streams' statistics, in order of acceptance.
func (s *Server) Sessions() []SessionStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SessionStats, len(s.sessions))
	for i, st := range s.sessions {
		out[i] = *st
		out[i].Markers = slices.Clone(st.Markers)
	}
	return out
}

func (s *Server) modulesInfo(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	used := s.inUse
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"asr": map[string]any{"path": s.opts.Path, "type": "asr", "used_slots": used, "total_slots": s.opts.Channels},
	})
}

func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	s.handshakes.Add(1)
	key := r.Header.Get("kyutai-api-key")
	if key == "" {
		key = r.URL.Query().Get("auth_id")
	}
	if s.opts.APIKey != "" && key != s.opts.APIKey {
		http.Error(w, "invalid api key", http.StatusUnauthorized)
		return
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered the client
	}
	s.wg.Add(1)
	defer s.wg.Done()
	c.SetReadLimit(16 << 20)
	ctx := r.Context()
	n := s.accepted.Add(1)
	if n <= int64(s.opts.BusyFirst) || !s.acquire() {
		s.busy.Add(1)
		_ = c.Write(ctx, websocket.MessageBinary, errorFrame(NoFreeChannels))
		_ = c.Close(websocket.StatusTryAgainLater, NoFreeChannels)
		return
	}
	defer s.release()
	st := &SessionStats{}
	s.mu.Lock()
	s.sessions = append(s.sessions, st)
	id := len(s.sessions)
	s.mu.Unlock()

	sess := &session{srv: s, conn: c, id: id, stats: st, more: make(chan struct{}, 1)}
	if err := c.Write(ctx, websocket.MessageBinary, typeOnly("Ready")); err != nil {
		_ = c.CloseNow()
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var inner sync.WaitGroup
	inner.Add(2)
	go func() { defer inner.Done(); sess.read(ctx, cancel) }()
	go func() { defer inner.Done(); sess.ping(ctx) }()
	if err := sess.process(ctx); err != nil {
		sess.end(err.Error())
		_ = c.Write(ctx, websocket.MessageBinary, errorFrame(err.Error()))
		_ = c.Close(websocket.StatusInternalError, "stream failed")
	}
	cancel()
	_ = c.CloseNow()
	inner.Wait()
}

func (s *Server) acquire() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inUse >= s.opts.Channels {
		return false
	}
	s.inUse++
	return true
}

func (s *Server) release() {
	s.mu.Lock()
	s.inUse--
	s.mu.Unlock()
}

func (s *Server) emit(e Emission) {
	s.mu.Lock()
	s.emitted = append(s.emitted, e)
	s.mu.Unlock()
}

// marker is a Marker received after pos samples of audio.
type marker struct {
	id  int64
	pos int64
}

// session is one accepted stream: read queues what the client sends,
// process turns it into frames at the configured speed.
type session struct {
	srv   *Server
	conn  *websocket.Conn
	id    int
	stats *SessionStats
	more  chan struct{}         // cap 1: audio, a Marker or the end arrived
	ogg   *audio.OggOpusDecoder // the OggOpus frames' stream, once one came

	mu       sync.Mutex
	queue    []float32 // received, not yet processed
	received int64
	markers  []marker
	ended    bool
}

func (ss *session) end(reason string) {
	ss.srv.mu.Lock()
	if ss.stats.Err == "" && !ss.stats.Clean {
		ss.stats.Err = reason
	}
	ss.srv.mu.Unlock()
}

func (ss *session) notify() {
	select {
	case ss.more <- struct{}{}:
	default:
	}
}

// read decodes the client's frames into the queue until it leaves, goes
// silent for IdleTimeout, or sends something the server refuses.
func (ss *session) read(ctx context.Context, cancel context.CancelFunc) {
	defer func() {
		ss.mu.Lock()
		ss.ended = true
		ss.mu.Unlock()
		ss.notify()
	}()
	for {
		rctx, rcancel := context.WithTimeout(ctx, ss.srv.opts.IdleTimeout)
		typ, b, err := ss.conn.Read(rctx)
		rcancel()
		if err != nil {
			if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
				ss.srv.mu.Lock()
				ss.stats.Clean = true
				ss.srv.mu.Unlock()
			} else {
				ss.end("read: " + err.Error())
			}
			cancel()
			return
		}
		if typ != websocket.MessageBinary {
			ss.refuse(ctx, cancel, "text frames are not accepted, send MessagePack")
			return
		}
		f, err := decodeClientFrame(b)
		switch {
		case err != nil:
			ss.refuse(ctx, cancel, "bad frame: "+err.Error())
			return
		case f.kind == "Audio":
			ss.queueAudio(f.pcm)
		case f.kind == "OggOpus":
			if ss.ogg == nil {
				if ss.ogg, err = audio.NewOggOpusDecoder(SampleRate); err != nil {
					ss.refuse(ctx, cancel, err.Error())
					return
				}
			}
			pcm, err := ss.ogg.Decode(nil, f.data)
			if err != nil {
				ss.refuse(ctx, cancel, "OggOpus: "+err.Error())
				return
			}
			ss.queueAudio(pcm)
		case f.kind == "Marker":
			ss.mu.Lock()
			ss.markers = append(ss.markers, marker{id: f.id, pos: ss.received})
			ss.mu.Unlock()
		default:
			ss.refuse(ctx, cancel, fmt.Sprintf("unknown message type %q", f.kind))
			return
		}
		ss.notify()
	}
}

// queueAudio adds received samples to what the model has to process.
func (ss *session) queueAudio(pcm []float32) {
	ss.mu.Lock()
	ss.queue = append(ss.queue, pcm...)
	ss.received += int64(len(pcm))
	buffered := int64(len(ss.queue))
	ss.mu.Unlock()
	for {
		m := ss.srv.maxBuffered.Load()
		if buffered <= m || ss.srv.maxBuffered.CompareAndSwap(m, buffered) {
			break
		}
	}
	ss.srv.mu.Lock()
	ss.stats.Received += int64(len(pcm))
	ss.srv.mu.Unlock()
}

func (ss *session) refuse(ctx context.Context, cancel context.CancelFunc, msg string) {
	ss.end(msg)
	_ = ss.conn.Write(ctx, websocket.MessageBinary, errorFrame(msg))
	_ = ss.conn.Close(websocket.StatusPolicyViolation, "bad frame")
	cancel()
}

func (ss *session) ping(ctx context.Context) {
	t := time.NewTicker(ss.srv.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := ss.conn.Ping(ctx); err != nil {
				return
			}
			ss.srv.pings.Add(1)
		}
	}
}

// next waits for a full frame of audio and takes it; false once the client
// has gone and no full frame is left.
func (ss *session) next(ctx context.Context, frame []float32) (bool, []marker) {
	for {
		ss.mu.Lock()
		if len(ss.queue) >= FrameSize {
			copy(frame, ss.queue[:FrameSize])
			ss.queue = ss.queue[:copy(ss.queue, ss.queue[FrameSize:])]
			markers := slices.Clone(ss.markers)
			ss.mu.Unlock()
			return true, markers
		}
		ended := ss.ended
		ss.mu.Unlock()
		if ended {
			return false, nil
		}
		select {
		case <-ss.more:
		case <-ctx.Done():
			return false, nil
		}
	}
}

// process runs the model: one 80 ms frame per step, at the configured
// speed, emitting words once the model delay has passed over them.
func (ss *session) process(ctx context.Context) error {
	o := ss.srv.opts
	rec, err := newRecogniser(o.ModelDelay)
	if err != nil {
		return err
	}
	frame := make([]float32, FrameSize)
	var (
		step    int64
		pace    time.Time
		echoed  int
		failAt  = int64(o.FailAfter.Seconds() * SampleRate)
		lateBy  = int64(o.MarkerLate.Seconds() * SampleRate)
		stepDur time.Duration
	)
	if o.Speed > 0 {
		stepDur = time.Duration(float64(80*time.Millisecond) / o.Speed)
	}
	for {
		ok, markers := ss.next(ctx, frame)
		if !ok {
			return nil
		}
		if stepDur > 0 {
			// A server at a fixed speed: a step never starts before its time,
			// and idle time is not banked.
			pace = later(pace.Add(stepDur), time.Now())
			if err := sleepUntil(ctx, pace); err != nil {
				return nil
			}
		}
		events := rec.step(frame)
		processed := (step + 1) * FrameSize
		for _, e := range events {
			if o.NoEndWord && e.final {
				continue
			}
			var b []byte
			if e.final {
				b = endWordFrame(e.time)
			} else {
				b = wordFrame(e.text, e.time)
			}
			ss.srv.emit(Emission{Session: ss.id, Text: e.text, Final: e.final, Time: e.time, At: time.Now()})
			if err := ss.conn.Write(ctx, websocket.MessageBinary, b); err != nil {
				return nil
			}
		}
		// buffered_pcm is the queue as the Step leaves, not as the frame was
		// taken: audio keeps arriving while the model works.
		ss.mu.Lock()
		buffered := int64(len(ss.queue))
		ss.mu.Unlock()
		if err := ss.conn.Write(ctx, websocket.MessageBinary, stepFrame(step, rec.pause, buffered)); err != nil {
			return nil
		}
		for ; echoed < len(markers) && markers[echoed].pos+lateBy <= processed; echoed++ {
			ss.srv.mu.Lock()
			ss.stats.Markers = append(ss.stats.Markers, markers[echoed].id)
			ss.srv.mu.Unlock()
			if err := ss.conn.Write(ctx, websocket.MessageBinary, markerFrame(markers[echoed].id)); err != nil {
				return nil
			}
		}
		if failAt > 0 && processed >= failAt {
			return fmt.Errorf("model failure asked of the test double after %v of audio", o.FailAfter)
		}
		step++
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// clientFrame is an Audio, Marker or OggOpus frame.
type clientFrame struct {
	kind string
	pcm  []float32
	id   int64
	data []byte
}

// decodeClientFrame reads a client's frame. Samples may be float32
// (compact clients) or float64 (Python's msgpack); OggOpus data is
// MessagePack bin.
func decodeClientFrame(b []byte) (clientFrame, error) {
	var f clientFrame
	n, b, err := msgp.ReadMapHeaderBytes(b)
	if err != nil {
		return f, fmt.Errorf("not a MessagePack map: %w", err)
	}
	for range n {
		var key string
		if key, b, err = msgp.ReadStringBytes(b); err != nil {
			return f, fmt.Errorf("key: %w", err)
		}
		switch key {
		case "type":
			f.kind, b, err = msgp.ReadStringBytes(b)
		case "pcm":
			var sz uint32
			if sz, b, err = msgp.ReadArrayHeaderBytes(b); err != nil {
				break
			}
			f.pcm = make([]float32, sz)
			for i := range f.pcm {
				var v float64
				if v, b, err = msgp.ReadFloat64Bytes(b); err != nil {
					break
				}
				if math.IsNaN(v) || math.IsInf(v, 0) {
					err = fmt.Errorf("sample %d is %v", i, v)
					break
				}
				f.pcm[i] = float32(v)
			}
		case "id":
			f.id, b, err = msgp.ReadInt64Bytes(b)
		case "data":
			f.data, b, err = msgp.ReadBytesBytes(b, nil)
		default:
			b, err = msgp.Skip(b)
		}
		if err != nil {
			return f, fmt.Errorf("field %q: %w", key, err)
		}
	}
	if f.kind == "" {
		return f, errors.New(`no "type"`)
	}
	return f, nil
}

func typeOnly(kind string) []byte {
	b := msgp.AppendMapHeader(nil, 1)
	b = msgp.AppendString(b, "type")
	return msgp.AppendString(b, kind)
}

func errorFrame(msg string) []byte {
	b := msgp.AppendMapHeader(nil, 2)
	b = msgp.AppendString(b, "type")
	b = msgp.AppendString(b, "Error")
	b = msgp.AppendString(b, "message")
	return msgp.AppendString(b, msg)
}

func wordFrame(text string, start float64) []byte {
	b := msgp.AppendMapHeader(nil, 3)
	b = msgp.AppendString(b, "type")
	b = msgp.AppendString(b, "Word")
	b = msgp.AppendString(b, "text")
	b = msgp.AppendString(b, text)
	b = msgp.AppendString(b, "start_time")
	return msgp.AppendFloat64(b, start)
}

func endWordFrame(stop float64) []byte {
	b := msgp.AppendMapHeader(nil, 2)
	b = msgp.AppendString(b, "type")
	b = msgp.AppendString(b, "EndWord")
	b = msgp.AppendString(b, "stop_time")
	return msgp.AppendFloat64(b, stop)
}

// stepFrame is a Step as rmp_serde writes it: step_idx and buffered_pcm as
// unsigned integers, prs as pause probabilities of the model's heads.
func stepFrame(step int64, pause float32, buffered int64) []byte {
	b := msgp.AppendMapHeader(nil, 4)
	b = msgp.AppendString(b, "type")
	b = msgp.AppendString(b, "Step")
	b = msgp.AppendString(b, "step_idx")
	b = msgp.AppendUint64(b, uint64(step))
	b = msgp.AppendString(b, "prs")
	b = msgp.AppendArrayHeader(b, 4)
	for range 4 {
		b = msgp.AppendFloat32(b, pause)
	}
	b = msgp.AppendString(b, "buffered_pcm")
	return msgp.AppendUint64(b, uint64(buffered))
}

func markerFrame(id int64) []byte {
	b := msgp.AppendMapHeader(nil, 2)
	b = msgp.AppendString(b, "type")
	b = msgp.AppendString(b, "Marker")
	b = msgp.AppendString(b, "id")
	return msgp.AppendInt64(b, id)
}
