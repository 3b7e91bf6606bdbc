// Package upload keeps resumable uploads on local disk, tus-like: a
// session is created with its total length, takes bytes appended at its
// current offset (a cut connection keeps what arrived; the client asks the
// offset and sends the rest), and is read whole once complete. Bytes go
// straight from the request to the file, so memory stays flat whatever
// the size. It knows nothing of audio or meetings.
package upload

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Sentinel errors callers branch on.
var (
	ErrNotFound = errors.New("no such upload")
	// ErrTooLarge: the length is over the limit, or more bytes came than
	// the session's length.
	ErrTooLarge = errors.New("upload too large")
	// ErrBusy: another request is appending to the session.
	ErrBusy = errors.New("upload busy: another request is appending to it")
	// ErrClaimed: the session was given to a user of its bytes (Claim)
	// and takes no more requests.
	ErrClaimed = errors.New("upload already used")
)

// OffsetError says an append did not start at the session's offset.
type OffsetError struct{ Want, Got int64 }

func (e *OffsetError) Error() string {
	return fmt.Sprintf("the upload is at offset %d, not %d: ask its offset (HEAD) and send from there", e.Want, e.Got)
}

// Session is one upload.
type Session struct {
	ID      string    `json:"id"`
	Length  int64     `json:"length"`
	Offset  int64     `json:"-"`
	Created time.Time `json:"created"`
	// Owner names who created the session (the caller's choice: a key);
	// only they may use it.
	Owner string `json:"owner,omitempty"`
	// ClaimedBy, once set by Claim, names the user of the session's
	// bytes; the session is then read-only.
	ClaimedBy string `json:"claimed_by,omitempty"`
}

// Complete reports whether every byte arrived.
func (s Session) Complete() bool { return s.Offset == s.Length }

// Store holds sessions under one directory.
type Store struct {
	dir string
	max int64

	mu   sync.Mutex
	busy map[string]bool
}

// New opens (creating) dir; max bounds a session's length.
func New(dir string, max int64) (*Store, error) {
	if dir == "" || max <= 0 {
		return nil, errors.New("upload: a directory and a positive size limit are required")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("upload: create %s: %w", dir, err)
	}
	return &Store{dir: dir, max: max, busy: map[string]bool{}}, nil
}

// Max is the largest length a session may have.
func (s *Store) Max() int64 { return s.max }

const idPrefix = "upl_"

func validID(id string) bool {
	h, ok := strings.CutPrefix(id, idPrefix)
	if !ok || len(h) != 32 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}

func (s *Store) paths(id string) (data, meta string, err error) {
	if !validID(id) {
		return "", "", fmt.Errorf("upload %q: %w", id, ErrNotFound)
	}
	return filepath.Join(s.dir, id+".part"), filepath.Join(s.dir, id+".json"), nil
}

// Create starts a session of length bytes (1 to Max), owned by owner.
func (s *Store) Create(length int64, owner string) (Session, error) {
	if length < 1 || length > s.max {
		return Session{}, fmt.Errorf("upload of %d bytes: %w (the limit is %d bytes)", length, ErrTooLarge, s.max)
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	sess := Session{ID: idPrefix + hex.EncodeToString(b[:]), Length: length, Created: time.Now().UTC().Truncate(time.Second), Owner: owner}
	data, meta, _ := s.paths(sess.ID)
	f, err := os.OpenFile(data, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return Session{}, fmt.Errorf("upload: create: %w", err)
	}
	if err := f.Close(); err != nil {
		return Session{}, fmt.Errorf("upload: create: %w", err)
	}
	j, _ := json.Marshal(sess)
	if err := os.WriteFile(meta, j, 0o600); err != nil {
		_ = os.Remove(data)
		return Session{}, fmt.Errorf("upload: create: %w", err)
	}
	return sess, nil
}

// Stat returns a session with its offset: how many bytes arrived.
func (s *Store) Stat(id string) (Session, error) {
	data, meta, err := s.paths(id)
	if err != nil {
		return Session{}, err
	}
	j, err := os.ReadFile(meta)
	if errors.Is(err, fs.ErrNotExist) {
		return Session{}, fmt.Errorf("upload %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Session{}, fmt.Errorf("upload %s: %w", id, err)
	}
	var sess Session
	if err := json.Unmarshal(j, &sess); err != nil {
		return Session{}, fmt.Errorf("upload %s: metadata: %w", id, err)
	}
	fi, err := os.Stat(data)
	if errors.Is(err, fs.ErrNotExist) {
		return Session{}, fmt.Errorf("upload %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Session{}, fmt.Errorf("upload %s: %w", id, err)
	}
	sess.Offset = fi.Size()
	return sess, nil
}

// Append writes r's bytes at offset, which must be the session's offset,
// until r ends or the session is complete, and returns the session as it
// now is. Bytes that arrived before r failed (a cut connection) are kept.
// More bytes than the session's length is ErrTooLarge, and the excess is
// dropped.
func (s *Store) Append(ctx context.Context, id string, offset int64, r io.Reader) (Session, error) {
	s.mu.Lock()
	if s.busy[id] {
		s.mu.Unlock()
		return Session{}, fmt.Errorf("upload %s: %w", id, ErrBusy)
	}
	s.busy[id] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.busy, id)
		s.mu.Unlock()
	}()
	sess, err := s.Stat(id)
	if err != nil {
		return Session{}, err
	}
	if sess.ClaimedBy != "" {
		return sess, fmt.Errorf("upload %s: %w by %s", id, ErrClaimed, sess.ClaimedBy)
	}
	if offset != sess.Offset {
		return sess, &OffsetError{Want: sess.Offset, Got: offset}
	}
	data, _, _ := s.paths(id)
	f, err := os.OpenFile(data, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return sess, fmt.Errorf("upload %s: %w", id, err)
	}
	left := sess.Length - sess.Offset
	n, cerr := io.Copy(f, io.LimitReader(ctxReader{ctx, r}, left+1))
	if n > left {
		cerr = fmt.Errorf("more than the %d bytes announced: %w", sess.Length, ErrTooLarge)
		if err := f.Truncate(sess.Length); err != nil {
			cerr = errors.Join(cerr, err)
		}
		n = left
	}
	if err := f.Close(); err != nil && cerr == nil {
		cerr = err
	}
	sess.Offset += n
	if cerr != nil {
		return sess, fmt.Errorf("upload %s: %w", id, cerr)
	}
	return sess, nil
}

// Open reads a complete session's bytes.
func (s *Store) Open(id string) (*os.File, Session, error) {
	sess, err := s.Stat(id)
	if err != nil {
		return nil, Session{}, err
	}
	if !sess.Complete() {
		return nil, sess, fmt.Errorf("upload %s has %d of its %d bytes: send the rest first", id, sess.Offset, sess.Length)
	}
	data, _, _ := s.paths(id)
	f, err := os.Open(data)
	if err != nil {
		return nil, sess, fmt.Errorf("upload %s: %w", id, err)
	}
	return f, sess, nil
}

// Claim gives a complete session's bytes to by (say, an import) for
// good: appends are refused from then on, and so is a claim by anyone
// else (ErrClaimed). Claiming again for the same by changes nothing.
func (s *Store) Claim(id, by string) (Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[id] {
		return Session{}, fmt.Errorf("upload %s: %w", id, ErrBusy)
	}
	sess, err := s.Stat(id)
	if err != nil {
		return Session{}, err
	}
	switch {
	case sess.ClaimedBy == by:
		return sess, nil
	case sess.ClaimedBy != "":
		return sess, fmt.Errorf("upload %s: %w by %s", id, ErrClaimed, sess.ClaimedBy)
	case !sess.Complete():
		return sess, fmt.Errorf("upload %s has %d of its %d bytes: send the rest first", id, sess.Offset, sess.Length)
	}
	sess.ClaimedBy = by
	if err := s.writeMeta(sess); err != nil {
		return Session{}, err
	}
	return sess, nil
}

// Unclaim gives a session claimed by by back to its owner (the claim's
// user could not start).
func (s *Store) Unclaim(id, by string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, err := s.Stat(id)
	if err != nil || sess.ClaimedBy != by {
		return err
	}
	sess.ClaimedBy = ""
	return s.writeMeta(sess)
}

// writeMeta replaces a session's metadata whole (a rename: a crash keeps
// the old or the new).
func (s *Store) writeMeta(sess Session) error {
	_, meta, err := s.paths(sess.ID)
	if err != nil {
		return err
	}
	j, _ := json.Marshal(sess)
	tmp := meta + ".tmp"
	if err := os.WriteFile(tmp, j, 0o600); err != nil {
		return fmt.Errorf("upload %s: %w", sess.ID, err)
	}
	if err := os.Rename(tmp, meta); err != nil {
		return fmt.Errorf("upload %s: %w", sess.ID, err)
	}
	return nil
}

// Remove deletes a session; a missing one is not an error.
func (s *Store) Remove(id string) error {
	data, meta, err := s.paths(id)
	if err != nil {
		return nil
	}
	for _, p := range []string{data, meta} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("upload %s: remove: %w", id, err)
		}
	}
	return nil
}

// RemoveOlder deletes the sessions created before cutoff (abandoned), and
// says how many.
func (s *Store) RemoveOlder(cutoff time.Time) (int, error) {
	metas, err := filepath.Glob(filepath.Join(s.dir, idPrefix+"*.json"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range metas {
		id := strings.TrimSuffix(filepath.Base(m), ".json")
		sess, err := s.Stat(id)
		if err != nil || !sess.Created.Before(cutoff) {
			continue
		}
		if err := s.Remove(id); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// ctxReader stops a copy once ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
