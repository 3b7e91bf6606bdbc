package meeting

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/sfu"
)

func TestTheEventLogStoresEveryEventInOrderOnTheMeetingClock(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			st := openStore(t, d)
			m := liveMeeting(t, st)
			l := NewEventLog(st, discard())
			l.Start()
			zero := m.StartedAt
			kinds := []sfu.EventKind{sfu.EventJoined, sfu.EventSpeakingStarted, sfu.EventSpeakingStopped, sfu.EventLeft}
			for i, k := range kinds {
				l.Observe(sfu.Event{Kind: k, MeetingID: m.ID, Identity: "alice",
					At: zero.Add(time.Duration(i) * 1500 * time.Millisecond), ClockZero: zero})
			}
			l.Stop() // stores what is queued
			l.Stop()
			evs, err := st.Events(context.Background(), m.ID)
			require.NoError(t, err)
			require.Len(t, evs, len(kinds))
			for i, e := range evs {
				require.Equal(t, string(kinds[i]), e.Kind)
				require.Equal(t, int64(i)*1500, e.AtMS)
				require.Equal(t, "alice", e.Identity)
			}
		})
	}
}

func TestAnEventLogNeverStartedStopsAtOnce(t *testing.T) {
	t.Parallel()
	l := NewEventLog(openStore(t, store.SQLite), discard())
	l.Observe(sfu.Event{Kind: sfu.EventJoined, MeetingID: "mtg_x", Identity: "alice"})
	l.Stop()
}

// TestAnEventAfterStopIsDropped: a session whose closing outlived the
// server's stop may still report its leaving; the log drops it rather
// than fail.
func TestAnEventAfterStopIsDropped(t *testing.T) {
	t.Parallel()
	st := openStore(t, store.SQLite)
	l := NewEventLog(st, discard())
	l.Start()
	l.Stop()
	require.NotPanics(t, func() { l.Observe(sfu.Event{Kind: sfu.EventLeft, MeetingID: "mtg_x", Identity: "alice"}) })
}
