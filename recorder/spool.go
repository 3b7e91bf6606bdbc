package recorder

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/greffier/greffier/internal/audio"
)

// spoolBufSize is the write buffer per track: about a second of
// 32 kbit/s audio, so it rarely fills between two periodic flushes.
const spoolBufSize = 4 << 10

// cuesReserve is the space kept after the header for Cues. A cue costs
// about 20 bytes per cluster (one cluster per 32.7 s or per long gap), so
// 8 KiB index about two meeting-days; beyond that they are thinned.
const cuesReserve = 8 << 10

// spoolFile is the io.Writer + io.WriterAt a track's WebM is written to.
// Writes are buffered (one write system call per spoolBufSize of blocks,
// or per FlushInterval) and reach the file on flush. A write error is kept
// and reported by err() and flush: the track goes on being heard while
// its spool has failed, and Close salvages what reached the disk.
type spoolFile struct {
	mu   sync.Mutex
	f    spoolIO
	bw   *bufio.Writer
	fail error
	// syncs counts the spool made durable while the track records (sync),
	// for the test of its cadence.
	syncs atomic.Int64
}

func newSpoolFile(f spoolIO) *spoolFile {
	return &spoolFile{f: f, bw: bufio.NewWriterSize(f, spoolBufSize)}
}

func (s *spoolFile) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail == nil {
		if _, err := s.bw.Write(p); err != nil {
			s.fail = fmt.Errorf("write spool %s: %w", s.f.Name(), err)
		}
	}
	return len(p), nil
}

// WriteAt is how the Cues and Duration are filled in at the end.
func (s *spoolFile) WriteAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.flushLocked(); err != nil {
		return 0, err
	}
	n, err := s.f.WriteAt(p, off)
	if err != nil && s.fail == nil {
		s.fail = fmt.Errorf("write spool %s at %d: %w", s.f.Name(), off, err)
	}
	return n, err
}

func (s *spoolFile) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushLocked()
}

func (s *spoolFile) flushLocked() error {
	if s.fail != nil {
		return s.fail
	}
	if err := s.bw.Flush(); err != nil {
		s.fail = fmt.Errorf("flush spool %s: %w", s.f.Name(), err)
	}
	return s.fail
}

// sync flushes and makes the spool durable. The spool goroutine calls it
// on the checkpoint cadence, not per flush: a process that crashes loses
// only what was not flushed (the page cache survives it), while a machine
// that loses power keeps at least what the last sync wrote, the same
// stretch the checkpoints have copied to storage. An fsync error fails
// the spool like a write error: what it held may not be on disk.
func (s *spoolFile) sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.flushLocked(); err != nil {
		return err
	}
	if err := s.f.Sync(); err != nil {
		s.fail = fmt.Errorf("sync spool %s: %w", s.f.Name(), err)
		return s.fail
	}
	s.syncs.Add(1)
	return nil
}

func (s *spoolFile) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fail
}

// finish flushes, makes the file durable and closes it.
func (s *spoolFile) finish() error {
	err := s.flush()
	if err == nil {
		if serr := s.f.Sync(); serr != nil {
			err = fmt.Errorf("sync spool %s: %w", s.f.Name(), serr)
		}
	}
	if cerr := s.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close spool %s: %w", s.f.Name(), cerr)
	}
	return err
}

// maxElement bounds any element the recorder skips or reads whole: its
// own files hold nothing larger than the Cues reserve or one block.
const maxElement = 1 << 20

// errCorrupt says the bytes stop making sense; what was read before stays.
var errCorrupt = errors.New("corrupt spool")

// corrupt marks EBML the toolbox could not parse as a corrupt spool, the
// error Recover and salvage know to keep what came before.
func corrupt(err error) error {
	if errors.Is(err, audio.ErrCorruptWebM) {
		return fmt.Errorf("%w: %w", errCorrupt, err)
	}
	return err
}

// scanBlocks reads the SimpleBlocks of a spooled WebM, complete or cut off
// by a crash, and calls fn with each block's time in ms and its frame (fn
// must copy it). It stops without error at a clean or truncated end, and
// with errCorrupt at bytes that cannot be what the recorder wrote; every
// block before that point has been delivered.
func scanBlocks(r io.Reader, fn func(ms int64, frame []byte) error) error {
	return newBlockScanner().scan(r, fn)
}

// blockScanner is scanBlocks that can stop at the end of what a growing
// spool holds and later go on from there: the checkpointer reads each
// stretch of a live spool once.
type blockScanner struct {
	off     int64 // file offset just after the last whole element read
	cluster int64 // current cluster's timecode, -1 before its Timecode
	last    int64 // time of the last block delivered
	buf     []byte
}

func newBlockScanner() *blockScanner { return &blockScanner{cluster: -1, last: -1} }

// scan reads elements from r, which must start at s.off, and delivers
// their blocks. State advances only past whole elements, so an element cut
// off at the end of r is read again, whole, by the next scan.
func (s *blockScanner) scan(r io.Reader, fn func(ms int64, frame []byte) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		id, size, n, err := audio.ReadElementHeader(br)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil
			}
			return corrupt(err)
		}
		switch id {
		case audio.IDSegment, audio.IDCluster: // descend: their children follow
			if id == audio.IDCluster {
				s.cluster = -1
			}
			s.off += int64(n)
			continue
		}
		if size == audio.UnknownSize || size > maxElement {
			return fmt.Errorf("element %#x of size %d: %w", id, size, errCorrupt)
		}
		if cap(s.buf) < int(size) {
			s.buf = make([]byte, size)
		}
		buf := s.buf[:size]
		if _, err := io.ReadFull(br, buf); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil // cut off mid-element: by a crash, or not flushed yet
			}
			return corrupt(err) // an encrypted spool's damage, or the disk's error
		}
		switch id {
		case audio.IDTimecode:
			if size > 8 {
				return fmt.Errorf("cluster timecode of %d bytes: %w", size, errCorrupt)
			}
			var v uint64
			for _, c := range buf {
				v = v<<8 | uint64(c)
			}
			if v > math.MaxInt64/2 {
				return fmt.Errorf("cluster timecode %d: %w", v, errCorrupt)
			}
			s.cluster = int64(v)
		case audio.IDSimpleBlock:
			// track number 1 (one-byte vint), int16 time, flags without lacing
			if s.cluster < 0 || size < 5 || buf[0] != 0x81 || buf[3]&0x06 != 0 {
				return fmt.Errorf("simple block: %w", errCorrupt)
			}
			ms := s.cluster + int64(int16(binary.BigEndian.Uint16(buf[1:3])))
			if ms < s.last {
				return fmt.Errorf("block at %d ms after %d ms: %w", ms, s.last, errCorrupt)
			}
			if err := fn(ms, buf[4:]); err != nil {
				return err
			}
			s.last = ms
		}
		s.off += int64(n) + size
	}
}

// webmSink is what a WebM is written to: Cues and Duration are patched
// in place at the end.
type webmSink interface {
	io.Writer
	io.WriterAt
}

// memFile is a WebM built in memory: checkpoint chunks are small (a few
// minutes of one voice), and building them on the spool disk would fail
// exactly when that disk is full.
type memFile struct{ b []byte }

func (m *memFile) Write(p []byte) (int, error) {
	m.b = append(m.b, p...)
	return len(p), nil
}

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("memfile: negative offset")
	}
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	return copy(m.b[off:], p), nil
}

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// remuxer writes blocks read from somewhere else (a cut-off spool,
// checkpoint chunks, a stretch of a live spool) into a new WebM.
type remuxer struct {
	bw     *webmWriter
	blocks int
	first  int64 // time of the first block, which the output puts at 0
	last   int64
	endMS  int64 // end of the last block, on the input's clock
}

func newRemuxer(out webmSink, channels uint8) (*remuxer, error) {
	m := &remuxer{last: -1}
	bw, err := newWebMWriter(out, channels)
	if err != nil {
		return nil, err
	}
	m.bw = bw
	return m, nil
}

// add writes one block; blocks must come in increasing time.
func (m *remuxer) add(ms int64, frame []byte) error {
	samples := opusSamples(frame)
	if samples == 0 {
		return fmt.Errorf("block at %d ms is not Opus: %w", ms, errCorrupt)
	}
	if ms <= m.last {
		return fmt.Errorf("block at %d ms after %d ms: %w", ms, m.last, errCorrupt)
	}
	if m.blocks == 0 {
		m.first = ms
	}
	if err := m.bw.block(ms, frame); err != nil {
		return fmt.Errorf("rewrite block: %w", err)
	}
	m.blocks++
	m.last = ms
	m.endMS = ms + int64(samples)/48
	return nil
}

// close finishes the WebM (its Cues) and returns the first error met
// writing it.
func (m *remuxer) close() error {
	return m.bw.close()
}

// finishHeader overwrites the Segment's Duration with ms, the end of the
// last block, as a player wants it. (Segment and
// Clusters keep their "unknown" sizes: Matroska forbids an unknown-size
// Cluster inside a Segment of known size.)
func finishHeader(f interface {
	io.ReaderAt
	io.WriterAt
}, ms int64) error {
	head := make([]byte, 4096)
	n, err := f.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read webm header: %w", err)
	}
	pos, err := findDuration(head[:n])
	if err != nil {
		return err
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], math.Float64bits(float64(ms)))
	if _, err := f.WriteAt(v[:], pos); err != nil {
		return fmt.Errorf("write webm duration: %w", err)
	}
	return nil
}

// findDuration returns the offset of the 8-byte Duration value in head.
func findDuration(head []byte) (int64, error) {
	off := 0
	for {
		id, size, n, err := audio.ParseElementHeader(head[off:])
		if err != nil {
			return 0, fmt.Errorf("find webm duration: %w", corrupt(err))
		}
		off += n
		switch {
		case id == audio.IDSegment || id == audio.IDInfo:
			continue
		case id == audio.IDDuration && size == 8:
			return int64(off), nil
		case id == audio.IDCluster || size < 0 || int64(off)+size > int64(len(head)):
			return 0, fmt.Errorf("find webm duration: no Duration before the first cluster: %w", errCorrupt)
		}
		off += int(size)
	}
}

// sidecar is what Recover needs to finish a track whose process died:
// written next to the spool before its first byte, rewritten when the WebM
// is final.
type sidecar struct {
	TrackID       string    `json:"track_id"`
	MeetingID     string    `json:"meeting_id"`
	Identity      string    `json:"identity"`
	SSRC          uint32    `json:"ssrc"`
	Channels      uint8     `json:"channels"`
	StartMS       int64     `json:"start_ms"`
	ClockZero     time.Time `json:"clock_zero"`
	FirstPacketAt time.Time `json:"first_packet_at"`
	// Finalized: the WebM is complete (Duration, Cues); only the upload
	// and the catalog update may be missing.
	Finalized  bool  `json:"finalized"`
	Recovered  bool  `json:"recovered"`
	DurationMS int64 `json:"duration_ms"`
	GapMS      int64 `json:"gap_ms"`
	// DriftPPM is the sender's RTP clock drift (see Timing), once known.
	DriftPPM float64 `json:"drift_ppm,omitempty"`
	// LostReason, when set, says why the spool stopped taking the track
	// before it ended (a full disk), and HeardMS how long the track was
	// heard: what the spool lacks of it is a stated gap (salvage).
	LostReason string `json:"lost_reason,omitempty"`
	HeardMS    int64  `json:"heard_ms,omitempty"`
	// Gaps are the stretches inside the track known not recorded (audio
	// lost in the network), so a restart still states them.
	Gaps []sidecarGap `json:"gaps,omitempty"`
	// Transient: the track's audio is not kept (Track.Transient).
	Transient bool `json:"transient,omitempty"`
}

// sidecarGap is a stretch of a track that was not recorded, in ms on the
// track's clock (the row puts it on the meeting clock).
type sidecarGap struct {
	FromMS int64  `json:"from_ms"`
	ToMS   int64  `json:"to_ms"`
	Reason string `json:"reason"`
}

// writeSidecar replaces path atomically, so a crash leaves the old or the
// new version, never half of one.
func (r *Recorder) writeSidecar(path string, sc sidecar) error {
	b, err := json.Marshal(sc)
	if err != nil {
		return fmt.Errorf("encode sidecar: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.FinishTimeout)
	defer cancel()
	k, err := r.spoolKey(ctx, sc.MeetingID)
	if err != nil {
		return fmt.Errorf("write sidecar %s: %w", path, err)
	}
	if b, err = sealSidecar(path, b, k); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write sidecar: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write sidecar %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// readSidecar reads a sidecar of the meeting whose spool directory holds it.
func (r *Recorder) readSidecar(ctx context.Context, path string) (sidecar, error) {
	var sc sidecar
	b, err := os.ReadFile(path)
	if err != nil {
		return sc, fmt.Errorf("read sidecar: %w", err)
	}
	if len(b) >= len(sidecarMagic) && string(b[:len(sidecarMagic)]) == sidecarMagic {
		k, err := r.spoolKey(ctx, filepath.Base(filepath.Dir(path)))
		if err != nil {
			return sc, fmt.Errorf("read sidecar %s: %w", path, err)
		}
		if b, err = openSidecar(path, b, k); err != nil {
			return sc, err
		}
	}
	if err := json.Unmarshal(b, &sc); err != nil {
		return sc, fmt.Errorf("decode sidecar %s: %w", path, err)
	}
	if sc.TrackID == "" || sc.MeetingID == "" || sc.Identity == "" {
		return sc, fmt.Errorf("sidecar %s lacks track, meeting or identity", path)
	}
	return sc, nil
}

// syncDir makes a rename or create in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
