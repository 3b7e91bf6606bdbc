package jobs

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

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
	// The track, stored without the pipeline hearing of it.
	m, tr := b.liveMeeting(t)

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
