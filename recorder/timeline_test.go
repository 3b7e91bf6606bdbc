package recorder

import (
	"bytes"
	"context"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/audio"
	"github.com/greffier/greffier/internal/store"
)

// publisher is a simulated sender: its sound card's clock (RTP) runs ppm
// fast or slow against true time, its wall clock (the reports' NTP) is
// wallOffset off ours, its packets take delay to arrive (plus up to 10 ms
// of jitter) and its first one firstDelay.
type publisher struct {
	identity   string
	start      time.Time // capture of the first packet
	ppm        float64
	wallOffset time.Duration
	delay      time.Duration
	firstDelay time.Duration
	rtp0       uint32

	w       *Writer
	payload func(i int) []byte
	seq     uint16
	sent    int
	firstR  int64 // RTP ticks since start of the first packet
	burstAt int   // index of the first packet of the tone burst
	burstR  int64 // and its RTP ticks since start
}

// ticks is the sender's RTP time at true time at, since its start.
func (p *publisher) ticks(at time.Time) int64 {
	return int64(math.Round(float64(at.Sub(p.start).Nanoseconds()) * 48000 * (1 + p.ppm*1e-6) / 1e9))
}

// captured is the true time at which RTP time r (since start) was captured.
func (p *publisher) captured(r int64) time.Time {
	return p.start.Add(time.Duration(float64(r) * 1e9 / (48000 * (1 + p.ppm*1e-6))))
}

// event is a packet arriving or a sender report, at the SFU's time at.
type event struct {
	at     time.Time
	p      *publisher
	packet *rtp.Packet // else a report
	ntp    time.Time
	rtp    uint32
}

// talk queues n contiguous packets whose packet number before (counted
// from 0) is captured at instant at: DTX silence before them keeps its
// length in RTP time, as a sender's does.
func (p *publisher) talk(events []event, at time.Time, before, n int) []event {
	r := p.ticks(at) - int64(before)*960
	for k := range n {
		rk := r + int64(k)*960
		delay := p.delay + time.Duration((p.sent*7919)%10)*time.Millisecond
		if p.sent == 0 {
			delay, p.firstR = p.firstDelay, rk
		}
		if p.sent == p.burstAt {
			p.burstR = rk
		}
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: p.seq,
			Timestamp: p.rtp0 + uint32(rk)}, Payload: p.payload(p.sent)}
		events = append(events, event{at: p.captured(rk).Add(delay), p: p, packet: pkt})
		p.seq++
		p.sent++
	}
	return events
}

// reports queues a sender report every 5 s of true time from..to.
func (p *publisher) reports(events []event, from, to time.Time) []event {
	for at := from; at.Before(to); at = at.Add(5 * time.Second) {
		events = append(events, event{at: at.Add(p.delay), p: p, ntp: at.Add(p.wallOffset), rtp: p.rtp0 + uint32(p.ticks(at))})
	}
	return events
}

// blockLog is a Listener that keeps every block time it hears.
type blockLog struct {
	mu     sync.Mutex
	track  store.Track
	times  []int64
	closed bool
}

func (l *blockLog) Block(ms int64, _ []byte, _ int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.times = append(l.times, ms)
}

func (l *blockLog) Close(bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
}

// TestTracksAlignOverThreeHours: two publishers in a 3-hour meeting, one
// sound card 100 ppm fast, the other 80 ppm slow, their wall clocks a few
// ms off ours, reports every 5 s. Each speaks a second a minute; the slow
// one then speaks without pause for the last 2 minutes. At 2:59:00.5 both
// start a tone burst at the same instant: on the meeting clock (StartMS +
// block time) the bursts land within 20 ms of each other, where raw RTP
// ticks would put them 1.9 s apart. The Listener hears exactly the
// written times, block steps in continuous speech stay within 1 ms of
// 20 ms, and the file passes ffprobe.
func TestTracksAlignOverThreeHours(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	var mu sync.Mutex
	logs := map[string]*blockLog{}
	b := setup(t, func(c *Config) {
		c.CheckpointInterval = -1
		c.Listen = func(tr store.Track, _ time.Duration) Listener {
			mu.Lock()
			defer mu.Unlock()
			l := &blockLog{track: tr}
			logs[tr.ID] = l
			return l
		}
	})
	zero := b.clock.Now()
	end := zero.Add(3 * time.Hour)
	burst := zero.Add(2*time.Hour + 59*time.Minute + 500*time.Millisecond)
	tone := func(i int) []byte { return fx.packets[i%len(fx.packets)] }
	// The fast one's first packet is held up: the next four overtake it.
	fast := &publisher{identity: "fast", start: zero.Add(time.Second), ppm: 100, wallOffset: 3 * time.Millisecond,
		delay: 60 * time.Millisecond, firstDelay: 150 * time.Millisecond, rtp0: 4_000_000_000, payload: tone, burstAt: -1}
	slow := &publisher{identity: "slow", start: zero.Add(3500 * time.Millisecond), ppm: -80, wallOffset: -2 * time.Millisecond,
		delay: 25 * time.Millisecond, firstDelay: 40 * time.Millisecond, rtp0: 12345, payload: tone, burstAt: -1}

	var events []event
	for m := range 179 {
		events = fast.talk(events, fast.start.Add(time.Duration(m)*time.Minute), 0, 50)
	}
	fast.burstAt = fast.sent
	events = fast.talk(events, burst, 0, len(fx.packets))
	for m := range 176 {
		events = slow.talk(events, slow.start.Add(time.Duration(m)*time.Minute), 0, 50)
	}
	const continuous = 2 * 60 * 50 // 2 minutes of packets up to the burst
	slow.burstAt = slow.sent + continuous
	events = slow.talk(events, burst, continuous, continuous+len(fx.packets))
	for _, p := range []*publisher{fast, slow} {
		events = p.reports(events, p.start.Add(time.Second), end)
	}
	slices.SortStableFunc(events, func(a, b event) int { return a.at.Compare(b.at) })

	for _, p := range []*publisher{fast, slow} {
		first := p.captured(p.firstR).Add(p.firstDelay)
		w, err := b.rec.Open(context.Background(), Track{MeetingID: "mtg_1", Identity: p.identity, SSRC: uint32(p.ppm + 1000),
			ClockZero: zero, FirstPacketAt: first})
		require.NoError(t, err)
		p.w = w
	}
	for i, e := range events {
		b.clock.ns.Store(e.at.UnixNano())
		if e.packet != nil {
			e.p.w.WriteRTP(e.packet)
		} else {
			e.p.w.WriteSenderReport(e.ntp, e.rtp)
		}
		if i%64 == 63 { // a real meeting takes 3 hours: the spool keeps up
			waitDrained(fast.w)
			waitDrained(slow.w)
		}
	}

	landed := map[string]int64{}
	for _, p := range []*publisher{fast, slow} {
		require.NoError(t, p.w.Close(context.Background()))
		st := p.w.Stats()
		require.Equal(t, int64(p.sent), st.Written, "%s: %+v", p.identity, st)
		row := b.catalog.row(p.w.ID())
		require.Equal(t, store.TrackStored, row.State, row.Failure)
		tm := p.w.Timing()
		require.True(t, tm.FromSenderReports, p.identity)
		require.InDelta(t, p.ppm, tm.DriftPPM, 0.5, p.identity)
		data := readBlob(t, b, row.BlobKey)
		times := parseWebM(t, data).blockTimes()
		require.Len(t, times, p.sent)

		mu.Lock()
		l := logs[p.w.ID()]
		mu.Unlock()
		require.NotNil(t, l, p.identity)
		require.True(t, l.closed)
		require.Equal(t, row.StartMS, l.track.StartMS, "the Listener was told the final start")
		require.Equal(t, times, l.times, "the Listener heard exactly the written times")
		require.Equal(t, p.captured(p.firstR).Add(p.firstDelay).Sub(zero).Milliseconds(), row.StartMS)

		landed[p.identity] = row.StartMS + times[p.burstAt]
		// Where raw RTP ticks at the nominal rate would have put it.
		raw := row.StartMS + (p.burstR-p.firstR)/48
		require.Greater(t, math.Abs(float64(raw-burst.Sub(zero).Milliseconds())), 500.0,
			"%s: without correction the burst would be far off", p.identity)
		require.InDelta(t, burst.Sub(zero).Milliseconds()+p.wallOffset.Milliseconds(), landed[p.identity], 3,
			"%s: the burst on the sender's wall clock", p.identity)
		_, packets := ffprobe(t, data)
		require.Equal(t, p.sent, packets)
	}
	t.Logf("bursts on the meeting clock: fast %d ms, slow %d ms, true instant %d ms", landed["fast"], landed["slow"], burst.Sub(zero).Milliseconds())
	require.InDelta(t, landed["fast"], landed["slow"], 20, "the two bursts align on the meeting clock")

	// The slow publisher's last stretch is continuous: its blocks follow
	// each other by 20 ms give or take the 1 ms rounding, never a jump.
	times := parseWebM(t, readBlob(t, b, b.catalog.row(slow.w.ID()).BlobKey)).blockTimes()
	stretch := times[slow.sent-continuous-len(fx.packets):]
	for i := 1; i < len(stretch); i++ {
		require.InDelta(t, 20, stretch[i]-stretch[i-1], 1, "block %d of the continuous stretch", i)
	}
}

// TestTimelineSlew drives the placement rule directly: no target means
// nominal RTP time, a target is reached by at most 2 % of the audio in
// continuous speech and at once across a pause, and times stay strictly
// increasing.
func TestTimelineSlew(t *testing.T) {
	t.Parallel()
	type step struct {
		ts     int64 // media ticks
		target int64 // µs; hasTarget
		has    bool
		want   int64 // ms
	}
	for _, c := range []struct {
		name  string
		steps []step
	}{
		{"nominal without reports", []step{{0, 0, false, 0}, {960, 0, false, 20}, {1920, 0, false, 40}, {48000, 0, false, 1000}}},
		{"earlier target, continuous: 0.4 ms a block", []step{
			{0, 0, false, 0}, {960, -100_000, true, 19}, {1920, -100_000, true, 39}, {2880, -100_000, true, 58}}},
		{"later target, continuous", []step{
			{0, 0, false, 0}, {960, 100_000, true, 20}, {1920, 100_000, true, 40}, {2880, 100_000, true, 61}}},
		{"a pause absorbs the correction", []step{
			{0, 0, false, 0}, {960, 0, false, 20}, {960 * 20, 300_000, true, 300}, {960 * 21, 320_000, true, 320}}},
		{"a pause shrinks at most to nothing", []step{
			{0, 0, false, 0}, {960 * 5, 0, true, 19}, {960 * 10, 0, true, 39}}},
		{"target reached exactly is followed", []step{
			{0, 0, false, 0}, {960, 20_100, true, 20}, {1920, 40_100, true, 40}, {2880, 60_100, true, 60}, {3840, 80_900, true, 80}}},
		{"two blocks within a millisecond stay in order", []step{
			{0, 0, false, 0}, {10, 0, false, 1}, {20, 0, false, 2}, {960, 0, false, 20}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			tl := timeline{rate: 48000}
			var got []int64
			var want []int64
			for _, s := range c.steps {
				got = append(got, tl.place(s.ts, 960, s.target, s.has))
				want = append(want, s.want)
			}
			require.Equal(t, want, got)
		})
	}
}

// TestTimelineConverges: a continuous stream whose reports say it is
// 150 ms early and 100 ppm fast. Every step stays within 1 ms of 20 ms,
// the offset is gone within 8 s and the block times then track the
// target to a millisecond.
func TestTimelineConverges(t *testing.T) {
	t.Parallel()
	tl := timeline{rate: 48000}
	target := func(ts int64) int64 { return int64(float64(ts)*1e6/48000/(1+100e-6)) - 150_000 }
	last := tl.place(0, 960, 0, false)
	for k := int64(1); k < 30*50; k++ {
		ms := tl.place(k*960, 960, target(k*960), true)
		require.InDelta(t, 20, ms-last, 1, "block %d", k)
		if k >= 8*50 {
			require.InDelta(t, target(k*960)/1000, ms, 1, "block %d", k)
		}
		last = ms
	}
	require.InDelta(t, -153, tl.correctionMS(), 1, "150 ms early, and 3 ms of drift in 30 s")
	require.Equal(t, last+20, tl.endMS())
}

// TestTimelineAllocatesNothing: placement runs per packet in the spool
// goroutine. Not parallel: AllocsPerRun counts every goroutine.
func TestTimelineAllocatesNothing(t *testing.T) {
	b := setup(t, func(c *Config) { c.CheckpointInterval = -1; c.FlushInterval = time.Hour })
	w := b.open(t)
	w.WriteRTP(&rtp.Packet{Header: rtp.Header{PayloadType: 111, SequenceNumber: 1, Timestamp: 1}, Payload: benchPayload()})
	waitDrained(w)
	w.WriteSenderReport(b.clock.Now(), 1)
	w.WriteSenderReport(b.clock.Now().Add(time.Second), 48001)
	w.mu.Lock()
	ts := w.tl.lastTS
	allocs := testing.AllocsPerRun(1000, func() {
		ts += 960
		target, ok := w.targetLocked(ts)
		w.tl.place(ts, 960, target, ok)
	})
	w.mu.Unlock()
	require.Zero(t, allocs)
	require.NoError(t, w.Close(context.Background()))
}

// BenchmarkTimeline is the per-block cost of placing a block by the
// sender-report fit.
func BenchmarkTimeline(b *testing.B) {
	var sr srClock
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for i := range int64(100) {
		sr.add(i*240_024, base+i*int64(5*time.Second))
	}
	tl := timeline{rate: 48000}
	b.ReportAllocs()
	var ts int64
	for b.Loop() {
		ts += 960
		tl.place(ts, 960, (sr.wall(ts, 48000)-base)/1000, true)
	}
}

// pcmLog is a Listener that decodes what it hears as the live path does.
type pcmLog struct {
	dec *audio.PacketDecoder
	pcm []int16
	err error
}

func newPCMLog(t *testing.T, codecDelay time.Duration) *pcmLog {
	l := &pcmLog{}
	dec, err := audio.NewPacketDecoder(codecDelay, func(frame []int16) error {
		l.pcm = append(l.pcm, frame...)
		return nil
	})
	require.NoError(t, err)
	l.dec = dec
	return l
}

func (l *pcmLog) Block(ms int64, opus []byte, _ int) {
	if err := l.dec.Decode(time.Duration(ms)*time.Millisecond, opus); err != nil && l.err == nil {
		l.err = err
	}
}

func (l *pcmLog) Close(bool) {
	if err := l.dec.Flush(); err != nil && l.err == nil {
		l.err = err
	}
}

// TestCorrectedTrackDecodes: 20 s of continuous speech whose reports move
// it (the first packet arrived 120 ms after its capture, or the sender's
// wall clock runs 120 ms ahead of ours) and take out 100 ppm of drift.
// The decoder's 2 ms tolerance absorbs the slewed block times: decoding
// the file gives audio as long as the track, with no silence inserted
// when blocks move earlier, and exactly the PCM the live path decoded
// from the blocks it heard.
func TestCorrectedTrackDecodes(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	for _, c := range []struct {
		name      string
		shift     time.Duration // the reports' wall time of the first block minus its arrival
		wantShift int64         // ms the last block moved
		noGaps    bool
	}{
		{"blocks move earlier", -120 * time.Millisecond, -122, true},
		{"blocks move later", 120 * time.Millisecond, 118, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var live *pcmLog
			b := setup(t, func(cfg *Config) {
				cfg.CheckpointInterval = -1
				cfg.Listen = func(_ store.Track, d time.Duration) Listener {
					live = newPCMLog(t, d)
					return live
				}
			})
			w := b.open(t)
			arrival := b.clock.Now()
			const n = 1000
			for k := range n {
				r := int64(k) * 960
				if k%250 == 1 { // every 5 s
					wall := arrival.Add(c.shift).Add(time.Duration(float64(r) * 1e9 / (48000 * (1 + 100e-6))))
					w.WriteSenderReport(wall, uint32(r))
				}
				w.WriteRTP(&rtp.Packet{Header: rtp.Header{PayloadType: 111, SequenceNumber: uint16(k), Timestamp: uint32(r)},
					Payload: fx.packets[k%len(fx.packets)]})
				b.clock.Advance(20 * time.Millisecond)
				if k%64 == 63 {
					waitDrained(w)
				}
			}
			require.NoError(t, w.Close(context.Background()))
			tm := w.Timing()
			require.True(t, tm.FromSenderReports)
			require.InDelta(t, c.wantShift, tm.CorrectionMS, 2)

			row := b.catalog.row(w.ID())
			require.Equal(t, store.TrackStored, row.State, row.Failure)
			var pcm []int16
			st, err := audio.DecodeWebM(context.Background(), bytes.NewReader(readBlob(t, b, row.BlobKey)), func(f []int16) error {
				pcm = append(pcm, f...)
				return nil
			})
			require.NoError(t, err)
			require.Equal(t, n, st.Packets)
			require.Zero(t, st.BadPackets)
			if c.noGaps {
				require.Zero(t, st.Gaps, "blocks moving earlier are trimmed, never padded")
			}
			require.InDelta(t, row.DurationMS, st.Duration.Milliseconds(), 10, "the audio is as long as the track")
			require.NoError(t, live.err)
			require.Equal(t, len(pcm), len(live.pcm))
			require.True(t, slices.Equal(pcm, live.pcm), "the live path decoded the same audio as the file")
		})
	}
}
