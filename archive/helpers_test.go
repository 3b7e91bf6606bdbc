package archive

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/at-wat/ebml-go"
	"github.com/at-wat/ebml-go/mkvcore"
	"github.com/at-wat/ebml-go/webm"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/audio"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

// runTool runs a command-line tool the tests rely on (ffmpeg, ffprobe,
// mkvinfo) and returns its combined output.
func runTool(t testing.TB, tool string, args ...string) []byte {
	t.Helper()
	path, err := exec.LookPath(tool)
	require.NoError(t, err, "these tests need %s on PATH (Debian: ffmpeg, mkvtoolnix)", tool)
	out, err := exec.Command(path, args...).CombinedOutput()
	require.NoError(t, err, "%s %v: %s", tool, args, out)
	return out
}

// fixtureWebM remuxes a committed meeting fixture to WebM with ffmpeg (as a
// browser-side or imported recording would be): Opus packets untouched.
func fixtureWebM(t testing.TB, name string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), name+".webm")
	runTool(t, "ffmpeg", "-v", "error", "-i", filepath.Join("..", "testdata", "meeting", name+".opus"), "-c", "copy", out)
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	return b
}

// fixturePackets reads a fixture's Opus header and packets (20 ms each).
func fixturePackets(t testing.TB, name string) (webm.TrackEntry, [][]byte) {
	t.Helper()
	var doc struct {
		Header  webm.EBMLHeader `ebml:"EBML"`
		Segment webm.Segment    `ebml:"Segment"`
	}
	require.NoError(t, ebml.Unmarshal(bytes.NewReader(fixtureWebM(t, name)), &doc))
	require.Len(t, doc.Segment.Tracks.TrackEntry, 1)
	type timed struct {
		ms   int64
		data []byte
	}
	var all []timed
	for _, c := range doc.Segment.Cluster {
		for _, b := range c.SimpleBlock {
			all = append(all, timed{int64(c.Timecode) + int64(b.Timecode), b.Data[0]})
		}
		// ffmpeg puts the first and the trimmed last packet in BlockGroups.
		for _, g := range c.BlockGroup {
			all = append(all, timed{int64(c.Timecode) + int64(g.Block.Timecode), g.Block.Data[0]})
		}
	}
	slices.SortStableFunc(all, func(a, b timed) int { return cmp.Compare(a.ms, b.ms) })
	packets := make([][]byte, len(all))
	for i, p := range all {
		packets[i] = p.data
	}
	return doc.Segment.Tracks.TrackEntry[0], packets
}

// extractTrack reads a multi-track WebM with ebml-go (a reading independent
// of this package's) and writes track number n alone, renumbered 1, in the
// same clusters at the same times, so internal/audio can decode it.
func extractTrack(t testing.TB, path string, n uint64) []byte {
	t.Helper()
	f, err := os.ReadFile(path)
	require.NoError(t, err)
	var doc struct {
		Header  webm.EBMLHeader `ebml:"EBML"`
		Segment webm.Segment    `ebml:"Segment"`
	}
	require.NoError(t, ebml.Unmarshal(bytes.NewReader(f), &doc))
	var entry webm.TrackEntry
	for _, e := range doc.Segment.Tracks.TrackEntry {
		if e.TrackNumber == n {
			entry = e
		}
	}
	require.NotZero(t, entry.TrackNumber, "no track %d", n)
	entry.TrackNumber = 1
	var clusters []webm.Cluster
	for _, c := range doc.Segment.Cluster {
		// ebml-go files SimpleBlocks and BlockGroups apart: put them back
		// in time order, all as SimpleBlocks (DiscardPadding is lost, which
		// only trims the last packet).
		out := webm.Cluster{Timecode: c.Timecode}
		blocks := c.SimpleBlock
		for _, g := range c.BlockGroup {
			g.Block.Keyframe = true
			blocks = append(blocks, g.Block)
		}
		slices.SortStableFunc(blocks, func(a, b ebml.Block) int { return cmp.Compare(a.Timecode, b.Timecode) })
		for _, b := range blocks {
			if b.TrackNumber == n {
				b.TrackNumber = 1
				out.SimpleBlock = append(out.SimpleBlock, b)
			}
		}
		clusters = append(clusters, out)
	}
	one := struct {
		Header  webm.EBMLHeader `ebml:"EBML"`
		Segment webm.Segment    `ebml:"Segment"`
	}{
		Header: *webm.DefaultEBMLHeader,
		Segment: webm.Segment{
			Info:    webm.Info{TimecodeScale: doc.Segment.Info.TimecodeScale, MuxingApp: "test", WritingApp: "test"},
			Tracks:  webm.Tracks{TrackEntry: []webm.TrackEntry{entry}},
			Cluster: clusters,
		},
	}
	var buf bytes.Buffer
	require.NoError(t, ebml.Marshal(&one, &buf))
	return buf.Bytes()
}

type closeBuffer struct{ bytes.Buffer }

func (*closeBuffer) Close() error { return nil }

// recorderWebM writes packets 20 ms apart, from 0, with ebml-go's block
// writer as the recorder does (1 ms timecodes, unknown sizes).
func recorderWebM(t testing.TB, entry webm.TrackEntry, packets [][]byte) []byte {
	t.Helper()
	var buf closeBuffer
	entry.TrackNumber, entry.TrackUID, entry.TrackType = 1, 1, 2
	ws, err := webm.NewSimpleBlockWriter(&buf, []webm.TrackEntry{entry},
		mkvcore.WithSegmentInfo(&webm.Info{TimecodeScale: 1_000_000, MuxingApp: "test", WritingApp: "test"}),
		mkvcore.WithBlockInterceptor(nil),
		mkvcore.WithOnErrorHandler(func(err error) { t.Errorf("webm writer: %v", err) }),
		mkvcore.WithOnFatalHandler(func(err error) { t.Errorf("webm writer fatal: %v", err) }),
	)
	require.NoError(t, err)
	for i, p := range packets {
		_, err := ws[0].Write(true, int64(i)*20, p)
		require.NoError(t, err)
	}
	require.NoError(t, ws[0].Close())
	return buf.Bytes()
}

// memTrack is a Track served from memory; it counts opens and closes.
type memTrack struct {
	data   []byte
	opens  atomic.Int32
	closes atomic.Int32
}

func (m *memTrack) track(identity, name string, startMS int64) Track {
	return Track{Identity: identity, Name: name, StartMS: startMS,
		Open: func(context.Context) (io.ReadCloser, error) {
			m.opens.Add(1)
			return &countingCloser{Reader: bytes.NewReader(m.data), closes: &m.closes}, nil
		}}
}

type countingCloser struct {
	io.Reader
	closes *atomic.Int32
}

func (c *countingCloser) Close() error { c.closes.Add(1); return nil }

// meeting is the test meeting: bob's whole fixture from 500 ms, alice in
// two segments (she left after 4 s of her recording and rejoined 3 s
// later), so her words sit at known, shifted places on the meeting clock.
type meeting struct {
	tracks []Track
	mem    []*memTrack
	// want is every word with its meeting-clock time, per speaker.
	want map[string][]transcribetest.TimedWord
}

const (
	bobStartMS    = 500
	aliceStartMS  = 1000
	aliceSplit    = 200  // packets in her first segment: 4 s
	aliceRejoinMS = 8000 // her second segment's StartMS: 3 s after she left
)

func newMeeting(t testing.TB) meeting {
	t.Helper()
	aliceEntry, alicePackets := fixturePackets(t, "alice")
	a1 := &memTrack{data: recorderWebM(t, aliceEntry, alicePackets[:aliceSplit])}
	a2 := &memTrack{data: recorderWebM(t, aliceEntry, alicePackets[aliceSplit:])}
	b := &memTrack{data: fixtureWebM(t, "bob")}
	script := readScript(t)
	want := map[string][]transcribetest.TimedWord{}
	for _, w := range script["alice"] {
		shift := time.Duration(aliceStartMS) * time.Millisecond
		if w.Start >= aliceSplit*20*time.Millisecond {
			shift = time.Duration(aliceRejoinMS-aliceSplit*20) * time.Millisecond
		}
		want["alice"] = append(want["alice"], transcribetest.TimedWord{Text: w.Text, Start: w.Start + shift, End: w.End + shift})
	}
	for _, w := range script["bob"] {
		shift := time.Duration(bobStartMS) * time.Millisecond
		want["bob"] = append(want["bob"], transcribetest.TimedWord{Text: w.Text, Start: w.Start + shift, End: w.End + shift})
	}
	return meeting{
		// Alice's second segment comes first, to show order of segments in
		// the slice does not matter, only StartMS.
		tracks: []Track{
			a2.track("alice", "Alice", aliceRejoinMS),
			b.track("bob", "Bob", bobStartMS),
			a1.track("alice", "", aliceStartMS),
		},
		mem:  []*memTrack{a2, b, a1},
		want: want,
	}
}

// readScript returns each speaker's words from the fixtures' script.
func readScript(t testing.TB) map[string][]transcribetest.TimedWord {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "meeting", "script.json"))
	require.NoError(t, err)
	var s struct {
		Utterances []struct {
			Speaker string `json:"speaker"`
			Words   []struct {
				Text  string  `json:"text"`
				Start float64 `json:"start"`
				End   float64 `json:"end"`
			} `json:"words"`
		} `json:"utterances"`
	}
	require.NoError(t, json.Unmarshal(b, &s))
	out := map[string][]transcribetest.TimedWord{}
	for _, u := range s.Utterances {
		for _, w := range u.Words {
			out[u.Speaker] = append(out[u.Speaker], transcribetest.TimedWord{
				Text:  w.Text,
				Start: time.Duration(w.Start * float64(time.Second)),
				End:   time.Duration(w.End * float64(time.Second)),
			})
		}
	}
	return out
}

// requireWordsAt checks that exactly the wanted words were heard, each
// within tol of its time.
func requireWordsAt(t testing.TB, want, got []transcribetest.TimedWord, tol time.Duration) {
	t.Helper()
	require.Len(t, got, len(want), "heard %v, want %v", got, want)
	for i := range want {
		require.Equal(t, want[i].Text, got[i].Text, "word %d", i)
		require.InDelta(t, want[i].Start.Seconds(), got[i].Start.Seconds(), tol.Seconds(), "start of %q", want[i].Text)
		require.InDelta(t, want[i].End.Seconds(), got[i].End.Seconds(), tol.Seconds(), "end of %q", want[i].Text)
	}
}

// hear decodes a one-track WebM with internal/audio and returns the tone
// words in it, timed from the file's time 0.
func hear(t testing.TB, webmFile []byte) []transcribetest.TimedWord {
	t.Helper()
	var pcm []int16
	_, err := audio.DecodeWebM(context.Background(), bytes.NewReader(webmFile), func(f []int16) error {
		pcm = append(pcm, f...)
		return nil
	})
	require.NoError(t, err)
	det, err := transcribetest.NewDetector(audio.SampleRate)
	require.NoError(t, err)
	return det.Detect(pcm)
}

// merged returns the words of several speakers in time order.
func merged(lists ...[]transcribetest.TimedWord) []transcribetest.TimedWord {
	var out []transcribetest.TimedWord
	for _, l := range lists {
		out = append(out, l...)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Start < out[j-1].Start; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
