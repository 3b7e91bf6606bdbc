package idle

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/greffier/greffier/internal/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// presence is who is connected, as the SFU would say.
type presence struct {
	mu sync.Mutex
	in map[string]bool
}

func (p *presence) Connected(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.in[id]
}

func (p *presence) set(id string, in bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.in[id] = in
}

// storeEnder ends meetings in the store, as the App's ender does first.
type storeEnder struct{ st *store.Store }

func (e storeEnder) EndMeeting(ctx context.Context, id string) (store.Meeting, error) {
	return e.st.Transition(ctx, id, store.MeetingEnded, "")
}

type testBundle struct {
	st       *store.Store
	presence *presence
	now      time.Time
	reaper   *Reaper
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{SQLitePath: filepath.Join(t.TempDir(), "g.db")})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	b := &testBundle{st: st, presence: &presence{in: map[string]bool{}}, now: time.Unix(1_700_000_000, 0)}
	b.reaper, err = New(Config{After: time.Minute, Now: func() time.Time { return b.now }}, st, b.presence, storeEnder{st})
	require.NoError(t, err)
	return b
}

func (b *testBundle) meeting(t *testing.T, joined bool) string {
	t.Helper()
	m, err := b.st.CreateMeeting(context.Background(), "", "")
	require.NoError(t, err)
	if joined {
		_, err = b.st.Join(context.Background(), m.ID, "alice", "Alice")
		require.NoError(t, err)
	}
	return m.ID
}

func (b *testBundle) run(t *testing.T, at time.Duration) []string {
	t.Helper()
	b.now = time.Unix(1_700_000_000, 0).Add(at)
	ended, err := b.reaper.runOnce(context.Background())
	require.NoError(t, err)
	return ended
}

func TestRunOnceEndsOnlyMeetingsEmptyForAfter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	empty := b.meeting(t, true)    // live, nobody connected (a restart)
	busy := b.meeting(t, true)     // live, someone connected
	waiting := b.meeting(t, false) // created, nobody joined yet
	back := b.meeting(t, true)     // empty, then someone comes back
	b.presence.set(busy, true)

	require.Empty(t, b.run(t, 0), "a meeting first seen empty gets After from now")
	require.Empty(t, b.run(t, 59*time.Second))
	b.presence.set(back, true)
	require.Empty(t, b.run(t, 59*time.Second+time.Millisecond))
	b.presence.set(back, false)
	require.Equal(t, []string{empty}, b.run(t, time.Minute))
	require.Empty(t, b.run(t, time.Minute+59*time.Second), "back counts from when it was seen empty again")
	require.Equal(t, []string{back}, b.run(t, 2*time.Minute))
	require.Empty(t, b.run(t, time.Hour), "busy stays, however long")

	for id, want := range map[string]store.MeetingState{empty: store.MeetingEnded, back: store.MeetingEnded,
		busy: store.MeetingLive, waiting: store.MeetingCreated} {
		m, err := b.st.Meeting(context.Background(), id)
		require.NoError(t, err)
		require.Equal(t, want, m.State, id)
	}
	require.Empty(t, b.reaper.empty, "ended meetings are forgotten")
}

func TestRunOnceLeavesAMeetingItsHostEndedMeanwhile(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.meeting(t, true)
	require.Empty(t, b.run(t, 0))
	_, err := b.st.Transition(context.Background(), id, store.MeetingEnded, "")
	require.NoError(t, err)
	require.Empty(t, b.run(t, time.Hour))
	require.Empty(t, b.reaper.empty)
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.meeting(t, true)
	r, err := New(Config{After: time.Millisecond, Interval: time.Millisecond}, b.st, b.presence, storeEnder{b.st})
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background()))
	require.Error(t, r.Start(context.Background()))
	require.Eventually(t, func() bool {
		m, err := b.st.Meeting(context.Background(), id)
		require.NoError(t, err)
		return m.State == store.MeetingEnded
	}, 10*time.Second, time.Millisecond)
	r.Stop()
	r.Stop()
	_, err = New(Config{}, b.st, b.presence, storeEnder{b.st})
	require.Error(t, err)
}
