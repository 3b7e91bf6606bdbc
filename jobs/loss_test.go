package jobs

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/audio"
	"github.com/greffier/greffier/internal/faulttest"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/minutes"
	"github.com/greffier/greffier/recorder"
)

// TestFaultPacketLossReachesTheMinutes: a speaker's packets are lost in
// the network in two bursts of a few hundred ms while a real recorder
// records her into this pipeline (one isolated lost packet besides, which
// the decoder conceals). The minutes state each burst as missing, with
// its interval, and the meeting ends incomplete rather than ready.
func TestFaultPacketLossReachesTheMinutes(t *testing.T) {
	t.Parallel()
	b := setup(t, store.SQLite)
	ctx := context.Background()
	m, err := b.store.CreateMeeting(ctx, "", "")
	require.NoError(t, err)
	_, err = b.store.Join(ctx, m.ID, "alice", "alice")
	require.NoError(t, err)

	var packets [][]byte // the fixture's 20 ms Opus packets
	data, err := os.ReadFile(fixtureWebM(t, "alice"))
	require.NoError(t, err)
	_, err = audio.ReadWebMPackets(ctx, bytes.NewReader(data), func(_ int64, p []byte) error {
		packets = append(packets, slices.Clone(p))
		return nil
	})
	require.NoError(t, err)
	require.Greater(t, len(packets), 7000/20)

	// A packet is sent every 20 ms; the arrival clock follows, so the
	// recorder sees a live stream.
	zero := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	var clock atomic.Int64
	clock.Store(zero.UnixNano())
	rec, err := recorder.New(recorder.Config{SpoolDir: filepath.Join(t.TempDir(), "spool"),
		Now: func() time.Time { return time.Unix(0, clock.Load()) }}, b.blobs, b.cat, nil)
	require.NoError(t, err)
	defer rec.Close()
	w, err := rec.Open(ctx, recorder.Track{MeetingID: m.ID, Identity: "alice", SSRC: 7, ClockZero: zero})
	require.NoError(t, err)

	bursts := [][2]int64{{2000, 2500}, {5000, 5300}} // ms on the track's clock
	lostAt := func(ms int64) bool {
		for _, bu := range bursts {
			if ms >= bu[0] && ms < bu[1] {
				return true
			}
		}
		return ms == 3000 // concealed
	}
	for i, p := range packets {
		ms := int64(i) * 20
		clock.Store(zero.UnixNano() + ms*int64(time.Millisecond))
		if lostAt(ms) {
			continue
		}
		w.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: uint16(i),
			Timestamp: uint32(ms * 48), SSRC: 7}, Payload: p})
		if i%50 == 49 {
			// Fed far faster than real time, the spool could fall
			// behind and drop packets (a stated gap of its own): let it
			// keep up, as it does with a live sender.
			require.Eventually(t, func() bool { return w.Stats().Written >= int64(i)-100 }, 10*time.Second, time.Millisecond)
		}
	}
	require.NoError(t, w.Close(ctx))
	require.Zero(t, w.Stats().Overflow, "the spool kept up")
	_, err = b.p.EndMeeting(ctx, m.ID)
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		cur, err := b.store.Meeting(ctx, m.ID)
		require.NoError(t, err)
		return cur.State == store.MeetingReady || cur.State == store.MeetingIncomplete || cur.State == store.MeetingFailed
	}, 60*time.Second, 50*time.Millisecond, "the pipeline finishes")
	cur, err := b.store.Meeting(ctx, m.ID)
	require.NoError(t, err)
	doc := latestMinutes(t, b, m.ID)

	faulttest.Report(t, faulttest.FaultsInjected, float64(len(bursts)))
	unstated := 0 // bursts no missing stretch of the minutes covers
	for _, bu := range bursts {
		if !slices.ContainsFunc(doc.Missing, func(g minutes.Gap) bool {
			return g.Speaker == "alice" && int64(g.Start) <= bu[0] && int64(g.End) >= bu[1]
		}) {
			unstated++
		}
	}
	faulttest.Report(t, faulttest.WordsLost, float64(unstated))
	tracks, err := b.store.Tracks(ctx, m.ID)
	require.NoError(t, err)
	lost := 0 // neither stored nor stated failed
	for _, tr := range tracks {
		if tr.State == store.TrackRecording {
			lost++
		}
	}
	faulttest.Report(t, faulttest.RecordingsLost, float64(lost))

	require.Zero(t, unstated, "every loss burst is stated: %+v", doc.Missing)
	require.Zero(t, lost)
	require.Equal(t, store.MeetingIncomplete, cur.State)
	require.False(t, doc.Complete)
	require.Len(t, doc.Missing, len(bursts), "the concealed packet is no gap: %+v", doc.Missing)
	for i, bu := range bursts {
		require.Equal(t, "alice", doc.Missing[i].Speaker)
		require.Equal(t, minutes.Seconds(bu[0]), doc.Missing[i].Start)
		require.Equal(t, minutes.Seconds(bu[1]), doc.Missing[i].End)
		require.Contains(t, doc.Missing[i].Reason, "lost in the network")
	}
	require.NotEmpty(t, doc.Turns, "what was recorded is all there")
}
