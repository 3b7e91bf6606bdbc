package seal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/greffier/greffier/internal/blob"
)

// Store seals every object of a meeting (keys under meetings/{id}/ and
// recordings/{id}/) with that meeting's data key, and passes other keys
// (the readiness probe) through. Reads open transparently. What it reports
// of an object (Info.Size, Info.SHA256) is of the plaintext, the bytes a
// user downloads, so checksums kept in the database and shown to users
// mean the same with and without sealing; the store beneath keeps and
// verifies the SHA-256 of the sealed bytes it holds.
//
// An object found without a sealed header (stored before a key-encryption
// key was configured) is read as it is: turning sealing on does not make
// older recordings unreadable, nor does it seal them.
type Store struct {
	inner blob.Store
	keys  *Keyring
}

var (
	_ blob.Store  = (*Store)(nil)
	_ blob.Ranger = (*Store)(nil)
)

// NewStore seals what it stores in inner with keys from keys.
func NewStore(inner blob.Store, keys *Keyring) *Store {
	return &Store{inner: inner, keys: keys}
}

// MeetingOf is the meeting whose data key seals key, or "" for a key that
// belongs to no meeting.
func MeetingOf(key string) string {
	for _, top := range []string{"meetings/", "recordings/"} {
		if rest, ok := strings.CutPrefix(key, top); ok {
			if id, _, ok := strings.Cut(rest, "/"); ok && id != "" {
				return id
			}
		}
	}
	return ""
}

// Put seals r's bytes under key.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) (blob.Info, error) {
	id := MeetingOf(key)
	if id == "" {
		return s.inner.Put(ctx, key, r, size)
	}
	aead, err := s.keys.AEAD(ctx, id, true)
	if err != nil {
		return blob.Info{}, fmt.Errorf("blob: put %q: %w", key, err)
	}
	sealer, err := NewSealer(aead, key, r)
	if err != nil {
		return blob.Info{}, err
	}
	sealed := int64(-1)
	if size >= 0 {
		sealed = SealedSize(size)
	}
	info, err := s.inner.Put(ctx, key, sealer, sealed)
	if err != nil {
		return blob.Info{}, err
	}
	return blob.Info{Key: key, Size: sealer.Size(), SHA256: hex.EncodeToString(sealer.Sum()), Modified: info.Modified}, nil
}

// Get opens the object's plaintext. Bytes that do not open (damaged,
// truncated, reordered) fail the read with an error wrapping both ErrOpen
// and blob.ErrCorrupt, so a download treats them as damage.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	id := MeetingOf(key)
	if id == "" {
		return s.inner.Get(ctx, key)
	}
	rc, err := s.inner.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	header := make([]byte, HeaderSize)
	n, err := io.ReadFull(rc, header)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		_ = rc.Close()
		return nil, fmt.Errorf("blob: get %q: %w", key, err)
	}
	if !IsSealed(header[:n]) {
		return readCloser{io.MultiReader(bytes.NewReader(header[:n]), rc), rc}, nil
	}
	aead, err := s.keys.AEAD(ctx, id, false)
	if err != nil {
		_ = rc.Close()
		return nil, fmt.Errorf("blob: get %q: %w", key, err)
	}
	o, err := NewOpenerAt(aead, key, header, rc, 0)
	if err != nil {
		_ = rc.Close()
		return nil, err
	}
	return readCloser{corruptReader{o}, rc}, nil
}

// GetRange opens n plaintext bytes from off (all from off when n < 0),
// reading and decrypting only the chunks that hold them.
func (s *Store) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	rc, sealed, err := s.GetAuthenticatedRange(ctx, key, off, n)
	if err != nil || sealed {
		return rc, err
	}
	ranger, ok := s.inner.(blob.Ranger)
	if !ok {
		return nil, fmt.Errorf("blob: get %q: the store beneath reads no ranges", key)
	}
	return ranger.GetRange(ctx, key, off, n)
}

// GetAuthenticatedRange is GetRange for a sealed object, whose every chunk
// is authenticated on its own, so the bytes of a range are proved good
// without reading the rest. For an object that is not sealed it returns
// sealed false and nothing to read: only a whole read can verify it.
func (s *Store) GetAuthenticatedRange(ctx context.Context, key string, off, n int64) (rc io.ReadCloser, sealed bool, err error) {
	ranger, ok := s.inner.(blob.Ranger)
	id := MeetingOf(key)
	if !ok || id == "" {
		return nil, false, nil
	}
	header, err := s.readRange(ctx, ranger, key, 0, HeaderSize)
	if err != nil {
		return nil, false, err
	}
	if !IsSealed(header) {
		return nil, false, nil
	}
	rc, err = s.openRange(ctx, ranger, id, key, header, off, n)
	return rc, err == nil, err
}

func (s *Store) openRange(ctx context.Context, ranger blob.Ranger, id, key string, header []byte, off, n int64) (io.ReadCloser, error) {
	aead, err := s.keys.AEAD(ctx, id, false)
	if err != nil {
		return nil, fmt.Errorf("blob: get %q: %w", key, err)
	}
	rc, err := ranger.GetRange(ctx, key, ChunkStart(off), -1)
	if err != nil {
		return nil, err
	}
	o, err := NewOpenerAt(aead, key, header, rc, off)
	if err != nil {
		_ = rc.Close()
		return nil, err
	}
	var r io.Reader = corruptReader{o}
	if n >= 0 {
		r = io.LimitReader(r, n)
	}
	return readCloser{r, rc}, nil
}

func (s *Store) readRange(ctx context.Context, ranger blob.Ranger, key string, off, n int64) ([]byte, error) {
	rc, err := ranger.GetRange(ctx, key, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("blob: get %q: %w", key, err)
	}
	return b, nil
}

// Stat describes the plaintext: from the sealed trailer when the store
// beneath reads ranges (two small reads), else by reading the object.
func (s *Store) Stat(ctx context.Context, key string) (blob.Info, error) {
	info, err := s.inner.Stat(ctx, key)
	id := MeetingOf(key)
	if err != nil || id == "" {
		return info, err
	}
	return s.plainInfo(ctx, id, info)
}

func (s *Store) plainInfo(ctx context.Context, id string, info blob.Info) (blob.Info, error) {
	ranger, ok := s.inner.(blob.Ranger)
	if !ok {
		return s.hashPlain(ctx, info)
	}
	header, err := s.readRange(ctx, ranger, info.Key, 0, HeaderSize)
	if err != nil {
		return blob.Info{}, err
	}
	if !IsSealed(header) {
		return info, nil
	}
	aead, err := s.keys.AEAD(ctx, id, false)
	if err != nil {
		return blob.Info{}, fmt.Errorf("blob: stat %q: %w", info.Key, err)
	}
	if info.Size < HeaderSize+TrailerSize {
		return blob.Info{}, fmt.Errorf("blob: stat %q: %w: %w: %d bytes", info.Key, blob.ErrCorrupt, ErrOpen, info.Size)
	}
	trailer, err := s.readRange(ctx, ranger, info.Key, info.Size-TrailerSize, TrailerSize)
	if err != nil {
		return blob.Info{}, err
	}
	size, sum, err := Trailer(aead, info.Key, header, trailer, info.Size)
	if err != nil {
		return blob.Info{}, fmt.Errorf("blob: stat: %w: %w", err, blob.ErrCorrupt)
	}
	return blob.Info{Key: info.Key, Size: size, SHA256: hex.EncodeToString(sum), Modified: info.Modified}, nil
}

func (s *Store) hashPlain(ctx context.Context, info blob.Info) (blob.Info, error) {
	rc, err := s.Get(ctx, info.Key)
	if err != nil {
		return blob.Info{}, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return blob.Info{}, err
	}
	return blob.Info{Key: info.Key, Size: n, SHA256: hex.EncodeToString(h.Sum(nil)), Modified: info.Modified}, nil
}

// Delete removes the object.
func (s *Store) Delete(ctx context.Context, key string) error { return s.inner.Delete(ctx, key) }

// List describes the objects under prefix by their plaintext. An object
// whose meeting has no key any more (left behind by a deletion, or put
// back from a copy) is listed with its plaintext length and no SHA-256,
// rather than failing the listing of every other meeting's objects.
func (s *Store) List(ctx context.Context, prefix string) ([]blob.Info, error) {
	infos, err := s.inner.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	for i, info := range infos {
		id := MeetingOf(info.Key)
		if id == "" {
			continue
		}
		plain, err := s.plainInfo(ctx, id, info)
		switch {
		case errors.Is(err, ErrNoKey):
			if n, perr := PlainSize(info.Size); perr == nil {
				plain = blob.Info{Key: info.Key, Size: n, Modified: info.Modified}
			}
		case err != nil:
			return nil, fmt.Errorf("blob: list %q: %w", prefix, err)
		}
		infos[i] = plain
	}
	return infos, nil
}

// DeletePrefix removes the objects under prefix; when that is a whole
// meeting, its key is dropped from memory too (the database row goes with
// the meeting's rows).
func (s *Store) DeletePrefix(ctx context.Context, prefix string) (int, error) {
	n, err := s.inner.DeletePrefix(ctx, prefix)
	if id := MeetingOf(prefix); id != "" && prefix == "meetings/"+id+"/" {
		s.keys.Forget(id)
	}
	return n, err
}

type readCloser struct {
	io.Reader
	io.Closer
}

// corruptReader marks bytes that do not open as damage, the way the
// stores beneath report bytes that do not hash to their SHA-256.
type corruptReader struct{ r io.Reader }

func (c corruptReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && errors.Is(err, ErrOpen) && !errors.Is(err, blob.ErrCorrupt) {
		err = fmt.Errorf("%w: %w", err, blob.ErrCorrupt)
	}
	return n, err
}
