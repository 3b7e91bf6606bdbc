package store_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/store"
)

func TestRetentionExpiresWhatIsDueAndNeverWhatIsHeld(t *testing.T) {
	t.Parallel()
	eachDialectClocked(t, func(t *testing.T, s *store.Store, clock *time.Time) {
		ctx := context.Background()
		finished := func(title string) store.Meeting {
			m, err := s.CreateMeeting(ctx, title, "")
			require.NoError(t, err)
			_, err = s.Transition(ctx, m.ID, store.MeetingEnded, "")
			require.NoError(t, err)
			m, err = s.Transition(ctx, m.ID, store.MeetingReady, "")
			require.NoError(t, err)
			return m
		}
		day := 24 * time.Hour
		byDefault := finished("defaults")
		own := finished("own policy")
		week, forever := 7*day, time.Duration(0)
		_, err := s.SetRetention(ctx, own.ID, store.RetentionChange{Recordings: &week, Transcripts: &forever})
		require.NoError(t, err)
		held := finished("held")
		yes := true
		_, err = s.SetRetention(ctx, held.ID, store.RetentionChange{Recordings: &week, LegalHold: &yes})
		require.NoError(t, err)
		running, err := s.CreateMeeting(ctx, "still ended", "")
		require.NoError(t, err)
		_, err = s.Transition(ctx, running.ID, store.MeetingEnded, "")
		require.NoError(t, err)

		due := func(at time.Time) map[string]store.Expiry {
			es, err := s.ExpiryDue(ctx, at, 30*day, 60*day, 100)
			require.NoError(t, err)
			out := map[string]store.Expiry{}
			for _, e := range es {
				out[e.MeetingID] = e
			}
			return out
		}
		require.Empty(t, due(clock.Add(6*day)))
		require.Equal(t, map[string]store.Expiry{own.ID: {MeetingID: own.ID, Recordings: true}}, due(clock.Add(8*day)),
			"the meeting's own week, not the default month; never the held one")
		require.NoError(t, s.MarkRecordingsExpired(ctx, own.ID))
		require.Empty(t, due(clock.Add(8*day)), "expired once")
		require.Equal(t, map[string]store.Expiry{byDefault.ID: {MeetingID: byDefault.ID, Recordings: true}}, due(clock.Add(31*day)))
		require.Equal(t, map[string]store.Expiry{byDefault.ID: {MeetingID: byDefault.ID, Recordings: true, Transcripts: true}},
			due(clock.Add(61*day)), "own keeps its transcripts forever; a meeting whose pipeline runs is left alone")

		require.NoError(t, s.InTx(ctx, func(_ *sql.Tx, q store.Queries) error { return q.ExpireTranscripts(ctx, byDefault.ID) }))
		_, err = s.LatestMinutes(ctx, byDefault.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		r, err := s.Retention(ctx, byDefault.ID)
		require.NoError(t, err)
		require.Equal(t, *clock, r.TranscriptsExpiredAt)
		require.Nil(t, r.Recordings, "expiry does not fix the default into the meeting")

		// The hold also blocks deletion, until it is lifted.
		_, err = s.StartDeleting(ctx, held.ID)
		require.ErrorIs(t, err, store.ErrLegalHold)
		no := false
		_, err = s.SetRetention(ctx, held.ID, store.RetentionChange{LegalHold: &no})
		require.NoError(t, err)
		before, err := s.Meeting(ctx, held.ID)
		require.NoError(t, err)
		m, err := s.StartDeleting(ctx, held.ID)
		require.NoError(t, err)
		require.Equal(t, store.MeetingDeleting, m.State)
		require.Equal(t, before.Run+1, m.Run, "the old run's jobs become no-ops")
		again, err := s.StartDeleting(ctx, held.ID)
		require.NoError(t, err)
		require.Equal(t, m, again, "asking twice changes nothing")
		_, err = s.Transition(ctx, held.ID, store.MeetingEnded, "")
		var te *store.TransitionError
		require.True(t, errors.As(err, &te), "a meeting being deleted cannot be re-run")

		live, err := s.CreateMeeting(ctx, "live", "")
		require.NoError(t, err)
		_, err = s.Join(ctx, live.ID, "alice", "Alice")
		require.NoError(t, err)
		_, err = s.StartDeleting(ctx, live.ID)
		require.True(t, errors.As(err, &te), "%v", err)
		require.Equal(t, store.MeetingLive, te.From)

		require.NoError(t, s.DeleteMeeting(ctx, held.ID))
		_, err = s.Meeting(ctx, held.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		require.NoError(t, s.DeleteMeeting(ctx, held.ID), "deleting again is not an error")
		_, err = s.Meeting(ctx, own.ID)
		require.NoError(t, err, "other meetings stay")
	})
}
