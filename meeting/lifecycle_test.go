package meeting

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/captions"
	"github.com/greffier/greffier/internal/store"
)

// media stands in for the SFU: it records, when asked to close a meeting,
// what the meeting's state and its caption followers were then.
type media struct {
	st   *store.Store
	sub  *captions.Subscription
	err  error
	seen []string // per call: the meeting's state, and whether its followers were still there
}

func (m *media) EndMeeting(ctx context.Context, meetingID string) error {
	got, err := m.st.Meeting(ctx, meetingID)
	if err != nil {
		return err
	}
	following := "followed"
	select {
	case <-m.sub.Done():
		following = "forgotten"
	default:
	}
	m.seen = append(m.seen, string(got.State)+", "+following)
	return m.err
}

func requireEnded(t *testing.T, sub *captions.Subscription, msg string) {
	t.Helper()
	select {
	case <-sub.Done():
	default:
		t.Fatal(msg)
	}
}

type lifecycleBundle struct {
	life  *Lifecycle
	st    *store.Store
	hub   *captions.Hub
	media *media
	m     store.Meeting
}

func setupLifecycle(t *testing.T, d store.Dialect) *lifecycleBundle {
	t.Helper()
	st := openStore(t, d)
	hub := captions.NewHub()
	m := liveMeeting(t, st)
	sub := hub.Subscribe(m.ID)
	t.Cleanup(sub.Close)
	md := &media{st: st, sub: sub}
	life, err := New(Deps{Store: st, Pipeline: startPipeline(t, st), Media: md, Captions: hub})
	require.NoError(t, err)
	return &lifecycleBundle{life: life, st: st, hub: hub, media: md, m: m}
}

func TestEndingAMeetingEndsItInThePipelineThenClosesItsMediaThenForgetsItsCaptions(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			b := setupLifecycle(t, d)
			ended, err := b.life.EndMeeting(context.Background(), b.m.ID)
			require.NoError(t, err)
			require.Equal(t, store.MeetingEnded, ended.State)
			require.Equal(t, []string{"ended, followed"}, b.media.seen,
				"the media closes once the pipeline has ended the meeting, while its captions are still followed")
			requireEnded(t, b.media.sub, "the caption stream ends with the meeting")
			require.False(t, b.hub.Enabled(b.m.ID))
		})
	}
}

func TestAMeetingThatCannotEndIsRefusedBeforeAnythingIsTouched(t *testing.T) {
	t.Parallel()
	b := setupLifecycle(t, store.SQLite)
	ctx := context.Background()
	_, err := b.life.EndMeeting(ctx, b.m.ID)
	require.NoError(t, err)
	again := b.hub.Subscribe(b.m.ID)
	defer again.Close()

	_, err = b.life.EndMeeting(ctx, b.m.ID)
	var te *store.TransitionError
	require.ErrorAs(t, err, &te)
	require.Equal(t, store.MeetingEnded, te.To)
	require.NotEqual(t, store.MeetingLive, te.From)
	require.Len(t, b.media.seen, 1, "the media is not asked again")
	select {
	case <-again.Done():
		t.Fatal("captions of a meeting that did not end now are left alone")
	default:
	}

	_, err = b.life.EndMeeting(ctx, "mtg_nosuchmeeting")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestAMeetingWhoseMediaFailsToCloseHasEndedAndSaysSo(t *testing.T) {
	t.Parallel()
	b := setupLifecycle(t, store.SQLite)
	b.media.err = errors.New("a session would not close")
	m, err := b.life.EndMeeting(context.Background(), b.m.ID)
	require.ErrorIs(t, err, b.media.err)
	require.ErrorContains(t, err, "close the meeting's media")
	require.Equal(t, store.MeetingEnded, m.State)
	requireEnded(t, b.media.sub, "its caption streams end all the same")
}

func TestARerunRunsThePipelineAgainOverAnEndedMeeting(t *testing.T) {
	t.Parallel()
	b := setupLifecycle(t, store.SQLite)
	ctx := context.Background()
	_, err := b.life.Rerun(ctx, b.m.ID)
	var te *store.TransitionError
	require.ErrorAs(t, err, &te, "a live meeting is not re-run")

	_, err = b.life.EndMeeting(ctx, b.m.ID)
	require.NoError(t, err)
	m, err := b.life.Rerun(ctx, b.m.ID)
	require.NoError(t, err)
	require.Equal(t, b.m.Run+1, m.Run)
}

func TestALifecycleNeedsItsParts(t *testing.T) {
	t.Parallel()
	st := openStore(t, store.SQLite)
	_, err := New(Deps{Store: st, Media: &media{}})
	require.Error(t, err)
}
