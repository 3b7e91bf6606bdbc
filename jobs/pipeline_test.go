package jobs

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/faulttest"
	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/testenv"
	"github.com/greffier/greffier/minutes"
	"github.com/greffier/greffier/transcribe"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

const fixtures = "../testdata/meeting"

type testBundle struct {
	p      *Pipeline
	cat    *Catalog
	store  *store.Store
	blobs  blob.Store
	double *transcribetest.Server
}

func setup(t *testing.T, d store.Dialect) *testBundle {
	t.Helper()
	return setupWith(t, d, transcribetest.Options{}, openAI(t), Config{})
}

// openAI reaches the transcription double through the OpenAI client.
func openAI(t *testing.T) func(*transcribetest.Server) Transcriber {
	return func(double *transcribetest.Server) Transcriber {
		tr, err := transcribe.NewOpenAI(transcribe.OpenAIConfig{BaseURL: double.BaseURL()})
		require.NoError(t, err)
		return tr
	}
}

// setupWith runs a pipeline on a fresh database and disk store, against a
// transcription double with opts, reached through the Transcriber that
// backend builds; cfg's zero fields get fast test defaults.
func setupWith(t *testing.T, d store.Dialect, opts transcribetest.Options, backend func(*transcribetest.Server) Transcriber, cfg Config) *testBundle {
	t.Helper()
	b, start := newBundle(t, d, bundleOptions{double: opts, backend: backend, cfg: cfg})
	start()
	return b
}

// bundleOptions say how newBundle builds a pipeline; zero fields take the
// tests' defaults.
type bundleOptions struct {
	// double configures the transcription double, reached through backend
	// (default the OpenAI client); transcriber, when set, replaces both.
	double      transcribetest.Options
	backend     func(*transcribetest.Server) Transcriber
	transcriber Transcriber
	cfg         Config
	// now is the store's clock (default time.Now).
	now func() time.Time
	// blobs, when set, wraps the disk blob store the pipeline is given
	// (to slow it down, say).
	blobs func(blob.Store) blob.Store
}

// newBundle builds a pipeline on a fresh database and disk store without
// starting it, so a test can arrange its jobs first; start runs it (and
// stops it at the test's end).
func newBundle(t *testing.T, d store.Dialect, o bundleOptions) (b *testBundle, start func()) {
	t.Helper()
	ctx := context.Background()
	scfg := store.Config{SQLitePath: filepath.Join(t.TempDir(), "g.db"), Now: o.now}
	if d == store.Postgres {
		scfg = store.Config{PostgresURL: testenv.Postgres(t), Now: o.now}
	}
	st, err := store.Open(ctx, scfg)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	blobs, err := blob.NewDisk(t.TempDir())
	require.NoError(t, err)
	b = &testBundle{store: st, blobs: blobs}
	tr := o.transcriber
	if tr == nil {
		b.double = transcribetest.NewServer(o.double)
		t.Cleanup(b.double.Close)
		backend := o.backend
		if backend == nil {
			backend = openAI(t)
		}
		tr = backend(b.double)
	}
	cfg := o.cfg
	cfg.PollInterval, cfg.RetryBase = 50*time.Millisecond, 50*time.Millisecond
	given := blob.Store(blobs)
	if o.blobs != nil {
		given = o.blobs(blobs)
	}
	b.p, err = New(ctx, cfg, Deps{Store: st, Blobs: given, Transcriber: tr, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	b.cat = NewCatalog(b.p)
	return b, func() {
		require.NoError(t, b.p.Start(ctx))
		t.Cleanup(func() {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, b.p.Stop(sctx))
		})
	}
}

// storeFixtureTrack remuxes a fixture to WebM (as the recorder would have
// written it) and records it as a stored track starting at startMS.
func (b *testBundle) storeFixtureTrack(t *testing.T, meetingID, identity string, startMS int64) store.Track {
	t.Helper()
	ctx := context.Background()
	tr := store.Track{ID: store.NewID("trk"), MeetingID: meetingID, Identity: identity, SSRC: 1, StartMS: startMS}
	require.NoError(t, b.cat.CreateTrack(ctx, tr))
	return b.finishFixtureTrack(t, tr)
}

// finishFixtureTrack stores identity's fixture as the recording of tr, a
// track being recorded, and records it stored.
func (b *testBundle) finishFixtureTrack(t *testing.T, tr store.Track) store.Track {
	t.Helper()
	f, err := os.Open(fixtureWebM(t, tr.Identity))
	require.NoError(t, err)
	defer f.Close()
	ctx := context.Background()
	tr.BlobKey = layout.Track(tr.MeetingID, tr.ID)
	info, err := b.blobs.Put(ctx, tr.BlobKey, f, -1)
	require.NoError(t, err)
	tr.State, tr.DurationMS, tr.Size, tr.SHA256 = store.TrackStored, 9000, info.Size, info.SHA256
	require.NoError(t, b.cat.FinishTrack(ctx, tr))
	return tr
}

// fixtureWebM remuxes a fixture speaker's Ogg Opus into a WebM, as the
// recorder would have stored it, and returns its path.
func fixtureWebM(t *testing.T, identity string) string {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatal("ffmpeg is needed: run scripts/test.sh, which installs it")
	}
	webm := filepath.Join(t.TempDir(), identity+".webm")
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", filepath.Join(fixtures, identity+".opus"), "-c", "copy", webm).CombinedOutput()
	require.NoError(t, err, string(out))
	return webm
}

func TestPipelineWorksWhileTheMeetingRunsAndIsIdempotent(t *testing.T) {
	t.Parallel()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			b := setup(t, d)
			ctx := context.Background()
			script, err := transcribetest.ReadScript(filepath.Join(fixtures, "script.json"))
			require.NoError(t, err)

			m, err := b.store.CreateMeeting(ctx, "t", "en")
			require.NoError(t, err)
			_, err = b.store.Join(ctx, m.ID, "alice", "Alice")
			require.NoError(t, err)
			track := b.storeFixtureTrack(t, m.ID, "alice", 700)

			// Alice left early: her speech is transcribed while the meeting goes on.
			require.Eventually(t, func() bool {
				p, err := b.store.Progress(ctx, m.ID)
				require.NoError(t, err)
				return p.Segments == 2 && p.SegmentsTranscribed == 2
			}, 30*time.Second, 50*time.Millisecond)
			live, err := b.store.Meeting(ctx, m.ID)
			require.NoError(t, err)
			require.Equal(t, store.MeetingLive, live.State, "no minutes before the end")

			_, err = b.p.EndMeeting(ctx, m.ID)
			require.NoError(t, err)
			require.Eventually(t, func() bool {
				cur, err := b.store.Meeting(ctx, m.ID)
				require.NoError(t, err)
				return cur.State == store.MeetingReady
			}, 30*time.Second, 50*time.Millisecond)

			doc := latestMinutes(t, b, m.ID)
			require.Len(t, doc.Turns, 2)
			var want []transcribetest.Utterance
			for _, u := range script.Utterances {
				if u.Speaker == "alice" {
					want = append(want, u)
				}
			}
			for i, u := range want {
				require.Equal(t, u.Text, doc.Turns[i].Text)
				require.InDelta(t, 0.7+u.Start, float64(doc.Turns[i].Start.MS())/1000, 0.1)
				require.InDelta(t, 0.7+u.End, float64(doc.Turns[i].End.MS())/1000, 0.1)
			}

			// Every stage again, as River's at-least-once delivery may do:
			// nothing changes, nothing is sent to the backend twice.
			requests := b.double.Requests()
			segs, err := b.store.SpeechSegments(ctx, m.ID)
			require.NoError(t, err)
			requireWorked := func(res *rivertest.WorkResult, err error) {
				t.Helper()
				require.NoError(t, err)
				require.Equal(t, river.EventKindJobCompleted, res.EventKind)
			}
			requireWorked(work(t, b, &detectWorker{p: b.p}, detectArgs(track, 0), nil))
			for _, s := range segs {
				requireWorked(work(t, b, &transcribeWorker{p: b.p}, TranscribeArgs{MeetingID: m.ID, TrackID: s.TrackID, StartMS: s.StartMS}, nil))
			}
			requireWorked(work(t, b, &assembleWorker{p: b.p}, AssembleArgs{MeetingID: m.ID, Run: 0}, nil))
			// Forcing detection itself to run again (as a re-run of the batch
			// path would) cuts the same segments and keeps their transcripts.
			again, err := b.p.cutSpeech(ctx, track)
			require.NoError(t, err)
			require.Len(t, again, len(segs))
			for i := range again {
				require.Equal(t, segs[i].StartMS, again[i].StartMS)
				require.Equal(t, segs[i].EndMS, again[i].EndMS)
			}
			after, err := b.store.SpeechSegments(ctx, m.ID)
			require.NoError(t, err)
			require.Equal(t, segs, after)
			require.Equal(t, requests, b.double.Requests())
			latest, err := b.store.LatestMinutes(ctx, m.ID)
			require.NoError(t, err)
			require.Equal(t, 1, latest.Version)
			archived, err := b.blobs.Get(ctx, layout.Minutes(m.ID, 1))
			require.NoError(t, err)
			body, err := io.ReadAll(archived)
			archived.Close()
			require.NoError(t, err)
			require.JSONEq(t, string(latest.Body), string(body))
		})
	}
}

func TestCorruptRecordingIsMarkedFailedNotLost(t *testing.T) {
	t.Parallel()
	b := setup(t, store.SQLite)
	ctx := context.Background()
	m, err := b.store.CreateMeeting(ctx, "", "")
	require.NoError(t, err)
	_, err = b.store.Join(ctx, m.ID, "bob", "Bob")
	require.NoError(t, err)
	good := b.storeFixtureTrack(t, m.ID, "alice", 0)
	_ = good
	bad := store.Track{ID: store.NewID("trk"), MeetingID: m.ID, Identity: "bob", StartMS: 100}
	bad.BlobKey = layout.Track(m.ID, bad.ID)
	info, err := b.blobs.Put(ctx, bad.BlobKey, stringsReader("this is not a webm file at all"), -1)
	require.NoError(t, err)
	require.NoError(t, b.cat.CreateTrack(ctx, bad))
	bad.State, bad.DurationMS, bad.Size, bad.SHA256 = store.TrackStored, 4000, info.Size, info.SHA256
	require.NoError(t, b.cat.FinishTrack(ctx, bad))
	_, err = b.p.EndMeeting(ctx, m.ID)
	require.NoError(t, err)

	// The bad track fails for good after its attempts (8, 50 ms apart at
	// first); the minutes still come, and say what is missing.
	require.Eventually(t, func() bool {
		cur, err := b.store.Meeting(ctx, m.ID)
		require.NoError(t, err)
		return cur.State == store.MeetingIncomplete
	}, 60*time.Second, 100*time.Millisecond)
	doc := latestMinutes(t, b, m.ID)
	require.False(t, doc.Complete)
	require.Len(t, doc.Missing, 1)
	require.Equal(t, "bob", doc.Missing[0].Speaker)
	require.Contains(t, doc.Missing[0].Reason, "speech detection")
	require.Len(t, doc.Turns, 2, "alice's speech is all there")
}

func latestMinutes(t *testing.T, b *testBundle, meetingID string) minutes.Document {
	t.Helper()
	v, err := b.store.LatestMinutes(context.Background(), meetingID)
	require.NoError(t, err)
	var doc minutes.Document
	require.NoError(t, jsonUnmarshal(v.Body, &doc))
	return doc
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// TestFaultRecordingGapsReachTheMinutes: a track recovered after a crash
// (its lost end in GapMS) and a track with a stretch the recorder could
// not write (a stated gap) make minutes that list both stretches, with
// their speaker, interval and reason, and do not claim to be complete.
func TestFaultRecordingGapsReachTheMinutes(t *testing.T) {
	t.Parallel()
	b := setup(t, store.SQLite)
	ctx := context.Background()
	m, err := b.store.CreateMeeting(ctx, "", "")
	require.NoError(t, err)
	for _, who := range []string{"alice", "bob"} {
		_, err = b.store.Join(ctx, m.ID, who, who)
		require.NoError(t, err)
	}
	alice := b.storeFixtureTrack(t, m.ID, "alice", 0)
	alice.State, alice.GapMS = store.TrackRecovered, 1500 // the crash lost 1.5 s after the spool's end
	require.NoError(t, b.cat.FinishTrack(ctx, alice))
	bob := b.storeFixtureTrack(t, m.ID, "bob", 200)
	bob.Gaps = []store.TrackGap{{StartMS: 9200, EndMS: 12000, Reason: "the local disk holding the spool is full"}}
	require.NoError(t, b.cat.FinishTrack(ctx, bob))
	_, err = b.p.EndMeeting(ctx, m.ID)
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		cur, err := b.store.Meeting(ctx, m.ID)
		require.NoError(t, err)
		return cur.State == store.MeetingIncomplete
	}, 60*time.Second, 50*time.Millisecond, "minutes with gaps make the meeting incomplete")
	doc := latestMinutes(t, b, m.ID)
	require.False(t, doc.Complete)
	require.Len(t, doc.Missing, 2, "%+v", doc.Missing)
	require.Equal(t, "alice", doc.Missing[0].Speaker)
	require.Equal(t, minutes.Seconds(9000), doc.Missing[0].Start)
	require.Equal(t, minutes.Seconds(10500), doc.Missing[0].End)
	require.Contains(t, doc.Missing[0].Reason, "server stopped")
	require.Equal(t, "bob", doc.Missing[1].Speaker)
	require.Equal(t, minutes.Seconds(9200), doc.Missing[1].Start)
	require.Equal(t, minutes.Seconds(12000), doc.Missing[1].End)
	require.Contains(t, doc.Missing[1].Reason, "disk holding the spool is full")
	require.NotEmpty(t, doc.Turns, "what was recorded is all there")

	faulttest.Report(t, faulttest.FaultsInjected, 2)
	tracks, err := b.store.Tracks(ctx, m.ID)
	require.NoError(t, err)
	lost := 0 // neither stored nor stated failed
	for _, tr := range tracks {
		if tr.State == store.TrackRecording {
			lost++
		}
	}
	faulttest.Report(t, faulttest.RecordingsLost, float64(lost))
	require.Zero(t, lost)
}
