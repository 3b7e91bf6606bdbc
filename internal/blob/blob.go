// Package blob stores opaque objects under keys, on local disk or in S3. It
// knows nothing of meetings: keys come from package layout. Every object's
// SHA-256 is computed on the way in and kept, so a download can be verified.
package blob

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is returned by Get and Stat for a key that holds no object.
var ErrNotFound = errors.New("blob not found")

// Info describes one stored object.
type Info struct {
	Key      string
	Size     int64
	SHA256   string // lowercase hex of the object's bytes
	Modified time.Time
}

// Store is the object storage seam. Both implementations pass the same
// conformance suite (blobtest).
type Store interface {
	// Put stores r's bytes under key, replacing any object there. size may
	// be -1 when unknown. The object is visible only once Put returns nil.
	Put(ctx context.Context, key string, r io.Reader, size int64) (Info, error)
	// Get opens the object for reading. When the object's SHA-256 is
	// known, the reader returns an error wrapping ErrCorrupt instead of
	// io.EOF if the bytes read do not match it. Keys failing ValidateKey
	// are rejected by every method with an error wrapping ErrInvalidKey.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat describes the object without reading it.
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes the object; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns the objects whose keys start with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]Info, error)
	// DeletePrefix removes every object whose key starts with prefix, and
	// whatever the store keeps for them beside (disk: metadata, temporary
	// files and the directories of a prefix ending in "/"; S3: unfinished
	// multipart uploads), and says how many objects it removed. It does
	// not race well with Puts under the same prefix: callers stop writing
	// there first. The empty prefix is refused.
	DeletePrefix(ctx context.Context, prefix string) (int, error)
}

// Ranger is a Store that reads part of an object without reading what
// comes before it. The bytes are not verified against the object's SHA-256
// (only a whole read can be): callers that need integrity bring their own
// (sealed objects authenticate every chunk).
type Ranger interface {
	// GetRange reads n bytes of the object from offset off, or all of it
	// from off when n < 0.
	GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error)
}
