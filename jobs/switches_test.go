package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/minutes"
)

// TestSpeechWhileTranscriptionIsOffIsNotSentAndTheMinutesSayWhy: the host
// had transcription off for the first 4 s of alice's track. Her first
// sentence (1.0–2.5 s) is never sent to the speech backend; her second
// (5.5–6.6 s) is transcribed; the minutes state the stretch as not
// transcribed, apart from what is missing, and are complete.
func TestSpeechWhileTranscriptionIsOffIsNotSentAndTheMinutesSayWhy(t *testing.T) {
	t.Parallel()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			b := setup(t, d)
			ctx := context.Background()
			m, err := b.store.CreateMeeting(ctx, "Huis clos", "en")
			require.NoError(t, err)
			_, err = b.store.AddControl(ctx, store.Control{MeetingID: m.ID, Kind: store.ControlTranscription, Enabled: false, AtMS: 0})
			require.NoError(t, err)
			_, err = b.store.Join(ctx, m.ID, "alice", "Alice Martin")
			require.NoError(t, err)
			_, err = b.store.AddControl(ctx, store.Control{MeetingID: m.ID, Kind: store.ControlTranscription, Enabled: true, AtMS: 4000})
			require.NoError(t, err)
			b.storeFixtureTrack(t, m.ID, "alice", 0)
			_, err = b.p.EndMeeting(ctx, m.ID)
			require.NoError(t, err)
			require.Eventually(t, func() bool {
				cur, err := b.store.Meeting(ctx, m.ID)
				require.NoError(t, err)
				return cur.State == store.MeetingReady || cur.State == store.MeetingIncomplete
			}, 30*time.Second, 50*time.Millisecond)

			var heard []string
			for _, r := range b.double.Received() {
				heard = append(heard, r.Heard)
			}
			require.Equal(t, []string{"india juliett kilo"}, heard, "only speech after transcription started is sent")
			// Nor is its audio cut out and stored for a backend.
			speech, err := b.blobs.List(ctx, "meetings/"+m.ID+"/speech/")
			require.NoError(t, err)
			require.Len(t, speech, 1, "speech audio: %+v", speech)
			doc := latestMinutes(t, b, m.ID)
			require.True(t, doc.Complete, "missing: %+v", doc.Missing)
			require.Len(t, doc.Turns, 1)
			require.Equal(t, "india juliett kilo", doc.Turns[0].Text)
			// The stretch ends when transcription started, or with the
			// meeting (the test's meeting lasts less than its track).
			ended, err := b.store.Meeting(ctx, m.ID)
			require.NoError(t, err)
			end := min(4000, ended.EndedAt.Sub(ended.StartedAt).Milliseconds())
			require.Equal(t, []minutes.Gap{{Start: 0, End: minutes.Seconds(end), Reason: minutes.ReasonNotTranscribed}}, doc.NotRecorded)
		})
	}
}
