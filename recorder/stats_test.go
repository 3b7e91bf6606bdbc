package recorder

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A scrape that comes while a track is being opened (its id reserved, its
// writer not made yet) counts the open tracks and does not fail.
func TestStatsWhileATrackIsBeingOpened(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.rec.mu.Lock()
	b.rec.open["trk_opening"] = nil
	b.rec.mu.Unlock()
	require.NotPanics(t, func() { require.Zero(t, b.rec.Stats().Tracks) })
}
