// Package seal encrypts stored bytes at rest: a streaming AES-256-GCM
// format of fixed-size authenticated chunks, per-meeting data keys wrapped
// by the operator's key-encryption key (KEK), and a blob.Store that seals
// every object of a meeting with that meeting's data key.
//
// A sealed object is
//
//	header  (16 bytes): "GRFSEAL" | version 1 | nonce prefix (7 random bytes) | reserved 0
//	chunks  (each ChunkSize plaintext bytes + 16-byte tag, the last may be shorter)
//	trailer (40 plaintext bytes + tag): plaintext length (8, big endian) | SHA-256 of the plaintext
//
// Chunk i is sealed with nonce prefix | i (4 bytes, big endian) | 0, the
// trailer with prefix | n | 1, where n is the number of chunks: a chunk
// moved, dropped or replayed from elsewhere fails to open, and so does an
// object cut anywhere (its trailer is gone or no longer last). Every chunk
// and the trailer take the header and the object's key as additional data,
// so an object copied under another key does not open either.
//
// The trailer carries what a store reports about an object (its plaintext
// length and SHA-256) so that Stat reads 72 bytes, not the object.
package seal

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
)

// ChunkSize is the plaintext size of every chunk but the last: large enough
// that the 16-byte tag costs 0.02 %, small enough that a range read decrypts
// little it does not need.
const ChunkSize = 64 << 10

const (
	magic       = "GRFSEAL"
	version     = 1
	HeaderSize  = 16
	tagSize     = 16
	prefixSize  = 7
	trailerText = 8 + sha256.Size
	// TrailerSize is the sealed trailer's length.
	TrailerSize = trailerText + tagSize
	sealedChunk = ChunkSize + tagSize
)

// ErrOpen is wrapped by every error about bytes that do not open under the
// key: damaged, truncated, reordered, or sealed with another key.
var ErrOpen = errors.New("sealed data does not open")

// IsSealed reports whether b starts like a sealed object.
func IsSealed(b []byte) bool {
	return len(b) >= HeaderSize && string(b[:len(magic)]) == magic && b[len(magic)] == version
}

// SealedSize is the sealed length of n plaintext bytes.
func SealedSize(n int64) int64 {
	chunks := (n + ChunkSize - 1) / ChunkSize
	return HeaderSize + n + chunks*tagSize + TrailerSize
}

// PlainSize is the plaintext length of a sealed object of n bytes, or an
// error if no plaintext seals to that length.
func PlainSize(n int64) (int64, error) {
	body := n - HeaderSize - TrailerSize
	if body < 0 {
		return 0, fmt.Errorf("%w: %d bytes is shorter than a header and a trailer", ErrOpen, n)
	}
	full, rest := body/sealedChunk, body%sealedChunk
	switch {
	case rest == 0:
		return full * ChunkSize, nil
	case rest <= tagSize:
		return 0, fmt.Errorf("%w: %d bytes ends in a chunk too short to hold its tag", ErrOpen, n)
	}
	return full*ChunkSize + rest - tagSize, nil
}

func nonce(dst *[12]byte, prefix []byte, counter uint32, last bool) []byte {
	copy(dst[:prefixSize], prefix)
	binary.BigEndian.PutUint32(dst[prefixSize:], counter)
	dst[11] = 0
	if last {
		dst[11] = 1
	}
	return dst[:]
}

// additional is what every chunk of an object authenticates besides its
// own bytes.
func additional(header []byte, key string) []byte {
	return append(append(make([]byte, 0, HeaderSize+len(key)), header...), key...)
}

// Sealer is an io.Reader of the sealed form of another reader's bytes. It
// hashes and counts the plaintext on the way, for the caller's Info.
type Sealer struct {
	aead    cipher.AEAD
	src     io.Reader
	ad      []byte
	prefix  []byte
	plain   []byte // ChunkSize, reused
	out     []byte // sealed bytes not yet read
	buf     []byte // backing store of out
	counter uint32
	h       hash.Hash
	n       int64
	done    bool
	err     error
}

// NewSealer seals src under aead (AES-256-GCM) for the object named key.
func NewSealer(aead cipher.AEAD, key string, src io.Reader) (*Sealer, error) {
	header := make([]byte, HeaderSize)
	copy(header, magic)
	header[len(magic)] = version
	if _, err := rand.Read(header[len(magic)+1 : len(magic)+1+prefixSize]); err != nil {
		return nil, fmt.Errorf("seal: nonce prefix: %w", err)
	}
	s := &Sealer{aead: aead, src: src, ad: additional(header, key), prefix: header[len(magic)+1 : len(magic)+1+prefixSize],
		plain: make([]byte, ChunkSize), buf: make([]byte, 0, sealedChunk+HeaderSize), h: sha256.New()}
	s.out = append(s.buf[:0], header...)
	return s, nil
}

// Read returns sealed bytes; it fails if src does.
func (s *Sealer) Read(p []byte) (int, error) {
	for len(s.out) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		if s.done {
			return 0, io.EOF
		}
		s.next()
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}

// next seals the next chunk, or the trailer once src is exhausted.
func (s *Sealer) next() {
	var nb [12]byte
	n, err := io.ReadFull(s.src, s.plain)
	if n > 0 {
		s.h.Write(s.plain[:n])
		s.n += int64(n)
		s.out = s.aead.Seal(s.buf[:0], nonce(&nb, s.prefix, s.counter, false), s.plain[:n], s.ad)
		s.counter++
		if s.counter == 0 {
			s.err = errors.New("seal: object longer than 2^32 chunks")
			return
		}
	}
	switch {
	case err == nil:
		return
	case err != io.EOF && err != io.ErrUnexpectedEOF:
		s.err = err
		return
	}
	var t [trailerText]byte
	binary.BigEndian.PutUint64(t[:8], uint64(s.n))
	s.h.Sum(t[8:8])
	s.out = s.aead.Seal(s.out, nonce(&nb, s.prefix, s.counter, true), t[:], s.ad)
	s.done = true
}

// Size and SHA256 describe the plaintext read so far (all of it once Read
// returned io.EOF).
func (s *Sealer) Size() int64 { return s.n }

// Sum is the plaintext's SHA-256, valid once Read returned io.EOF.
func (s *Sealer) Sum() []byte { return s.h.Sum(nil) }

// Trailer opens a sealed object's trailer given its header and its last
// TrailerSize bytes; sealedLen is the object's length.
func Trailer(aead cipher.AEAD, key string, header, trailer []byte, sealedLen int64) (size int64, sum []byte, err error) {
	if !IsSealed(header) {
		return 0, nil, fmt.Errorf("%w: %q has no sealed header", ErrOpen, key)
	}
	plain, err := PlainSize(sealedLen)
	if err != nil {
		return 0, nil, fmt.Errorf("%q: %w", key, err)
	}
	chunks := (plain + ChunkSize - 1) / ChunkSize
	var nb [12]byte
	t, err := aead.Open(nil, nonce(&nb, header[len(magic)+1:len(magic)+1+prefixSize], uint32(chunks), true), trailer, additional(header[:HeaderSize], key))
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %q: trailer: %w", ErrOpen, key, err)
	}
	size = int64(binary.BigEndian.Uint64(t[:8]))
	if size != plain {
		return 0, nil, fmt.Errorf("%w: %q: trailer says %d bytes, the object holds %d", ErrOpen, key, size, plain)
	}
	return size, t[8:], nil
}

// Opener reads the plaintext of a sealed object from its start, or from
// the chunk holding a given offset (see NewOpenerAt). Every chunk is
// authenticated before any of its bytes is returned, and the end is
// reported only after the trailer opened in its place.
type Opener struct {
	aead    cipher.AEAD
	src     io.Reader
	key     string
	ad      []byte
	prefix  []byte
	buf     []byte // sealed bytes read and not yet opened
	have    int
	plain   []byte // opened bytes not yet returned
	pbuf    []byte
	counter uint32
	skip    int // plaintext bytes of the first chunk to drop
	ended   bool
	err     error
}

// NewOpener opens the sealed object src, named key, from its start.
func NewOpener(aead cipher.AEAD, key string, src io.Reader) (*Opener, error) {
	header := make([]byte, HeaderSize)
	if _, err := io.ReadFull(src, header); err != nil {
		return nil, fmt.Errorf("%w: %q: header: %w", ErrOpen, key, err)
	}
	return NewOpenerAt(aead, key, header, src, 0)
}

// NewOpenerAt opens a sealed object from the plaintext offset off: header
// is its first HeaderSize bytes and src reads it from ChunkStart(off).
func NewOpenerAt(aead cipher.AEAD, key string, header []byte, src io.Reader, off int64) (*Opener, error) {
	if !IsSealed(header) {
		return nil, fmt.Errorf("%w: %q has no sealed header", ErrOpen, key)
	}
	return &Opener{aead: aead, src: src, key: key, ad: additional(header[:HeaderSize], key),
		prefix: header[len(magic)+1 : len(magic)+1+prefixSize], buf: make([]byte, sealedChunk+TrailerSize),
		pbuf: make([]byte, 0, ChunkSize), counter: uint32(off / ChunkSize), skip: int(off % ChunkSize)}, nil
}

// ChunkStart is the offset in the sealed object of the chunk holding
// plaintext offset off.
func ChunkStart(off int64) int64 { return HeaderSize + off/ChunkSize*sealedChunk }

func (o *Opener) Read(p []byte) (int, error) {
	for len(o.plain) == 0 {
		if o.err != nil {
			return 0, o.err
		}
		o.next()
	}
	n := copy(p, o.plain)
	o.plain = o.plain[n:]
	return n, nil
}

// next opens one more chunk; a full buffer proves a chunk is not the
// last, since the trailer always follows the last chunk.
func (o *Opener) next() {
	if o.ended {
		o.err = io.EOF
		return
	}
	n, err := io.ReadFull(o.src, o.buf[o.have:])
	o.have += n
	var nb [12]byte
	switch {
	case err == nil:
		o.open(o.buf[:sealedChunk], nonce(&nb, o.prefix, o.counter, false))
		o.have = copy(o.buf, o.buf[sealedChunk:o.have])
		return
	case err != io.EOF && err != io.ErrUnexpectedEOF:
		o.err = fmt.Errorf("read %q: %w", o.key, err)
		return
	}
	data := o.have - TrailerSize
	if data < 0 || data > 0 && data <= tagSize {
		o.err = fmt.Errorf("%w: %q is cut short", ErrOpen, o.key)
		return
	}
	if data > 0 {
		if o.open(o.buf[:data], nonce(&nb, o.prefix, o.counter, false)); o.err != nil {
			return
		}
	}
	if _, err := o.aead.Open(nil, nonce(&nb, o.prefix, o.counter, true), o.buf[data:o.have], o.ad); err != nil {
		o.err = fmt.Errorf("%w: %q: trailer (cut short, or chunks moved): %w", ErrOpen, o.key, err)
		o.plain = nil
		return
	}
	o.ended = true
	if len(o.plain) == 0 {
		o.err = io.EOF
	}
}

func (o *Opener) open(sealed, nonce []byte) {
	plain, err := o.aead.Open(o.pbuf[:0], nonce, sealed, o.ad)
	if err != nil {
		o.err = fmt.Errorf("%w: %q: chunk %d: %w", ErrOpen, o.key, o.counter, err)
		return
	}
	o.counter++
	if o.skip > 0 {
		if o.skip > len(plain) {
			o.err = fmt.Errorf("%w: %q: offset past the end", ErrOpen, o.key)
			return
		}
		plain = plain[o.skip:]
		o.skip = 0
	}
	o.plain = plain
}
