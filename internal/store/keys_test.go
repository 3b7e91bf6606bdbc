package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/store"
)

func TestMeetingPagesNeverSkipNorRepeatMeetingsCreatedAtTheSameInstant(t *testing.T) {
	eachDialectClocked(t, func(t *testing.T, s *store.Store, clock *time.Time) {
		ctx := context.Background()
		var want []string
		for i := range 7 {
			if i == 4 {
				*clock = clock.Add(time.Minute)
			}
			m, err := s.CreateMeetingBy(ctx, "M", "", map[bool]string{true: "key_a", false: "key_b"}[i%2 == 0])
			require.NoError(t, err)
			want = append(want, m.ID)
		}
		var got []string
		var after store.Position
		for pages := 0; ; pages++ {
			require.Less(t, pages, 10)
			ms, err := s.MeetingsPage(ctx, store.MeetingFilter{After: after, Limit: 3})
			require.NoError(t, err)
			for _, m := range ms {
				got = append(got, m.ID)
			}
			if len(ms) < 3 {
				break
			}
			after = store.Position{At: ms[len(ms)-1].CreatedAt, ID: ms[len(ms)-1].ID}
		}
		require.ElementsMatch(t, want, got)
		require.Len(t, got, 7, "each once")
		mine, err := s.MeetingsPage(ctx, store.MeetingFilter{CreatedBy: "key_a", Limit: 10})
		require.NoError(t, err)
		require.Len(t, mine, 4)
		later, err := s.MeetingsPage(ctx, store.MeetingFilter{CreatedAfter: clock.Add(-time.Second), Limit: 10})
		require.NoError(t, err)
		require.Len(t, later, 3, "created after the minute passed")
		for _, m := range later {
			require.True(t, m.CreatedAt.Equal(*clock))
		}
	})
}

func TestAPIKeysAreFoundByHashTouchedSparinglyAndRevokedOnce(t *testing.T) {
	eachDialectClocked(t, func(t *testing.T, s *store.Store, clock *time.Time) {
		ctx := context.Background()
		k, err := s.CreateAPIKey(ctx, store.APIKey{ID: "key_1", Name: "n", Role: "agent", Hash: "h1", ExpiresAt: clock.Add(time.Hour)})
		require.NoError(t, err)
		require.True(t, k.CreatedAt.Equal(*clock))
		_, err = s.CreateAPIKey(ctx, store.APIKey{ID: "key_2", Name: "n", Role: "agent", Hash: "h1"})
		require.Error(t, err, "two keys never share a hash")

		require.NoError(t, s.TouchAPIKey(ctx, "key_1", *clock, clock.Add(-time.Minute)))
		first := *clock
		*clock = clock.Add(30 * time.Second)
		require.NoError(t, s.TouchAPIKey(ctx, "key_1", *clock, clock.Add(-time.Minute)))
		got, err := s.APIKeyByHash(ctx, "h1")
		require.NoError(t, err)
		require.True(t, got.LastUsedAt.Equal(first), "within the minute, the first use stands")
		require.True(t, got.ExpiresAt.Equal(first.Add(time.Hour)))

		list, err := s.APIKeys(ctx, store.Position{}, 10)
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.NoError(t, s.RevokeAPIKey(ctx, "key_1"))
		require.ErrorIs(t, s.RevokeAPIKey(ctx, "key_1"), store.ErrNotFound)
		got, err = s.APIKeyByHash(ctx, "h1")
		require.NoError(t, err)
		require.False(t, got.RevokedAt.IsZero(), "still found, to say it was revoked")
		byID, err := s.APIKeyByID(ctx, "key_1")
		require.NoError(t, err)
		require.Equal(t, "h1", byID.Hash, "a session finds its key by id")
		require.False(t, byID.RevokedAt.IsZero())
		_, err = s.APIKeyByID(ctx, "key_nope")
		require.ErrorIs(t, err, store.ErrNotFound)
		list, err = s.APIKeys(ctx, store.Position{}, 10)
		require.NoError(t, err)
		require.Empty(t, list)
		_, err = s.APIKeyByHash(ctx, "nope")
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

func TestTheAuditLogPagesNewestFirstAndNarrowsToAMeeting(t *testing.T) {
	eachDialectClocked(t, func(t *testing.T, s *store.Store, clock *time.Time) {
		ctx := context.Background()
		for i := range 5 {
			*clock = clock.Add(time.Second)
			_, err := s.AddAudit(ctx, store.AuditEntry{KeyID: "key_1", KeyName: "k", Method: "POST", Route: "/v1/meetings/{id}/end",
				MeetingID: map[bool]string{true: "mtg_a", false: "mtg_b"}[i < 3], Status: 202 + i})
			require.NoError(t, err)
		}
		var statuses []int
		var before store.Position
		for {
			es, err := s.Audit(ctx, "", before, 2)
			require.NoError(t, err)
			for _, e := range es {
				statuses = append(statuses, e.Status)
			}
			if len(es) < 2 {
				break
			}
			before = store.Position{At: es[1].At, ID: es[1].ID}
		}
		require.Equal(t, []int{206, 205, 204, 203, 202}, statuses, "newest first, each once")
		a, err := s.Audit(ctx, "mtg_a", store.Position{}, 10)
		require.NoError(t, err)
		require.Len(t, a, 3)
	})
}
