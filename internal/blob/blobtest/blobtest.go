// Package blobtest is the conformance suite every blob.Store passes, so
// that code tested against the disk store behaves the same on S3. It is
// for tests only and imports nothing of Greffier but internal/blob.
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/blob"
)

// Corrupter is implemented by the stores that open returns (typically a
// test wrapper embedding the real store), so the suite can damage an
// object behind the store's back and check that Get notices.
type Corrupter interface {
	// Corrupt changes the stored bytes of key without going through the
	// store, keeping its recorded SHA-256 and, if it can, its size.
	Corrupt(t *testing.T, key string)
}

// BigSize is the size of the suite's large objects: more than two S3
// parts at blob.MinS3PartSize, so stores configured with that part size
// exercise multipart uploads.
const BigSize = 2*int(blob.MinS3PartSize) + 12345

// RunConformance runs the suite. open must return an empty store for each
// call; the store must also implement Corrupter.
func RunConformance(t *testing.T, open func(t *testing.T) blob.Store) {
	t.Run("PutGetStat", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		data := randomBytes(1000)
		before := time.Now().Add(-time.Minute)
		info, err := s.Put(ctx, "meetings/m1/tracks/t1.webm", bytes.NewReader(data), int64(len(data)))
		require.NoError(t, err)
		require.Equal(t, "meetings/m1/tracks/t1.webm", info.Key)
		require.Equal(t, int64(len(data)), info.Size)
		require.Equal(t, sha(data), info.SHA256)
		require.WithinRange(t, info.Modified, before, time.Now().Add(time.Minute))

		require.Equal(t, data, get(t, s, "meetings/m1/tracks/t1.webm"))
		st, err := s.Stat(ctx, "meetings/m1/tracks/t1.webm")
		require.NoError(t, err)
		require.Equal(t, info.Key, st.Key)
		require.Equal(t, info.Size, st.Size)
		require.Equal(t, info.SHA256, st.SHA256)
	})

	t.Run("EmptyObject", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		info, err := s.Put(ctx, "empty", bytes.NewReader(nil), 0)
		require.NoError(t, err)
		require.Equal(t, int64(0), info.Size)
		require.Equal(t, sha(nil), info.SHA256)
		require.Empty(t, get(t, s, "empty"))
	})

	t.Run("Overwrite", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		_, err := s.Put(ctx, "k/v", bytes.NewReader([]byte("first version, longer")), -1)
		require.NoError(t, err)
		second := []byte("second")
		_, err = s.Put(ctx, "k/v", bytes.NewReader(second), int64(len(second)))
		require.NoError(t, err)
		require.Equal(t, second, get(t, s, "k/v"))
		st, err := s.Stat(ctx, "k/v")
		require.NoError(t, err)
		require.Equal(t, sha(second), st.SHA256)
		require.Equal(t, int64(len(second)), st.Size)
		list, err := s.List(ctx, "k/")
		require.NoError(t, err)
		require.Len(t, list, 1)
	})

	t.Run("UnknownSizeStream", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		data := randomBytes(70_000)
		// A reader that is neither a Seeker nor a ReaderAt, in small reads.
		r := iotest.HalfReader(io.MultiReader(bytes.NewReader(data)))
		info, err := s.Put(ctx, "stream", r, -1)
		require.NoError(t, err)
		require.Equal(t, int64(len(data)), info.Size)
		require.Equal(t, sha(data), info.SHA256)
		require.Equal(t, data, get(t, s, "stream"))
	})

	t.Run("SeekerNotAtStart", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		r := bytes.NewReader([]byte("skip:payload"))
		_, err := r.Seek(5, io.SeekStart)
		require.NoError(t, err)
		info, err := s.Put(ctx, "offset", r, 7)
		require.NoError(t, err)
		require.Equal(t, sha([]byte("payload")), info.SHA256)
		require.Equal(t, []byte("payload"), get(t, s, "offset"))
	})

	t.Run("SizeMismatch", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		for _, r := range []io.Reader{bytes.NewReader([]byte("12345")), io.MultiReader(bytes.NewReader([]byte("12345")))} {
			_, err := s.Put(ctx, "short", r, 10)
			require.Error(t, err)
			requireNotFound(t, s, "short")
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		requireNotFound(t, s, "no/such/key")
		require.NoError(t, s.Delete(ctx, "no/such/key"))

		_, err := s.Put(ctx, "gone", bytes.NewReader([]byte("x")), 1)
		require.NoError(t, err)
		require.NoError(t, s.Delete(ctx, "gone"))
		requireNotFound(t, s, "gone")
		require.NoError(t, s.Delete(ctx, "gone"))
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		keys := []string{"m/2/x", "m/1/b", "n/z", "m/1/a", "m/10/c", "m/1.txt"}
		for _, k := range keys {
			_, err := s.Put(ctx, k, bytes.NewReader([]byte(k)), int64(len(k)))
			require.NoError(t, err)
		}
		cases := []struct {
			prefix string
			want   []string
		}{
			{"m/1/", []string{"m/1/a", "m/1/b"}},
			{"m/1", []string{"m/1.txt", "m/1/a", "m/1/b", "m/10/c"}},
			{"", []string{"m/1.txt", "m/1/a", "m/1/b", "m/10/c", "m/2/x", "n/z"}},
			{"m/1/a", []string{"m/1/a"}},
			{"zzz/", nil},
			{"m/3/", nil},
		}
		for _, c := range cases {
			list, err := s.List(ctx, c.prefix)
			require.NoError(t, err, "prefix %q", c.prefix)
			var got []string
			for _, info := range list {
				got = append(got, info.Key)
				require.Equal(t, sha([]byte(info.Key)), info.SHA256, "key %q", info.Key)
				require.Equal(t, int64(len(info.Key)), info.Size, "key %q", info.Key)
			}
			require.Equal(t, c.want, got, "prefix %q", c.prefix)
		}
	})

	t.Run("DeletePrefix", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		keys := []string{"m/1/a", "m/1/b/c", "m/10/d", "m/2/e", "n/f"}
		for _, k := range keys {
			_, err := s.Put(ctx, k, bytes.NewReader([]byte(k)), int64(len(k)))
			require.NoError(t, err)
		}
		n, err := s.DeletePrefix(ctx, "m/1/")
		require.NoError(t, err)
		require.Equal(t, 2, n)
		for _, k := range []string{"m/1/a", "m/1/b/c"} {
			requireNotFound(t, s, k)
		}
		list, err := s.List(ctx, "")
		require.NoError(t, err)
		var left []string
		for _, info := range list {
			left = append(left, info.Key)
		}
		require.Equal(t, []string{"m/10/d", "m/2/e", "n/f"}, left, "only the prefix's objects go")
		// Again: nothing left to delete is not an error.
		n, err = s.DeletePrefix(ctx, "m/1/")
		require.NoError(t, err)
		require.Zero(t, n)
		// The prefix holds objects again after a delete.
		_, err = s.Put(ctx, "m/1/a", bytes.NewReader([]byte("again")), 5)
		require.NoError(t, err)
		require.Equal(t, []byte("again"), get(t, s, "m/1/a"))
		_, err = s.DeletePrefix(ctx, "")
		require.Error(t, err, "the empty prefix is refused")
	})

	t.Run("BadKeys", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		for _, key := range []string{
			"", "/abs", "a//b", "a/", "..", "../x", "a/../b", "a/./b", ".hidden",
			"a/.meta/b", `a\b`, "a\x00b", "a\nb", string(make([]byte, blob.MaxKeyLen+1)),
		} {
			_, err := s.Put(ctx, key, bytes.NewReader([]byte("x")), 1)
			require.ErrorIs(t, err, blob.ErrInvalidKey, "Put %q", key)
			_, err = s.Get(ctx, key)
			require.ErrorIs(t, err, blob.ErrInvalidKey, "Get %q", key)
			_, err = s.Stat(ctx, key)
			require.ErrorIs(t, err, blob.ErrInvalidKey, "Stat %q", key)
			require.ErrorIs(t, s.Delete(ctx, key), blob.ErrInvalidKey, "Delete %q", key)
		}
		for _, prefix := range []string{"../", "/", "a/../", "a//"} {
			_, err := s.List(ctx, prefix)
			require.ErrorIs(t, err, blob.ErrInvalidKey, "List %q", prefix)
		}
		list, err := s.List(ctx, "")
		require.NoError(t, err)
		require.Empty(t, list, "a rejected Put stored something")
	})

	t.Run("CorruptDetected", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		c, ok := s.(Corrupter)
		require.True(t, ok, "blobtest: the store under test (%T) must implement blobtest.Corrupter", s)
		data := randomBytes(4096)
		_, err := s.Put(ctx, "meetings/m/x.bin", bytes.NewReader(data), int64(len(data)))
		require.NoError(t, err)
		c.Corrupt(t, "meetings/m/x.bin")

		rc, err := s.Get(ctx, "meetings/m/x.bin")
		require.NoError(t, err)
		defer rc.Close()
		got, err := io.ReadAll(rc)
		require.ErrorIs(t, err, blob.ErrCorrupt)
		require.NotEqual(t, data, got, "Corrupt did not change the bytes")
		// The verdict sticks: a retrying reader must not then see EOF.
		_, err = rc.Read(make([]byte, 1))
		require.ErrorIs(t, err, blob.ErrCorrupt)
	})

	t.Run("BigObject", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		data := randomBytes(BigSize)
		info, err := s.Put(ctx, "big/known", bytes.NewReader(data), int64(len(data)))
		require.NoError(t, err)
		require.Equal(t, sha(data), info.SHA256)
		info, err = s.Put(ctx, "big/unknown", io.MultiReader(bytes.NewReader(data)), -1)
		require.NoError(t, err)
		require.Equal(t, int64(len(data)), info.Size)
		for _, k := range []string{"big/known", "big/unknown"} {
			got := get(t, s, k)
			require.Equal(t, sha(data), sha(got), "key %s", k)
		}
	})

	t.Run("ContextCancelled", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := s.Put(ctx, "c/before", bytes.NewReader([]byte("x")), 1)
		require.ErrorIs(t, err, context.Canceled)
		_, err = s.Get(ctx, "c/before")
		require.ErrorIs(t, err, context.Canceled)
		_, err = s.Stat(ctx, "c/before")
		require.ErrorIs(t, err, context.Canceled)

		// Cancelled halfway through reading the caller's data.
		ctx, cancel = context.WithCancel(context.Background())
		defer cancel()
		r := &cancelAfter{r: bytes.NewReader(randomBytes(1 << 20)), n: 64 << 10, cancel: cancel}
		_, err = s.Put(ctx, "c/during", iotest.HalfReader(r), -1)
		require.ErrorIs(t, err, context.Canceled)
		requireNotFound(t, s, "c/during")
		list, err := s.List(context.Background(), "")
		require.NoError(t, err)
		require.Empty(t, list)
	})

	t.Run("ConcurrentPuts", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() {
				d := []byte{byte(i)}
				_, errs[i] = s.Put(ctx, "same/dir/"+string(rune('a'+i)), bytes.NewReader(d), 1)
			})
		}
		wg.Wait()
		require.NoError(t, errors.Join(errs...))
		list, err := s.List(ctx, "same/")
		require.NoError(t, err)
		require.Len(t, list, len(errs))
	})
}

func get(t *testing.T, s blob.Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	require.NoError(t, err, "Get %q", key)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err, "read %q", key)
	return b
}

func requireNotFound(t *testing.T, s blob.Store, key string) {
	t.Helper()
	_, err := s.Get(context.Background(), key)
	require.ErrorIs(t, err, blob.ErrNotFound, "Get %q", key)
	_, err = s.Stat(context.Background(), key)
	require.ErrorIs(t, err, blob.ErrNotFound, "Stat %q", key)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)})
	_, _ = r.Read(b)
	return b
}

// cancelAfter cancels its context once n bytes have been read, then keeps
// serving data, as a source would that knows nothing of the context.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n -= n
	if c.n <= 0 {
		c.cancel()
	}
	return n, err
}
