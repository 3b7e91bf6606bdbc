package seal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

func testAEAD(t *testing.T) (aeadKey []byte) {
	t.Helper()
	k := make([]byte, KeySize)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return k
}

func sealBytes(t *testing.T, key []byte, name string, plain []byte) []byte {
	t.Helper()
	a, err := NewAEAD(key)
	require.NoError(t, err)
	s, err := NewSealer(a, name, bytes.NewReader(plain))
	require.NoError(t, err)
	out, err := io.ReadAll(s)
	require.NoError(t, err)
	require.Equal(t, int64(len(plain)), s.Size())
	return out
}

func openBytes(key []byte, name string, sealed []byte) ([]byte, error) {
	a, err := NewAEAD(key)
	if err != nil {
		return nil, err
	}
	o, err := NewOpener(a, name, bytes.NewReader(sealed))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(o)
}

func TestSealRoundTripsEverySizeAroundChunkBoundaries(t *testing.T) {
	key := testAEAD(t)
	for _, n := range []int{0, 1, 39, 40, 41, ChunkSize - 1, ChunkSize, ChunkSize + 1, 3*ChunkSize + 5, 4 * ChunkSize} {
		plain := make([]byte, n)
		_, _ = rand.Read(plain)
		sealed := sealBytes(t, key, "meetings/m/tracks/t.webm", plain)
		require.Equal(t, SealedSize(int64(n)), int64(len(sealed)), "size %d", n)
		back, err := PlainSize(int64(len(sealed)))
		require.NoError(t, err)
		require.Equal(t, int64(n), back)
		got, err := openBytes(key, "meetings/m/tracks/t.webm", sealed)
		require.NoError(t, err, "size %d", n)
		require.True(t, bytes.Equal(plain, got), "size %d", n)
		if n > 8 {
			require.NotContains(t, string(sealed), string(plain[:8]))
		}
	}
}

func TestSealDetectsTamperingTruncationReorderingAndMoves(t *testing.T) {
	key := testAEAD(t)
	const name = "meetings/m/archive/meeting.webm"
	plain := bytes.Repeat([]byte("0123456789abcdef"), 3*ChunkSize/16+100) // 3 full chunks and a short one
	sealed := sealBytes(t, key, name, plain)
	fails := func(why string, b []byte, name string) {
		t.Helper()
		_, err := openBytes(key, name, b)
		require.ErrorIs(t, err, ErrOpen, why)
	}
	for _, at := range []int{HeaderSize - 2, HeaderSize + 5, HeaderSize + sealedChunk + 7, len(sealed) - TrailerSize - 3, len(sealed) - 1} {
		b := bytes.Clone(sealed)
		b[at] ^= 0x40
		fails("a flipped byte", b, name)
	}
	fails("trailer dropped", sealed[:len(sealed)-TrailerSize], name)
	fails("cut mid-chunk", sealed[:HeaderSize+sealedChunk+100], name)
	// Cut at a chunk boundary, with the trailer kept: the trailer no longer
	// opens under the counter it finds itself at.
	cut := append(bytes.Clone(sealed[:HeaderSize+2*sealedChunk]), sealed[len(sealed)-TrailerSize:]...)
	fails("whole chunks dropped", cut, name)
	swapped := bytes.Clone(sealed)
	copy(swapped[HeaderSize:], sealed[HeaderSize+sealedChunk:HeaderSize+2*sealedChunk])
	copy(swapped[HeaderSize+sealedChunk:], sealed[HeaderSize:HeaderSize+sealedChunk])
	fails("two chunks swapped", swapped, name)
	fails("copied under another key", sealed, "meetings/m/archive/other.webm")
	_, err := openBytes(testAEAD(t), name, sealed)
	require.ErrorIs(t, err, ErrOpen, "another data key")
}

func TestSealOpensFromAnyOffset(t *testing.T) {
	key := testAEAD(t)
	a, err := NewAEAD(key)
	require.NoError(t, err)
	const name = "meetings/m/tracks/t.webm"
	plain := make([]byte, 2*ChunkSize+333)
	_, _ = rand.Read(plain)
	sealed := sealBytes(t, key, name, plain)
	for _, off := range []int64{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 17, 2 * ChunkSize, int64(len(plain)) - 1} {
		o, err := NewOpenerAt(a, name, sealed[:HeaderSize], bytes.NewReader(sealed[ChunkStart(off):]), off)
		require.NoError(t, err)
		got, err := io.ReadAll(o)
		require.NoError(t, err, "offset %d", off)
		require.Equal(t, plain[off:], got, "offset %d", off)
	}
	size, sum, err := Trailer(a, name, sealed[:HeaderSize], sealed[len(sealed)-TrailerSize:], int64(len(sealed)))
	require.NoError(t, err)
	require.Equal(t, int64(len(plain)), size)
	require.Len(t, sum, 32)
}

func TestKEKWrapsPerMeetingAndLoadsEveryEncoding(t *testing.T) {
	raw := testAEAD(t)
	kek, err := NewKEK(raw)
	require.NoError(t, err)
	dk := testAEAD(t)
	w, err := kek.Wrap("mtg_a", dk)
	require.NoError(t, err)
	require.NotContains(t, string(w), string(dk))
	got, err := kek.Unwrap("mtg_a", w)
	require.NoError(t, err)
	require.Equal(t, dk, got)
	_, err = kek.Unwrap("mtg_b", w)
	require.ErrorIs(t, err, ErrOpen, "a wrapped key moved to another meeting")
	other, err := NewKEK(testAEAD(t))
	require.NoError(t, err)
	require.NotEqual(t, kek.ID, other.ID)
	_, err = other.Unwrap("mtg_a", w)
	require.ErrorIs(t, err, ErrOpen)

	for _, enc := range [][]byte{raw, []byte(" " + hexString(raw) + "\n"), []byte(b64(raw) + "\n")} {
		k, err := parseKey(enc)
		require.NoError(t, err)
		require.Equal(t, raw, k)
	}
	_, err = parseKey([]byte("too short"))
	require.ErrorContains(t, err, "32 random bytes")
}

func hexString(b []byte) string { return hex.EncodeToString(b) }
func b64(b []byte) string       { return base64.StdEncoding.EncodeToString(b) }

// BenchmarkSeal and BenchmarkOpen are the cost of sealing at rest per
// stored byte (a 1 MiB object: about 4 minutes of one voice).
func BenchmarkSeal(b *testing.B) {
	a, _ := NewAEAD(bytes.Repeat([]byte{1}, KeySize))
	plain := make([]byte, 1<<20)
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		s, _ := NewSealer(a, "meetings/m/tracks/t.webm", bytes.NewReader(plain))
		if _, err := io.Copy(io.Discard, s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	a, _ := NewAEAD(bytes.Repeat([]byte{1}, KeySize))
	plain := make([]byte, 1<<20)
	s, _ := NewSealer(a, "meetings/m/tracks/t.webm", bytes.NewReader(plain))
	sealed, _ := io.ReadAll(s)
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		o, err := NewOpener(a, "meetings/m/tracks/t.webm", bytes.NewReader(sealed))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, o); err != nil {
			b.Fatal(err)
		}
	}
}
