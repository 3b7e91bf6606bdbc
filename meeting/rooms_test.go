package meeting

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/store"
)

// roomSource stands in for the LiveKit source (the real one is tested
// against a real livekit-server in cmd/greffier): it records which rooms
// it was asked to join, and says which are open.
type roomSource struct {
	mu     sync.Mutex
	joined []string // "meeting room"
	open   map[string]bool
	err    error
}

func (s *roomSource) Record(_ context.Context, meetingID, room string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.joined = append(s.joined, meetingID+" "+room)
	return nil
}

func (s *roomSource) Connected(string) bool { return false }

func (s *roomSource) Joined() []string { return nil }

func (s *roomSource) EndMeeting(context.Context, string) error { return nil }

func (s *roomSource) RoomExists(_ context.Context, room string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open[room], nil
}

// storeEnder ends meetings as the pipeline's transaction would, without
// the pipeline.
type storeEnder struct{ st *store.Store }

func (e storeEnder) EndMeeting(ctx context.Context, meetingID string) (store.Meeting, error) {
	return e.st.Transition(ctx, meetingID, store.MeetingEnded, "")
}

func TestRoomsRecordOneMeetingPerOpenRoomAndEndItOnce(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := openStore(t, d)
			src := &roomSource{}
			rooms, err := NewRooms(RoomsConfig{AutoRecord: "council-*"}, st, src, storeEnder{st}, nil)
			require.NoError(t, err)

			// Started rooms are recorded only when they match the pattern.
			_, ok, err := rooms.RoomStarted(ctx, "standup")
			require.NoError(t, err)
			require.False(t, ok)
			m, ok, err := rooms.RoomStarted(ctx, "council-east")
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, "council-east", m.Title)
			// Asked again (a webhook redelivered, the API): the same meeting.
			again, created, err := rooms.Record(ctx, "council-east", "ignored", "", "")
			require.NoError(t, err)
			require.False(t, created)
			require.Equal(t, m.ID, again.ID)
			require.Equal(t, []string{m.ID + " council-east", m.ID + " council-east"}, src.joined)

			// The room's end ends the meeting, once: the webhook and the
			// recorder's disconnection both say so.
			require.NoError(t, rooms.RoomFinished(ctx, "council-east"))
			rooms.Finished(m.ID)
			require.NoError(t, rooms.RoomFinished(ctx, "council-east"))
			got, err := st.Meeting(ctx, m.ID)
			require.NoError(t, err)
			require.Equal(t, store.MeetingEnded, got.State)

			// The room opens again: a new meeting.
			next, created, err := rooms.Record(ctx, "council-east", "", "", "")
			require.NoError(t, err)
			require.True(t, created)
			require.NotEqual(t, m.ID, next.ID)
		})
	}
}

func TestRoomsResumeOnlyTheRoomsStillOpen(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := openStore(t, d)
			src := &roomSource{open: map[string]bool{"open": true}}
			rooms, err := NewRooms(RoomsConfig{}, st, src, storeEnder{st}, nil)
			require.NoError(t, err)
			open, _, err := rooms.Record(ctx, "open", "", "", "")
			require.NoError(t, err)
			closed, _, err := rooms.Record(ctx, "closed", "", "", "")
			require.NoError(t, err)
			src.joined = nil

			// A restart: the open room is joined again, the closed one's
			// meeting ends.
			require.NoError(t, rooms.Resume(ctx))
			require.Equal(t, []string{open.ID + " open"}, src.joined)
			got, err := st.Meeting(ctx, closed.ID)
			require.NoError(t, err)
			require.Equal(t, store.MeetingEnded, got.State)
			got, err = st.Meeting(ctx, open.ID)
			require.NoError(t, err)
			require.Equal(t, store.MeetingCreated, got.State)
		})
	}
}

func TestARoomThatCannotBeJoinedEndsItsNewMeeting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t, store.SQLite)
	src := &roomSource{err: errors.New("dial tcp: connection refused")}
	rooms, err := NewRooms(RoomsConfig{}, st, src, storeEnder{st}, nil)
	require.NoError(t, err)
	m, created, err := rooms.Record(ctx, "council", "", "", "")
	require.ErrorContains(t, err, "connection refused")
	require.True(t, created)
	require.Equal(t, store.MeetingEnded, m.State, "no meeting waits for a room nobody records")
	_, err = st.LiveKitMeeting(ctx, "council")
	require.ErrorIs(t, err, store.ErrNotFound)

	_, err = NewRooms(RoomsConfig{AutoRecord: "council-["}, st, src, storeEnder{st}, nil)
	require.ErrorContains(t, err, "malformed")
}
