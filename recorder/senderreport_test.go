package recorder

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/store"
)

// TestSenderReportsPlaceTrack simulates a 3-hour track whose sender's RTP
// clock runs 100 ppm fast: one second of speech a minute (DTX silence in
// between), a sender report at each burst, and a first packet delayed
// 150 ms. The track starts at the first packet's arrival; the reports
// then move its blocks to their capture time on the meeting clock and
// take the drift out. A sender whose wall clock is an hour off is trusted
// for its rate only.
func TestSenderReportsPlaceTrack(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	const ppm = 100
	for _, c := range []struct {
		name      string
		ntpOffset time.Duration
		fromSR    bool
	}{
		{"sender clock in sync", 0, true},
		{"sender clock an hour off", time.Hour, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			zero := b.clock.Now()
			w, err := b.rec.Open(context.Background(), Track{MeetingID: "mtg_1", Identity: "dan", ClockZero: zero})
			require.NoError(t, err)

			start := zero.Add(2 * time.Second) // the first sample's capture
			const rtp0 = 4_000_000_000         // wraps during the track
			rtpAt := func(at time.Time) uint32 {
				ticks := float64(at.Sub(start).Nanoseconds()) * 48000 * (1 + ppm*1e-6) / 1e9
				return uint32(rtp0 + int64(ticks))
			}
			var (
				seq     uint16 = 7
				arrival time.Time
				sent    int
			)
			p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111}}
			for burst := range 180 {
				for k := range 50 {
					capture := start.Add(time.Duration(burst)*time.Minute + time.Duration(k)*20*time.Millisecond)
					delay := 40 * time.Millisecond
					if sent == 0 {
						delay = 150 * time.Millisecond
					}
					if a := capture.Add(delay); a.After(arrival) {
						arrival = a // packets held behind a slow one arrive together
					}
					b.clock.ns.Store(arrival.UnixNano())
					if k == 1 {
						sr := capture.Add(-10 * time.Millisecond)
						w.WriteSenderReport(sr.Add(c.ntpOffset), rtpAt(sr))
					}
					p.SequenceNumber, p.Timestamp, p.Payload = seq, rtpAt(capture), fx.packets[sent%len(fx.packets)]
					w.WriteRTP(p)
					seq++
					sent++
				}
				waitDrained(w) // a real sender takes a minute per burst
			}
			require.NoError(t, w.Close(context.Background()))

			tm := w.Timing()
			require.Equal(t, int64(2150), tm.StartMS, "the first block sits at its arrival, delay included")
			require.Equal(t, 180, tm.SenderReports)
			require.InDelta(t, 3*time.Hour-time.Minute, tm.ReportSpan, float64(2*time.Second))
			require.InDelta(t, ppm, tm.DriftPPM, 0.5)
			require.Equal(t, c.fromSR, tm.FromSenderReports)
			require.InDelta(t, 150*time.Millisecond-c.ntpOffset, tm.SenderSkew, float64(time.Millisecond))

			row := b.catalog.row(w.ID())
			require.Equal(t, store.TrackStored, row.State, row.Failure)
			require.Equal(t, tm.StartMS, row.StartMS)
			st := w.Stats()
			require.Equal(t, int64(sent), st.Written, "%+v", st)
			times := parseWebM(t, readBlob(t, b, row.BlobKey)).blockTimes()
			require.Len(t, times, sent)
			// Where each burst's first block lands on the meeting clock: on
			// the sender's wall clock when it is trusted (2 s, the capture),
			// else at the first block's arrival with the drift taken out.
			// Raw RTP ticks would be 1.07 s late by the last burst.
			origin := int64(2000)
			if !c.fromSR {
				origin = 2150
			}
			for _, burst := range []int{1, 90, 179} {
				want := origin + int64(burst)*60_000
				require.InDelta(t, want, row.StartMS+times[burst*50], 2, "burst %d", burst)
			}
			nominal := float64(179*60_000+980) * (1 + ppm*1e-6) // the last block by RTP ticks
			require.InDelta(t, float64(times[sent-1])-nominal, float64(tm.CorrectionMS), 1.5)
			require.InDelta(t, origin+179*60_000+1000, row.StartMS+row.DurationMS, 2, "the last block's end")
			_, packets := ffprobe(t, readBlob(t, b, row.BlobKey))
			require.Equal(t, sent, packets)
		})
	}
}

func TestSenderReportClockFit(t *testing.T) {
	t.Parallel()
	var c srClock
	require.Equal(t, 1e9/48000, c.slope(48000))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	require.True(t, c.add(1000, base))
	require.Equal(t, base, c.wall(1000, 48000))
	require.Equal(t, base+int64(time.Second), c.wall(49000, 48000), "one report: nominal rate")
	require.False(t, c.add(1000, base+1), "no forward move of the RTP clock")
	require.False(t, c.add(2000, base), "no forward move of the wall clock")
	// 50 ppm slow: 47997.6 ticks a second.
	for i := 1; i <= 600; i++ {
		require.True(t, c.add(1000+int64(float64(i)*47997.6), base+int64(i)*int64(time.Second)))
	}
	require.InDelta(t, -50, c.driftPPM(48000), 0.01)
	require.InDelta(t, base+int64(300*time.Second), c.wall(1000+int64(300*47997.6), 48000), float64(50*time.Microsecond))
	require.Equal(t, 0.0, (&srClock{}).driftPPM(48000))
}

// stallListener blocks the writer goroutine in its first Block until
// released, as a stalled disk would.
type stallListener struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
	heard   atomic.Int64
}

func (l *stallListener) Block(int64, []byte, int) {
	l.once.Do(func() {
		close(l.entered)
		<-l.release
	})
	l.heard.Add(1)
}

func (l *stallListener) Close(bool) {}

// TestOverflow: the writer goroutine stalls; WriteRTP keeps returning at
// once, the queue fills, and the packets that do not fit are counted as
// Overflow, not waited for. Once it resumes, what was queued is written.
func TestOverflow(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	l := &stallListener{entered: make(chan struct{}), release: make(chan struct{})}
	b := setup(t, func(c *Config) { c.Listen = func(store.Track, time.Duration) Listener { return l } })
	w := b.open(t)
	const total = 3 * queueSize
	pkts := make([]pkt, total)
	for i := range pkts {
		pkts[i] = pkt{seq: uint16(i), ts: uint32(i * 960), pt: 111, payload: fx.packets[i%len(fx.packets)], advance: 20 * time.Millisecond}
	}
	feed(b, w, pkts[:20])
	select {
	case <-l.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the writer goroutine never wrote a block")
	}
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		feed(b, w, pkts[20:])
	}()
	select {
	case <-fed:
	case <-time.After(10 * time.Second):
		t.Fatal("WriteRTP blocked behind the stalled writer")
	}
	st := w.Stats()
	require.Equal(t, int64(total)-st.Written-queueSize, st.Overflow, "%+v", st)
	require.GreaterOrEqual(t, st.Overflow, int64(total-queueSize-20))

	close(l.release)
	require.NoError(t, w.Close(context.Background()))
	st = w.Stats()
	require.Equal(t, int64(total), st.Written+st.Overflow, "%+v", st)
	row := b.catalog.row(w.ID())
	require.Equal(t, store.TrackStored, row.State)
	// What was dropped is missing from the recording, and said so.
	gaps := b.catalog.trackGaps(w.ID())
	require.Len(t, gaps, 1, "%+v", gaps)
	require.Equal(t, row.StartMS+row.DurationMS, gaps[0].StartMS, "the drops followed the last packet kept")
	require.Equal(t, st.Overflow*20, gaps[0].EndMS-gaps[0].StartMS)
	require.Contains(t, gaps[0].Reason, "fell behind")
	times := parseWebM(t, readBlob(t, b, row.BlobKey)).blockTimes()
	require.Len(t, times, int(st.Written))
	require.Equal(t, st.Written, l.heard.Load())
	for i, ms := range times {
		require.Equal(t, int64(i)*20, ms, "the queued packets keep their places")
	}
}

// TestOverflowInsideATrackIsStatedWhereItHappened: packets the stalled
// spool dropped are a gap between the packets kept on either side of
// them, said to be the recorder's doing, not the network's.
func TestOverflowInsideATrackIsStatedWhereItHappened(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	l := &stallListener{entered: make(chan struct{}), release: make(chan struct{})}
	b := setup(t, func(c *Config) { c.Listen = func(store.Track, time.Duration) Listener { return l } })
	w := b.open(t)
	const total = 4 * queueSize
	pkts := make([]pkt, total)
	for i := range pkts {
		pkts[i] = pkt{seq: uint16(i), ts: uint32(i * 960), pt: 111, payload: fx.packets[i%len(fx.packets)], advance: 20 * time.Millisecond}
	}
	feed(b, w, pkts[:20])
	<-l.entered
	feed(b, w, pkts[20:3*queueSize]) // the queue fills; the rest is dropped
	dropped := w.Stats().Overflow
	require.Positive(t, dropped)
	close(l.release)
	require.Eventually(t, func() bool { return w.Stats().Written >= int64(3*queueSize)-dropped-windowSize },
		5*time.Second, time.Millisecond, "the queue drains once the spool resumes")
	feed(b, w, pkts[3*queueSize:]) // taken again: they carry the loss
	require.NoError(t, w.Close(context.Background()))

	st := w.Stats()
	require.Equal(t, dropped, st.Overflow, "nothing dropped after the spool resumed")
	gaps := b.catalog.trackGaps(w.ID())
	require.Len(t, gaps, 1, "%+v", gaps)
	require.Contains(t, gaps[0].Reason, "fell behind")
	require.Equal(t, dropped*20, gaps[0].EndMS-gaps[0].StartMS)
	row := b.catalog.row(w.ID())
	require.Less(t, gaps[0].EndMS, row.StartMS+row.DurationMS, "the gap is inside the track, not at its end")
}

// The SFU finds this method by asserting its own SenderReportTap; the
// recorder cannot import sfu, so the shape is pinned here.
var _ interface {
	WriteSenderReport(ntp time.Time, rtpTime uint32)
} = (*Writer)(nil)

// TestSenderReportAllocatesNothing: reports arrive on the SFU's read loop.
// Not parallel: AllocsPerRun counts every goroutine's allocations.
func TestSenderReportAllocatesNothing(t *testing.T) {
	b := setup(t, func(c *Config) { c.CheckpointInterval = -1; c.FlushInterval = time.Hour })
	w := b.open(t)
	w.WriteRTP(&rtp.Packet{Header: rtp.Header{PayloadType: 111, SequenceNumber: 1, Timestamp: 1}, Payload: benchPayload()})
	ntp := b.clock.Now()
	var ts uint32
	allocs := testing.AllocsPerRun(1000, func() {
		ntp = ntp.Add(time.Second)
		ts += 48000
		w.WriteSenderReport(ntp, ts)
	})
	require.Zero(t, allocs)
	require.Equal(t, 1001, w.Timing().SenderReports)
	require.NoError(t, w.Close(context.Background()))
}
