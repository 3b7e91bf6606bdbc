package archive

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// syntheticMeeting is speakers tracks of length d each, every one Alice's
// fixture packets looped (speech and silence, 20 ms packets, no DTX: the
// worst case), starting one second apart. All share one file in memory.
func syntheticMeeting(b *testing.B, speakers int, d time.Duration) ([]Track, int64) {
	b.Helper()
	entry, packets := fixturePackets(b, "alice")
	n := int(d / (20 * time.Millisecond))
	looped := make([][]byte, n)
	for i := range looped {
		looped[i] = packets[i%len(packets)]
	}
	file := &memTrack{data: recorderWebM(b, entry, looped)}
	tracks := make([]Track, speakers)
	for i := range tracks {
		id := fmt.Sprintf("speaker-%02d", i)
		tracks[i] = file.track(id, id, int64(i)*1000)
	}
	return tracks, int64(len(file.data))
}

// peakWriter samples the live heap whenever output is written (every 64
// KiB), which catches any growth with the length of the meeting.
type peakWriter struct {
	f      *os.File
	sample []metrics.Sample
	peak   uint64
}

func newPeakWriter(b *testing.B) *peakWriter {
	f, err := os.Create(filepath.Join(b.TempDir(), "out"))
	require.NoError(b, err)
	b.Cleanup(func() { _ = f.Close() })
	return &peakWriter{f: f, sample: []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}}
}

func (p *peakWriter) Write(b []byte) (int, error) {
	metrics.Read(p.sample)
	p.peak = max(p.peak, p.sample[0].Value.Uint64())
	return p.f.Write(b)
}

func (p *peakWriter) Seek(off int64, whence int) (int64, error) { return p.f.Seek(off, whence) }

func benchmarkArchive(b *testing.B, speakers int, d time.Duration,
	run func(ctx context.Context, w io.WriteSeeker, tracks []Track) (Stats, error)) {
	tracks, inputBytes := syntheticMeeting(b, speakers, d)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	base := before.HeapAlloc
	b.ReportAllocs()
	b.ResetTimer()
	var st Stats
	var peak uint64
	for b.Loop() {
		w := newPeakWriter(b)
		var err error
		st, err = run(context.Background(), w, tracks)
		require.NoError(b, err)
		peak = max(peak, w.peak)
	}
	b.StopTimer()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(peak-min(peak, base))/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(st.Packets), "packets")
	b.ReportMetric(float64(st.Bytes)/(1<<20), "out-MiB")
	b.ReportMetric(float64(inputBytes)/(1<<20), "in-MiB/speaker")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N)/float64(st.Packets), "allocs/packet")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(st.Packets), "ns/packet")
}

func multitrack(ctx context.Context, w io.WriteSeeker, tracks []Track) (Stats, error) {
	return WriteMultitrack(ctx, w, tracks)
}

func mixdown(ctx context.Context, w io.WriteSeeker, tracks []Track) (Stats, error) {
	return Mixdown(ctx, w, tracks)
}

// The sizes the brief asks for are behind GREFFIER_BENCH_HOUR=1 (10
// speakers x 1 hour; minutes of CPU for the mixdown); by default the same
// code runs on 10 speakers x 1 minute.
func benchLength() time.Duration {
	if os.Getenv("GREFFIER_BENCH_HOUR") != "" {
		return time.Hour
	}
	return time.Minute
}

func BenchmarkWriteMultitrack10Speakers(b *testing.B) {
	benchmarkArchive(b, 10, benchLength(), multitrack)
}

func BenchmarkMixdown10Speakers(b *testing.B) {
	benchmarkArchive(b, 10, benchLength(), mixdown)
}
