package jobs

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/internal/store"
)

func TestRetentionSweepDeletesExpiredRecordingsThenTranscriptsAndSparesHeldMeetings(t *testing.T) {
	t.Parallel()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			b := setupIdle(t, d)
			ctx := context.Background()
			// A finished meeting with an object of every kind.
			finished := func(hold bool) store.Meeting {
				m, err := b.store.CreateMeeting(ctx, "Conseil", "")
				require.NoError(t, err)
				_, err = b.store.Transition(ctx, m.ID, store.MeetingEnded, "")
				require.NoError(t, err)
				_, err = b.store.Transition(ctx, m.ID, store.MeetingReady, "")
				require.NoError(t, err)
				for _, k := range []string{layout.Track(m.ID, "trk_1"), layout.SpeechAudio(m.ID, "trk_1", 0), layout.ArchiveMix(m.ID),
					layout.RecordingJournal(m.ID, "trk_1"), layout.Minutes(m.ID, 1)} {
					_, err := b.blobs.Put(ctx, k, bytes.NewReader([]byte("x")), 1)
					require.NoError(t, err)
				}
				_, _, err = b.store.SaveMinutes(ctx, m.ID, "d1", []byte(`{}`))
				require.NoError(t, err)
				soon := time.Millisecond
				_, err = b.store.SetRetention(ctx, m.ID, store.RetentionChange{Recordings: &soon, LegalHold: &hold})
				require.NoError(t, err)
				return m
			}
			m, held := finished(false), finished(true)
			keys := func(id string) []string {
				var out []string
				for _, p := range []string{layout.MeetingPrefix(id), layout.RecordingJournals + id + "/"} {
					infos, err := b.blobs.List(ctx, p)
					require.NoError(t, err)
					for _, i := range infos {
						out = append(out, i.Key)
					}
				}
				return out
			}
			heldKeys := keys(held.ID)
			require.Len(t, heldKeys, 5)
			require.Eventually(t, func() bool {
				n, err := b.p.SweepRetention(ctx)
				require.NoError(t, err)
				return n == 1
			}, 10*time.Second, 10*time.Millisecond)
			require.Equal(t, []string{layout.Minutes(m.ID, 1)}, keys(m.ID), "recordings go, the minutes stay (transcripts: forever)")
			_, err := b.store.LatestMinutes(ctx, m.ID)
			require.NoError(t, err)
			n, err := b.p.SweepRetention(ctx)
			require.NoError(t, err)
			require.Zero(t, n, "a second sweep finds nothing more")

			soon := time.Millisecond
			_, err = b.store.SetRetention(ctx, m.ID, store.RetentionChange{Transcripts: &soon})
			require.NoError(t, err)
			require.Eventually(t, func() bool {
				n, err := b.p.SweepRetention(ctx)
				require.NoError(t, err)
				return n == 1
			}, 10*time.Second, 10*time.Millisecond)
			require.Empty(t, keys(m.ID))
			_, err = b.store.LatestMinutes(ctx, m.ID)
			require.ErrorIs(t, err, store.ErrNotFound)
			r, err := b.store.Retention(ctx, m.ID)
			require.NoError(t, err)
			require.False(t, r.RecordingsExpiredAt.IsZero())
			require.False(t, r.TranscriptsExpiredAt.IsZero())

			require.Equal(t, heldKeys, keys(held.ID), "legal hold keeps everything")
			_, err = b.store.LatestMinutes(ctx, held.ID)
			require.NoError(t, err)

			// A re-run needs the recordings.
			_, err = b.p.Rerun(ctx, m.ID)
			require.ErrorIs(t, err, store.ErrExpired)
		})
	}
}
