package meeting

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/captions"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/jobs"
	"github.com/greffier/greffier/transcribe"
	"github.com/greffier/greffier/transcribe/kyutaitest"
)

// silence is one 20 ms Opus frame of silence, as a muted browser sends it.
var silence = []byte{0xf8, 0xff, 0xfe}

type liveBundle struct {
	st    *store.Store
	p     *jobs.Pipeline
	m     store.Meeting
	track store.Track
}

// setupLive records the start of alice's track in a live meeting.
func setupLive(t *testing.T) *liveBundle {
	t.Helper()
	ctx := context.Background()
	st := openStore(t, store.SQLite)
	p := startPipeline(t, st)
	m := liveMeeting(t, st)
	tr := store.Track{ID: store.NewID("trk"), MeetingID: m.ID, Identity: "alice", SSRC: 1, StartMS: 400}
	require.NoError(t, jobs.NewCatalog(p).CreateTrack(ctx, tr))
	return &liveBundle{st: st, p: p, m: m, track: tr}
}

// hear plays seconds of silence to l and ends the track.
func (b *liveBundle) hear(l interface {
	Block(int64, []byte, int)
	Close(bool)
}, seconds int) {
	for ms := int64(0); ms < int64(seconds)*1000; ms += 20 {
		l.Block(ms, silence, 127)
	}
	l.Close(true)
}

func (b *liveBundle) speechDetected(t *testing.T) bool {
	t.Helper()
	tr, err := b.st.Track(context.Background(), b.track.ID)
	require.NoError(t, err)
	return tr.SpeechDetected
}

func TestWithoutCaptionsATrackIsHeardByTheLivePathAlone(t *testing.T) {
	t.Parallel()
	b := setupLive(t)
	live, err := NewLive(b.st, b.p, nil, nil)
	require.NoError(t, err)
	l := live.Listen(b.track, 0)
	require.IsType(t, &jobs.LiveTrack{}, l)
	b.hear(l, 1)
	require.True(t, b.speechDetected(t), "the live path heard the whole track")
}

func TestWithCaptionsATrackIsHeardByCaptionsAsTheMeetingWantsAndByTheLivePath(t *testing.T) {
	t.Parallel()
	b := setupLive(t)
	require.NoError(t, b.st.SetCaptions(context.Background(), b.m.ID, true))
	srv := kyutaitest.NewServer(kyutaitest.Options{})
	t.Cleanup(srv.Close)
	k, err := transcribe.NewKyutai(transcribe.KyutaiConfig{URL: srv.URL()})
	require.NoError(t, err)
	hub := captions.NewHub()
	live, err := NewLive(b.st, b.p, captions.NewCaptioner(hub, captions.Kyutai{K: k}, discard()), hub)
	require.NoError(t, err)

	l := live.Listen(b.track, 6500*time.Microsecond)
	require.True(t, hub.Enabled(b.m.ID), "the meeting's stored setting reaches the hub")
	b.hear(l, 1)
	require.Equal(t, 1, srv.Handshakes(), "captions heard the track")
	require.True(t, b.speechDetected(t), "the live path heard the whole track")
}

func TestLiveNeedsACaptionerAndAHubTogether(t *testing.T) {
	t.Parallel()
	st := openStore(t, store.SQLite)
	_, err := NewLive(st, nil, nil, nil)
	require.Error(t, err)
	_, err = NewLive(st, startPipeline(t, st), nil, captions.NewHub())
	require.Error(t, err)
}
