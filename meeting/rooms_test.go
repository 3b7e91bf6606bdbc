package meeting

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/backend"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/livekit"
	"github.com/greffier/greffier/sfu"
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

// trackingSource is a room source that knows which rooms are joined and
// fails its next joins when told to.
type trackingSource struct {
	roomSource
	connected map[string]bool
	tries     int
	fails     int // joins still to fail
}

func (s *trackingSource) Record(ctx context.Context, meetingID, room string) error {
	s.mu.Lock()
	s.tries++
	if s.fails > 0 {
		s.fails--
		s.mu.Unlock()
		return errors.New("dial tcp: connection refused")
	}
	s.connected[meetingID] = true
	s.mu.Unlock()
	return s.roomSource.Record(ctx, meetingID, room)
}

func (s *trackingSource) Connected(meetingID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connected[meetingID]
}

func (s *trackingSource) Joined() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id, ok := range s.connected {
		if ok {
			out = append(out, id)
		}
	}
	return out
}

func (s *trackingSource) EndMeeting(_ context.Context, meetingID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.connected, meetingID)
	return nil
}

// placedOn places the meetings it names on this node, and the others on
// this node or, with elsewhere, on another.
type placedOn struct {
	mu        sync.Mutex
	here      map[string]bool
	elsewhere bool
}

func (p *placedOn) set(elsewhere bool, here ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.elsewhere = elsewhere
	for _, id := range here {
		p.here[id] = true
	}
}

func (p *placedOn) Place(_ context.Context, meetingID string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.elsewhere && !p.here[meetingID] {
		return &sfu.MovedError{MeetingID: meetingID, BaseURL: "http://10.0.0.2:8080"}
	}
	return nil
}

func TestRoomsAreRecordedByTheirOwnerAndJoinedAgainWithBackoff(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t, store.SQLite)
	src := &trackingSource{roomSource: roomSource{open: map[string]bool{"mine": true, "theirs": true}}, connected: map[string]bool{}}
	owner := &placedOn{here: map[string]bool{}}
	rooms, err := NewRooms(RoomsConfig{Owner: owner, Retry: backend.Backoff{Base: time.Hour, Max: time.Hour}}, st, src, storeEnder{st}, nil)
	require.NoError(t, err)

	mine, _, err := rooms.Record(ctx, "mine", "", "", "")
	require.NoError(t, err)
	require.True(t, src.Connected(mine.ID))
	// A meeting another node owns is not joined here: its owner does.
	owner.set(true, mine.ID)
	m, created, err := rooms.Record(ctx, "theirs", "", "", "")
	require.NoError(t, err)
	require.True(t, created)
	require.NoError(t, rooms.check(ctx, false))
	require.False(t, src.Connected(m.ID))

	// The connection to LiveKit is lost for good: the next check joins
	// again, and a failed join waits for its backoff (an hour here)
	// unless a restart's Resume asks for it.
	src.mu.Lock()
	delete(src.connected, mine.ID)
	src.fails, src.tries = 1, 0
	src.mu.Unlock()
	require.ErrorContains(t, rooms.check(ctx, false), "connection refused")
	require.NoError(t, rooms.check(ctx, false))
	require.Equal(t, 1, src.tries, "no join before the backoff's delay")
	require.False(t, src.Connected(mine.ID))
	require.NoError(t, rooms.Resume(ctx))
	require.True(t, src.Connected(mine.ID))

	// The other node is lost: this one takes its meeting over.
	owner.set(false)
	require.NoError(t, rooms.check(ctx, false))
	require.True(t, src.Connected(m.ID))

	// A meeting ended through another node's API: its room is left here.
	_, err = st.Transition(ctx, mine.ID, store.MeetingEnded, "")
	require.NoError(t, err)
	require.NoError(t, rooms.check(ctx, false))
	require.False(t, src.Connected(mine.ID))
	require.True(t, src.Connected(m.ID))

	// This node was found silent and its meeting placed on another: it
	// leaves the room, so that one node records it.
	owner.set(true)
	require.NoError(t, rooms.check(ctx, false))
	require.False(t, src.Connected(m.ID))
}

// TestAnAbsenceBelongsToTheTrackItFollows: a participant unheard since
// 2.93 s is heard again at 5.26 s, when the new track's row may already be
// stored (it starts a few milliseconds before that first packet is
// handed over). The absence is stated on the track it follows, whole,
// whichever came first.
func TestAnAbsenceBelongsToTheTrackItFollows(t *testing.T) {
	t.Parallel()
	for _, newRowFirst := range []bool{false, true} {
		st := openStore(t, store.SQLite)
		ctx := context.Background()
		m := liveMeeting(t, st)
		old := store.Track{ID: store.NewID("trk"), MeetingID: m.ID, Identity: "alice", SSRC: 1, StartMS: 0}
		require.NoError(t, st.CreateTrack(ctx, old))
		again := store.Track{ID: store.NewID("trk"), MeetingID: m.ID, Identity: "alice", SSRC: 2, StartMS: 5256}
		if newRowFirst {
			require.NoError(t, st.CreateTrack(ctx, again))
		}
		g := NewRoomGaps(st, discard())
		g.pending[m.ID] = map[string]absence{"alice": {since: m.StartedAt.Add(2930 * time.Millisecond), reason: "node lost"}}
		g.heard(ctx, livekit.Track{MeetingID: m.ID, Identity: "alice", ClockZero: m.StartedAt,
			FirstPacketAt: m.StartedAt.Add(5260 * time.Millisecond)})
		gaps, err := st.Gaps(ctx, m.ID)
		require.NoError(t, err)
		require.Equal(t, []store.TrackGap{{TrackID: old.ID, MeetingID: m.ID, Identity: "alice", StartMS: 2930, EndMS: 5260,
			Reason: "node lost"}}, gaps, "new track's row stored first: %v", newRowFirst)
	}
}
