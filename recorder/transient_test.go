package recorder

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/store"
)

// TestTransientTrackIsHeardAndNotKept: a transient track (a meeting that
// keeps only its words) is spooled and heard by its Listener, never
// checkpointed nor uploaded; closing it records its row with no blob and
// deletes its spool.
func TestTransientTrackIsHeardAndNotKept(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	heard := &countListener{}
	b := setup(t, func(c *Config) {
		c.CheckpointInterval = 10 * time.Millisecond
		c.Listen = func(store.Track, time.Duration) Listener { return heard }
	})
	zero := b.clock.Now()
	w, err := b.rec.Open(context.Background(), Track{MeetingID: "mtg_1", Identity: "alice", SSRC: 42,
		ClockZero: zero.Add(-1500 * time.Millisecond), FirstPacketAt: zero, Transient: true})
	require.NoError(t, err)
	pkts := cleanStream(fx, 100, 100)
	feed(b, w, pkts)
	require.NoError(t, w.Close(context.Background()))

	row := b.catalog.row(w.ID())
	require.Equal(t, store.TrackStored, row.State, row.Failure)
	require.Empty(t, row.BlobKey, "no blob")
	require.Positive(t, row.DurationMS)
	require.Equal(t, len(pkts), heard.blocks, "the Listener heard every packet (read after Close, which waits for the writer)")
	objects, err := b.blobs.List(context.Background(), "")
	require.NoError(t, err)
	require.Empty(t, objects, "neither the track nor a checkpoint reaches blob storage")
	require.False(t, b.rec.spoolExists("mtg_1", w.ID()))
}

// TestRecoverDiscardsATransientSpool: after a crash, the spool of a
// transient track is deleted, not stored, and its track is failed with
// the reason.
func TestRecoverDiscardsATransientSpool(t *testing.T) {
	t.Parallel()
	fx := loadOpus(t)
	spool, side, id := crashCopy(t, fx, 60, 50)
	var sc sidecar
	require.NoError(t, json.Unmarshal(side, &sc))
	sc.Transient = true
	side, err := json.Marshal(sc)
	require.NoError(t, err)
	dir := t.TempDir()
	plant(t, dir, id, spool, side)
	b := setupWith(t, newDisk(t), dir)
	seedRow(b, id)
	require.NoError(t, b.rec.Recover(context.Background()))
	row := b.catalog.row(id)
	require.Equal(t, store.TrackFailed, row.State)
	require.Contains(t, row.Failure, "keeps no audio")
	require.False(t, b.rec.spoolExists("mtg_1", id))
	objects, err := b.blobs.List(context.Background(), "")
	require.NoError(t, err)
	require.Empty(t, objects)
}
