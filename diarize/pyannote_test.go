package diarize_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/greffier/greffier/diarize"
	"github.com/greffier/greffier/diarize/diarizetest"
	"github.com/greffier/greffier/internal/audio"
)

const (
	testKey    = "test-key"
	lowVoice   = 200.0 // Hz
	highVoice  = 450.0
	tolerance  = 100 // ms
	audioTail  = 500 * time.Millisecond
	fastPoll   = 20 * time.Millisecond
	neverPolls = time.Hour
)

// twoVoices is a room where a low voice and a high voice alternate, the
// last two turns back to back.
var twoVoices = []diarizetest.Speech{
	{Pitch: lowVoice, Start: 500 * time.Millisecond, End: 2500 * time.Millisecond},
	{Pitch: highVoice, Start: 3000 * time.Millisecond, End: 4200 * time.Millisecond},
	{Pitch: lowVoice, Start: 4600 * time.Millisecond, End: 6000 * time.Millisecond},
	{Pitch: highVoice, Start: 6000 * time.Millisecond, End: 7000 * time.Millisecond},
}

var twoVoicesTurns = []diarize.Turn{
	{Label: "SPEAKER_00", StartMS: 500, EndMS: 2500},
	{Label: "SPEAKER_01", StartMS: 3000, EndMS: 4200},
	{Label: "SPEAKER_00", StartMS: 4600, EndMS: 6000},
	{Label: "SPEAKER_01", StartMS: 6000, EndMS: 7000},
}

// The double and the loopback servers start goroutines; all must be gone
// once their tests are.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type testBundle struct {
	double   *diarizetest.Server
	p        *diarize.Pyannote
	audioURL string // https presigned-GET stand-in serving the WAV
	wav      []byte
	length   time.Duration
	// hookFailures is how many deliveries the webhook receiver answers
	// 503 before it passes them on to the handler.
	hookFailures atomic.Int64
}

type setupOpts struct {
	double  diarizetest.Options
	config  diarize.PyannoteConfig
	webhook bool
	speech  []diarizetest.Speech
}

func setup(t *testing.T, o setupOpts) *testBundle {
	t.Helper()
	if o.speech == nil {
		o.speech = twoVoices
	}
	samples, err := diarizetest.Synthesize(o.speech)
	require.NoError(t, err)
	samples = append(samples, make([]int16, int(audioTail.Seconds()*diarizetest.SampleRate))...)
	var wav bytes.Buffer
	require.NoError(t, audio.WriteWAV(&wav, samples))
	b := &testBundle{wav: wav.Bytes(), length: time.Duration(len(samples)) * time.Second / diarizetest.SampleRate}

	recording := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/rec.wav":
			_, _ = w.Write(b.wav)
		case "/junk.wav":
			_, _ = w.Write([]byte("<html>not audio</html>"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(recording.Close)
	b.audioURL = recording.URL + "/rec.wav"

	o.double.APIKey = testKey
	o.double.FetchClient = recording.Client()
	b.double = diarizetest.NewServer(o.double)
	t.Cleanup(b.double.Close)

	cfg := o.config
	cfg.BaseURL = b.double.URL()
	cfg.APIKey = cmpOr(cfg.APIKey, testKey)
	client := &http.Client{}
	t.Cleanup(client.CloseIdleConnections)
	cfg.HTTPClient = client
	if cfg.PollInterval == 0 {
		cfg.PollInterval = fastPoll
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 20 * time.Second
	}
	var handler atomic.Pointer[http.Handler]
	if o.webhook {
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if b.hookFailures.Add(-1) >= 0 {
				http.Error(w, "receiver down", http.StatusServiceUnavailable)
				return
			}
			(*handler.Load()).ServeHTTP(w, r)
		}))
		t.Cleanup(hook.Close)
		cfg.WebhookURL = hook.URL + "/hooks/pyannote"
		cfg.WebhookSecret = diarizetest.DefaultWebhookSecret
		if cfg.FallbackPollInterval == 0 {
			cfg.FallbackPollInterval = neverPolls
		}
	}
	b.p, err = diarize.NewPyannote(cfg)
	require.NoError(t, err)
	h := b.p.WebhookHandler()
	handler.Store(&h)
	return b
}

// deliveries waits for the double to record n webhook attempts: it does
// so once the receiver has answered, after Diarize may have returned.
func deliveries(t *testing.T, b *testBundle, n int) []diarizetest.Delivery {
	t.Helper()
	require.Eventually(t, func() bool { return len(b.double.Deliveries()) >= n }, 5*time.Second, 5*time.Millisecond)
	d := b.double.Deliveries()
	require.Len(t, d, n)
	return d
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func requireTurns(t *testing.T, want, got []diarize.Turn) {
	t.Helper()
	require.Len(t, got, len(want), "turns: %+v", got)
	for i := range want {
		require.Equal(t, want[i].Label, got[i].Label, "turn %d: %+v", i, got[i])
		require.InDelta(t, want[i].StartMS, got[i].StartMS, tolerance, "turn %d start: %+v", i, got[i])
		require.InDelta(t, want[i].EndMS, got[i].EndMS, tolerance, "turn %d end: %+v", i, got[i])
	}
}

func TestDiarizeByWebhook(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{webhook: true})

	turns, err := b.p.Diarize(t.Context(), b.audioURL, b.length)
	require.NoError(t, err)
	requireTurns(t, twoVoicesTurns, turns)
	require.Zero(t, b.double.Polls(), "the webhook came: no poll was needed")
	d := deliveries(t, b, 1)
	require.Equal(t, 0, d[0].RetryNum)
	require.Equal(t, http.StatusOK, d[0].Status)
}

func TestDiarizeByPolling(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{config: diarize.PyannoteConfig{Exclusive: true, MinSpeakers: 1, MaxSpeakers: 3, Model: "community-1"}})

	turns, err := b.p.Diarize(t.Context(), b.audioURL, b.length)
	require.NoError(t, err)
	requireTurns(t, twoVoicesTurns, turns)
	require.Positive(t, b.double.Polls())
	require.Empty(t, b.double.Deliveries())

	got := b.double.Received()
	require.Len(t, got, 1)
	require.Equal(t, b.audioURL, got[0].URL)
	require.Empty(t, got[0].Webhook)
	require.True(t, got[0].Exclusive)
	require.Equal(t, "community-1", got[0].Model)
	require.Equal(t, 1, *got[0].MinSpeakers)
	require.Equal(t, 3, *got[0].MaxSpeakers)
	require.Nil(t, got[0].NumSpeakers)
}

func TestDiarizeWebhookRetriedAfterReceiverFailure(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{
		webhook: true,
		double:  diarizetest.Options{WebhookRetryDelays: []time.Duration{0, 10 * time.Millisecond, 10 * time.Millisecond}},
	})
	b.hookFailures.Store(2)

	turns, err := b.p.Diarize(t.Context(), b.audioURL, b.length)
	require.NoError(t, err)
	requireTurns(t, twoVoicesTurns, turns)
	require.Zero(t, b.double.Polls())
	d := deliveries(t, b, 3)
	for i, want := range []int{503, 503, 200} {
		require.Equal(t, i, d[i].RetryNum)
		require.Equal(t, want, d[i].Status)
	}
}

// When the webhook cannot be trusted or never comes, polling finishes
// the job.
func TestDiarizeFallsBackToPolling(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string]diarizetest.Options{
		"bad signature":   {BadWebhookSignature: true},
		"stale timestamp": {WebhookAge: time.Hour},
		"never sent":      {NoWebhook: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			opts.WebhookRetryDelays = []time.Duration{0}
			b := setup(t, setupOpts{webhook: true, double: opts, config: diarize.PyannoteConfig{FallbackPollInterval: 200 * time.Millisecond}})

			turns, err := b.p.Diarize(t.Context(), b.audioURL, b.length)
			require.NoError(t, err)
			requireTurns(t, twoVoicesTurns, turns)
			require.Positive(t, b.double.Polls())
			if opts.NoWebhook {
				require.Empty(t, b.double.Deliveries())
				return
			}
			for _, d := range deliveries(t, b, 2) { // refused deliveries are retried
				require.Equal(t, http.StatusUnauthorized, d.Status, "a forged or stale webhook must be refused")
			}
		})
	}
}

func TestDiarizeJobFailedOrCanceled(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		opts    diarizetest.Options
		file    string
		status  string
		message string
	}{
		"failed":      {diarizetest.Options{Fail: "audio too noisy"}, "rec.wav", "failed", "audio too noisy"},
		"canceled":    {diarizetest.Options{Cancel: true}, "rec.wav", "canceled", ""},
		"not fetched": {diarizetest.Options{}, "missing.wav", "failed", "cannot fetch audio: HTTP 404"},
		"not decoded": {diarizetest.Options{}, "junk.wav", "failed", "cannot decode audio"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{webhook: true, double: tc.opts})
			url := strings.TrimSuffix(b.audioURL, "rec.wav") + tc.file
			_, err := b.p.Diarize(t.Context(), url, b.length)
			var je *diarize.JobError
			require.ErrorAs(t, err, &je)
			require.Equal(t, tc.status, je.Status)
			require.NotEmpty(t, je.JobID)
			require.Contains(t, je.Message, tc.message)
			require.Contains(t, err.Error(), je.JobID)
		})
	}
}

func TestDiarizeSlowJob(t *testing.T) {
	t.Parallel()
	t.Run("finishes within the timeout", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{double: diarizetest.Options{JobDelay: 300 * time.Millisecond}})
		turns, err := b.p.Diarize(t.Context(), b.audioURL, b.length)
		require.NoError(t, err)
		requireTurns(t, twoVoicesTurns, turns)
		require.Greater(t, b.double.Polls(), 5, "polled while the job ran")
	})
	t.Run("times out", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{
			double: diarizetest.Options{JobDelay: time.Minute},
			config: diarize.PyannoteConfig{Timeout: 300 * time.Millisecond},
		})
		_, err := b.p.Diarize(t.Context(), b.audioURL, b.length)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Contains(t, err.Error(), "not finished in time")
	})
}

func TestDiarizeBadAnswers(t *testing.T) {
	t.Parallel()
	for name, lie := range map[string]diarizetest.Lie{
		"outside the audio": diarizetest.LieOutsideAudio,
		"reversed":          diarizetest.LieReversed,
		"unsorted":          diarizetest.LieUnsorted,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{webhook: true, double: diarizetest.Options{Lie: lie}})
			turns, err := b.p.Diarize(t.Context(), b.audioURL, b.length)
			require.ErrorIs(t, err, diarize.ErrBadAnswer)
			require.Nil(t, turns)
		})
	}
}

func TestDiarizeHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string]diarizetest.Options{
		"on submit": {RateLimitFirst: 1},
		"on poll":   {RateLimitPolls: 1},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{double: opts})
			start := time.Now()
			turns, err := b.p.Diarize(t.Context(), b.audioURL, b.length)
			require.NoError(t, err)
			requireTurns(t, twoVoicesTurns, turns)
			require.GreaterOrEqual(t, time.Since(start), diarizetest.DefaultRetryAfter,
				"the client must wait Retry-After, not its %v poll interval", fastPoll)
		})
	}
}

func TestUploadThenDiarize(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{webhook: true})
	key := "meetings/m1/tracks/t1.wav"

	media, err := b.p.Upload(t.Context(), key, bytes.NewReader(b.wav), int64(len(b.wav)))
	require.NoError(t, err)
	require.Equal(t, "media://"+key, media)
	stored, ok := b.double.Media(key)
	require.True(t, ok)
	require.Equal(t, b.wav, stored)

	turns, err := b.p.Diarize(t.Context(), media, b.length)
	require.NoError(t, err)
	requireTurns(t, twoVoicesTurns, turns)
}

func TestUploadRefusesBadRequests(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	for _, key := range []string{"", "../etc/passwd", "a//b", "with space", "ünï"} {
		_, err := b.p.Upload(t.Context(), key, bytes.NewReader(b.wav), int64(len(b.wav)))
		require.ErrorIs(t, err, diarize.ErrInvalidRequest, "key %q", key)
	}
	_, err := b.p.Upload(t.Context(), "k", bytes.NewReader(nil), 0)
	require.ErrorIs(t, err, diarize.ErrInvalidRequest)
	require.Zero(t, b.double.Requests(), "nothing invalid reaches the server")
}

func TestDiarizeRefusedByServer(t *testing.T) {
	t.Parallel()
	t.Run("wrong key", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{config: diarize.PyannoteConfig{APIKey: "wrong"}})
		require.Error(t, b.p.Check(t.Context()))
		_, err := b.p.Diarize(t.Context(), b.audioURL, b.length)
		var he *diarize.HTTPError
		require.ErrorAs(t, err, &he)
		require.Equal(t, http.StatusUnauthorized, he.StatusCode)
		require.Equal(t, "Invalid API key", he.Message)
		require.False(t, he.Temporary())
	})
	t.Run("right key", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		require.NoError(t, b.p.Check(t.Context()))
	})
	t.Run("validation", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{config: diarize.PyannoteConfig{Model: "precision-9"}})
		_, err := b.p.Diarize(t.Context(), b.audioURL, b.length)
		var he *diarize.HTTPError
		require.ErrorAs(t, err, &he)
		require.Equal(t, http.StatusBadRequest, he.StatusCode)
		require.Contains(t, he.Message, "model must be one of")
		require.Contains(t, err.Error(), "submit")
	})
	t.Run("plain http audio", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		_, err := b.p.Diarize(t.Context(), "http://example.invalid/a.wav", b.length)
		var he *diarize.HTTPError
		require.ErrorAs(t, err, &he)
		require.Equal(t, http.StatusBadRequest, he.StatusCode)
	})
	t.Run("server gone", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		b.double.Close()
		_, err := b.p.Diarize(t.Context(), b.audioURL, b.length)
		var he *diarize.HTTPError
		require.ErrorAs(t, err, &he)
		require.Zero(t, he.StatusCode)
		require.True(t, he.Temporary())
	})
}

func TestDiarizeGivesUpWhenPollsKeepFailing(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{double: diarizetest.Options{JobDelay: time.Minute}})
	errc := make(chan error, 1)
	go func() {
		_, err := b.p.Diarize(t.Context(), b.audioURL, b.length)
		errc <- err
	}()
	require.Eventually(t, func() bool { return len(b.double.Received()) == 1 }, 5*time.Second, 5*time.Millisecond)
	b.double.Close() // the job was accepted; now every poll goes unanswered

	err := <-errc
	require.ErrorContains(t, err, "5 polls failed in a row")
	var he *diarize.HTTPError
	require.ErrorAs(t, err, &he)
	require.Zero(t, he.StatusCode)
	require.True(t, he.Temporary(), "the job layer may retry later")
}

func TestDiarizeRefusesBadRequests(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	for _, u := range []string{"", "ftp://host/a.wav", "https://", "media://../x"} {
		_, err := b.p.Diarize(t.Context(), u, b.length)
		require.ErrorIs(t, err, diarize.ErrInvalidRequest, "url %q", u)
	}
	_, err := b.p.Diarize(t.Context(), b.audioURL, 0)
	require.ErrorIs(t, err, diarize.ErrInvalidRequest)
	require.Zero(t, b.double.Requests())
}

func TestNewPyannoteValidates(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		cfg  diarize.PyannoteConfig
		want string
	}{
		"bad base URL":        {diarize.PyannoteConfig{BaseURL: "api.pyannote.ai"}, "BaseURL"},
		"webhook no secret":   {diarize.PyannoteConfig{WebhookURL: "https://greffier.example/hook"}, "WebhookSecret"},
		"bad webhook URL":     {diarize.PyannoteConfig{WebhookURL: "/hook", WebhookSecret: "s"}, "WebhookURL"},
		"num and min":         {diarize.PyannoteConfig{NumSpeakers: 2, MinSpeakers: 1}, "not both"},
		"min above max":       {diarize.PyannoteConfig{MinSpeakers: 3, MaxSpeakers: 2}, "exceeds"},
		"negative speakers":   {diarize.PyannoteConfig{MaxSpeakers: -1}, "negative"},
		"negative poll":       {diarize.PyannoteConfig{PollInterval: -time.Second}, "PollInterval"},
		"negative timeout":    {diarize.PyannoteConfig{Timeout: -time.Second}, "Timeout"},
		"negative max errors": {diarize.PyannoteConfig{MaxPollErrors: -1}, "MaxPollErrors"},
	} {
		_, err := diarize.NewPyannote(tc.cfg)
		require.ErrorContains(t, err, tc.want, name)
	}
	_, err := diarize.NewPyannote(diarize.PyannoteConfig{})
	require.NoError(t, err, "the zero config is usable")
	cfg := diarize.PyannoteConfig{}.WithDefaults()
	require.Equal(t, diarize.DefaultPyannoteBaseURL, cfg.BaseURL)
	require.Equal(t, diarize.DefaultPollInterval, cfg.PollInterval)
	require.Equal(t, diarize.DefaultFallbackPollInterval, cfg.FallbackPollInterval)
}

// signed builds a webhook delivery as pyannoteAI sends it.
func signed(t *testing.T, secret string, at time.Time, body string) *http.Request {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(body))
	ts := strconv.FormatInt(at.Unix(), 10)
	req.Header.Set("X-Request-Timestamp", ts)
	req.Header.Set("X-Signature", diarizetest.Sign(secret, ts, []byte(body)))
	return req
}

func TestWebhookHandler(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	const secret = "s3cret"
	p, err := diarize.NewPyannote(diarize.PyannoteConfig{
		WebhookURL: "https://greffier.example/hook", WebhookSecret: secret,
		Now: func() time.Time { return now },
	})
	require.NoError(t, err)
	h := p.WebhookHandler()
	body := `{"jobId":"j1","status":"succeeded","output":{"diarization":[]}}`

	for name, tc := range map[string]struct {
		req  *http.Request
		want int
	}{
		"good":               {signed(t, secret, now, body), http.StatusOK},
		"retried delivery":   {signed(t, secret, now.Add(-time.Minute), body), http.StatusOK},
		"slightly ahead":     {signed(t, secret, now.Add(time.Minute), body), http.StatusOK},
		"wrong secret":       {signed(t, "other", now, body), http.StatusUnauthorized},
		"stale":              {signed(t, secret, now.Add(-6*time.Minute), body), http.StatusUnauthorized},
		"from the future":    {signed(t, secret, now.Add(6*time.Minute), body), http.StatusUnauthorized},
		"unsigned":           {httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(body)), http.StatusUnauthorized},
		"signed, not a job":  {signed(t, secret, now, `{"hello":1}`), http.StatusBadRequest},
		"GET":                {httptest.NewRequest(http.MethodGet, "/hook", nil), http.StatusMethodNotAllowed},
		"body changed after": {tamper(signed(t, secret, now, body)), http.StatusUnauthorized},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, tc.req)
		require.Equal(t, tc.want, rec.Code, name)
	}

	noHook, err := diarize.NewPyannote(diarize.PyannoteConfig{})
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	noHook.WebhookHandler().ServeHTTP(rec, signed(t, secret, time.Now(), body))
	require.Equal(t, http.StatusNotFound, rec.Code, "nothing is expected without a secret")
}

func tamper(r *http.Request) *http.Request {
	r.Body = io.NopCloser(strings.NewReader(`{"jobId":"j1","status":"failed"}`))
	return r
}
