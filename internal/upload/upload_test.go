package upload_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/upload"
)

func TestAResumedUploadEqualsTheOriginal(t *testing.T) {
	t.Parallel()
	s, err := upload.New(t.TempDir(), 1<<20)
	require.NoError(t, err)
	ctx := context.Background()
	orig := make([]byte, 300_000)
	_, _ = rand.Read(orig)
	sess, err := s.Create(int64(len(orig)), "key")
	require.NoError(t, err)

	// The connection breaks after 100,000 bytes: they are kept.
	cut := io.MultiReader(bytes.NewReader(orig[:100_000]), iotest.ErrReader(errors.New("connection reset")))
	got, err := s.Append(ctx, sess.ID, 0, cut)
	require.Error(t, err)
	require.Equal(t, int64(100_000), got.Offset)
	st, err := s.Stat(sess.ID)
	require.NoError(t, err)
	require.Equal(t, int64(100_000), st.Offset)
	require.False(t, st.Complete())
	_, _, err = s.Open(sess.ID)
	require.Error(t, err, "an incomplete upload cannot be read")

	// Resuming from the wrong offset is refused and changes nothing.
	_, err = s.Append(ctx, sess.ID, 0, bytes.NewReader(orig))
	var oe *upload.OffsetError
	require.ErrorAs(t, err, &oe)
	require.Equal(t, int64(100_000), oe.Want)

	got, err = s.Append(ctx, sess.ID, 100_000, bytes.NewReader(orig[100_000:]))
	require.NoError(t, err)
	require.True(t, got.Complete())
	f, _, err := s.Open(sess.ID)
	require.NoError(t, err)
	defer f.Close()
	back, err := io.ReadAll(f)
	require.NoError(t, err)
	require.Equal(t, orig, back)

	require.NoError(t, s.Remove(sess.ID))
	_, err = s.Stat(sess.ID)
	require.ErrorIs(t, err, upload.ErrNotFound)
}

func TestUploadsAreBounded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := upload.New(dir, 1000)
	require.NoError(t, err)
	_, err = s.Create(1001, "key")
	require.ErrorIs(t, err, upload.ErrTooLarge)
	sess, err := s.Create(10, "key")
	require.NoError(t, err)
	got, err := s.Append(context.Background(), sess.ID, 0, bytes.NewReader(make([]byte, 50)))
	require.ErrorIs(t, err, upload.ErrTooLarge, "more than announced")
	require.Equal(t, int64(10), got.Offset, "the excess is dropped")
	_, err = s.Stat("../../etc/passwd")
	require.ErrorIs(t, err, upload.ErrNotFound, "ids are checked before they reach a path")

	n, err := s.RemoveOlder(time.Now().Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	left, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, left)
}

// BenchmarkAppend streams uploads of growing size: memory per upload must
// not grow with it (bytes go from the request to the file).
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int64{1 << 20, 64 << 20, 512 << 20} {
		b.Run(strconv.FormatInt(size>>20, 10)+"MiB", func(b *testing.B) {
			s, err := upload.New(b.TempDir(), size)
			require.NoError(b, err)
			b.ReportAllocs()
			b.SetBytes(size)
			for b.Loop() {
				sess, err := s.Create(size, "key")
				require.NoError(b, err)
				_, err = s.Append(context.Background(), sess.ID, 0, io.LimitReader(zeros{}, size))
				require.NoError(b, err)
				require.NoError(b, s.Remove(sess.ID))
			}
		})
	}
}

// zeros is an endless source that is not a file or a buffer, as a
// request body is not.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestAClaimedUploadTakesNoMoreBytesAndNoOtherClaim(t *testing.T) {
	t.Parallel()
	s, err := upload.New(t.TempDir(), 100)
	require.NoError(t, err)
	sess, err := s.Create(4, "key:a")
	require.NoError(t, err)
	require.Equal(t, "key:a", sess.Owner)
	_, err = s.Claim(sess.ID, "mtg_1")
	require.ErrorContains(t, err, "send the rest first", "an incomplete upload cannot be claimed")
	_, err = s.Append(t.Context(), sess.ID, 0, strings.NewReader("OggS"))
	require.NoError(t, err)
	got, err := s.Claim(sess.ID, "mtg_1")
	require.NoError(t, err)
	require.Equal(t, "mtg_1", got.ClaimedBy)
	_, err = s.Claim(sess.ID, "mtg_1")
	require.NoError(t, err, "claiming again for the same user changes nothing")
	_, err = s.Claim(sess.ID, "mtg_2")
	require.ErrorIs(t, err, upload.ErrClaimed)
	_, err = s.Append(t.Context(), sess.ID, 4, strings.NewReader("x"))
	require.ErrorIs(t, err, upload.ErrClaimed)
	require.NoError(t, s.Unclaim(sess.ID, "mtg_1"))
	_, err = s.Claim(sess.ID, "mtg_2")
	require.NoError(t, err, "given back, it can be claimed again")
	f, st, err := s.Open(sess.ID)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.Equal(t, "key:a", st.Owner, "the owner survives the claims")
}
