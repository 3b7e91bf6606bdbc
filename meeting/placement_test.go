package meeting

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/sfu"
)

// TestJoinsGoToTheLeastLoadedMediaNode: a meeting is placed on the live
// SFU node holding the fewest live meetings, whichever node the join
// reached; a node without media never holds one, and says so when no
// media node is alive.
func TestJoinsGoToTheLeastLoadedMediaNode(t *testing.T) {
	t.Parallel()
	st := openStore(t, store.Postgres)
	ctx := context.Background()
	beat := func(id string, roles ...string) {
		require.NoError(t, st.Heartbeat(ctx, store.Node{ID: id, Roles: roles, URL: "http://" + id}))
	}
	place := func(self string, media bool, meetingID string) error {
		p, err := NewPlacement(st, self, media, 10*time.Second)
		require.NoError(t, err)
		return NewPlacedJoins(st, p, discard()).Place(ctx, meetingID)
	}
	movedTo := func(err error) string {
		moved, ok := errors.AsType[*sfu.MovedError](err)
		require.True(t, ok, "%v", err)
		return moved.BaseURL
	}
	m1, m2 := liveMeeting(t, st), liveMeeting(t, st)

	beat("node_api", store.RoleAPI)
	require.ErrorIs(t, place("node_api", false, m1.ID), sfu.ErrNoMediaNode)

	beat("node_a", store.RoleAPI, store.RoleSFU)
	beat("node_b", store.RoleSFU)
	require.Equal(t, "http://node_a", movedTo(place("node_api", false, m1.ID)), "the first of two idle nodes")
	require.NoError(t, place("node_a", true, m1.ID), "its owner keeps it")
	require.Equal(t, "http://node_a", movedTo(place("node_b", true, m1.ID)))
	require.NoError(t, place("node_b", true, m2.ID), "the second meeting goes to the idle node")
	require.Equal(t, "http://node_b", movedTo(place("node_a", true, m2.ID)))

	require.ErrorIs(t, place("node_api", false, "mtg_unknown"), sfu.ErrMeetingNotFound)
}
