package recorder

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/store"
)

// lossyStream is the fixture as a sender would packetize it over a bad
// network: 400 ms of DTX silence (packets 10-29 never sent, so no
// sequence numbers used), one isolated lost packet (40), a 160 ms loss
// burst the decoder conceals (50-57) and, unless burst is nil, burst
// applied to the rest (from packet 60 on).
func lossyStream(fx opusFixture, burst func(rest []pkt) []pkt) []pkt {
	c := cleanStream(fx, 65500, 1<<32-960*30) // both counters wrap inside
	c = without(c, rangeInts(10, 30)...)
	for i := 10; i < len(c); i++ {
		c[i].seq -= 20
	}
	// c[i] is now fixture packet i+20 for i >= 10.
	out := append([]pkt(nil), c[:40-20]...)
	out = append(out, c[41-20:50-20]...)
	out = append(out, c[58-20:60-20]...)
	rest := c[60-20:]
	if burst != nil {
		rest = burst(append([]pkt(nil), rest...))
	}
	return append(out, rest...)
}

// TestWriterStatesLossBeyondConcealment: audio lost in the network for
// longer than MaxConcealedLoss is stated as one gap of the track, on the
// meeting clock, at once and in the final row; DTX silence, an isolated
// lost packet and a short burst are not. A burst that arrives late but
// within the reorder window is put back in place (no loss); one that
// arrives after its place was written is dropped and its gap stands.
func TestWriterStatesLossBeyondConcealment(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	const startMS = 1500 // the bundle's track start on the meeting clock
	cases := []struct {
		name    string
		conceal time.Duration // MaxConcealedLoss; 0 for the default
		burst   func(rest []pkt) []pkt
		late    int64
		lost    int64    // packets the stats count as lost
		gap     [2]int64 // on the track clock; zero for none
		reason  string
	}{
		{name: "burst of 300 ms", lost: 24, gap: [2]int64{1400, 1700}, reason: "(300 ms",
			burst: func(r []pkt) []pkt { return without(r, rangeInts(10, 25)...) }}, // packets 70-84
		{name: "burst of 200 ms is concealed", lost: 19,
			burst: func(r []pkt) []pkt { return without(r, rangeInts(10, 20)...) }},
		// A stretch longer than the window cannot come back in time, so
		// this one is short, with a threshold to match: the 160 ms burst
		// is then a gap, the reordered 80 ms are not.
		{name: "burst reordered within the window", conceal: 40 * time.Millisecond, lost: 9,
			gap: [2]int64{1000, 1160}, reason: "(160 ms",
			burst: func(r []pkt) []pkt { // 70-73 arrive after 74-76
				return append(append(append(r[:10:10], r[14:17]...), r[10:14]...), r[17:]...)
			}},
		{name: "burst arriving after its place was written", lost: 9 + 12, late: 12, gap: [2]int64{1400, 1640}, reason: "(240 ms",
			burst: func(r []pkt) []pkt { // 70-81 arrive after 82-101
				out := append(r[:10:10], r[22:42]...)
				out = append(out, r[10:22]...)
				return append(out, r[42:]...)
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(cfg *Config) { cfg.MaxConcealedLoss = c.conceal })
			w := b.open(t)
			feed(b, w, lossyStream(fx, c.burst))
			var want []store.TrackGap
			if c.gap != [2]int64{} {
				want = append(want, store.TrackGap{TrackID: w.ID(), MeetingID: "mtg_1", Identity: "alice",
					StartMS: startMS + c.gap[0], EndMS: startMS + c.gap[1]})
				// Stated while the track still records.
				require.Eventually(t, func() bool { return len(b.catalog.trackGaps(w.ID())) == 1 },
					5*time.Second, time.Millisecond)
			}
			require.NoError(t, w.Close(context.Background()))
			st := w.Stats()
			require.Equal(t, c.lost, st.Lost, "lost")
			require.Equal(t, c.late, st.Late, "late")
			require.Zero(t, st.BadTimestamp+st.Duplicate+st.Overflow+st.Resyncs)
			require.Equal(t, store.TrackStored, b.catalog.row(w.ID()).State)

			got := b.catalog.trackGaps(w.ID())
			require.Len(t, got, len(want), "%+v", got)
			for i := range got {
				require.Contains(t, got[i].Reason, "lost in the network")
				require.Contains(t, got[i].Reason, c.reason)
				got[i].Reason = ""
			}
			require.Equal(t, want, got)
		})
	}
}

// TestRecoverKeepsLossGaps: a track cut by a crash still states the loss
// its process saw, from the sidecar.
func TestRecoverKeepsLossGaps(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	first := setup(t, func(c *Config) { c.FlushInterval = 5 * time.Millisecond })
	w := first.open(t)
	feed(first, w, lossyStream(fx, func(r []pkt) []pkt { return without(r, rangeInts(10, 25)...) }))
	spoolPath, sidePath := first.rec.paths("mtg_1", w.ID())
	require.Eventually(t, func() bool {
		sc, err := first.rec.readSidecar(context.Background(), sidePath)
		require.NoError(t, err)
		data, err := os.ReadFile(spoolPath)
		require.NoError(t, err)
		return len(sc.Gaps) == 1 && len(countBlocks(t, data)) > 60
	}, 5*time.Second, time.Millisecond)
	spool, err := os.ReadFile(spoolPath)
	require.NoError(t, err)
	side, err := os.ReadFile(sidePath)
	require.NoError(t, err)
	require.NoError(t, w.Close(context.Background()))

	dir := t.TempDir()
	plant(t, dir, w.ID(), spool, side)
	b := setupWith(t, newDisk(t), dir)
	seedRow(b, w.ID())
	require.NoError(t, b.rec.Recover(context.Background()))
	require.Equal(t, store.TrackRecovered, b.catalog.row(w.ID()).State)
	gaps := b.catalog.trackGaps(w.ID())
	require.Len(t, gaps, 1)
	require.Equal(t, [2]int64{1500 + 1400, 1500 + 1700}, [2]int64{gaps[0].StartMS, gaps[0].EndMS})
	require.Contains(t, gaps[0].Reason, "300 ms")
}
