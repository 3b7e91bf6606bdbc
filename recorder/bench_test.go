package recorder

import (
	"bytes"
	"context"
	"go/build"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/store"
)

// benchPayload is a typical 32 kbit/s 20 ms Opus packet: 80 bytes.
func benchPayload() []byte {
	p := make([]byte, 80)
	p[0] = 31 << 3 // CELT 20 ms, one frame
	return p
}

// TestHotPathAllocatesNothing proves WriteRTP's work per packet allocates
// nothing, in order, reordered, duplicated, late or garbage. Not parallel:
// AllocsPerRun counts every goroutine's allocations.
func TestHotPathAllocatesNothing(t *testing.T) {
	s := newSequencer(48000, 111, 5*48000)
	p := &rtp.Packet{Header: rtp.Header{PayloadType: 111}, Payload: benchPayload()}
	var seq uint16
	var ts uint32
	var now int64
	step := func(dseq int, dts int) {
		seq += uint16(dseq)
		ts += uint32(dts)
		now += int64(20 * time.Millisecond)
		p.SequenceNumber, p.Timestamp = seq, ts
		s.push(p, now)
		for {
			if _, ok := s.pop(); !ok {
				break
			}
		}
	}
	for range 100 { // let entries grow to the stream's packet size
		step(1, 960)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		step(1, 960)  // in order
		step(2, 1920) // one lost ...
		step(-1, -960)
		step(0, 0) // ... arrives late-ish, then a duplicate
		step(20, 960*20)
		step(-15, -960*15) // never received, now beyond the window: late
		step(15, 960*15)
		p.Payload = p.Payload[:0]
		step(1, 960) // garbage
		p.Payload = p.Payload[:80]
	})
	require.Zero(t, allocs)
	require.Positive(t, s.stats.Late)
	require.Positive(t, s.stats.Duplicate)
	require.Positive(t, s.stats.Garbage)
}

// countListener counts the blocks it hears.
type countListener struct{ blocks, levels int }

func (l *countListener) Block(_ int64, opus []byte, level int) {
	l.blocks++
	if level >= 0 && len(opus) > 0 {
		l.levels++
	}
}
func (l *countListener) Close(bool) {}

// TestRecordingPathAllocatesNothing proves that a packet's whole way to
// the spool allocates nothing once the track's buffers have grown:
// WriteRTP, then the spool goroutine's drain (placing it, handing it to
// the Listener, writing its WebM block into the spool's buffer) and the
// buffer's writes to the file. Not parallel: AllocsPerRun counts every
// goroutine's allocations; the spool goroutine is not started, the test
// drains in its place.
func TestRecordingPathAllocatesNothing(t *testing.T) {
	t.Run("clear", func(t *testing.T) { testRecordingPathAllocatesNothing(t, spoolKey{}) })
	t.Run("encrypted", func(t *testing.T) {
		k, err := (&Recorder{cfg: Config{SpoolKeys: testSpoolKey}}).spoolKey(context.Background(), "m")
		require.NoError(t, err)
		testRecordingPathAllocatesNothing(t, k)
	})
}

func testRecordingPathAllocatesNothing(t *testing.T, key spoolKey) {
	bb := setup(t)
	dir := t.TempDir()
	f, err := createSpool(filepath.Join(dir, "t.webm"), os.O_EXCL, key)
	require.NoError(t, err)
	w := newWriter(bb.rec, sidecar{TrackID: "t", MeetingID: "m", Identity: "a", Channels: 2},
		48000, 111, f.Name(), filepath.Join(dir, "t.json"), newSpoolFile(f))
	w.seq.levelID = 1
	w.bw, err = newWebMWriter(w.file, 2)
	require.NoError(t, err)
	live := &countListener{}
	w.live = live
	p := &rtp.Packet{Header: rtp.Header{PayloadType: 111}, Payload: benchPayload()}
	var i int
	level := make([]byte, 1)
	step := func() {
		for range 5 { // a drain's worth
			p.SequenceNumber, p.Timestamp = uint16(i), uint32(i*960)
			level[0] = byte(30 + i%40)
			require.NoError(t, p.SetExtension(1, level))
			i++
			bb.clock.Advance(20 * time.Millisecond)
			w.WriteRTP(p)
		}
		w.drain()
	}
	for range 2000 { // clusters, buffers and the file's pages exist
		step()
	}
	require.Zero(t, testing.AllocsPerRun(2000, step))
	require.NoError(t, w.file.flush())
	require.Positive(t, live.levels)
	require.Equal(t, int64(live.blocks), w.blocks)
	require.Zero(t, w.seq.stats.Overflow+w.seq.stats.BadTimestamp+w.seq.stats.Lost)
	require.NoError(t, w.finalize())
	s, err := openSpool(f.Name(), key)
	require.NoError(t, err)
	defer s.Close()
	sec, err := s.section(0)
	require.NoError(t, err)
	data, err := io.ReadAll(sec)
	require.NoError(t, err)
	require.Len(t, parseWebM(t, data).blockTimes(), int(w.blocks))
}

// BenchmarkSequencer is the SFU read loop's share of recording a packet.
func BenchmarkSequencer(b *testing.B) {
	s := newSequencer(48000, 111, 5*48000)
	p := &rtp.Packet{Header: rtp.Header{PayloadType: 111}, Payload: benchPayload()}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p.SequenceNumber, p.Timestamp = uint16(i), uint32(i*960)
		s.push(p, int64(i)*int64(20*time.Millisecond))
		s.pop()
	}
}

// BenchmarkWriter is a packet's whole cost: WriteRTP, the spool goroutine,
// the WebM block and the file.
func BenchmarkWriter(b *testing.B) { benchmarkWriter(b, nil) }

// BenchmarkWriterEncrypted is BenchmarkWriter with the spool encrypted.
func BenchmarkWriterEncrypted(b *testing.B) { benchmarkWriter(b, testSpoolKey) }

func benchmarkWriter(b *testing.B, keys SpoolKeys) {
	bb := benchSetup(b)
	bb.rec.cfg.SpoolKeys = keys
	w, err := bb.rec.Open(context.Background(), Track{MeetingID: "m", Identity: "a", PayloadType: 111})
	require.NoError(b, err)
	p := &rtp.Packet{Header: rtp.Header{PayloadType: 111}, Payload: benchPayload()}
	b.ReportAllocs()
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		p.SequenceNumber, p.Timestamp = uint16(i), uint32(i*960)
		w.WriteRTP(p)
		if i%128 == 127 { // stay within the queue: measure writing, not dropping
			waitDrained(w)
		}
	}
	waitDrained(w)
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "packets/s")
	require.Zero(b, w.Stats().Overflow)
	require.NoError(b, w.Close(context.Background()))
}

func waitDrained(w *Writer) {
	for {
		w.mu.Lock()
		n := w.seq.qLen
		w.mu.Unlock()
		if n == 0 {
			return
		}
		// Rather than wait for the spool goroutine's next tick.
		select {
		case w.wake <- struct{}{}:
		default:
		}
		runtime.Gosched()
	}
}

// BenchmarkTrackMemory reports what one open track costs: heap and
// goroutine stacks, after a few seconds of audio so its buffers exist.
func BenchmarkTrackMemory(b *testing.B) {
	const tracks = 200
	for b.Loop() {
		bb := benchSetup(b)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		ws := make([]*Writer, tracks)
		p := &rtp.Packet{Header: rtp.Header{PayloadType: 111}, Payload: benchPayload()}
		for i := range ws {
			w, err := bb.rec.Open(context.Background(), Track{MeetingID: "m", Identity: "a", PayloadType: 111})
			require.NoError(b, err)
			for j := range 150 {
				p.SequenceNumber, p.Timestamp = uint16(j), uint32(j*960)
				w.WriteRTP(p)
				if j%5 == 4 { // as the spool goroutine's ticks drain a live stream
					waitDrained(w)
				}
			}
			waitDrained(w)
			ws[i] = w
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / tracks
		stack := (int64(after.StackInuse) - int64(before.StackInuse)) / tracks
		b.ReportMetric(float64(heap+stack), "bytes/track")
		b.ReportMetric(float64(heap), "heap-bytes/track")
		b.ReportMetric(float64(stack), "stack-bytes/track")
		for _, w := range ws {
			require.NoError(b, w.Close(context.Background()))
		}
	}
}

func benchSetup(b *testing.B) *testBundle {
	b.Helper()
	d, err := blob.NewDisk(b.TempDir())
	require.NoError(b, err)
	disk := &flakyStore{Store: d}
	cat := &fakeCatalog{t: b, spoolDir: b.TempDir(), rows: map[string]store.Track{}, gaps: map[string][]store.TrackGap{}}
	rec, err := New(Config{SpoolDir: cat.spoolDir}, disk, cat, nil)
	require.NoError(b, err)
	b.Cleanup(rec.Close)
	return &testBundle{rec: rec, catalog: cat}
}

// TestImports keeps the data flow one way: the recorder knows nothing of
// the packages upstream or downstream of it.
func TestImports(t *testing.T) {
	t.Parallel()
	pkg, err := build.ImportDir(".", 0)
	require.NoError(t, err)
	for _, imp := range pkg.Imports {
		for _, banned := range []string{"/sfu", "/api", "/jobs", "/transcribe", "/diarize", "/minutes", "river"} {
			require.False(t, strings.Contains(imp, banned), "recorder imports %s", imp)
		}
	}
}

// BenchmarkCheckpoint is one checkpoint of two minutes of one voice: read
// back from the spool, remuxed in memory, put to (disk) blob storage with
// its journal. Checkpoints run off the packet path, one per track per
// CheckpointInterval.
func BenchmarkCheckpoint(b *testing.B) {
	bb := benchSetup(b)
	bb.rec.cfg.CheckpointInterval = -1
	w, err := bb.rec.Open(context.Background(), Track{MeetingID: "m", Identity: "a", PayloadType: 111})
	require.NoError(b, err)
	p := &rtp.Packet{Header: rtp.Header{PayloadType: 111}, Payload: benchPayload()}
	const blocks = 6000 // 2 minutes of 20 ms packets
	for i := range blocks {
		p.SequenceNumber, p.Timestamp = uint16(i), uint32(i*960)
		w.WriteRTP(p)
		if i%128 == 127 {
			waitDrained(w)
		}
	}
	waitDrained(w)
	require.NoError(b, w.file.flush())
	var chunk int
	b.ReportAllocs()
	for b.Loop() {
		c := newCheckpointer(w)
		made, err := c.runOnce(context.Background())
		c.close()
		require.NoError(b, err)
		require.True(b, made)
		chunk = c.journal.Chunks[0].Blocks
	}
	require.GreaterOrEqual(b, chunk, blocks-200, "ebml-go may still hold the last few")
	require.NoError(b, w.Close(context.Background()))
}

// BenchmarkSpoolRecord is what encryption adds to one drain write of a
// track's spool buffer (4 KiB, about 40 packets of WebM): sealing it as a
// record, against writing it in clear. The file is /dev/null, so only the
// CPU is measured, not the disk.
func BenchmarkSpoolRecord(b *testing.B) {
	buf := bytes.Repeat([]byte{0x5a}, spoolBufSize)
	k, err := (&Recorder{cfg: Config{SpoolKeys: testSpoolKey}}).spoolKey(context.Background(), "m")
	require.NoError(b, err)
	for _, tc := range []struct {
		name string
		key  spoolKey
	}{{"clear", spoolKey{}}, {"encrypted", k}} {
		b.Run(tc.name, func(b *testing.B) {
			f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			require.NoError(b, err)
			defer f.Close()
			var w io.Writer = f
			if tc.key.on() {
				c := &cryptFile{f: f, aead: tc.key.aead, head: []byte{0}}
				w = c
			}
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := w.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
