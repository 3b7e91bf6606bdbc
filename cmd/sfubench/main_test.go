package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// childEnv makes the test binary, started again by runServer as its
// clients' process, run main instead of the tests.
const childEnv = "SFUBENCH_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// TestSmallMeetingForwardsEverything runs the whole benchmark, two
// processes, on a three-person meeting: each listener must get both
// others' packets, none lost, and the report must add up.
func TestSmallMeetingForwardsEverything(t *testing.T) {
	t.Setenv(childEnv, "1")
	o := options{participants: 3, duration: 2 * time.Second, warmup: 500 * time.Millisecond, slots: 2,
		payload: 60, senders: 1, connectPar: 3, tap: tapCount, rounds: 1}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := runServer(ctx, o, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	c := rep.Clients
	require.NotNil(t, c)
	require.Equal(t, 3, c.Listeners)
	require.Zero(t, c.Lost, "no sequence gaps")
	require.Zero(t, c.Duplicates)
	require.Zero(t, rep.Dropped)
	// Each listener hears both others: 2 slots × 50 packets a second, over
	// the window actually measured, which a loaded machine stretches past
	// the asked duration, never shortens.
	require.GreaterOrEqual(t, c.ExpectedPerListener, int(2*o.duration/packetInterval)-2)
	require.InDelta(t, c.ExpectedPerListener, c.ReceivedMin, float64(c.ExpectedPerListener)/10)
	require.InDelta(t, 3*2*50, rep.ForwardedPerSecond, 30)
	require.InDelta(t, 3*50, rep.ReceivedPerSecond, 15)
	require.InDelta(t, rep.ReceivedPerSecond, rep.SentPerSecond, 15)
	require.Positive(t, rep.ServerCPUSeconds)
	require.Positive(t, rep.HeapPerParticipantKiB)
	require.Positive(t, c.LatencyP50us)
	require.LessOrEqual(t, c.LatencyP50us, c.LatencyP99us)
	require.Equal(t, uint64(3), rep.TapTracks, "every publisher reached the tap")
}

// TestSmallMeetingIsRecordedWhole runs the benchmark with the full server
// behind the SFU (recorder, live path, River on SQLite): every packet the
// SFU took reaches a spool, and the window's profile splits into stages
// that include the recorder's.
func TestSmallMeetingIsRecordedWhole(t *testing.T) {
	t.Setenv(childEnv, "1")
	o := options{participants: 3, duration: 2 * time.Second, warmup: 500 * time.Millisecond, slots: 2,
		payload: 60, senders: 1, connectPar: 3, tap: tapRecord, rounds: 1, dataDir: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := runOne(ctx, o, tapRecord, filepath.Join(t.TempDir(), "cpu.prof"), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.Equal(t, "sqlite", rep.Database)
	require.Equal(t, uint64(3), rep.TapTracks)
	require.Positive(t, rep.TapPackets)
	require.Equal(t, int64(rep.TapPackets), rep.RecordedPackets, "every packet the SFU took is in a spool")
	require.Zero(t, rep.RecorderDropped)
	require.NotEmpty(t, rep.Stages)
	var total float64
	for _, s := range rep.Stages {
		total += s.Share
	}
	require.InDelta(t, 1, total, 0.001, "the stages split the whole profile")
}
