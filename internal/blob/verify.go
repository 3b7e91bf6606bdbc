package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
)

// ErrCorrupt is wrapped by the error a reader from Get returns, in place of
// io.EOF, when the bytes read do not hash to the SHA-256 recorded at Put.
var ErrCorrupt = errors.New("blob corrupt: SHA-256 mismatch")

// verifyingReader hashes everything read through it and checks the sum at
// EOF, so a caller that reads to the end never mistakes damaged data for
// good data. A caller that stops early gets no verdict, by design: there is
// nothing to compare a partial hash to.
type verifyingReader struct {
	rc   io.ReadCloser
	h    hash.Hash
	want string // lowercase hex
	key  string
	err  error // sticky verdict once EOF was seen
}

// newVerifyingReader wraps rc; with want empty (hash unknown) it returns rc
// unchanged rather than pretending to verify.
func newVerifyingReader(rc io.ReadCloser, key, want string) io.ReadCloser {
	if want == "" {
		return rc
	}
	return &verifyingReader{rc: rc, h: sha256.New(), want: want, key: key}
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.rc.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF {
		var sum [sha256.Size]byte
		got := hex.EncodeToString(v.h.Sum(sum[:0]))
		if got != v.want {
			v.err = fmt.Errorf("blob %q: read data hashes to %s, stored SHA-256 is %s: %w", v.key, got, v.want, ErrCorrupt)
			return n, v.err
		}
		v.err = io.EOF
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.rc.Close() }

// hashingReader counts and hashes what passes through it on the way in, and
// stops with the context's error once it is cancelled, so a long copy from
// a slow source is abandoned promptly.
type hashingReader struct {
	ctx context.Context
	r   io.Reader
	h   hash.Hash
	n   int64
}

func newHashingReader(ctx context.Context, r io.Reader) *hashingReader {
	return &hashingReader{ctx: ctx, r: r, h: sha256.New()}
}

func (hr *hashingReader) Read(p []byte) (int, error) {
	if err := hr.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := hr.r.Read(p)
	hr.h.Write(p[:n])
	hr.n += int64(n)
	return n, err
}

func (hr *hashingReader) sum() string {
	var sum [sha256.Size]byte
	return hex.EncodeToString(hr.h.Sum(sum[:0]))
}
