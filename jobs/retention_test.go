package jobs

import (
	"bytes"
	"context"
	"errors"
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

// TestServerDefaultRetentionAppliesToMeetingsWithoutTheirOwn: the
// server's default periods (GREFFIER_RETAIN_RECORDINGS and _TRANSCRIPTS)
// expire the meetings that set none, each kind on its own, while a
// meeting's own period, forever included, wins over the default.
func TestServerDefaultRetentionAppliesToMeetingsWithoutTheirOwn(t *testing.T) {
	t.Parallel()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			b, _ := newBundle(t, d, bundleOptions{cfg: Config{RetainRecordings: time.Millisecond, RetainTranscripts: time.Millisecond}})
			ctx := context.Background()
			forever := time.Duration(0)
			finished := func(c store.RetentionChange) store.Meeting {
				m, err := b.store.CreateMeeting(ctx, "Conseil", "")
				require.NoError(t, err)
				_, err = b.store.Transition(ctx, m.ID, store.MeetingEnded, "")
				require.NoError(t, err)
				_, err = b.store.Transition(ctx, m.ID, store.MeetingReady, "")
				require.NoError(t, err)
				for _, k := range []string{layout.Track(m.ID, "trk_1"), layout.ArchiveMix(m.ID), layout.Minutes(m.ID, 1)} {
					_, err := b.blobs.Put(ctx, k, bytes.NewReader([]byte("x")), 1)
					require.NoError(t, err)
				}
				_, _, err = b.store.SaveMinutes(ctx, m.ID, "d1", []byte(`{}`))
				require.NoError(t, err)
				_, err = b.store.SetRetention(ctx, m.ID, c)
				require.NoError(t, err)
				return m
			}
			byDefault := finished(store.RetentionChange{})
			keepsRecordings := finished(store.RetentionChange{Recordings: &forever})
			keepsTranscripts := finished(store.RetentionChange{Transcripts: &forever})
			held := finished(store.RetentionChange{LegalHold: new(true)})

			has := func(m store.Meeting) (recordings, transcripts bool) {
				infos, err := b.blobs.List(ctx, layout.MeetingPrefix(m.ID))
				require.NoError(t, err)
				for _, i := range infos {
					if i.Key == layout.Minutes(m.ID, 1) {
						continue
					}
					recordings = true
				}
				_, err = b.store.LatestMinutes(ctx, m.ID)
				if !errors.Is(err, store.ErrNotFound) {
					require.NoError(t, err)
					transcripts = true
				}
				return recordings, transcripts
			}
			require.Eventually(t, func() bool {
				n, err := b.p.SweepRetention(ctx)
				require.NoError(t, err)
				return n > 0
			}, 10*time.Second, 10*time.Millisecond)
			// One sweep may see a meeting before its period is over (a
			// millisecond): sweep until nothing more is due.
			require.Eventually(t, func() bool {
				n, err := b.p.SweepRetention(ctx)
				require.NoError(t, err)
				return n == 0
			}, 10*time.Second, 10*time.Millisecond)
			for _, c := range []struct {
				name                    string
				m                       store.Meeting
				recordings, transcripts bool
			}{
				{"the defaults", byDefault, false, false},
				{"its own recordings period (forever)", keepsRecordings, true, false},
				{"its own transcripts period (forever)", keepsTranscripts, false, true},
				{"legal hold", held, true, true},
			} {
				rec, tr := has(c.m)
				require.Equal(t, c.recordings, rec, "%s: recordings kept", c.name)
				require.Equal(t, c.transcripts, tr, "%s: transcripts kept", c.name)
			}
		})
	}
}
