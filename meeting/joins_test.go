package meeting

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/token"
	"github.com/greffier/greffier/sfu"
)

func TestJoinsAdmitValidTokensOnTheMeetingClockAndRefuseTheRestAsTheSFUExpects(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := openStore(t, d)
			j := NewJoins(st, slog.New(slog.DiscardHandler))
			m, err := st.CreateMeeting(ctx, "Conseil", "fr")
			require.NoError(t, err)
			for _, id := range []string{"tok_alice", "tok_bob1", "tok_bob2"} {
				identity := map[string]string{"tok_alice": "alice", "tok_bob1": "bob", "tok_bob2": "bob"}[id]
				require.NoError(t, st.AddJoinToken(ctx, store.JoinToken{ID: id, MeetingID: m.ID, Identity: identity,
					ExpiresAt: time.Now().Add(time.Hour)}))
			}
			claims := func(id, identity string) token.Claims {
				return token.Claims{ID: id, MeetingID: m.ID, Identity: identity, DisplayName: identity + " (display)"}
			}

			zero, err := j.Join(ctx, claims("tok_alice", "alice"))
			require.NoError(t, err)
			require.False(t, zero.IsZero())
			again, err := j.Join(ctx, claims("tok_bob1", "bob"))
			require.NoError(t, err)
			require.True(t, zero.Equal(again), "the clock's zero is the first join")
			ps, err := st.Participants(ctx, m.ID)
			require.NoError(t, err)
			require.Len(t, ps, 2)

			_, err = st.RevokeJoinToken(ctx, m.ID, "tok_bob1")
			require.NoError(t, err)
			_, err = j.Join(ctx, claims("tok_bob1", "bob"))
			require.ErrorIs(t, err, sfu.ErrTokenRevoked)
			_, err = j.Join(ctx, claims("tok_bob2", "bob"))
			require.NoError(t, err, "bob's other token still joins")

			_, err = j.Join(ctx, token.Claims{ID: "tok_x", MeetingID: "mtg_nosuchmeeting", Identity: "eve"})
			require.ErrorIs(t, err, sfu.ErrMeetingNotFound)

			_, err = st.Transition(ctx, m.ID, store.MeetingEnded, "")
			require.NoError(t, err)
			_, err = j.Join(ctx, claims("tok_alice", "alice"))
			require.ErrorIs(t, err, sfu.ErrMeetingClosed)
			require.NoError(t, j.Leave(ctx, m.ID, "alice"))
		})
	}
}

// TestMeetingLiveIsLoggedOnceHoweverManyJoinAtOnce: the join that starts a
// meeting logs "meeting live", once, even when everyone joins at the same
// moment (the SFU's joins and LiveKit's participants alike).
func TestMeetingLiveIsLoggedOnceHoweverManyJoinAtOnce(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := openStore(t, d)
			var buf syncBuffer
			logged := LoggedJoins{Store: st, Log: slog.New(slog.NewTextHandler(&buf, nil))}
			m, err := st.CreateMeeting(ctx, "Conseil", "fr")
			require.NoError(t, err)
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Go(func() {
					_, err := logged.Join(ctx, m.ID, fmt.Sprintf("p%d", i), "P")
					require.NoError(t, err)
				})
			}
			wg.Wait()
			_, err = logged.Join(ctx, m.ID, "late", "Late")
			require.NoError(t, err)
			require.Equal(t, 1, strings.Count(buf.String(), `msg="meeting live"`), buf.String())
			require.Contains(t, buf.String(), "meeting="+m.ID)
		})
	}
}

// syncBuffer is a bytes.Buffer that several goroutines' logs write to.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
