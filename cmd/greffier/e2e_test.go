package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/diarize/diarizetest"
	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/testenv"
	"github.com/greffier/greffier/jobs"
	"github.com/greffier/greffier/minutes"
	"github.com/greffier/greffier/sfu/sfutest"
	"github.com/greffier/greffier/summarize/summarizetest"
	"github.com/greffier/greffier/transcribe/kyutaitest"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

const fixtures = "../../testdata/meeting"

type testBundle struct {
	app    *App
	url    string
	token  string
	double *transcribetest.Server
	chat   *summarizetest.Server
	kyutai *kyutaitest.Server
	cfg    Config
	// stopped is set once stop ran, so that cleanup does not stop again.
	stopped bool
}

type setupOptions struct {
	scaleOut    bool              // Postgres and S3 instead of the embedded defaults
	s3          *testenv.S3Server // with scaleOut: this S3 server instead of the shared one
	backend     transcribetest.Options
	sendWAV     bool // the transcription backend reads WAV only
	maxAttempts int
	// snoozeBudget overrides how long segments wait for a down backend.
	snoozeBudget time.Duration
	// summary starts a chat double and configures summaries.
	summary *summarizetest.Options
	// captions starts a streaming speech double and configures captions.
	captions *kyutaitest.Options
	// diarize starts a pyannote-style double and configures diarization.
	diarize *diarizetest.Options
	// configure changes the configuration last, before it is validated.
	configure func(*Config)
	// strictWebhooks refuses webhooks to private addresses, as in
	// production; by default tests allow them (their receivers listen on
	// loopback).
	strictWebhooks bool
	// idleEndAfter, when set, ends meetings nobody is connected to.
	idleEndAfter time.Duration
	// dataDir, when set, is the data directory (a restart reuses one).
	dataDir string
	// spoolMinFree replaces the free space the spool disk needs.
	spoolMinFree ByteSize
	// logs, when set, receives the server's log at info, in JSON.
	logs io.Writer
}

// setup starts a whole Greffier in-process on loopback.
func setup(t *testing.T, opts setupOptions) *testBundle {
	t.Helper()
	double := transcribetest.NewServer(opts.backend)
	t.Cleanup(double.Close)
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	if opts.dataDir != "" {
		cfg.DataDir = opts.dataDir
	}
	cfg.WebhookAllowPrivate = !opts.strictWebhooks
	if opts.idleEndAfter > 0 {
		cfg.IdleEndAfter = opts.idleEndAfter
	}
	if opts.spoolMinFree != 0 {
		cfg.SpoolMinFree = opts.spoolMinFree
	}
	cfg.HTTPAddr, cfg.MediaAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.TranscribeURL = double.BaseURL()
	cfg.TranscribeSendWAV = opts.sendWAV
	cfg.JobPollInterval = 50 * time.Millisecond
	cfg.JobRetryBase = 50 * time.Millisecond
	cfg.TranscribeBreakerCoolDown = 200 * time.Millisecond
	if opts.maxAttempts > 0 {
		cfg.JobMaxAttempts = opts.maxAttempts
	}
	if opts.snoozeBudget > 0 {
		cfg.JobSnoozeBudget = opts.snoozeBudget
	}
	if opts.scaleOut {
		cfg.PostgresURL = testenv.Postgres(t)
		var s3 blob.S3Config
		if opts.s3 != nil {
			s3 = opts.s3.NewBucket(t)
		} else {
			s3 = testenv.S3(t)
		}
		cfg.S3Endpoint, cfg.S3Bucket, cfg.S3AccessKey, cfg.S3SecretKey = s3.Endpoint, s3.Bucket, s3.AccessKey, s3.SecretKey
	}
	var chat *summarizetest.Server
	if opts.summary != nil {
		chat = summarizetest.NewServer(*opts.summary)
		t.Cleanup(chat.Close)
		cfg.SummaryURL, cfg.SummaryModel = chat.BaseURL(), "test-chat"
	}
	if opts.diarize != nil {
		dd := diarizetest.NewServer(*opts.diarize)
		t.Cleanup(dd.Close)
		cfg.DiarizeURL, cfg.DiarizePollInterval = dd.URL(), 50*time.Millisecond
	}
	var kyutai *kyutaitest.Server
	if opts.captions != nil {
		kyutai = kyutaitest.NewServer(*opts.captions)
		t.Cleanup(kyutai.Close)
		cfg.CaptionsURL = kyutai.URL()
	}
	if opts.configure != nil {
		opts.configure(&cfg)
	}
	require.NoError(t, cfg.validate())
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if opts.logs != nil {
		logger = slog.New(slog.NewJSONHandler(opts.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	ctx := context.Background()
	app, err := NewApp(ctx, cfg, logger)
	require.NoError(t, err)
	require.NoError(t, app.Start(ctx))
	b := &testBundle{app: app, url: app.URL(), token: app.apiToken, double: double, chat: chat, kyutai: kyutai, cfg: cfg}
	t.Cleanup(func() {
		if !b.stopped {
			b.stop(t)
		}
	})
	return b
}

// stop stops the App as a shutdown does.
func (b *testBundle) stop(t *testing.T) {
	t.Helper()
	b.stopped = true
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, b.app.Stop(sctx))
}

// call sends a JSON request with the API token and decodes the answer into out.
func (b *testBundle) call(t testing.TB, method, path string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, b.url+path, rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+b.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil {
		if s, ok := out.(*string); ok {
			*s = string(raw)
		} else {
			require.NoError(t, json.Unmarshal(raw, out), string(raw))
		}
	}
	return resp.StatusCode
}

type meetingAnswer struct {
	ID        string     `json:"id"`
	State     string     `json:"state"`
	StartedAt *time.Time `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at"`
	Failure   string     `json:"failure"`
	Import    *struct {
		Files     int `json:"files"`
		FilesDone int `json:"files_done"`
	} `json:"import"`
	Join []struct {
		Identity string `json:"identity"`
		Token    string `json:"token"`
	} `json:"join"`
	Pipeline *struct {
		Tracks              int `json:"tracks"`
		Segments            int `json:"segments"`
		SegmentsTranscribed int `json:"segments_transcribed"`
		SegmentsFailed      int `json:"segments_failed"`
		Failures            []struct {
			Stage, Reason string
		} `json:"failures"`
	} `json:"pipeline"`
}

func TestMeetingBecomesMinutes(t *testing.T) {
	t.Parallel()
	for name, scaleOut := range map[string]bool{"sqlite+disk": false, "postgres+s3": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testMeetingBecomesMinutes(t, setup(t, setupOptions{scaleOut: scaleOut}))
		})
	}
}

type holdOptions struct {
	// whileLive, when set, is how many segments must be transcribed
	// before the meeting is ended.
	whileLive int
	// webhook, when set, is the meeting's webhook URL.
	webhook string
	// connected, when set, is called once both publishers have sent
	// their files and before they hang up.
	connected func()
	// glossary, when set, is the meeting's glossary.
	glossary []string
}

// hookReceiver is a webhook receiver that checks every delivery's
// signature with the service's secret.
type hookReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []jobs.Payload
	failed []string
}

func newHookReceiver(t *testing.T, secret string) *hookReceiver {
	h := &hookReceiver{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sig := r.Header.Get(jobs.SignatureHeader)
		var ts int64
		_, err := fmt.Sscanf(sig, "t=%d,", &ts)
		h.mu.Lock()
		defer h.mu.Unlock()
		if err != nil || sig != jobs.Sign([]byte(secret), time.Unix(ts, 0), body) || time.Since(time.Unix(ts, 0)) > time.Minute {
			h.failed = append(h.failed, "bad signature: "+sig)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var p jobs.Payload
		if err := json.Unmarshal(body, &p); err != nil {
			h.failed = append(h.failed, "bad body: "+string(body))
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.got = append(h.got, p)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// has reports whether event (with minutes version v, if v > 0) arrived.
func (h *hookReceiver) has(event string, v int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.got {
		if p.Event == event && (v == 0 || p.MinutesVersion == v) {
			return true
		}
	}
	return false
}

// publishAll has every participant of m publish their fixture at real pace,
// all at once, and waits until every file is sent.
func (b *testBundle) publishAll(t *testing.T, m meetingAnswer) map[string]*sfutest.Publisher {
	t.Helper()
	pubs := map[string]*sfutest.Publisher{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, j := range m.Join {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := sfutest.Publish(context.Background(), sfutest.PublishOptions{WHIPURL: b.url + "/v1/whip",
				Token: j.Token, OggPath: filepath.Join(fixtures, j.Identity+".opus")})
			require.NoError(t, err)
			mu.Lock()
			pubs[j.Identity] = p
			mu.Unlock()
		}()
	}
	wg.Wait()
	require.Len(t, pubs, len(m.Join))
	for _, p := range pubs {
		select {
		case <-p.Done():
		case <-time.After(30 * time.Second):
			t.Fatal("publisher did not finish sending its file")
		}
	}
	return pubs
}

// heldMeeting is a meeting held through the whole service.
type heldMeeting struct {
	id        string
	startedAt time.Time
	pubs      map[string]*sfutest.Publisher
}

// holdMeeting creates a meeting, has alice and bob publish their fixtures
// at real pace at the same time, ends it and waits for the pipeline.
func (b *testBundle) holdMeeting(t *testing.T, names map[string]string, opts holdOptions) (heldMeeting, meetingAnswer) {
	t.Helper()
	ctx := context.Background()
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"title":       "Conseil municipal",
		"webhook_url": opts.webhook,
		"glossary":    opts.glossary,
		"participants": []map[string]any{
			{"identity": "alice", "display_name": names["alice"]},
			{"identity": "bob", "display_name": names["bob"]},
		},
	}, &m))
	require.Equal(t, "created", m.State)
	require.Len(t, m.Join, 2)

	pubs := b.publishAll(t, m)
	if opts.whileLive > 0 {
		// Speech is transcribed while the meeting runs, not after it.
		var live meetingAnswer
		require.Eventually(t, func() bool {
			b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &live)
			return live.Pipeline.SegmentsTranscribed >= opts.whileLive
		}, 20*time.Second, 50*time.Millisecond)
		require.Equal(t, "live", live.State)
	}
	if opts.connected != nil {
		opts.connected()
	}
	for _, p := range pubs {
		require.NoError(t, p.Close(ctx))
	}

	var ended meetingAnswer
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, &ended))
	require.Equal(t, "ended", ended.State)
	require.NotNil(t, ended.StartedAt)

	var now meetingAnswer
	require.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &now)
		return now.State == "ready" || now.State == "failed"
	}, 60*time.Second, 100*time.Millisecond)
	return heldMeeting{id: m.ID, startedAt: *ended.StartedAt, pubs: pubs}, now
}

func testMeetingBecomesMinutes(t *testing.T, b *testBundle) {
	script, err := transcribetest.ReadScript(filepath.Join(fixtures, "script.json"))
	require.NoError(t, err)
	names := map[string]string{"alice": "Alice Martin", "bob": "Bob Durand"}
	hooks := newHookReceiver(t, b.app.webhookSecret)
	// Each speaker's two sentences are 3 s apart, more than the pause
	// that ends a segment (2 s), so they are four segments. The first
	// sentence of each is transcribed during the meeting; the second ones
	// end 0.9 and 2.4 s before the files do, too soon for that pause and
	// the detector's lookahead to close them.
	mt, now := b.holdMeeting(t, names, holdOptions{whileLive: len(script.Utterances) - 2, webhook: hooks.srv.URL,
		glossary: []string{"Greffier"}})
	m := meetingAnswer{ID: mt.id}
	pubs := mt.pubs
	require.Equal(t, "ready", now.State, "pipeline: %+v", now.Pipeline)
	require.Equal(t, 2, now.Pipeline.Tracks)
	require.Zero(t, now.Pipeline.SegmentsFailed, "failures: %+v", now.Pipeline.Failures)

	var doc minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &doc))
	require.True(t, doc.Complete)
	require.Equal(t, 1, doc.Version)
	require.Equal(t, len(script.Utterances), now.Pipeline.SegmentsTranscribed)

	// Where each speaker's fixture second 0 sits on the meeting clock.
	offset := map[string]float64{}
	for who, p := range pubs {
		offset[who] = p.Started().Sub(mt.startedAt).Seconds()
	}
	requireTurnsOf(t, doc, script, names, offset)
	// In the fixtures alice's first sentence overlaps bob's by 0.3 s; how
	// much it does in the meeting depends on when each started sending.
	// Within 150 ms either way the measured times may honestly go either
	// way, so only a clear overlap or a clear gap is asserted.
	margin := offset["alice"] + script.Utterances[0].End - (offset["bob"] + script.Utterances[1].Start)
	overlap := doc.Turns[0].Overlap && doc.Turns[1].Overlap
	if margin > 0.15 || margin < -0.15 {
		require.Equal(t, margin > 0, overlap, "overlap flag (alice at %+.3f s, bob at %+.3f s)", offset["alice"], offset["bob"])
	}

	var vtt, srt, md string
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes.vtt", nil, &vtt))
	require.True(t, strings.HasPrefix(vtt, "WEBVTT\n"))
	require.Contains(t, vtt, "<v Alice Martin>alpha bravo charlie delta</v>")
	require.Contains(t, vtt, "<v Bob Durand>echo foxtrot golf hotel</v>")
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes.srt", nil, &srt))
	require.Contains(t, srt, "Bob Durand: lima mike november")
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes.md", nil, &md))
	require.Contains(t, md, "# Conseil municipal")
	if overlap {
		require.Contains(t, md, "Alice Martin** (overlapping): alpha bravo charlie delta")
	} else {
		require.Contains(t, md, "Alice Martin**: alpha bravo charlie delta")
	}
	require.WithinDuration(t, mt.startedAt.Add(time.Duration(doc.Turns[0].Start)*time.Millisecond), doc.Turns[0].StartAt, time.Millisecond)

	// Live, each request was prompted with the vocabulary (names, the
	// glossary given on creation, the title) and then its speaker's own
	// earlier words.
	requirePrompts(t, b.double.Received(), "Greffier, Conseil municipal.", "Bob Durand")

	b.requireTracksDownloadClean(t, m.ID, 2)
	b.requireSearch(t, m.ID, doc)
	b.requireEvents(t, m.ID, script)
	b.requireArchive(t, m.ID)
	b.requireSearchLinks(t, m.ID)
	require.Eventually(t, func() bool { return hooks.has(jobs.EventMinutesReady, 1) && hooks.has(jobs.EventArchiveReady, 0) },
		30*time.Second, 50*time.Millisecond, "webhooks: %+v", hooks.got)
	b.requireRenameAndRerun(t, m.ID, len(script.Utterances))
	require.Eventually(t, func() bool { return hooks.has(jobs.EventMinutesReady, 2) }, 30*time.Second, 50*time.Millisecond)
	hooks.mu.Lock()
	require.Empty(t, hooks.failed)
	hooks.mu.Unlock()
}

// requireTurnsOf checks that the minutes give each utterance of the
// script to its speaker, under their name, in time (offset places each
// speaker's file on the meeting clock, in seconds), word by word.
func requireTurnsOf(t *testing.T, doc minutes.Document, script transcribetest.Script, names map[string]string, offset map[string]float64) {
	t.Helper()
	require.Len(t, doc.Turns, len(script.Utterances), "turns: %+v", doc.Turns)
	for i, u := range script.Utterances {
		turn := doc.Turns[i]
		require.Equal(t, u.Speaker, turn.Speaker, "turn %d", i)
		require.Equal(t, names[u.Speaker], turn.Name, "turn %d", i)
		require.Equal(t, u.Text, turn.Text, "turn %d", i)
		require.InDelta(t, offset[u.Speaker]+u.Start, float64(turn.Start.MS())/1000, 0.3, "turn %d start", i)
		require.InDelta(t, offset[u.Speaker]+u.End, float64(turn.End.MS())/1000, 0.3, "turn %d end", i)
		require.Len(t, turn.Words, len(u.Words))
		for k, w := range u.Words {
			require.InDelta(t, offset[u.Speaker]+w.Start, float64(turn.Words[k].Start.MS())/1000, 0.3, "turn %d word %d", i, k)
		}
	}
}

// requireArchive waits for the whole-meeting files and checks them: one
// WebM with both speakers as tracks, one FLAC mix, checksums verified.
func (b *testBundle) requireArchive(t *testing.T, meetingID string) {
	t.Helper()
	dir := t.TempDir()
	get := func(path string) (int, []byte, string) {
		req, err := http.NewRequest("GET", b.url+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+b.token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, body, resp.Header.Get("Repr-Digest")
	}
	for _, f := range []struct{ path, probe string }{
		{"/v1/meetings/" + meetingID + "/archive.webm", "stream=codec_name,index:stream_tags=title"},
		{"/v1/meetings/" + meetingID + "/mix.flac", "stream=codec_name,index"},
	} {
		var body []byte
		var digest string
		require.Eventually(t, func() bool {
			var code int
			code, body, digest = get(f.path)
			return code == http.StatusOK
		}, 60*time.Second, 100*time.Millisecond, "%s never came", f.path)
		sum := sha256.Sum256(body)
		require.Equal(t, "sha-256=:"+base64.StdEncoding.EncodeToString(sum[:])+":", digest)
		file := filepath.Join(dir, filepath.Base(f.path))
		require.NoError(t, os.WriteFile(file, body, 0o600))
		out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", f.probe, "-of", "csv=p=0", file).CombinedOutput()
		require.NoError(t, err, string(out))
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if strings.HasSuffix(f.path, ".webm") {
			require.Len(t, lines, 2, "one track per speaker: %s", out)
			require.Contains(t, string(out), "opus")
		} else {
			require.Len(t, lines, 1, "%s", out)
			require.Contains(t, string(out), "flac")
		}
	}

	// Each speaker's audio on the meeting's timing: as long as the meeting.
	var mt struct {
		StartedAt time.Time `json:"started_at"`
		EndedAt   time.Time `json:"ended_at"`
	}
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+meetingID, nil, &mt))
	var list struct {
		Tracks []struct {
			SpeakerURL string `json:"speaker_url"`
		} `json:"tracks"`
		Timing string `json:"timing"`
	}
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+meetingID+"/tracks", nil, &list))
	require.NotEmpty(t, list.Timing)
	for _, tr := range list.Tracks {
		// Speakers' files are built with the archive, which does not
		// wait for the minutes.
		var body []byte
		require.Eventually(t, func() bool {
			var code int
			code, body, _ = get(tr.SpeakerURL)
			return code == http.StatusOK
		}, 60*time.Second, 100*time.Millisecond, "%s never came: %s", tr.SpeakerURL, body)
		file := filepath.Join(dir, "speaker.flac")
		require.NoError(t, os.WriteFile(file, body, 0o600))
		out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", file).CombinedOutput()
		require.NoError(t, err, string(out))
		var dur float64
		_, err = fmt.Sscanf(string(out), "%g", &dur)
		require.NoError(t, err)
		require.InDelta(t, mt.EndedAt.Sub(mt.StartedAt).Seconds(), dur, 0.05, "%s lasts as long as the meeting", tr.SpeakerURL)
	}
}

// requireSearch finds what bob said, with who said it and when.
func (b *testBundle) requireSearch(t *testing.T, meetingID string, doc minutes.Document) {
	t.Helper()
	var got struct {
		Hits []struct {
			MeetingID     string `json:"meeting_id"`
			Speaker, Name string
			Text          string
			Start         minutes.Seconds
		} `json:"hits"`
	}
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/search?q=FOXTROT+golf&meeting="+meetingID, nil, &got))
	require.Len(t, got.Hits, 1)
	require.Equal(t, "bob", got.Hits[0].Speaker)
	require.Equal(t, "Bob Durand", got.Hits[0].Name)
	require.Equal(t, "echo foxtrot golf hotel", got.Hits[0].Text)
	require.InDelta(t, doc.Turns[1].Start.MS(), got.Hits[0].Start.MS(), 200)
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/search?q=foxtrot+kilo&meeting="+meetingID, nil, &got))
	require.Empty(t, got.Hits, "every word must match")
	var e struct{ Error struct{ Code string } }
	require.Equal(t, http.StatusBadRequest, b.call(t, "GET", "/v1/search?q=", nil, &e))
}

// requireSearchLinks follows a hit's links once the meeting is archived:
// the minutes at that time hold what the hit says, and both audio files
// are there, on the meeting clock, long enough to hold the hit's stretch.
func (b *testBundle) requireSearchLinks(t *testing.T, meetingID string) {
	t.Helper()
	var got struct {
		Hits []struct {
			Text       string
			Start, End minutes.Seconds
			Links      struct {
				Minutes      string `json:"minutes"`
				Audio        string `json:"audio"`
				SpeakerAudio string `json:"speaker_audio"`
			}
		} `json:"hits"`
	}
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/search?q=foxtrot+golf&meeting="+meetingID, nil, &got))
	require.Len(t, got.Hits, 1)
	h := got.Hits[0]

	var at minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", h.Links.Minutes, nil, &at), h.Links.Minutes)
	require.NotEmpty(t, at.Turns, h.Links.Minutes)
	said := false
	for _, tu := range at.Turns {
		require.Less(t, tu.Start.MS(), h.End.MS(), "%s holds only turns that overlap the hit", h.Links.Minutes)
		require.Greater(t, tu.End.MS(), h.Start.MS(), "%s holds only turns that overlap the hit", h.Links.Minutes)
		said = said || strings.Contains(tu.Text, "foxtrot golf")
	}
	require.True(t, said, "the minutes at %s say what the hit says: %+v", h.Links.Minutes, at.Turns)

	span := fmt.Sprintf("#t=%.3f,%.3f", float64(h.Start.MS())/1000, float64(h.End.MS())/1000)
	for _, link := range []string{h.Links.Audio, h.Links.SpeakerAudio} {
		path, fragment, ok := strings.Cut(link, "#")
		require.True(t, ok, link)
		require.Equal(t, span, "#"+fragment, "%s plays the hit's stretch", link)
		req, err := http.NewRequest("GET", b.url+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+b.token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", path, body)
		require.Equal(t, "audio/flac", resp.Header.Get("Content-Type"), path)
		file := filepath.Join(t.TempDir(), "hit.flac")
		require.NoError(t, os.WriteFile(file, body, 0o600))
		out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", file).CombinedOutput()
		require.NoError(t, err, string(out))
		var dur float64
		_, err = fmt.Sscan(strings.TrimSpace(string(out)), &dur)
		require.NoError(t, err, string(out))
		require.GreaterOrEqual(t, dur, float64(h.End.MS())/1000, "%s reaches the hit's end", path)
	}
}

// requireEvents checks the meeting's event log: both joined and left, and
// each spoke, on the meeting clock.
func (b *testBundle) requireEvents(t *testing.T, meetingID string, script transcribetest.Script) {
	t.Helper()
	var got struct {
		Events []struct {
			Kind, Identity string
			AtMS           int64 `json:"at_ms"`
		} `json:"events"`
	}
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+meetingID+"/events", nil, &got))
	seen := map[string]int64{}
	for _, e := range got.Events {
		if _, ok := seen[e.Identity+" "+e.Kind]; !ok {
			seen[e.Identity+" "+e.Kind] = e.AtMS
		}
	}
	for _, who := range []string{"alice", "bob"} {
		for _, kind := range []string{"joined", "speaking_started", "speaking_stopped", "left"} {
			_, ok := seen[who+" "+kind]
			require.True(t, ok, "no %s event for %s in %+v", kind, who, got.Events)
		}
		require.Less(t, seen[who+" joined"], seen[who+" speaking_started"])
	}
	// Alice speaks first, a second into her file.
	require.Less(t, seen["alice speaking_started"], seen["bob speaking_started"])
}

// requireRenameAndRerun renames a speaker (shown at once in renderings),
// then re-runs the pipeline from the stored recordings: a new minutes
// version, the old one still readable.
func (b *testBundle) requireRenameAndRerun(t *testing.T, meetingID string, segments int) {
	t.Helper()
	require.Equal(t, http.StatusOK, b.call(t, "PATCH", "/v1/meetings/"+meetingID+"/participants/bob",
		map[string]string{"display_name": "Robert Durand"}, nil))
	var vtt string
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+meetingID+"/minutes.vtt", nil, &vtt))
	require.Contains(t, vtt, "<v Robert Durand>echo foxtrot golf hotel</v>")

	// A glossary set by PATCH reaches the backend with the re-run.
	require.Equal(t, http.StatusOK, b.call(t, "PATCH", "/v1/meetings/"+meetingID,
		map[string]any{"glossary": []string{"Kyutai", "pyannote"}}, nil))
	before := len(b.double.Received())
	requests := b.double.Requests()
	var rerun meetingAnswer
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+meetingID+"/rerun", nil, &rerun))
	require.Equal(t, "ended", rerun.State)
	var now meetingAnswer
	require.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+meetingID, nil, &now)
		return now.State == "ready" || now.State == "failed"
	}, 60*time.Second, 100*time.Millisecond)
	require.Equal(t, "ready", now.State)
	require.Equal(t, requests+segments, b.double.Requests(), "every segment transcribed again, once")
	requirePrompts(t, b.double.Received()[before:], "Kyutai, pyannote, Conseil municipal.", "Robert Durand")

	var v1, v2 minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+meetingID+"/minutes?version=1", nil, &v1))
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+meetingID+"/minutes", nil, &v2))
	require.Equal(t, 1, v1.Version)
	require.Equal(t, 2, v2.Version)
	require.Equal(t, "Robert Durand", v2.Turns[1].Name)
	// The live path (v1) and the batch path over the stored files (v2)
	// hear the same thing.
	require.Equal(t, len(v1.Turns), len(v2.Turns))
	for i := range v1.Turns {
		require.Equal(t, v1.Turns[i].Text, v2.Turns[i].Text)
		require.Equal(t, v1.Turns[i].Start, v2.Turns[i].Start)
		require.Equal(t, v1.Turns[i].End, v2.Turns[i].End)
		require.Equal(t, v1.Turns[i].Words, v2.Turns[i].Words)
	}

	var e struct{ Error struct{ Code string } }
	require.Equal(t, http.StatusNotFound, b.call(t, "GET", "/v1/meetings/"+meetingID+"/minutes?version=3", nil, &e))
	require.Equal(t, http.StatusConflict, b.call(t, "POST", "/v1/meetings/"+meetingID+"/end", nil, &e))
}

// requireTracksDownloadClean downloads every track through the API, checks
// its SHA-256 against the listing and the Repr-Digest header, and checks
// that ffprobe reads it without complaint and with the right duration.
func (b *testBundle) requireTracksDownloadClean(t *testing.T, meetingID string, want int) {
	t.Helper()
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Fatalf("ffprobe is needed to check recordings: run scripts/test.sh, which installs ffmpeg")
	}
	var list struct {
		Tracks []struct {
			ID, Identity, URL, SHA256, State string
			DurationMS                       int64 `json:"duration_ms"`
		} `json:"tracks"`
	}
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+meetingID+"/tracks", nil, &list))
	require.Len(t, list.Tracks, want)
	dir := t.TempDir()
	for _, tr := range list.Tracks {
		require.Equal(t, "stored", tr.State)
		req, err := http.NewRequest("GET", b.url+tr.URL, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+b.token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		sum := sha256.Sum256(body)
		require.Equal(t, tr.SHA256, hex.EncodeToString(sum[:]))
		require.Equal(t, "sha-256=:"+base64.StdEncoding.EncodeToString(sum[:])+":", resp.Header.Get("Repr-Digest"))
		f := filepath.Join(dir, tr.ID+".webm")
		require.NoError(t, os.WriteFile(f, body, 0o600))
		out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", f).CombinedOutput()
		require.NoError(t, err, string(out))
		require.Regexp(t, `^\d+\.\d+\s*$`, string(out), "ffprobe printed more than the duration")
		var dur float64
		_, err = fmt.Sscanf(string(out), "%g", &dur)
		require.NoError(t, err)
		require.InDelta(t, float64(tr.DurationMS)/1000, dur, 0.1)
		require.InDelta(t, 9.0, dur, 0.3, "the fixture lasts 9 s")
	}
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }

// TestSpeechGoesAsOggOpusOrAsWAV: by default the backend gets each
// segment as the Ogg Opus cut from the recording; configured for a server
// that reads only WAV, it gets a WAV, and the minutes are the same.
func TestSpeechGoesAsOggOpusOrAsWAV(t *testing.T) {
	t.Parallel()
	names := map[string]string{"alice": "Alice Martin", "bob": "Bob Durand"}
	var texts [2][]string
	t.Run("meetings", func(t *testing.T) {
		for i, sendWAV := range []bool{false, true} {
			t.Run(fmt.Sprintf("sendWAV=%v", sendWAV), func(t *testing.T) {
				t.Parallel()
				b := setup(t, setupOptions{sendWAV: sendWAV})
				mt, now := b.holdMeeting(t, names, holdOptions{})
				require.Equal(t, "ready", now.State, "pipeline: %+v", now.Pipeline)
				got := b.double.Received()
				require.NotEmpty(t, got)
				want := map[bool]string{false: "audio.ogg", true: "audio.wav"}[sendWAV]
				for _, r := range got {
					require.Equal(t, want, r.Filename)
				}
				var doc minutes.Document
				require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+mt.id+"/minutes", nil, &doc))
				for _, tr := range doc.Turns {
					texts[i] = append(texts[i], tr.Text)
				}
			})
		}
	})
	require.NotEmpty(t, texts[0])
	require.Equal(t, texts[0], texts[1])
}

// requirePrompts checks the prompts of a meeting's requests, as the double
// heard them (alice says "alpha bravo charlie delta" then "india juliett
// kilo", bob "echo foxtrot golf hotel" then "lima mike november"): each
// starts with the names of those who had joined (alice's own, at least)
// and holds the glossary and title (tail); a speaker's first segment
// carries nothing more, their second the words of their first, never the
// other's. bob is bob's display name.
func requirePrompts(t *testing.T, got []transcribetest.Received, tail, bob string) {
	t.Helper()
	first := map[string]string{"india juliett kilo": "alpha bravo charlie delta", "lima mike november": "echo foxtrot golf hotel"}
	require.Len(t, got, 4)
	for _, r := range got {
		vocab, previous, ok := strings.Cut(r.Prompt, tail)
		require.True(t, ok, "%q: prompt %q lacks %q", r.Heard, r.Prompt, tail)
		require.True(t, strings.HasPrefix(vocab, "Alice Martin, ") || strings.HasPrefix(vocab, bob+", "), "%q: prompt %q", r.Heard, r.Prompt)
		require.Equal(t, first[r.Heard], strings.TrimSpace(previous), "%q: prompt %q", r.Heard, r.Prompt)
	}
}
