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
	"os"
	"path/filepath"
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
// A spool file is written in place, appended to and patched (Duration and
// Cues at the end), read while it grows, and must stay readable up to its
// last whole byte after kill -9: so it is encrypted with AES-CTR, whose
// keystream is addressed by offset, under a random IV per file. CTR does
// not authenticate: the spool is protected against being read from a copy
// of the disk, not against being altered on the host (which can read the
// process's memory anyway); the stored recording is sealed with
// AES-GCM. A Duration or Cues patch re-encrypts bytes at the same offsets
// with the same keystream, which tells a reader of both versions the XOR
// of old and new values: a Void filler and the track's length and cue
// times, not audio. The small JSON sidecar is sealed with AES-GCM.
type spoolKey struct {
	block cipher.Block
	aead  cipher.AEAD
}

func (k spoolKey) on() bool { return k.block != nil }

// spoolMagic starts an encrypted spool, followed by its 16-byte IV; a
// spool without it (written before encryption was configured) is read in
// clear.
const (
	spoolMagic   = "GRFSPL1\x00"
	spoolHeader  = len(spoolMagic) + aes.BlockSize
	sidecarMagic = "GRFSID1\x00"
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
	return spoolKey{block: block, aead: aead}, nil
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
	c := &cryptFile{f: f, block: k.block}
	hdr := make([]byte, spoolHeader)
	copy(hdr, spoolMagic)
	if _, err := rand.Read(hdr[len(spoolMagic):]); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("spool IV: %w", err)
	}
	copy(c.iv[:], hdr[len(spoolMagic):])
	if _, err := f.WriteAt(hdr, 0); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("write spool header %s: %w", path, err)
	}
	return c, nil
}

// cryptFile is a spool file encrypted with AES-CTR at logical offsets
// (after the header). Write appends; it is called once per buffered
// flush, not per packet.
type cryptFile struct {
	f     *os.File
	block cipher.Block
	iv    [aes.BlockSize]byte
	end   int64  // logical offset Write appends at
	buf   []byte // ciphertext scratch, reused
	// stream is the keystream positioned at end: appends, the common
	// case, reuse it and allocate nothing.
	stream cipher.Stream
	at     int64 // logical offset stream is at
}

// xor applies the keystream for logical offset off to src, into dst.
func (c *cryptFile) xor(dst, src []byte, off int64) {
	c.streamAt(off).XORKeyStream(dst, src)
}

// streamAt is a CTR keystream starting at logical offset off.
func (c *cryptFile) streamAt(off int64) cipher.Stream {
	var ctr [aes.BlockSize]byte
	hi, lo := binary.BigEndian.Uint64(c.iv[:8]), binary.BigEndian.Uint64(c.iv[8:])
	n := uint64(off / aes.BlockSize)
	if lo+n < lo {
		hi++
	}
	binary.BigEndian.PutUint64(ctr[:8], hi)
	binary.BigEndian.PutUint64(ctr[8:], lo+n)
	s := cipher.NewCTR(c.block, ctr[:])
	if skip := off % aes.BlockSize; skip > 0 {
		var pad [aes.BlockSize]byte
		s.XORKeyStream(pad[:skip], pad[:skip])
	}
	return s
}

func (c *cryptFile) WriteAt(p []byte, off int64) (int, error) {
	if cap(c.buf) < len(p) {
		c.buf = make([]byte, len(p))
	}
	b := c.buf[:len(p)]
	c.xor(b, p, off)
	return c.f.WriteAt(b, int64(spoolHeader)+off)
}

func (c *cryptFile) Write(p []byte) (int, error) {
	if c.stream == nil || c.at != c.end {
		c.stream, c.at = c.streamAt(c.end), c.end
	}
	if cap(c.buf) < len(p) {
		c.buf = make([]byte, len(p))
	}
	b := c.buf[:len(p)]
	c.stream.XORKeyStream(b, p)
	c.at += int64(len(p))
	n, err := c.f.WriteAt(b, int64(spoolHeader)+c.end)
	c.end += int64(n)
	if n < len(p) {
		c.stream = nil // a short write leaves the keystream ahead of end
	}
	return n, err
}

func (c *cryptFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.f.ReadAt(p, int64(spoolHeader)+off)
	c.xor(p[:n], p[:n], off)
	return n, err
}

func (c *cryptFile) Sync() error  { return c.f.Sync() }
func (c *cryptFile) Close() error { return c.f.Close() }
func (c *cryptFile) Name() string { return c.f.Name() }

// spoolReader reads a spool, encrypted or not, possibly while it grows.
type spoolReader struct {
	f   *os.File
	at  io.ReaderAt
	hdr int64
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
	if n < len(spoolMagic) || string(hdr[:len(spoolMagic)]) != spoolMagic {
		return &spoolReader{f: f, at: f}, nil
	}
	if !k.on() {
		_ = f.Close()
		return nil, fmt.Errorf("spool %s is encrypted and no key-encryption key is configured", path)
	}
	c := &cryptFile{f: f, block: k.block}
	copy(c.iv[:], hdr[len(spoolMagic):n])
	if n < spoolHeader {
		// Cut before its IV was whole: nothing was written after it.
		return &spoolReader{f: f, at: emptyReaderAt{}, hdr: int64(n)}, nil
	}
	return &spoolReader{f: f, at: c, hdr: int64(spoolHeader)}, nil
}

type emptyReaderAt struct{}

func (emptyReaderAt) ReadAt([]byte, int64) (int, error) { return 0, io.EOF }

// size is the spool's plaintext length now, and its modification time.
func (s *spoolReader) size() (int64, time.Time, error) {
	st, err := s.f.Stat()
	if err != nil {
		return 0, time.Time{}, err
	}
	return max(0, st.Size()-s.hdr), st.ModTime(), nil
}

// section reads the plaintext from off to the spool's current end.
func (s *spoolReader) section(off int64) (*io.SectionReader, error) {
	n, _, err := s.size()
	if err != nil {
		return nil, err
	}
	return io.NewSectionReader(s.at, off, max(0, n-off)), nil
}

func (s *spoolReader) Close() error { return s.f.Close() }

// writeSidecarFile writes the sidecar's JSON, sealed with AES-GCM when k
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
