package audio

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"testing/iotest"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"
	"github.com/stretchr/testify/require"
)

func TestOggPacketsReadStreamingAreTheWholeFilesPackets(t *testing.T) {
	t.Parallel()
	// opusenc's pages (about a second of packets each) split anywhere:
	// one byte at a time.
	ogg, err := os.ReadFile("../../testdata/meeting/alice.opus")
	require.NoError(t, err)
	head, want, err := OggOpusPackets(ogg)
	require.NoError(t, err)
	var got []OggPacket
	err = ReadOggOpusPackets(iotest.OneByteReader(bytes.NewReader(ogg)), func(h oggreader.OggHeader) error {
		require.Equal(t, head, h)
		return nil
	}, func(p OggPacket) error {
		p.Data = bytes.Clone(p.Data)
		got = append(got, p)
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, want, got)
	err = ReadOggOpusPackets(bytes.NewReader(ogg[:len(ogg)-10]), func(oggreader.OggHeader) error { return nil }, func(OggPacket) error { return nil })
	require.ErrorIs(t, err, ErrNotOggOpus, "cut short")
}

// longOgg writes an Ogg Opus file of d of alice's packets, repeated, one
// packet a page as a WebRTC recording has them, and returns its path.
func longOgg(tb testing.TB, d time.Duration) string {
	tb.Helper()
	src, err := os.ReadFile("../../testdata/meeting/alice.opus")
	require.NoError(tb, err)
	_, packets, err := OggOpusPackets(src)
	require.NoError(tb, err)
	path := filepath.Join(tb.TempDir(), "long.opus")
	f, err := os.Create(path)
	require.NoError(tb, err)
	ow, err := oggwriter.NewWith(f, 48000, 1)
	require.NoError(tb, err)
	for n := 0; time.Duration(n)*20*time.Millisecond < d; n++ {
		require.NoError(tb, ow.WriteRTP(&rtp.Packet{Payload: packets[n%len(packets)].Data}))
	}
	require.NoError(tb, ow.Close())
	return path
}

// peakReader reads a file and, every mib of it, collects garbage and
// notes the live heap: the most the remux holds at once.
type peakReader struct {
	r           io.Reader
	since, peak uint64
}

func (p *peakReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if p.since += uint64(n); p.since >= 1<<20 {
		p.since = 0
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		p.peak = max(p.peak, ms.HeapAlloc)
	}
	return n, err
}

// remuxPeak remuxes the file at path to nowhere and returns the live heap
// it held at most, above what was live before.
func remuxPeak(tb testing.TB, path string) (uint64, time.Duration) {
	tb.Helper()
	f, err := os.Open(path)
	require.NoError(tb, err)
	defer f.Close()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	pr := &peakReader{r: f}
	d, err := RemuxOggToWebM(io.Discard, pr)
	require.NoError(tb, err)
	return pr.peak - min(pr.peak, ms.HeapAlloc), d
}

// TestOggRemuxMemoryStaysFlat remuxes a two-hour file (24 MB): the
// remux holds at most a few MB at once, whatever the length. Not
// parallel: it reads the process's heap.
func TestOggRemuxMemoryStaysFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 2-hour file")
	}
	path := longOgg(t, 2*time.Hour)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	peak, d := remuxPeak(t, path)
	t.Logf("file %.1f MB, %v of audio, peak live heap %.2f MB", float64(fi.Size())/1e6, d.Round(time.Second), float64(peak)/1e6)
	require.InDelta(t, (2 * time.Hour).Seconds(), d.Seconds(), 1)
	require.Greater(t, fi.Size(), int64(20<<20))
	require.Less(t, peak, uint64(4<<20), "the remux holds a page and a queue, not the file")

	// The measure sees a reader that holds the file: reading it whole
	// peaks at about its size.
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	whole := &peakReader{r: f}
	b, err := io.ReadAll(whole)
	require.NoError(t, err)
	require.Greater(t, whole.peak, uint64(len(b))*3/4)
}

// BenchmarkRemuxOggToWebM reports the remux's speed (x_realtime) and the
// most live heap it held (peak_live_MB) for files of 10 min and 2 h.
func BenchmarkRemuxOggToWebM(b *testing.B) {
	for _, d := range []time.Duration{10 * time.Minute, 2 * time.Hour} {
		b.Run(d.String(), func(b *testing.B) {
			path := longOgg(b, d)
			fi, err := os.Stat(path)
			require.NoError(b, err)
			var peak uint64
			var audio float64
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				p, got := remuxPeak(b, path)
				peak = max(peak, p)
				audio += got.Seconds()
			}
			b.ReportMetric(audio/b.Elapsed().Seconds(), "x_realtime")
			b.ReportMetric(float64(peak)/1e6, "peak_live_MB")
			b.ReportMetric(float64(fi.Size())/1e6, "file_MB")
		})
	}
}

// BenchmarkOggWholeFile is what the remux held before it streamed: the
// file read whole and its packets copied out (peak_live_MB, for
// comparison with BenchmarkRemuxOggToWebM).
func BenchmarkOggWholeFile(b *testing.B) {
	path := longOgg(b, 2*time.Hour)
	var peak uint64
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		data, err := os.ReadFile(path)
		require.NoError(b, err)
		_, packets, err := OggOpusPackets(data)
		require.NoError(b, err)
		runtime.GC()
		runtime.ReadMemStats(&after)
		peak = max(peak, after.HeapAlloc-min(after.HeapAlloc, before.HeapAlloc))
		runtime.KeepAlive(data)
		runtime.KeepAlive(packets)
	}
	b.ReportMetric(float64(peak)/1e6, "peak_live_MB")
}
