package archive

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/at-wat/ebml-go"
	"github.com/at-wat/ebml-go/webm"
	"github.com/stretchr/testify/require"
)

// Both archive writers, behind one signature.
var writers = []struct {
	name string
	run  func(ctx context.Context, w io.WriteSeeker, tracks []Track) (Stats, error)
}{
	{"multitrack", multitrack},
	{"mixdown", mixdown},
}

type seekBuf struct {
	buf []byte
	pos int64
}

func (s *seekBuf) Write(p []byte) (int, error) {
	if end := s.pos + int64(len(p)); end > int64(len(s.buf)) {
		s.buf = append(s.buf, make([]byte, end-int64(len(s.buf)))...)
	}
	copy(s.buf[s.pos:], p)
	s.pos += int64(len(p))
	return len(p), nil
}

func (s *seekBuf) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		off += s.pos
	case io.SeekEnd:
		off += int64(len(s.buf))
	}
	s.pos = off
	return off, nil
}

func TestRejectsTracksItCannotPlace(t *testing.T) {
	t.Parallel()
	open := func(context.Context) (io.ReadCloser, error) { return nil, errors.New("not called") }
	for _, tc := range []struct {
		name   string
		tracks []Track
		want   string
	}{
		{"none", nil, "no tracks"},
		{"no identity", []Track{{Open: open}}, "no Identity"},
		{"no open", []Track{{Identity: "a"}}, "no Open"},
		{"before the meeting", []Track{{Identity: "a", StartMS: -1, Open: open}}, "StartMS must be >= 0"},
	} {
		for _, wr := range writers {
			t.Run(tc.name+"/"+wr.name, func(t *testing.T) {
				t.Parallel()
				_, err := wr.run(context.Background(), &seekBuf{}, tc.tracks)
				require.ErrorContains(t, err, tc.want)
			})
		}
	}
	_, err := WriteMultitrack(context.Background(), &seekBuf{}, nil)
	require.ErrorIs(t, err, ErrNoTracks)
}

// A track that is not Opus, or cannot be opened, fails the whole archive
// with the speaker named, and every reader opened is closed.
func TestFailsOnBadInputAndClosesEverything(t *testing.T) {
	t.Parallel()
	good := &memTrack{data: fixtureWebM(t, "bob")}
	vorbis := &memTrack{data: marshalWebM(t, webm.TrackEntry{Name: "x", TrackNumber: 1, TrackUID: 1, CodecID: "A_VORBIS", TrackType: 2})}
	for _, wr := range writers {
		t.Run(wr.name, func(t *testing.T) {
			t.Parallel()
			g := &memTrack{data: good.data}
			_, err := wr.run(context.Background(), &seekBuf{}, []Track{
				g.track("bob", "Bob", 0),
				vorbis.track("carol", "Carol", 100),
			})
			require.ErrorIs(t, err, ErrNoOpusTrack)
			require.ErrorContains(t, err, "carol")
			require.Equal(t, g.opens.Load(), g.closes.Load())

			g = &memTrack{data: good.data}
			boom := errors.New("storage is down")
			_, err = wr.run(context.Background(), &seekBuf{}, []Track{
				g.track("bob", "Bob", 0),
				{Identity: "dave", StartMS: 2000, Open: func(context.Context) (io.ReadCloser, error) { return nil, boom }},
			})
			require.ErrorIs(t, err, boom)
			require.ErrorContains(t, err, "dave at 2000 ms")
			require.EqualValues(t, 1, g.opens.Load())
			require.EqualValues(t, 1, g.closes.Load())
		})
	}
}

func marshalWebM(t testing.TB, entry webm.TrackEntry) []byte {
	t.Helper()
	doc := struct {
		Header  webm.EBMLHeader `ebml:"EBML"`
		Segment webm.Segment    `ebml:"Segment"`
	}{
		Header:  *webm.DefaultEBMLHeader,
		Segment: webm.Segment{Info: webm.Info{TimecodeScale: 1_000_000}, Tracks: webm.Tracks{TrackEntry: []webm.TrackEntry{entry}}},
	}
	var buf bytes.Buffer
	require.NoError(t, ebml.Marshal(&doc, &buf))
	return buf.Bytes()
}

func TestCancelledContextStopsAndClosesEverything(t *testing.T) {
	t.Parallel()
	for _, wr := range writers {
		t.Run(wr.name, func(t *testing.T) {
			t.Parallel()
			m := newMeeting(t)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_, err := wr.run(ctx, &seekBuf{}, m.tracks)
			require.ErrorIs(t, err, context.Canceled)
			for i, mt := range m.mem {
				require.Equal(t, mt.opens.Load(), mt.closes.Load(), "segment %d", i)
			}
		})
	}
}

// A recording cut off by a crash is archived up to the cut.
func TestTruncatedSegmentIsUsedUpToTheCut(t *testing.T) {
	t.Parallel()
	whole := fixtureWebM(t, "alice")
	// Cut inside a block a bit over 2 s in.
	cut := &memTrack{data: whole[:len(whole)*45/100+1]}
	for _, wr := range writers {
		t.Run(wr.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "out")
			f, err := os.Create(path)
			require.NoError(t, err)
			st, err := wr.run(context.Background(), f, []Track{cut.track("alice", "Alice", 0)})
			require.NoError(t, err)
			require.NoError(t, f.Close())
			require.Equal(t, 1, st.Truncated)
			require.Greater(t, st.Duration, 2*time.Second)
			require.Less(t, st.Duration, 9*time.Second)
			runTool(t, "ffmpeg", "-v", "error", "-xerror", "-i", path, "-f", "null", "-")
		})
	}
}

// Only segments that overlap in time are open together: a speaker who
// rejoined five times never has two recordings open at once.
func TestOpensSegmentsOnlyWhenTheMeetingReachesThem(t *testing.T) {
	t.Parallel()
	data := fixtureWebM(t, "bob")
	for _, wr := range writers {
		t.Run(wr.name, func(t *testing.T) {
			t.Parallel()
			var open, peak atomic.Int32
			var tracks []Track
			for i := range 5 {
				tracks = append(tracks, Track{Identity: "bob", StartMS: int64(i) * 10_000,
					Open: func(context.Context) (io.ReadCloser, error) {
						n := open.Add(1)
						peak.Store(max(peak.Load(), n))
						return &gauge{Reader: bytes.NewReader(data), open: &open}, nil
					}})
			}
			st, err := wr.run(context.Background(), &seekBuf{}, tracks)
			require.NoError(t, err)
			require.Equal(t, 5, st.Segments)
			require.EqualValues(t, 1, peak.Load())
			require.Zero(t, open.Load())
			require.InDelta(t, 49.0, st.Duration.Seconds(), 0.05)
		})
	}
}

type gauge struct {
	io.Reader
	open *atomic.Int32
}

func (g *gauge) Close() error { g.open.Add(-1); return nil }

// Two segments of one speaker that overlap cannot share a track: the later
// one's overlapping packets are dropped and counted, the rest kept.
func TestMultitrackDropsOverlapWithinASpeaker(t *testing.T) {
	t.Parallel()
	data := fixtureWebM(t, "bob")
	a, b := &memTrack{data: data}, &memTrack{data: data}
	path := filepath.Join(t.TempDir(), "out.webm")
	f, err := os.Create(path)
	require.NoError(t, err)
	st, err := WriteMultitrack(context.Background(), f, []Track{a.track("bob", "Bob", 0), b.track("bob", "Bob", 5000)})
	require.NoError(t, err)
	require.NoError(t, f.Close())
	// The second copy starts at 5 s while the first runs to 9 s: its first
	// 4 s (200 packets) overlap.
	require.InDelta(t, 200, st.Overlapped, 2)
	_, packets := fixturePackets(t, "bob")
	require.EqualValues(t, 2*len(packets), st.Packets+st.Overlapped)
	require.InDelta(t, 14.0, st.Duration.Seconds(), 0.03)
	runTool(t, "ffmpeg", "-v", "error", "-xerror", "-i", path, "-f", "null", "-")
}

// A seekable writer gets a FLAC header with the sample count and the MD5
// of the audio; any other writer a stream decoders still accept.
func TestMixdownHeaderWithAndWithoutSeeking(t *testing.T) {
	t.Parallel()
	bob := &memTrack{data: fixtureWebM(t, "bob")}
	tracks := []Track{bob.track("bob", "Bob", 250)}

	var plain bytes.Buffer
	st, err := Mixdown(context.Background(), &plain, tracks)
	require.NoError(t, err)
	require.EqualValues(t, plain.Len(), st.Bytes)
	var seekable seekBuf
	st2, err := Mixdown(context.Background(), &seekable, tracks)
	require.NoError(t, err)
	require.Equal(t, st, st2)
	require.Len(t, seekable.buf, plain.Len())
	require.EqualValues(t, len(seekable.buf), seekable.pos, "left at the end")

	dir := t.TempDir()
	for name, b := range map[string][]byte{"plain.flac": plain.Bytes(), "seek.flac": seekable.buf} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o600))
	}
	raw := filepath.Join(dir, "pcm.raw")
	runTool(t, "ffmpeg", "-v", "error", "-xerror", "-i", filepath.Join(dir, "plain.flac"), "-f", "s16le", "-c:a", "pcm_s16le", raw)
	pcm, err := os.ReadFile(raw)
	require.NoError(t, err)
	samples := int64(st.Duration * 48000 / time.Second)
	require.EqualValues(t, samples*2, len(pcm))

	info := func(b []byte) (uint64, [16]byte) {
		// fLaC, a metadata block header, then STREAMINFO: the total
		// sample count is the low 36 bits of bytes 13-17, the MD5 follows.
		si := b[8:]
		n := binary.BigEndian.Uint64(si[10:18]) & (1<<36 - 1)
		var sum [16]byte
		copy(sum[:], si[18:34])
		return n, sum
	}
	n, sum := info(seekable.buf)
	require.EqualValues(t, samples, n)
	require.Equal(t, md5.Sum(pcm), sum)
	n, sum = info(plain.Bytes())
	require.Zero(t, n)
	require.Zero(t, sum)
	require.Equal(t, plain.Bytes()[42:], seekable.buf[42:], "only the header differs")
}
