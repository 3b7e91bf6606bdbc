package jobs

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/internal/store"
)

// TestDetectionFinishesWhatTheLivePathStarted: the live path stored and
// transcribed the first sentence, cut the second a frame off from where
// the whole file puts it, then failed. Detection over the file keeps the
// first transcript (its job is done and would not run again), replaces
// the stray segment, and transcribes only what was missing.
func TestDetectionFinishesWhatTheLivePathStarted(t *testing.T) {
	t.Parallel()
	b := setupIdle(t, store.SQLite)
	ctx := context.Background()
	m, err := b.store.CreateMeeting(ctx, "t", "en")
	require.NoError(t, err)
	_, err = b.store.Join(ctx, m.ID, "alice", "Alice")
	require.NoError(t, err)

	// The track, stored without the pipeline hearing of it.
	f, err := os.Open(fixtureWebM(t, "alice"))
	require.NoError(t, err)
	defer f.Close()
	tr := store.Track{ID: store.NewID("trk"), MeetingID: m.ID, Identity: "alice", SSRC: 1, StartMS: 700}
	tr.BlobKey = layout.Track(m.ID, tr.ID)
	info, err := b.blobs.Put(ctx, tr.BlobKey, f, -1)
	require.NoError(t, err)
	require.NoError(t, b.store.CreateTrack(ctx, tr))
	tr.State, tr.DurationMS, tr.Size, tr.SHA256 = store.TrackStored, 9000, info.Size, info.SHA256
	require.NoError(t, b.store.FinishTrack(ctx, tr))

	segs, err := b.p.cutSpeech(ctx, tr)
	require.NoError(t, err)
	require.Len(t, segs, 2)
	require.NoError(t, b.store.UpsertSpeechSegment(ctx, segs[0]))
	require.NoError(t, b.store.SaveTranscript(ctx, tr.ID, segs[0].StartMS, "heard live", "en", nil))
	stray := segs[1]
	stray.StartMS += 20
	require.NoError(t, b.store.UpsertSpeechSegment(ctx, stray))

	res, err := work(t, b, &detectWorker{p: b.p}, detectArgs(tr, 0), nil)
	require.NoError(t, err)
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	queued := b.queued(t, TranscribeArgs{}.Kind())
	require.Len(t, queued, 1, "only the missing sentence is to be transcribed")
	var args TranscribeArgs
	require.NoError(t, json.Unmarshal(queued[0].EncodedArgs, &args))
	require.Equal(t, segs[1].StartMS, args.StartMS)
	res, err = work(t, b, &transcribeWorker{p: b.p}, args, nil)
	require.NoError(t, err)
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)

	got, err := b.store.SpeechSegments(ctx, m.ID)
	require.NoError(t, err)
	require.Len(t, got, 2, "the stray segment is gone")
	require.Equal(t, segs[0].StartMS, got[0].StartMS)
	require.Equal(t, "heard live", got[0].Text, "kept, not transcribed again")
	require.Equal(t, segs[1].StartMS, got[1].StartMS)
	require.NotEmpty(t, got[1].Text)
	require.Equal(t, 1, b.double.Requests(), "only the missing sentence went to the backend")
}
