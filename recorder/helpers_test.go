package recorder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/at-wat/ebml-go"
	"github.com/at-wat/ebml-go/webm"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/store"
)

// opusFixture is a real Opus stream: 3 s of 440 Hz in 20 ms packets.
type opusFixture struct {
	packets [][]byte
}

var fixture struct {
	once sync.Once
	f    opusFixture
	err  error
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// loadOpus encodes the fixture once per test binary with ffmpeg and
// splits it into packets with pion's oggreader.
func loadOpus(t testing.TB) opusFixture {
	t.Helper()
	fixture.once.Do(func() { fixture.f, fixture.err = encodeOpus() })
	if errors.Is(fixture.err, exec.ErrNotFound) {
		t.Skip("ffmpeg is not installed: it makes the Opus fixture")
	}
	require.NoError(t, fixture.err)
	return fixture.f
}

func encodeOpus() (opusFixture, error) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return opusFixture{}, err
	}
	dir, err := os.MkdirTemp("", "recorder-fixture")
	if err != nil {
		return opusFixture{}, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "x.ogg")
	// page_duration 20 ms puts one packet on each Ogg page, which is what
	// oggreader returns.
	out, err := exec.Command(ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=f=440:d=3", "-c:a", "libopus",
		"-b:a", "32k", "-frame_duration", "20", "-page_duration", "20000", path).CombinedOutput()
	if err != nil {
		return opusFixture{}, fmt.Errorf("ffmpeg: %w: %s", err, out)
	}
	f, err := os.Open(path)
	if err != nil {
		return opusFixture{}, err
	}
	defer f.Close()
	r, _, err := oggreader.NewWith(f)
	if err != nil {
		return opusFixture{}, err
	}
	var fx opusFixture
	var granule uint64
	for {
		page, h, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return opusFixture{}, err
		}
		if bytes.HasPrefix(page, []byte("OpusTags")) || bytes.HasPrefix(page, []byte("OpusHead")) {
			granule = h.GranulePosition
			continue
		}
		if n := opusSamples(page); n != 960 || h.GranulePosition-granule > 960 {
			return opusFixture{}, fmt.Errorf("page %d is not one 20 ms packet (%d samples, granule +%d)", len(fx.packets), n, h.GranulePosition-granule)
		}
		granule = h.GranulePosition
		fx.packets = append(fx.packets, page)
	}
	if len(fx.packets) < 140 {
		return opusFixture{}, fmt.Errorf("only %d packets", len(fx.packets))
	}
	return fx, nil
}

// fakeClock is the arrival clock; tests move it as packets "arrive".
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC).UnixNano())
	return c
}

// fakeCatalog records rows as the store would, and checks the contract:
// a spool has no bytes when its track is created, final states only at
// finish, no finish without create.
type fakeCatalog struct {
	t        testing.TB
	spoolDir string
	mu       sync.Mutex
	rows     map[string]store.Track
	gaps     map[string][]store.TrackGap // by track, as FinishTrack and RecordGap left them
	finishes int
	// failCreate and failFinish make that many calls fail.
	failCreate, failFinish int
}

func (c *fakeCatalog) RecordGap(_ context.Context, g store.TrackGap) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.rows[g.TrackID]; !ok {
		return fmt.Errorf("record gap of %s: %w", g.TrackID, store.ErrNotFound)
	}
	if g.EndMS < g.StartMS || g.Reason == "" {
		return fmt.Errorf("record gap: bad gap %+v", g)
	}
	for i, old := range c.gaps[g.TrackID] {
		if old.StartMS == g.StartMS {
			c.gaps[g.TrackID][i] = g
			return nil
		}
	}
	if c.gaps == nil {
		c.gaps = map[string][]store.TrackGap{}
	}
	c.gaps[g.TrackID] = append(c.gaps[g.TrackID], g)
	return nil
}

func (c *fakeCatalog) FailTrack(_ context.Context, id, failure string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	row, ok := c.rows[id]
	if !ok {
		return fmt.Errorf("fail track %s: %w", id, store.ErrNotFound)
	}
	row.State, row.Failure = store.TrackFailed, failure
	c.rows[id] = row
	return nil
}

func (c *fakeCatalog) trackGaps(id string) []store.TrackGap {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]store.TrackGap(nil), c.gaps[id]...)
}

func (c *fakeCatalog) CreateTrack(_ context.Context, tr store.Track) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tr.State != store.TrackRecording {
		return fmt.Errorf("create track in state %s", tr.State)
	}
	if c.failCreate > 0 {
		c.failCreate--
		return errors.New("injected create failure")
	}
	if st, err := os.Stat(filepath.Join(c.spoolDir, tr.MeetingID, tr.ID+".webm")); err == nil && st.Size() > 0 {
		if _, ok := c.rows[tr.ID]; !ok {
			return errors.New("create track after bytes were spooled")
		}
	}
	if _, ok := c.rows[tr.ID]; !ok {
		c.rows[tr.ID] = tr
	}
	return nil
}

func (c *fakeCatalog) FinishTrack(_ context.Context, tr store.Track) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch tr.State {
	case store.TrackStored, store.TrackRecovered, store.TrackFailed:
	default:
		return fmt.Errorf("finish track in state %s", tr.State)
	}
	if _, ok := c.rows[tr.ID]; !ok {
		return fmt.Errorf("finish track %s: %w", tr.ID, store.ErrNotFound)
	}
	if c.failFinish > 0 {
		c.failFinish--
		return errors.New("injected finish failure")
	}
	gaps := tr.Gaps
	for i := range gaps {
		gaps[i].TrackID, gaps[i].MeetingID, gaps[i].Identity = tr.ID, tr.MeetingID, tr.Identity
	}
	tr.Gaps = nil
	c.rows[tr.ID] = tr
	if c.gaps == nil {
		c.gaps = map[string][]store.TrackGap{}
	}
	c.gaps[tr.ID] = gaps
	c.finishes++
	return nil
}

func (c *fakeCatalog) row(id string) store.Track {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rows[id]
}

// flakyStore fails the first failures Puts (or all, if failures < 0).
type flakyStore struct {
	blob.Store
	failures atomic.Int64
	puts     atomic.Int64
}

func (s *flakyStore) Put(ctx context.Context, key string, r io.Reader, size int64) (blob.Info, error) {
	s.puts.Add(1)
	if n := s.failures.Load(); n != 0 {
		s.failures.Add(-1)
		return blob.Info{}, errors.New("injected put failure")
	}
	return s.Store.Put(ctx, key, r, size)
}

type testBundle struct {
	rec     *Recorder
	blobs   *flakyStore
	catalog *fakeCatalog
	clock   *fakeClock
	cfg     Config
}

func setup(t *testing.T, tweak ...func(*Config)) *testBundle {
	t.Helper()
	disk, err := blob.NewDisk(t.TempDir())
	require.NoError(t, err)
	return setupWith(t, &flakyStore{Store: disk}, t.TempDir(), tweak...)
}

func setupWith(t *testing.T, blobs *flakyStore, spoolDir string, tweak ...func(*Config)) *testBundle {
	t.Helper()
	clock := newFakeClock()
	cfg := Config{SpoolDir: spoolDir, Now: clock.Now, RetryBackoff: time.Millisecond, MaxRetryBackoff: 5 * time.Millisecond}
	for _, f := range tweak {
		f(&cfg)
	}
	cat := &fakeCatalog{t: t, spoolDir: spoolDir, rows: map[string]store.Track{}, gaps: map[string][]store.TrackGap{}}
	rec, err := New(cfg, blobs, cat, nil)
	require.NoError(t, err)
	t.Cleanup(rec.Close)
	return &testBundle{rec: rec, blobs: blobs, catalog: cat, clock: clock, cfg: cfg}
}

func (b *testBundle) open(t *testing.T) *Writer {
	t.Helper()
	zero := b.clock.Now()
	w, err := b.rec.Open(context.Background(), Track{MeetingID: "mtg_1", Identity: "alice", SSRC: 42,
		ClockZero: zero.Add(-1500 * time.Millisecond), FirstPacketAt: zero})
	require.NoError(t, err)
	return w
}

// parsedWebM is a recorded file read back with ebml-go's own reader.
type parsedWebM struct {
	Header  webm.EBMLHeader `ebml:"EBML"`
	Segment webm.Segment    `ebml:"Segment"`
}

// blockTimes returns every block's absolute time in ms.
func (p *parsedWebM) blockTimes() []int64 {
	var out []int64
	for _, c := range p.Segment.Cluster {
		for _, b := range c.SimpleBlock {
			out = append(out, int64(c.Timecode)+int64(b.Timecode))
		}
	}
	return out
}

func readBlob(t *testing.T, b *testBundle, key string) []byte {
	t.Helper()
	rc, err := b.blobs.Get(context.Background(), key)
	require.NoError(t, err)
	defer rc.Close()
	data, err := io.ReadAll(rc)
	require.NoError(t, err)
	return data
}

func parseWebM(t *testing.T, data []byte) *parsedWebM {
	t.Helper()
	var p parsedWebM
	require.NoError(t, ebml.Unmarshal(bytes.NewReader(data), &p))
	require.Equal(t, "webm", p.Header.DocType)
	require.Len(t, p.Segment.Tracks.TrackEntry, 1)
	te := p.Segment.Tracks.TrackEntry[0]
	require.Equal(t, "A_OPUS", te.CodecID)
	require.Len(t, te.CodecPrivate, 19)
	require.Equal(t, "OpusHead", string(te.CodecPrivate[:8]))
	require.Equal(t, uint64(opusCodecDelay), te.CodecDelay)
	require.Equal(t, uint64(80_000_000), te.SeekPreRoll)
	require.Equal(t, uint64(1_000_000), p.Segment.Info.TimecodeScale)
	require.NotNil(t, p.Segment.Cues, "Cues")
	require.NotEmpty(t, p.Segment.Cues.CuePoint)
	return &p
}

// ffprobe checks that ffprobe reads every packet of the file without a
// single complaint and returns its duration in ms and packet count.
func ffprobe(t *testing.T, data []byte) (durationMS int64, packets int) {
	t.Helper()
	bin, err := exec.LookPath("ffprobe")
	if err != nil {
		t.Skip("ffprobe is not installed; it is the independent check of the WebM files")
	}
	path := filepath.Join(t.TempDir(), "probe.webm")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	cmd := exec.Command(bin, "-v", "error", "-count_packets", "-show_entries",
		"stream=nb_read_packets,codec_name,sample_rate:format=duration", "-of", "json", path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), stderr.String())
	require.Empty(t, stderr.String(), "ffprobe complained")
	var out struct {
		Streams []struct {
			Codec   string `json:"codec_name"`
			Rate    string `json:"sample_rate"`
			Packets string `json:"nb_read_packets"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &out))
	require.Len(t, out.Streams, 1)
	require.Equal(t, "opus", out.Streams[0].Codec)
	require.Equal(t, "48000", out.Streams[0].Rate)
	d, err := strconv.ParseFloat(out.Format.Duration, 64)
	require.NoError(t, err)
	n, err := strconv.Atoi(out.Streams[0].Packets)
	require.NoError(t, err)
	return int64(d*1000 + 0.5), n
}

// spoolExists reports whether a track's spool is still on disk.
func (r *Recorder) spoolExists(meetingID, trackID string) bool {
	p, _ := r.paths(meetingID, trackID)
	_, err := os.Stat(p)
	return err == nil
}
