package recorder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/internal/store"
)

// pkt is one packet as the SFU hands it over, after advance of arrival time.
type pkt struct {
	seq     uint16
	ts      uint32
	pt      uint8
	payload []byte
	advance time.Duration
}

// cleanStream is the fixture as a sender would packetize it.
func cleanStream(fx opusFixture, seq0 uint16, ts0 uint32) []pkt {
	out := make([]pkt, len(fx.packets))
	for i, p := range fx.packets {
		out[i] = pkt{seq: seq0 + uint16(i), ts: ts0 + uint32(i*960), pt: 111, payload: p, advance: 20 * time.Millisecond}
	}
	return out
}

func feed(b *testBundle, w *Writer, pkts []pkt) {
	for _, p := range pkts {
		b.clock.Advance(p.advance)
		w.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: p.pt, SequenceNumber: p.seq,
			Timestamp: p.ts, SSRC: 42}, Payload: p.payload})
	}
}

// without returns pkts minus the given indexes.
func without(pkts []pkt, drop ...int) []pkt {
	skip := map[int]bool{}
	for _, d := range drop {
		skip[d] = true
	}
	var out []pkt
	for i, p := range pkts {
		if !skip[i] {
			out = append(out, p)
		}
	}
	return out
}

// wantTimes is where the kept packets must land: their RTP time relative
// to the first kept one, plus shift for packets at or after shiftFrom.
func wantTimes(kept []pkt) []int64 {
	out := make([]int64, len(kept))
	for i, p := range kept {
		out[i] = int64(p.ts-kept[0].ts) / 48
	}
	return out
}

func TestWriterImpairments(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	n := len(fx.packets)

	type tc struct {
		name  string
		seq0  uint16
		ts0   uint32
		build func(clean []pkt) (fed, kept []pkt)
		stats Stats // only the drop counters are compared
		// wantMS overrides the expected block times.
		wantMS func(clean, kept []pkt) []int64
	}
	cases := []tc{
		{name: "in order", seq0: 1000, ts0: 5000, build: func(c []pkt) ([]pkt, []pkt) { return c, c }},
		{name: "loss keeps its place", seq0: 7, ts0: 0, build: func(c []pkt) ([]pkt, []pkt) {
			k := without(c, rangeInts(30, 80)...)
			return k, k
		}},
		{name: "dtx silence keeps its length", seq0: 300, ts0: 99, build: func(c []pkt) ([]pkt, []pkt) {
			k := without(c, rangeInts(40, 90)...)
			for i := 40; i < len(k); i++ {
				k[i].seq -= 50 // the sender sent nothing: no sequence numbers used
			}
			return k, k
		}},
		{name: "reordered within the window", seq0: 65000, ts0: 1, build: func(c []pkt) ([]pkt, []pkt) {
			fed := append([]pkt(nil), c...)
			for i := 3; i+1 < len(fed); i += 10 {
				fed[i], fed[i+1] = fed[i+1], fed[i]
			}
			moved := fed[50]
			fed = append(fed[:50], fed[51:]...)
			fed = append(fed[:55], append([]pkt{moved}, fed[55:]...)...)
			return fed, c
		}},
		{name: "duplicates dropped", seq0: 10, ts0: 10, stats: Stats{Duplicate: int64((n + 6) / 7 * 2)},
			build: func(c []pkt) ([]pkt, []pkt) {
				var fed []pkt
				for i, p := range c {
					fed = append(fed, p)
					if i%7 == 0 {
						d := p
						d.advance = 0
						fed = append(fed, d, d)
					}
				}
				return fed, c
			}},
		{name: "sequence and timestamp wrap", seq0: 65500, ts0: 1<<32 - 960*50, build: func(c []pkt) ([]pkt, []pkt) { return c, c }},
		{name: "garbage skipped", seq0: 40000, ts0: 123, stats: Stats{Garbage: int64((n + 9) / 10 * 5)},
			build: func(c []pkt) ([]pkt, []pkt) {
				var fed []pkt
				big := make([]byte, 1600)
				big[0] = c[0].payload[0]
				for i, p := range c {
					if i%10 == 0 {
						for _, g := range [][]byte{{}, {0x03}, {0x03, 0x00}, big} {
							fed = append(fed, pkt{seq: uint16(i * 7919), ts: uint32(i * 104729), pt: 111, payload: g})
						}
					}
					fed = append(fed, p)
					if i%10 == 0 { // another payload type, with a valid Opus payload
						fed = append(fed, pkt{seq: p.seq + 1, ts: p.ts + 960, pt: 96, payload: p.payload})
					}
				}
				return fed, c
			}},
		{name: "late beyond the window dropped", seq0: 2, ts0: 2, stats: Stats{Late: 1},
			build: func(c []pkt) ([]pkt, []pkt) {
				fed := append([]pkt(nil), c[:50]...)
				fed = append(fed, c[51:71]...)
				fed = append(fed, c[50])
				fed = append(fed, c[71:]...)
				return fed, without(c, 50)
			}},
		{name: "one wild timestamp does not open a gap", seq0: 9, ts0: 9, stats: Stats{BadTimestamp: 2},
			build: func(c []pkt) ([]pkt, []pkt) {
				fed := append([]pkt(nil), c...)
				fed[60].ts += 2 * 3600 * 48000
				fed[90].ts -= 3600 * 48000
				return fed, without(c, 60, 90)
			}},
		{name: "sender restart continues on the wall clock", seq0: 500, ts0: 77, stats: Stats{BadTimestamp: resyncAfter - 1, Resyncs: 1},
			build: func(c []pkt) ([]pkt, []pkt) {
				fed := append([]pkt(nil), c...)
				for i := 100; i < len(fed); i++ {
					fed[i].ts += 123456789
					fed[i].seq += 20000
				}
				return fed, without(c, rangeInts(100, 100+resyncAfter-1)...)
			},
			wantMS: func(c, kept []pkt) []int64 { return wantTimes(without(c, rangeInts(100, 100+resyncAfter-1)...)) },
		},
		{name: "ten minutes of silence on the wall clock", seq0: 1, ts0: 1, build: func(c []pkt) ([]pkt, []pkt) {
			fed := append([]pkt(nil), c...)
			fed[61].advance += 10 * time.Minute
			for i := 61; i < len(fed); i++ {
				fed[i].ts += 10 * 60 * 48000
			}
			return fed, fed
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			clean := cleanStream(fx, c.seq0, c.ts0)
			fed, kept := c.build(clean)
			want := wantTimes(kept)
			if c.wantMS != nil {
				want = c.wantMS(clean, kept)
			}
			w := b.open(t)
			feed(b, w, fed)
			require.NoError(t, w.Close(context.Background()))

			st := w.Stats()
			require.Equal(t, c.stats.Late, st.Late, "late")
			require.Equal(t, c.stats.Duplicate, st.Duplicate, "duplicate")
			require.Equal(t, c.stats.Garbage, st.Garbage, "garbage")
			require.Equal(t, c.stats.BadTimestamp, st.BadTimestamp, "bad timestamp")
			require.Equal(t, c.stats.Resyncs, st.Resyncs, "resyncs")
			require.Zero(t, st.Overflow)

			row := b.catalog.row(w.ID())
			require.Equal(t, store.TrackStored, row.State, row.Failure)
			durMS := want[len(want)-1] + 20
			require.Equal(t, durMS, row.DurationMS)
			require.Equal(t, int64(1500), row.StartMS)
			require.Equal(t, layout.Track("mtg_1", w.ID()), row.BlobKey)
			require.False(t, b.rec.spoolExists("mtg_1", w.ID()), "spool deleted after FinishTrack")

			data := readBlob(t, b, row.BlobKey)
			sum := sha256.Sum256(data)
			require.Equal(t, hex.EncodeToString(sum[:]), row.SHA256)
			require.Equal(t, int64(len(data)), row.Size)

			p := parseWebM(t, data)
			require.Equal(t, want, p.blockTimes())
			require.Equal(t, float64(durMS), p.Segment.Info.Duration)
			probeMS, probePackets := ffprobe(t, data)
			require.Equal(t, len(want), probePackets)
			require.InDelta(t, durMS, probeMS, 10, "ffprobe duration")
		})
	}
}

func rangeInts(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func TestWriterNoAudio(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := b.open(t)
	feed(b, w, []pkt{{seq: 1, ts: 1, pt: 111, payload: nil}})
	err := w.Close(context.Background())
	require.ErrorIs(t, err, ErrNoAudio)
	row := b.catalog.row(w.ID())
	require.Equal(t, store.TrackFailed, row.State)
	require.NotEmpty(t, row.Failure)
	require.False(t, b.rec.spoolExists("mtg_1", w.ID()))
	require.ErrorIs(t, w.Close(context.Background()), ErrNoAudio, "Close again returns the first result")
}

func TestWriterUploadRetried(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	b := setup(t)
	b.blobs.failures.Store(3)
	w := b.open(t)
	feed(b, w, cleanStream(fx, 1, 1))
	require.NoError(t, w.Close(context.Background()))
	require.Equal(t, int64(4), b.blobs.puts.Load())
	require.Equal(t, store.TrackStored, b.catalog.row(w.ID()).State)
}

func TestWriterUploadFailsThenRecovers(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	b := setup(t)
	b.blobs.failures.Store(-1)
	w := b.open(t)
	feed(b, w, cleanStream(fx, 1, 1))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := w.Close(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	row := b.catalog.row(w.ID())
	require.Equal(t, store.TrackFailed, row.State)
	require.Contains(t, row.Failure, "injected put failure")
	require.True(t, b.rec.spoolExists("mtg_1", w.ID()), "the spool stays for Recover")

	// Storage is back: a restarted process finishes the complete file as stored.
	b.blobs.failures.Store(0)
	b2 := setupWith(t, b.blobs, b.cfg.SpoolDir)
	b2.catalog.rows[w.ID()] = row
	require.NoError(t, b2.rec.Recover(context.Background()))
	row = b2.catalog.row(w.ID())
	require.Equal(t, store.TrackStored, row.State)
	require.Equal(t, int64(len(fx.packets)*20), row.DurationMS)
	require.False(t, b.rec.spoolExists("mtg_1", w.ID()))
	p := parseWebM(t, readBlob(t, b2, row.BlobKey))
	require.Len(t, p.blockTimes(), len(fx.packets))
}

func TestOpenRejectsBadTracks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tr := range []Track{
		{MeetingID: "", Identity: "a"},
		{MeetingID: "../etc", Identity: "a"},
		{MeetingID: "m/1", Identity: "a"},
		{MeetingID: "m1", Identity: ""},
		{MeetingID: "m1", Identity: "a", Channels: 6},
	} {
		_, err := b.rec.Open(context.Background(), tr)
		require.ErrorIs(t, err, ErrInvalidTrack, "%+v", tr)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	_, err := New(Config{}, nil, nil, nil)
	require.ErrorContains(t, err, "SpoolDir is required")
	_, err = New(Config{SpoolDir: t.TempDir(), FlushInterval: -1}, nil, nil, nil)
	require.ErrorContains(t, err, "FlushInterval must not be negative")
	c := Config{SpoolDir: "x"}.WithDefaults()
	require.Equal(t, DefaultFlushInterval, c.FlushInterval)
	require.Equal(t, DefaultTimestampSlack, c.TimestampSlack)
	require.NotNil(t, c.Now)
}

func TestWriterStartFromFirstArrival(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	b := setup(t)
	w, err := b.rec.Open(context.Background(), Track{MeetingID: "mtg_1", Identity: "carol",
		ClockZero: b.clock.Now().Add(-time.Second)})
	require.NoError(t, err)
	clean := cleanStream(fx, 1, 1)
	clean[0], clean[1] = clean[1], clean[0] // the second packet arrives first
	feed(b, w, clean)
	require.NoError(t, w.Close(context.Background()))
	row := b.catalog.row(w.ID())
	require.Equal(t, store.TrackStored, row.State)
	// Packet 1 arrived 20 ms after the zero + 1 s; packet 0 belongs 20 ms before it.
	require.Equal(t, int64(1000), row.StartMS)
	require.Equal(t, int64(len(fx.packets)*20), row.DurationMS)
}

// TestFreeIsWhatTheQueueCanStillTake: Free (sfu.BoundedTap) counts down as
// in-order packets queue, back up as the spool goroutine drains them, and
// is zero exactly when the next packet would be dropped as overflow.
func TestFreeIsWhatTheQueueCanStillTake(t *testing.T) {
	t.Parallel()
	bb := setup(t)
	dir := t.TempDir()
	f, err := createSpool(filepath.Join(dir, "t.webm"), os.O_EXCL, spoolKey{})
	require.NoError(t, err)
	w := newWriter(bb.rec, sidecar{TrackID: "t", MeetingID: "m", Identity: "a", Channels: 2},
		48000, 111, f.Name(), filepath.Join(dir, "t.json"), newSpoolFile(f))
	w.bw, err = newWebMWriter(w.file, 2)
	require.NoError(t, err)
	p := &rtp.Packet{Header: rtp.Header{PayloadType: 111}, Payload: benchPayload()}
	var i int
	write := func(n int) {
		for range n {
			p.SequenceNumber, p.Timestamp = uint16(i), uint32(i*960)
			i++
			bb.clock.Advance(20 * time.Millisecond)
			w.WriteRTP(p)
		}
	}
	require.Equal(t, queueSize, w.Free())
	write(10)
	require.Equal(t, queueSize-10, w.Free())
	w.drain()
	require.Equal(t, queueSize, w.Free())
	write(queueSize)
	require.Zero(t, w.Free())
	require.Zero(t, w.Stats().Overflow)
	write(1)
	require.EqualValues(t, 1, w.Stats().Overflow, "no room: the next packet is dropped")
	w.drain()
	require.NoError(t, w.finalize())
}
