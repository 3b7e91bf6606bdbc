package jobs

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/faulttest"
	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

// setupClocked is setupWith whose store reads the time from clock, so a
// test decides how long its meeting lasts.
func setupClocked(t *testing.T, d store.Dialect, opts transcribetest.Options, clock *atomic.Int64) *testBundle {
	t.Helper()
	b, start := newBundle(t, d, bundleOptions{double: opts, now: func() time.Time { return time.UnixMilli(clock.Load()) }})
	start()
	return b
}

// blobFile copies a stored object to a file for the command-line tools.
func blobFile(t *testing.T, blobs blob.Store, key string) string {
	t.Helper()
	rc, err := blobs.Get(context.Background(), key)
	require.NoError(t, err)
	defer rc.Close()
	path := filepath.Join(t.TempDir(), filepath.Base(key))
	f, err := os.Create(path)
	require.NoError(t, err)
	_, err = io.Copy(f, rc)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	return path
}

type probed struct {
	Streams []struct {
		CodecName   string         `json:"codec_name"`
		Disposition map[string]int `json:"disposition"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

func probe(t *testing.T, path string) probed {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", path).CombinedOutput()
	require.NoError(t, err, "%s", out)
	var p probed
	require.NoError(t, json.Unmarshal(out, &p), "%s", out)
	return p
}

// TestFaultArchiveIsBuiltWithTheSpeechBackendDown: with every
// transcription request failing, the whole-meeting files still come as
// soon as the meeting has ended and its recordings are stored, while the
// minutes wait: one WebM stream per speaker (only the first one default),
// the mix, and each speaker's FLAC exactly as long as the meeting.
func TestFaultArchiveIsBuiltWithTheSpeechBackendDown(t *testing.T) {
	t.Parallel()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			var clock atomic.Int64
			clock.Store(time.Now().UnixMilli())
			// The backend holds every request: the minutes wait as long
			// as the test runs, however slow the machine.
			b := setupClocked(t, d, transcribetest.Options{Delay: 10 * time.Minute}, &clock)
			t.Cleanup(b.double.Release) // before the pipeline stops, which waits for its jobs
			ctx := context.Background()
			m, err := b.store.CreateMeeting(ctx, "t", "en")
			require.NoError(t, err)
			for _, who := range []string{"alice", "bob"} {
				_, err = b.store.Join(ctx, m.ID, who, who)
				require.NoError(t, err)
			}
			tracks := []store.Track{b.storeFixtureTrack(t, m.ID, "alice", 700), b.storeFixtureTrack(t, m.ID, "bob", 2500)}
			const meetingLength = 30 * time.Second
			clock.Add(meetingLength.Milliseconds())
			_, err = b.p.EndMeeting(ctx, m.ID)
			require.NoError(t, err)

			keys := []string{layout.ArchiveWebM(m.ID), layout.ArchiveMix(m.ID)}
			for _, tr := range tracks {
				keys = append(keys, layout.SpeakerAudio(m.ID, tr.ID))
			}
			require.Eventually(t, func() bool {
				for _, k := range keys {
					if _, err := b.blobs.Stat(ctx, k); err != nil {
						return false
					}
				}
				return true
			}, 40*time.Second, 50*time.Millisecond, "the whole-meeting files must not wait for transcription")
			cur, err := b.store.Meeting(ctx, m.ID)
			require.NoError(t, err)
			require.Equal(t, store.MeetingEnded, cur.State, "the minutes still wait for the backend")
			failed := b.double.Requests()
			require.Positive(t, failed, "the backend was asked, and never answered")

			webm := probe(t, blobFile(t, b.blobs, keys[0]))
			require.Len(t, webm.Streams, 2)
			require.Equal(t, 1, webm.Streams[0].Disposition["default"])
			require.Equal(t, 0, webm.Streams[1].Disposition["default"], "only the first speaker is the default")
			lost := len(tracks) - len(webm.Streams)
			require.Equal(t, "flac", probe(t, blobFile(t, b.blobs, keys[1])).Streams[0].CodecName)
			for _, k := range keys[2:] {
				p := probe(t, blobFile(t, b.blobs, k))
				dur, err := strconv.ParseFloat(p.Format.Duration, 64)
				require.NoError(t, err)
				require.InDelta(t, meetingLength.Seconds(), dur, 0.001, "%s lasts as long as the meeting", k)
			}
			faulttest.Report(t, faulttest.FaultsInjected, float64(failed))
			faulttest.Report(t, faulttest.RecordingsLost, float64(lost))
		})
	}
}

// A re-run keeps the whole-meeting files as they are (a client may be
// downloading them), and rebuilds one that was found damaged.
func TestArchiveSurvivesAReRun(t *testing.T) {
	t.Parallel()
	b := setup(t, store.SQLite)
	ctx := context.Background()
	m, err := b.store.CreateMeeting(ctx, "t", "en")
	require.NoError(t, err)
	_, err = b.store.Join(ctx, m.ID, "alice", "Alice")
	require.NoError(t, err)
	tr := b.storeFixtureTrack(t, m.ID, "alice", 700)
	_, err = b.p.EndMeeting(ctx, m.ID)
	require.NoError(t, err)
	ready := func() bool {
		cur, err := b.store.Meeting(ctx, m.ID)
		require.NoError(t, err)
		if cur.State != store.MeetingReady {
			return false
		}
		// The speaker's file is the archive's last: once it is there,
		// the build is over (the mix's own damage mark, set while the
		// build ran, could be cleared by it).
		_, err = b.blobs.Stat(ctx, layout.SpeakerAudio(m.ID, tr.ID))
		return err == nil
	}
	require.Eventually(t, ready, 30*time.Second, 50*time.Millisecond)
	webm, err := b.blobs.Stat(ctx, layout.ArchiveWebM(m.ID))
	require.NoError(t, err)
	mix, err := b.blobs.Stat(ctx, layout.ArchiveMix(m.ID))
	require.NoError(t, err)
	// The mix was found damaged (say, by a download).
	require.NoError(t, b.store.MarkDamaged(ctx, m.ID, mix.Key, "test: found damaged"))

	rerun, err := b.p.Rerun(ctx, m.ID)
	require.NoError(t, err)
	require.Equal(t, 1, rerun.Run)
	require.Eventually(t, func() bool {
		d, err := b.store.Damaged(ctx, m.ID)
		require.NoError(t, err)
		return len(d) == 0 && ready()
	}, 30*time.Second, 50*time.Millisecond, "the damaged mix is rebuilt")
	webm2, err := b.blobs.Stat(ctx, layout.ArchiveWebM(m.ID))
	require.NoError(t, err)
	require.Equal(t, webm, webm2, "the sound WebM is kept as it was")
	mix2, err := b.blobs.Stat(ctx, layout.ArchiveMix(m.ID))
	require.NoError(t, err)
	require.Equal(t, mix.SHA256, mix2.SHA256, "the rebuilt mix holds the same audio")
	require.NotEqual(t, mix.Modified, mix2.Modified, "the mix was written again")
}
