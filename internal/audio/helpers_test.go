package audio

import (
	"bytes"
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/at-wat/ebml-go"
	"github.com/at-wat/ebml-go/mkvcore"
	"github.com/at-wat/ebml-go/webm"
	"github.com/stretchr/testify/require"
)

// ffmpegWebM encodes a lavfi source to a WebM Opus file with ffmpeg and
// returns its bytes.
func ffmpegWebM(t testing.TB, source string, args ...string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "x.webm")
	cmdArgs := append([]string{"-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source}, args...)
	cmdArgs = append(cmdArgs, "-c:a", "libopus", out)
	return runTool(t, "ffmpeg", cmdArgs, out)
}

func runTool(t testing.TB, tool string, args []string, out string) []byte {
	t.Helper()
	path, err := exec.LookPath(tool)
	require.NoError(t, err, "these tests need %s on PATH", tool)
	cmd := exec.Command(path, args...)
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s: %s", tool, msg)
	if out == "" {
		return msg
	}
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	return data
}

// opusTrack is an Opus track's header and packets, as a muxer wrote them.
type opusTrack struct {
	entry   webm.TrackEntry
	packets [][]byte
	timesMS []int64
}

// parseWebM reads a whole (small) WebM with ebml-go's own structs: an
// independent reading to feed the files built below.
func parseWebM(t testing.TB, data []byte) opusTrack {
	t.Helper()
	var doc struct {
		Header  webm.EBMLHeader `ebml:"EBML"`
		Segment webm.Segment    `ebml:"Segment"`
	}
	require.NoError(t, ebml.Unmarshal(bytes.NewReader(data), &doc))
	require.Len(t, doc.Segment.Tracks.TrackEntry, 1)
	tr := opusTrack{entry: doc.Segment.Tracks.TrackEntry[0]}
	require.Equal(t, "A_OPUS", tr.entry.CodecID)
	add := func(tc uint64, b ebml.Block) {
		for _, p := range b.Data {
			tr.packets = append(tr.packets, p)
			tr.timesMS = append(tr.timesMS, int64(tc)+int64(b.Timecode))
		}
	}
	for _, c := range doc.Segment.Cluster {
		// ffmpeg writes the last packet in a BlockGroup; order by time
		// does not matter to the tests, which re-time every packet.
		for _, b := range c.SimpleBlock {
			add(c.Timecode, b)
		}
		for _, g := range c.BlockGroup {
			add(c.Timecode, g.Block)
		}
	}
	return tr
}

type testBlock struct {
	ms   int64
	data []byte
}

type closeBuffer struct{ bytes.Buffer }

func (*closeBuffer) Close() error { return nil }

// buildWebM writes blocks with ebml-go's block writer, as the recorder
// does: 1 ms timecodes, unknown-size segment and clusters.
func buildWebM(t testing.TB, entry webm.TrackEntry, blocks []testBlock) []byte {
	t.Helper()
	var buf closeBuffer
	entry.TrackNumber = 1
	entry.TrackUID = 1
	entry.TrackType = 2
	ws, err := webm.NewSimpleBlockWriter(&buf, []webm.TrackEntry{entry},
		mkvcore.WithSegmentInfo(&webm.Info{TimecodeScale: 1_000_000, MuxingApp: "test", WritingApp: "test"}),
		mkvcore.WithOnErrorHandler(func(err error) { t.Errorf("webm writer: %v", err) }),
		mkvcore.WithOnFatalHandler(func(err error) { t.Errorf("webm writer fatal: %v", err) }),
	)
	require.NoError(t, err)
	for _, b := range blocks {
		_, err := ws[0].Write(true, b.ms, b.data)
		require.NoError(t, err)
	}
	require.NoError(t, ws[0].Close())
	return buf.Bytes()
}

// retime places packets[i] at times[i].
func retime(packets [][]byte, times []int64) []testBlock {
	blocks := make([]testBlock, len(times))
	for i, ms := range times {
		blocks[i] = testBlock{ms: ms, data: packets[i]}
	}
	return blocks
}

// decodeAll decodes a WebM into one slice (tests only: the files are short).
func decodeAll(t testing.TB, data []byte) ([]int16, Stats) {
	t.Helper()
	var pcm []int16
	st, err := DecodeWebM(context.Background(), bytes.NewReader(data), func(f []int16) error {
		require.Len(t, f, FrameSamples)
		pcm = append(pcm, f...)
		return nil
	})
	require.NoError(t, err)
	return pcm, st
}

// goertzel returns the power of samples at freq (Hz), normalised by length.
func goertzel(samples []int16, freq float64) float64 {
	w := 2 * math.Pi * freq / SampleRate
	c := 2 * math.Cos(w)
	var s1, s2 float64
	for _, x := range samples {
		s0 := float64(x) + c*s1 - s2
		s2, s1 = s1, s0
	}
	p := s1*s1 + s2*s2 - c*s1*s2
	n := float64(len(samples))
	return p / (n * n)
}

// zeroCrossingHz estimates the frequency of a pure tone.
func zeroCrossingHz(samples []int16) float64 {
	crossings := 0
	for i := 1; i < len(samples); i++ {
		if (samples[i-1] < 0) != (samples[i] < 0) {
			crossings++
		}
	}
	return float64(crossings) / 2 / (float64(len(samples)) / SampleRate)
}

func rms(samples []int16) float64 {
	if len(samples) == 0 {
		return 0
	}
	var ss float64
	for _, x := range samples {
		ss += float64(x) * float64(x)
	}
	return math.Sqrt(ss / float64(len(samples)))
}

// ms converts a time in milliseconds to a sample index.
func ms(v int64) int { return int(v) * SampleRate / 1000 }

// silentRuns returns the [start, end) sample ranges where at least minLen
// consecutive samples are exactly zero.
func silentRuns(pcm []int16, minLen int) [][2]int {
	var runs [][2]int
	start := -1
	for i := 0; i <= len(pcm); i++ {
		if i < len(pcm) && pcm[i] == 0 {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 && i-start >= minLen {
			runs = append(runs, [2]int{start, i})
		}
		start = -1
	}
	return runs
}

// marshalWebM writes one sized cluster at clusterMS with ebml.Marshal. The
// block writer cannot do this: it rebases time on its first block, so it
// never writes a late first packet.
func marshalWebM(t testing.TB, entry webm.TrackEntry, clusterMS uint64, blocks []testBlock) []byte {
	t.Helper()
	entry.TrackNumber = 1
	entry.TrackUID = 1
	entry.TrackType = 2
	cluster := webm.Cluster{Timecode: clusterMS}
	for _, b := range blocks {
		cluster.SimpleBlock = append(cluster.SimpleBlock, ebml.Block{
			TrackNumber: 1, Timecode: int16(b.ms), Keyframe: true, Data: [][]byte{b.data},
		})
	}
	doc := struct {
		Header  webm.EBMLHeader `ebml:"EBML"`
		Segment webm.Segment    `ebml:"Segment"`
	}{
		Header: *webm.DefaultEBMLHeader,
		Segment: webm.Segment{
			Info:    webm.Info{TimecodeScale: 1_000_000, MuxingApp: "test", WritingApp: "test"},
			Tracks:  webm.Tracks{TrackEntry: []webm.TrackEntry{entry}},
			Cluster: []webm.Cluster{cluster},
		},
	}
	var buf bytes.Buffer
	require.NoError(t, ebml.Marshal(&doc, &buf))
	return buf.Bytes()
}
