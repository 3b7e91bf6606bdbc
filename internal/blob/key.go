package blob

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrInvalidKey is wrapped by every error about a key that no store accepts.
var ErrInvalidKey = errors.New("invalid blob key")

// MaxKeyLen is the longest key accepted, in bytes: S3's limit, so a key
// valid on disk is valid in a bucket too.
const MaxKeyLen = 1024

// ValidateKey reports whether key can name an object in every Store. Keys
// are slash-separated relative paths: not empty, not absolute, no empty,
// "." or ".." segments, no backslashes or control characters, and no
// segment starting with "." (reserved for the stores' own bookkeeping, such
// as the disk store's metadata and temporary files). Both stores apply the
// same rules so that a key never works in tests on disk and fails in S3.
func ValidateKey(key string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, why)
	}
	switch {
	case key == "":
		return bad("empty")
	case len(key) > MaxKeyLen:
		return bad(fmt.Sprintf("longer than %d bytes", MaxKeyLen))
	case !utf8.ValidString(key):
		return bad("not valid UTF-8")
	case strings.HasPrefix(key, "/"):
		return bad("absolute; keys are relative paths like meetings/m1/tracks/t1.webm")
	}
	for _, c := range key {
		if c < 0x20 || c == 0x7f {
			return bad("contains a control character")
		}
		if c == '\\' {
			return bad(`contains a backslash; separate segments with "/"`)
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch {
		case seg == "":
			return bad("has an empty segment (leading, trailing or doubled slash)")
		case seg == "." || seg == "..":
			return bad(`has a "." or ".." segment`)
		case strings.HasPrefix(seg, "."):
			return bad(`has a segment starting with "." (reserved for storage bookkeeping)`)
		}
	}
	return nil
}
