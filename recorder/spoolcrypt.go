package recorder

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// SpoolKeys gives the 32-byte key that encrypts a meeting's spool files on
// local disk. It must be the same key for a meeting across restarts, or a
// crashed recording cannot be recovered.
type SpoolKeys interface {
	SpoolKey(ctx context.Context, meetingID string) ([]byte, error)
}

// spoolKey encrypts one meeting's spool: the zero value leaves it in clear.
//
// A spool must stay readable up to its last whole write after kill -9, be
// read while it grows, and have its WebM header patched at the end
// (Duration, Cues). So it is a stream of records sealed with AES-GCM, one
// per drain write, each authenticating the file's random identity and its
// own index (in its nonce and its additional data): a record altered,
// moved or taken from another file does not open, and is reported as
// damage rather than read as audio. The WebM header lives apart, in two
// slots rewritten alternately, each time under a fresh random nonce, so a
// patch never reuses a nonce and a crash mid-patch leaves the other slot.
// The small JSON sidecar is sealed with AES-GCM too.
type spoolKey struct {
	aead cipher.AEAD
}

func (k spoolKey) on() bool { return k.aead != nil }

// The encrypted spool's layout:
//
//	magic (8) | file id (16)
//	head length L (4) | slot 0 | slot 1        slot = generation (8) | nonce (12) | sealed head (L+16)
//	record 0 | record 1 | ...                  record = length n (4) | sealed bytes (n)
//
// Record i's nonce is the file id's first 8 bytes then i (4 bytes): never
// reused within a file, and files differ by their random id. Its
// additional data is the whole file id and i. A slot's additional data is
// the file id, L and its generation; the reader takes the highest
// generation that opens. A spool without the magic (written before
// encryption was configured) is read in clear.
const (
	spoolMagic   = "GRFSPL2\x00"
	spoolFamily  = "GRFSPL" // any version of the magic
	spoolIDLen   = 16
	spoolHeader  = len(spoolMagic) + spoolIDLen
	sidecarMagic = "GRFSID1\x00"

	gcmTag    = 16
	gcmNonce  = 12
	slotFixed = 8 + gcmNonce + gcmTag
	// maxRecord bounds a record's plaintext: a drain write is at most
	// spoolBufSize, the WebM header a little more than cuesReserve.
	maxRecord = 64 << 10
)

func (r *Recorder) spoolKey(ctx context.Context, meetingID string) (spoolKey, error) {
	if r.cfg.SpoolKeys == nil {
		return spoolKey{}, nil
	}
	raw, err := r.cfg.SpoolKeys.SpoolKey(ctx, meetingID)
	if err != nil {
		return spoolKey{}, fmt.Errorf("spool key of meeting %s: %w", meetingID, err)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return spoolKey{}, fmt.Errorf("spool key of meeting %s: %w", meetingID, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return spoolKey{}, fmt.Errorf("spool key of meeting %s: %w", meetingID, err)
	}
	return spoolKey{aead: aead}, nil
}

// spoolIO is what a spool is written through: the file itself, or
// cryptFile over it.
type spoolIO interface {
	io.Writer
	io.WriterAt
	io.ReaderAt
	Sync() error
	Close() error
	Name() string
}

// createSpool creates a spool file (flag adds O_EXCL or O_TRUNC), with
// its encryption header when k is on.
func createSpool(path string, flag int, k spoolKey) (spoolIO, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|flag, 0o600)
	if err != nil || !k.on() {
		return f, err
	}
	c := &cryptFile{f: f, aead: k.aead}
	hdr := make([]byte, spoolHeader)
	copy(hdr, spoolMagic)
	if _, err := rand.Read(hdr[len(spoolMagic):]); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("spool file id: %w", err)
	}
	copy(c.id[:], hdr[len(spoolMagic):])
	if _, err := f.WriteAt(hdr, 0); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("write spool header %s: %w", path, err)
	}
	return c, nil
}

// cryptFile writes an encrypted spool. Its first Write is the WebM header
// (the head, which WriteAt patches); every later Write, one per drain of
// the spool's buffer and not per packet, is sealed as records.
type cryptFile struct {
	f    *os.File
	aead cipher.AEAD
	id   [spoolIDLen]byte
	head []byte // the head's plaintext; nil before the first Write
	gen  uint64 // generation of the slot written last
	end  int64  // file offset the next record goes at
	n    uint64 // index of the next record
	fail error  // a torn record write: nothing may follow it

	nonce [gcmNonce]byte
	aad   [spoolIDLen + 8]byte
	buf   []byte // sealed record scratch, reused
}

func (c *cryptFile) slotSize() int64 { return int64(slotFixed + len(c.head)) }

// writeSlot seals the head into the slot its generation names, under a
// fresh random nonce.
func (c *cryptFile) writeSlot(gen uint64) error {
	s := make([]byte, 8+gcmNonce, c.slotSize())
	binary.BigEndian.PutUint64(s, gen)
	if _, err := rand.Read(s[8:]); err != nil {
		return fmt.Errorf("spool head nonce: %w", err)
	}
	s = c.aead.Seal(s, s[8:8+gcmNonce], c.head, slotAAD(c.id, len(c.head), gen))
	off := int64(spoolHeader+4) + int64(gen%2)*c.slotSize()
	if _, err := c.f.WriteAt(s, off); err != nil {
		return fmt.Errorf("write spool head: %w", err)
	}
	c.gen = gen
	return nil
}

func slotAAD(id [spoolIDLen]byte, n int, gen uint64) []byte {
	a := make([]byte, spoolIDLen+4+8)
	copy(a, id[:])
	binary.BigEndian.PutUint32(a[spoolIDLen:], uint32(n))
	binary.BigEndian.PutUint64(a[spoolIDLen+4:], gen)
	return a
}

// recordNonce fills nonce and aad for record i of the file id.
func recordNonce(nonce *[gcmNonce]byte, aad *[spoolIDLen + 8]byte, id *[spoolIDLen]byte, i uint64) {
	copy(nonce[:8], id[:8])
	binary.BigEndian.PutUint32(nonce[8:], uint32(i))
	copy(aad[:], id[:])
	binary.BigEndian.PutUint64(aad[spoolIDLen:], i)
}

func (c *cryptFile) Write(p []byte) (int, error) {
	if c.fail != nil {
		return 0, c.fail
	}
	if c.head == nil {
		if len(p) > maxRecord {
			return 0, fmt.Errorf("spool head of %d bytes is too long", len(p))
		}
		c.head = append(make([]byte, 0, len(p)), p...) // never nil, even empty
		// Both slots at once, the second empty (it opens under no key),
		// so the records' place is fixed from now on.
		area := make([]byte, 4+2*c.slotSize())
		binary.BigEndian.PutUint32(area, uint32(len(p)))
		if _, err := c.f.WriteAt(area, int64(spoolHeader)); err != nil {
			c.fail = fmt.Errorf("write spool head: %w", err)
			return 0, c.fail
		}
		c.end = int64(spoolHeader) + int64(len(area))
		if err := c.writeSlot(1); err != nil {
			c.fail = err
			return 0, err
		}
		return len(p), nil
	}
	done := 0
	for done < len(p) {
		chunk := p[done:min(len(p), done+maxRecord)]
		if c.n > math.MaxUint32 {
			c.fail = errors.New("spool has too many records")
			return done, c.fail
		}
		recordNonce(&c.nonce, &c.aad, &c.id, c.n)
		if need := 4 + len(chunk) + gcmTag; cap(c.buf) < need {
			c.buf = make([]byte, 0, max(need, spoolBufSize+4+gcmTag))
		}
		b := c.buf[:4]
		binary.BigEndian.PutUint32(b, uint32(len(chunk)+gcmTag))
		b = c.aead.Seal(b, c.nonce[:], chunk, c.aad[:])
		if _, err := c.f.WriteAt(b, c.end); err != nil {
			c.fail = fmt.Errorf("write spool record %d: %w", c.n, err)
			return done, c.fail
		}
		c.end += int64(len(b))
		c.n++
		done += len(chunk)
	}
	return done, nil
}

// WriteAt patches the head (Duration, Cues): only the head can be.
func (c *cryptFile) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(c.head)) {
		return 0, fmt.Errorf("spool patch at %d+%d is outside its %d-byte head", off, len(p), len(c.head))
	}
	copy(c.head[off:], p)
	if err := c.writeSlot(c.gen + 1); err != nil {
		return 0, err
	}
	return len(p), nil
}

// ReadAt reads the head: what finishHeader needs.
func (c *cryptFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(c.head)) {
		return 0, io.EOF
	}
	n := copy(p, c.head[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (c *cryptFile) Sync() error  { return c.f.Sync() }
func (c *cryptFile) Close() error { return c.f.Close() }
func (c *cryptFile) Name() string { return c.f.Name() }

// spoolReader reads a spool, encrypted or not, possibly while it grows.
type spoolReader struct {
	f   *os.File
	rec *recordReader // nil for a spool in clear
}

// openSpool opens a spool for reading. A spool in clear is read as such
// (written before encryption was configured); an encrypted one needs k.
func openSpool(path string, k spoolKey) (*spoolReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	hdr := make([]byte, spoolHeader)
	n, err := f.ReadAt(hdr, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		_ = f.Close()
		return nil, fmt.Errorf("read spool %s: %w", path, err)
	}
	if n < len(spoolFamily) || string(hdr[:len(spoolFamily)]) != spoolFamily {
		return &spoolReader{f: f}, nil
	}
	if n >= len(spoolMagic) && string(hdr[:len(spoolMagic)]) != spoolMagic {
		_ = f.Close()
		return nil, fmt.Errorf("spool %s is in an encrypted format this version does not read (%q)", path, hdr[:len(spoolMagic)])
	}
	if !k.on() {
		_ = f.Close()
		return nil, fmt.Errorf("spool %s is encrypted and no key-encryption key is configured", path)
	}
	rr := &recordReader{f: f, aead: k.aead, whole: n == spoolHeader}
	copy(rr.id[:], hdr[len(spoolMagic):n])
	return &spoolReader{f: f, rec: rr}, nil
}

// size is the spool's plaintext length now (up to its last whole,
// authentic record), and its modification time.
func (s *spoolReader) size() (int64, time.Time, error) {
	st, err := s.f.Stat()
	if err != nil {
		return 0, time.Time{}, err
	}
	if s.rec == nil {
		return st.Size(), st.ModTime(), nil
	}
	if err := s.rec.refresh(st.Size()); err != nil {
		return 0, time.Time{}, err
	}
	return s.rec.plain, st.ModTime(), nil
}

// span reads the plaintext from off to end.
func (s *spoolReader) span(off, end int64) io.Reader {
	var at io.ReaderAt = s.f
	if s.rec != nil {
		at = s.rec
	}
	return io.NewSectionReader(at, off, max(0, end-off))
}

// section reads the plaintext from off to the spool's current end. When
// a record there does not open, reading ends with that damage (an error
// wrapping errCorrupt) instead of io.EOF.
func (s *spoolReader) section(off int64) (*spoolSection, error) {
	n, _, err := s.size()
	if err != nil {
		return nil, err
	}
	sec := &spoolSection{SectionReader: io.NewSectionReader(s.f, off, max(0, n-off))}
	if s.rec != nil {
		sec.SectionReader = io.NewSectionReader(s.rec, off, max(0, n-off))
		sec.damage = s.rec.damage
	}
	return sec, nil
}

func (s *spoolReader) Close() error { return s.f.Close() }

// spoolSection is a stretch of a spool's plaintext that says, at its end,
// whether the spool went on with damage.
type spoolSection struct {
	*io.SectionReader
	damage error
}

func (s *spoolSection) Read(p []byte) (int, error) {
	n, err := s.SectionReader.Read(p)
	if errors.Is(err, io.EOF) && s.damage != nil {
		err = s.damage
	}
	return n, err
}

// recordReader is the plaintext of an encrypted spool, as far as it is
// whole and authentic. refresh takes in what was appended since.
type recordReader struct {
	f     *os.File
	aead  cipher.AEAD
	id    [spoolIDLen]byte
	whole bool // the file header was whole when opened

	head    []byte
	recs    []record
	next    int64 // file offset after the last record checked
	plain   int64 // plaintext length so far
	damage  error // the first record that does not open; nothing after it is read
	lenBuf  [4]byte
	ct, pt  []byte
	ptIndex int // record whose plaintext pt holds; -1 none

	nonce [gcmNonce]byte
	aad   [spoolIDLen + 8]byte
}

// record is where record i's plaintext sits in the file and the stream.
type record struct {
	file, plain int64
	n           int32
}

// damaged marks the spool damaged at what.
func (r *recordReader) damaged(format string, a ...any) {
	r.damage = fmt.Errorf("spool damaged on disk: %s: %w", fmt.Sprintf(format, a...), errCorrupt)
}

// refresh reads the records that became whole since the last call (the
// file being fileSize bytes long). A record cut short at the end is not
// read yet (a write under way, or the one a crash tore); one that is
// whole but does not open is damage, and ends what is read.
func (r *recordReader) refresh(fileSize int64) error {
	if !r.whole || r.damage != nil {
		return nil // cut before its id was whole: nothing was written after it
	}
	if r.head == nil {
		ok, err := r.readHead(fileSize)
		if err != nil || !ok {
			return err
		}
	}
	for r.damage == nil && r.next+4 <= fileSize {
		if _, err := r.f.ReadAt(r.lenBuf[:], r.next); err != nil {
			return fmt.Errorf("read spool record: %w", err)
		}
		n := int64(binary.BigEndian.Uint32(r.lenBuf[:]))
		if n < gcmTag || n > maxRecord+gcmTag {
			r.damaged("record %d at byte %d claims %d bytes", len(r.recs), r.next, n)
			break
		}
		if r.next+4+n > fileSize {
			break
		}
		if _, err := r.open(len(r.recs), r.next+4, n); err != nil {
			if r.damage != nil {
				break
			}
			return err
		}
		r.recs = append(r.recs, record{file: r.next + 4, plain: r.plain, n: int32(n - gcmTag)})
		r.plain += n - gcmTag
		r.next += 4 + n
	}
	return nil
}

// open reads and opens record i (n sealed bytes at file offset at) into
// r.pt; a record that does not open sets r.damage.
func (r *recordReader) open(i int, at, n int64) ([]byte, error) {
	if int64(cap(r.ct)) < n {
		r.ct = make([]byte, n)
	}
	ct := r.ct[:n]
	if _, err := r.f.ReadAt(ct, at); err != nil {
		return nil, fmt.Errorf("read spool record %d: %w", i, err)
	}
	recordNonce(&r.nonce, &r.aad, &r.id, uint64(i))
	pt, err := r.aead.Open(r.pt[:0], r.nonce[:], ct, r.aad[:])
	if err != nil {
		r.ptIndex = -1
		r.damaged("record %d at byte %d does not open under the meeting's key", i, at-4)
		return nil, r.damage
	}
	r.pt, r.ptIndex = pt, i
	return pt, nil
}

// readHead opens the newer of the two head slots, once both are on disk.
func (r *recordReader) readHead(fileSize int64) (bool, error) {
	if fileSize < int64(spoolHeader+4) {
		return false, nil
	}
	if _, err := r.f.ReadAt(r.lenBuf[:], int64(spoolHeader)); err != nil {
		return false, fmt.Errorf("read spool head: %w", err)
	}
	l := int(binary.BigEndian.Uint32(r.lenBuf[:]))
	if l > maxRecord {
		r.damaged("head of %d bytes", l)
		return false, nil
	}
	slot := int64(slotFixed + l)
	end := int64(spoolHeader+4) + 2*slot
	if fileSize < end {
		return false, nil // torn while the head was first written
	}
	area := make([]byte, 2*slot)
	if _, err := r.f.ReadAt(area, int64(spoolHeader+4)); err != nil {
		return false, fmt.Errorf("read spool head: %w", err)
	}
	var best []byte
	var bestGen uint64
	for i := range 2 {
		s := area[int64(i)*slot : int64(i+1)*slot]
		gen := binary.BigEndian.Uint64(s)
		if gen%2 != uint64(i)%2 || (best != nil && gen <= bestGen) {
			continue
		}
		pt, err := r.aead.Open(nil, s[8:8+gcmNonce], s[8+gcmNonce:], slotAAD(r.id, l, gen))
		if err == nil {
			best, bestGen = pt, gen
		}
	}
	if best == nil {
		r.damaged("neither copy of its header opens under the meeting's key")
		return false, nil
	}
	r.head, r.plain, r.next, r.ptIndex = best, int64(l), end, -1
	return true, nil
}

// ReadAt reads plaintext from the head and the records read so far.
func (r *recordReader) ReadAt(p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		at := off + int64(done)
		if at >= r.plain {
			return done, io.EOF
		}
		if at < int64(len(r.head)) {
			done += copy(p[done:], r.head[at:])
			continue
		}
		i := sort.Search(len(r.recs), func(i int) bool { return r.recs[i].plain+int64(r.recs[i].n) > at })
		rec := r.recs[i]
		pt := r.pt
		if r.ptIndex != i {
			var err error
			if pt, err = r.open(i, rec.file, int64(rec.n)+gcmTag); err != nil {
				return done, err
			}
		}
		done += copy(p[done:], pt[at-rec.plain:])
	}
	return done, nil
}

// sealSidecar writes the sidecar's JSON, sealed with AES-GCM when k
// is on (its name authenticated with it, so sidecars cannot be swapped).
func sealSidecar(path string, b []byte, k spoolKey) ([]byte, error) {
	if !k.on() {
		return b, nil
	}
	out := make([]byte, len(sidecarMagic)+k.aead.NonceSize(), len(sidecarMagic)+k.aead.NonceSize()+len(b)+k.aead.Overhead())
	copy(out, sidecarMagic)
	nonce := out[len(sidecarMagic):]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("sidecar nonce: %w", err)
	}
	return k.aead.Seal(out, nonce, b, []byte(filepath.Base(path))), nil
}

func openSidecar(path string, b []byte, k spoolKey) ([]byte, error) {
	if len(b) < len(sidecarMagic) || string(b[:len(sidecarMagic)]) != sidecarMagic {
		return b, nil // written in clear, before encryption was configured
	}
	if !k.on() {
		return nil, fmt.Errorf("sidecar %s is encrypted and no key-encryption key is configured", path)
	}
	ns := k.aead.NonceSize()
	if len(b) < len(sidecarMagic)+ns {
		return nil, fmt.Errorf("sidecar %s is cut short", path)
	}
	plain, err := k.aead.Open(nil, b[len(sidecarMagic):len(sidecarMagic)+ns], b[len(sidecarMagic)+ns:], []byte(filepath.Base(path)))
	if err != nil {
		return nil, fmt.Errorf("sidecar %s does not open under its meeting's key: %w", path, err)
	}
	return plain, nil
}
