package transcribe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/greffier/greffier/internal/backend"
)

// KyutaiStream is one live session with a Kyutai server: Write pushes
// 16 kHz audio as it arrives, the onWord callback given to Stream gets
// each word as the server recognises it, and Close flushes. Write and
// Close must not be called concurrently.
type KyutaiStream struct {
	s       *kyutaiSession
	ctx     context.Context
	written int64 // 16 kHz samples written
	chunk   int   // 16 kHz samples per Audio frame
	closed  bool
}

// Stream opens a live session, waiting (with jittered backoff) while the
// server has no free channel, until ctx ends. ctx bounds the whole
// session: cancelling it drops the connection. onWord runs on the
// session's reader goroutine, so it must return quickly; each word comes
// twice, once with final false as soon as the server names it (End equal
// to Start), once with final true and its end (at EndWord, at the next
// Word, or at Close). Times are from the first sample written.
func (k *Kyutai) Stream(ctx context.Context, onWord func(w Word, final bool)) (*KyutaiStream, error) {
	if onWord == nil {
		onWord = func(Word, bool) {}
	}
	s, err := k.open(ctx, false, onWord)
	if err != nil {
		return nil, err
	}
	return &KyutaiStream{s: s, ctx: ctx, chunk: int(k.cfg.ChunkDuration * inputRate / time.Second)}, nil
}

// Write sends 16 kHz mono PCM16 audio. It blocks while the server is
// behind by more than MaxBuffered samples, and fails once the session
// has (the error says why; it is the same error Close returns).
func (st *KyutaiStream) Write(pcm16k []int16) error {
	if st.closed {
		return errors.New("transcribe: kyutai: write on a closed stream")
	}
	for from := 0; from < len(pcm16k); from += st.chunk {
		if err := st.s.send(st.ctx, pcm16k[from:min(from+st.chunk, len(pcm16k))]); err != nil {
			return err
		}
		st.written += int64(min(st.chunk, len(pcm16k)-from))
	}
	return nil
}

// Close sends the end padding and the Marker, keeps sending silence until
// the Marker comes back (so every word has been delivered), then closes
// the connection. A word the server never ended ends at the end of the
// audio written. Close is idempotent; after the first call it returns nil.
func (st *KyutaiStream) Close(ctx context.Context) error {
	if st.closed {
		return nil
	}
	st.closed = true
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Either context ending ends the flush.
	stop := context.AfterFunc(st.ctx, cancel)
	defer stop()
	return st.s.finish(ctx, time.Duration(st.written*int64(time.Second)/inputRate))
}

// kyutaiSession is one WebSocket conversation holding a server channel.
// One goroutine writes (send, finish); the reader goroutine decodes the
// server's frames, assembles words and accounts for back-pressure.
type kyutaiSession struct {
	k      *Kyutai
	conn   *websocket.Conn
	onWord func(Word, bool)
	// lead is the client's own leading silence, at 24 kHz.
	lead int64

	// Writer's state. rs is nil when the audio comes at 24 kHz.
	rs      *resampler
	pcm     []float32
	out     []byte
	started time.Time

	mu         sync.Mutex
	sent       int64 // 24 kHz samples sent
	buffered   int64 // the last Step's buffered_pcm
	sentAtStep int64 // sent when that Step arrived
	processed  int64 // samples that Step's step_idx says were processed
	stepsSeen  bool
	marker     bool  // the end Marker came back
	readErr    error // why the reader stopped; nil after a clean close

	// Reader's state.
	open     bool // a Word without its EndWord yet
	cur      Word
	closing  atomic.Bool
	progress chan struct{} // cap 1: a Step or the Marker arrived
	done     chan struct{} // the reader stopped
}

// open takes a channel on the server (waiting while it is busy), starts the
// reader and sends the leading silence. The audio will come through send
// (16 kHz, resampled) or, with at24k, through send24k.
func (k *Kyutai) open(ctx context.Context, at24k bool, onWord func(Word, bool)) (*kyutaiSession, error) {
	conn, err := k.connect(ctx)
	if err != nil {
		return nil, err
	}
	s := &kyutaiSession{
		k: k, conn: conn, onWord: onWord,
		started:  k.now(),
		progress: make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	if !at24k {
		s.rs = newResampler(k.taps)
	}
	go s.read(ctx)
	if n := int64(k.cfg.LeadingSilence * inputRate / time.Second); n > 0 {
		// Count what the resampler will emit for it, not what it has emitted
		// so far: output sample i stands for input time 2i/3 exactly.
		s.lead = outputFor(n)
		if err := s.sendSilence(ctx, n); err != nil {
			s.abort()
			return nil, err
		}
	}
	return s, nil
}

// connect dials until the server gives a channel (its Ready frame),
// waiting with the shared backoff while it has none free: many clients
// turned away at once must not come back at once.
func (k *Kyutai) connect(ctx context.Context) (*websocket.Conn, error) {
	var conn *websocket.Conn
	b := backend.Backoff{Base: k.cfg.BusyRetry, Max: k.cfg.BusyRetryMax}
	n, err := b.Retry(ctx, 0, func(ctx context.Context) error {
		c, busy, err := k.dial(ctx)
		if err == nil && busy {
			return ErrKyutaiBusy
		}
		conn = c
		return err
	}, func(err error) bool { return err == ErrKyutaiBusy }, func(n int, wait time.Duration, _ error) {
		k.cfg.Logger.InfoContext(ctx, "kyutai server has no free channel; waiting", "url", k.cfg.URL, "attempt", n, "wait", wait)
	})
	if err != nil && ctx.Err() != nil && (n > 1 || errors.Is(err, ErrKyutaiBusy)) {
		return nil, fmt.Errorf("transcribe: kyutai: %w after %d attempts: %w", ErrKyutaiBusy, n, context.Cause(ctx))
	}
	return conn, err
}

// dial makes one handshake and reads the server's first frame: Ready, or
// the "no free channels" Error (busy).
func (k *Kyutai) dial(ctx context.Context) (conn *websocket.Conn, busy bool, err error) {
	h := http.Header{}
	if k.cfg.APIKey != "" {
		h.Set("kyutai-api-key", k.cfg.APIKey)
	}
	conn, resp, err := websocket.Dial(ctx, k.cfg.URL, &websocket.DialOptions{HTTPClient: k.cfg.HTTPClient, HTTPHeader: h})
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, fmt.Errorf("transcribe: kyutai: %w", context.Cause(ctx))
		}
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			var body []byte
			if resp.Body != nil {
				body, _ = io.ReadAll(io.LimitReader(resp.Body, maxErrorExcerpt))
				_ = resp.Body.Close()
			}
			return nil, false, newStatusError(resp.StatusCode, resp.Header, body, k.now())
		}
		return nil, false, newTransportError(err, false)
	}
	conn.SetReadLimit(kyutaiReadLimit)
	var m kyutaiMsg
	typ, b, err := conn.Read(ctx)
	switch {
	case err != nil:
		_ = conn.CloseNow()
		if ctx.Err() != nil {
			return nil, false, fmt.Errorf("transcribe: kyutai: %w", context.Cause(ctx))
		}
		return nil, false, newTransportError(fmt.Errorf("waiting for Ready: %w", err), false)
	case typ != websocket.MessageBinary:
		_ = conn.CloseNow()
		return nil, false, fmt.Errorf("transcribe: kyutai: %w: first frame is text, want a MessagePack Ready", ErrBadAnswer)
	}
	if err := decodeKyutai(b, &m); err != nil {
		_ = conn.CloseNow()
		return nil, false, fmt.Errorf("transcribe: kyutai: %w: first frame: %w", ErrBadAnswer, err)
	}
	switch m.kind {
	case kyutaiReady:
		return conn, false, nil
	case kyutaiError:
		_ = conn.CloseNow()
		if strings.Contains(strings.ToLower(m.message), "no free channel") {
			return nil, true, nil
		}
		return nil, false, &HTTPError{Backend: backendName, Message: m.message, Err: &KyutaiError{Message: m.message}}
	}
	_ = conn.CloseNow()
	return nil, false, fmt.Errorf("transcribe: kyutai: %w: first frame is not Ready", ErrBadAnswer)
}

// read decodes the server's frames until the connection ends.
func (s *kyutaiSession) read(ctx context.Context) {
	defer close(s.done)
	var (
		buf bytes.Buffer
		m   kyutaiMsg
	)
	for {
		typ, r, err := s.conn.Reader(ctx)
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			s.stop(s.readError(ctx, err))
			return
		}
		if typ != websocket.MessageBinary {
			continue // moshi-server sends only binary frames; ignore the rest
		}
		if err := decodeKyutai(buf.Bytes(), &m); err != nil {
			s.stop(fmt.Errorf("transcribe: kyutai: %w: %w", ErrBadAnswer, err))
			_ = s.conn.CloseNow()
			return
		}
		if err := s.handle(&m); err != nil {
			s.stop(err)
			_ = s.conn.CloseNow()
			return
		}
	}
}

func (s *kyutaiSession) readError(ctx context.Context, err error) error {
	switch {
	case s.closing.Load():
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("transcribe: kyutai: %w", context.Cause(ctx))
	}
	return newTransportError(fmt.Errorf("kyutai stream: %w", err), false)
}

// handle applies one frame. Words are reported as they come; a Word also
// ends the previous one if no EndWord did.
func (s *kyutaiSession) handle(m *kyutaiMsg) error {
	switch m.kind {
	case kyutaiWord:
		at, err := s.at(m.time)
		if err != nil {
			return err
		}
		s.endWord(at)
		s.open, s.cur = true, Word{Text: m.text, Start: at, End: at}
		s.onWord(s.cur, false)
	case kyutaiEndWord:
		at, err := s.at(m.time)
		if err != nil {
			return err
		}
		s.endWord(at)
	case kyutaiStep:
		s.mu.Lock()
		s.buffered, s.sentAtStep, s.stepsSeen = m.buffered, s.sent, true
		s.processed = (m.stepIdx + 1) * kyutaiFrame
		s.mu.Unlock()
		s.signal()
	case kyutaiMarker:
		if m.markerID == kyutaiMarkerID {
			s.mu.Lock()
			s.marker = true
			s.mu.Unlock()
			s.signal()
		}
	case kyutaiError:
		return &HTTPError{Backend: backendName, Message: m.message, Err: &KyutaiError{Message: m.message}}
	}
	return nil
}

// endWord reports the open word as final, ending at end (never before its
// start: a server's EndWord may be one step early after rounding).
func (s *kyutaiSession) endWord(end time.Duration) {
	if !s.open {
		return
	}
	s.open = false
	s.cur.End = max(end, s.cur.Start)
	s.onWord(s.cur, true)
}

// at turns a server time into time from the start of the client's audio.
func (s *kyutaiSession) at(sec float64) (time.Duration, error) {
	d, err := toDuration(sec)
	if err != nil {
		return 0, fmt.Errorf("transcribe: kyutai: %w: %w", ErrBadAnswer, err)
	}
	if s.k.cfg.ModelDelay > 0 {
		d -= s.k.cfg.ModelDelay
	}
	return d - time.Duration(s.lead*int64(time.Second)/kyutaiRate), nil
}

func (s *kyutaiSession) signal() {
	select {
	case s.progress <- struct{}{}:
	default:
	}
}

func (s *kyutaiSession) stop(err error) {
	s.mu.Lock()
	if s.readErr == nil {
		s.readErr = err
	}
	s.mu.Unlock()
}

// failed is the reader's error once it has stopped, nil while it runs.
func (s *kyutaiSession) failed() error {
	select {
	case <-s.done:
	default:
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readErr == nil {
		return newTransportError(errors.New("kyutai server closed the stream"), false)
	}
	return s.readErr
}

// send resamples 16 kHz audio and sends it once back-pressure allows.
func (s *kyutaiSession) send(ctx context.Context, pcm16k []int16) error {
	s.pcm = s.rs.process(s.pcm[:0], pcm16k)
	return s.send24k(ctx, s.pcm)
}

// send24k sends 24 kHz audio once back-pressure allows.
func (s *kyutaiSession) send24k(ctx context.Context, pcm []float32) error {
	if len(pcm) == 0 {
		return nil
	}
	if err := s.waitRoom(ctx, int64(len(pcm))); err != nil {
		return err
	}
	s.out = appendKyutaiAudio(s.out[:0], pcm)
	s.mu.Lock()
	s.sent += int64(len(pcm))
	s.mu.Unlock()
	if err := s.conn.Write(ctx, websocket.MessageBinary, s.out); err != nil {
		return s.writeFailed(ctx, "audio", err)
	}
	return nil
}

// writeFailed explains a failed write. The reader usually knows better (an
// Error frame it just read is why the server closed), so wait for it.
func (s *kyutaiSession) writeFailed(ctx context.Context, what string, err error) error {
	_ = s.conn.CloseNow()
	<-s.done
	s.mu.Lock()
	rerr := s.readErr
	s.mu.Unlock()
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("transcribe: kyutai: %w", context.Cause(ctx))
	case rerr != nil:
		return rerr
	}
	return newTransportError(fmt.Errorf("kyutai send %s: %w", what, err), false)
}

// sendSilence sends n 16 kHz samples of silence, a chunk at a time: as
// many 24 kHz samples as the resampler makes of them, and as many again
// when the audio comes at 24 kHz.
func (s *kyutaiSession) sendSilence(ctx context.Context, n int64) error {
	if s.rs == nil {
		n, chunk := outputFor(n), outputFor(int64(s.k.cfg.ChunkDuration*inputRate/time.Second))
		for n > 0 {
			c := int(min(n, chunk))
			s.pcm = slices.Grow(s.pcm[:0], c)[:c]
			clear(s.pcm)
			if err := s.send24k(ctx, s.pcm); err != nil {
				return err
			}
			n -= int64(c)
		}
		return nil
	}
	var zeros [1280]int16 // 80 ms at 16 kHz: never allocated per call
	chunk := min(int64(s.k.cfg.ChunkDuration*inputRate/time.Second), int64(len(zeros)))
	for n > 0 {
		c := min(n, chunk)
		if err := s.send(ctx, zeros[:c]); err != nil {
			return err
		}
		n -= c
	}
	return nil
}

// waitRoom blocks until n more samples fit under MaxBuffered. What waits on
// the server is at least its last buffered_pcm plus everything sent since
// that Step arrived, and at most everything sent minus what the Step's
// step_idx says was processed (moshi-server counts steps per stream); the
// latter also counts audio still on the wire, so the larger of the two is
// taken. Before any Step (or from a server that never sends one), audio
// goes at real time once MaxBuffered is spent.
func (s *kyutaiSession) waitRoom(ctx context.Context, n int64) error {
	limit := int64(s.k.cfg.MaxBuffered)
	for {
		s.mu.Lock()
		var room int64
		if s.stepsSeen {
			queued := max(s.buffered+s.sent-s.sentAtStep, s.sent-s.processed)
			room = limit - queued
			if queued <= 0 {
				room = max(room, n) // a chunk larger than the limit still goes alone
			}
		} else {
			room = limit + int64(s.k.now().Sub(s.started))*kyutaiRate/int64(time.Second) - s.sent
		}
		steps := s.stepsSeen
		s.mu.Unlock()
		if err := s.failed(); err != nil {
			return err
		}
		if room >= n {
			return nil
		}
		var (
			timer *time.Timer
			tick  <-chan time.Time
		)
		if !steps {
			timer = time.NewTimer(time.Duration((n - room) * int64(time.Second) / kyutaiRate))
			tick = timer.C
		}
		select {
		case <-s.progress:
		case <-s.done:
		case <-tick:
		case <-ctx.Done():
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return fmt.Errorf("transcribe: kyutai: %w", context.Cause(ctx))
		}
	}
}

func (s *kyutaiSession) markerBack() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.marker
}

// finish ends the stream as Kyutai's reference client does: EndPadding of
// silence, the Marker, then silence until the Marker comes back (at most
// MaxTailPadding, then at most IdleTimeout of waiting), and a clean close.
// A word still open ends at end. It returns once the reader has stopped.
func (s *kyutaiSession) finish(ctx context.Context, end time.Duration) error {
	err := s.flush(ctx)
	if err == nil {
		s.closing.Store(true)
		// Close does the closing handshake, which the reader completes.
		if cerr := s.conn.Close(websocket.StatusNormalClosure, ""); cerr != nil && s.failed() == nil {
			s.k.cfg.Logger.DebugContext(ctx, "kyutai close", "error", cerr)
		}
	} else {
		_ = s.conn.CloseNow()
	}
	<-s.done
	if err == nil {
		s.mu.Lock()
		err = s.readErr
		s.mu.Unlock()
	}
	if err != nil {
		return err
	}
	s.endWord(end)
	return nil
}

func (s *kyutaiSession) flush(ctx context.Context) error {
	if err := s.sendSilence(ctx, int64(s.k.cfg.EndPadding*inputRate/time.Second)); err != nil {
		return err
	}
	s.out = appendKyutaiMarker(s.out[:0], kyutaiMarkerID)
	if err := s.conn.Write(ctx, websocket.MessageBinary, s.out); err != nil {
		return s.writeFailed(ctx, "marker", err)
	}
	chunk := int64(s.k.cfg.ChunkDuration * inputRate / time.Second)
	tail := int64(s.k.cfg.MaxTailPadding * inputRate / time.Second)
	for sent := int64(0); sent < tail && !s.markerBack(); sent += chunk {
		if err := s.sendSilence(ctx, min(chunk, tail-sent)); err != nil {
			return err
		}
	}
	idle := time.NewTimer(s.k.cfg.IdleTimeout)
	defer idle.Stop()
	for !s.markerBack() {
		select {
		case <-s.progress:
			idle.Reset(s.k.cfg.IdleTimeout)
		case <-s.done:
			if err := s.failed(); err != nil {
				return err
			}
		case <-idle.C:
			return fmt.Errorf("transcribe: kyutai: %w: the end Marker did not come back after %v of padding and %v of silence from the server", ErrBadAnswer, s.k.cfg.EndPadding+s.k.cfg.MaxTailPadding, s.k.cfg.IdleTimeout)
		case <-ctx.Done():
			return fmt.Errorf("transcribe: kyutai: %w", context.Cause(ctx))
		}
	}
	return nil
}

// abort drops the connection and waits for the reader.
func (s *kyutaiSession) abort() {
	s.closing.Store(true)
	_ = s.conn.CloseNow()
	<-s.done
}
