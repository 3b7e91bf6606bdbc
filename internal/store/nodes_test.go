package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/store"
)

// TestPlacementIsOneDecisionAndMovesOnlyFromADeadNode: nodes racing to
// place a meeting agree on one owner; a live owner keeps it; a dead one's
// meeting is taken over by the next join (the loss recorded) or released
// by ReleaseLostMeetings, once; and a settled loss no longer holds the
// pipeline.
func TestPlacementIsOneDecisionAndMovesOnlyFromADeadNode(t *testing.T) {
	t.Parallel()
	eachDialectClocked(t, func(t *testing.T, s *store.Store, clock *time.Time) {
		ctx := context.Background()
		for _, id := range []string{"node_a", "node_b"} {
			require.NoError(t, s.Heartbeat(ctx, store.Node{ID: id, Roles: []string{store.RoleSFU}, URL: "http://" + id}))
		}
		nodes, err := s.Nodes(ctx, clock.Add(-time.Second))
		require.NoError(t, err)
		require.Len(t, nodes, 2)
		require.True(t, nodes[0].Has(store.RoleSFU))
		require.Equal(t, "http://node_a", nodes[0].URL)

		m, err := s.CreateMeeting(ctx, "", "")
		require.NoError(t, err)
		alive := func() time.Time { return clock.Add(-10 * time.Second) }
		owners := make([]string, 8)
		var wg sync.WaitGroup
		for i := range owners {
			wg.Go(func() {
				n, err := s.PlaceMeeting(ctx, m.ID, []string{"node_a", "node_b"}[i%2], alive())
				if err == nil {
					owners[i] = n.ID
				}
			})
		}
		wg.Wait()
		for _, o := range owners {
			require.Equal(t, owners[0], o, "every racer sees one owner: %v", owners)
		}
		owner, other := owners[0], "node_a"
		if owner == "node_a" {
			other = "node_b"
		}
		_, err = s.Join(ctx, m.ID, "alice", "Alice")
		require.NoError(t, err)
		placed, err := s.PlacedMeetings(ctx)
		require.NoError(t, err)
		require.Equal(t, map[string]int{owner: 1}, placed)

		// The owner stops beating; the other goes on.
		lastBeat := *clock
		*clock = clock.Add(30 * time.Second)
		require.NoError(t, s.Heartbeat(ctx, store.Node{ID: other, Roles: []string{store.RoleSFU}, URL: "http://" + other}))
		got, err := s.PlaceMeeting(ctx, m.ID, other, alive())
		require.NoError(t, err)
		require.Equal(t, other, got.ID, "a dead node's meeting goes to the next joiner's node")
		lost, err := s.MediaLost(ctx, m.ID)
		require.NoError(t, err)
		require.Equal(t, owner, lost.Node)
		require.True(t, lost.LastBeat.Equal(lastBeat), "%v", lost.LastBeat)
		p, err := s.Progress(ctx, m.ID)
		require.NoError(t, err)
		require.False(t, p.Done(), "nothing is final while a lost node may bring audio back")
		require.Len(t, p.Failures, 1)
		require.Equal(t, "media", p.Failures[0].Stage)
		require.Contains(t, p.Failures[0].Reason, "media node "+owner+" lost")

		due, err := s.MeetingsWithLostMedia(ctx, clock.Add(time.Second))
		require.NoError(t, err)
		require.Len(t, due, 1)
		require.NoError(t, s.SettleLostMedia(ctx, m.ID, owner))
		p, err = s.Progress(ctx, m.ID)
		require.NoError(t, err)
		require.Empty(t, p.Failures)

		// The new owner dies too: the watch releases the meeting once.
		*clock = clock.Add(30 * time.Second)
		released, err := s.ReleaseLostMeetings(ctx, alive())
		require.NoError(t, err)
		require.Len(t, released, 1)
		require.Equal(t, other, released[0].Node)
		released, err = s.ReleaseLostMeetings(ctx, alive())
		require.NoError(t, err)
		require.Empty(t, released)
		n, err := s.MeetingNode(ctx, m.ID)
		require.NoError(t, err)
		require.Empty(t, n.ID, "released: any node may place it")
	})
}
