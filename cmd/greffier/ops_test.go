package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/diarize/diarizetest"
	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/testenv"
	"github.com/greffier/greffier/summarize/summarizetest"
	"github.com/greffier/greffier/transcribe/kyutaitest"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

// scrape reads /metrics with the API token.
func (b *testBundle) scrape(t *testing.T) metricSet {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.url+"/metrics", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+b.token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

type metricSet map[string]*dto.MetricFamily

// value is the series of name whose labels include those given (pairs);
// histograms answer their count. Missing: -1.
func (m metricSet) value(name string, labels ...string) float64 {
	f := m[name]
	if f == nil {
		return -1
	}
series:
	for _, s := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range s.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue series
			}
		}
		switch {
		case s.Counter != nil:
			return s.Counter.GetValue()
		case s.Gauge != nil:
			return s.Gauge.GetValue()
		case s.Histogram != nil:
			return float64(s.Histogram.GetSampleCount())
		}
	}
	return -1
}

// TestMetricsAfterAMeetingMatchWhatHappened holds a real meeting (two
// publishers at real pace, the pipeline to its minutes) and checks that
// /metrics tells what happened: the packets the publishers sent, the
// recordings, the segments transcribed, the jobs, the minutes latency.
// The same meeting's log has one line per event, and its two normal
// hang-ups no WebRTC warning.
func TestMetricsAfterAMeetingMatchWhatHappened(t *testing.T) {
	t.Parallel()
	logs := &logBuffer{}
	b := setup(t, setupOptions{logs: logs})

	// /metrics is the admin's: no token, no metrics.
	resp, err := http.Get(b.url + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	before := b.scrape(t)
	require.Equal(t, 0.0, before.value("greffier_meetings", "state", "ready"))
	require.Equal(t, 0.0, before.value("greffier_sfu_packets_received_total"))

	// While both publishers are connected: one live meeting, two
	// publishers, two tracks recording.
	var during metricSet
	mt, now := b.holdMeeting(t, map[string]string{"alice": "Alice", "bob": "Bob"}, holdOptions{connected: func() { during = b.scrape(t) }})
	require.Equal(t, 1.0, during.value("greffier_meetings", "state", "live"))
	require.Equal(t, 0.0, during.value("greffier_meetings", "state", "created"))
	require.Equal(t, 1.0, during.value("greffier_meetings_connected"))
	require.Equal(t, 2.0, during.value("greffier_participants", "kind", "publisher"))
	require.Equal(t, 0.0, during.value("greffier_participants", "kind", "listener"))
	require.Equal(t, 2.0, during.value("greffier_recorder_tracks"))
	require.Positive(t, during.value("greffier_sfu_packets_received_total"))
	require.Equal(t, "ready", now.State)
	sent := 0
	for _, p := range mt.pubs {
		sent += len(p.Sent())
	}
	var m metricSet
	// The archive is built after the minutes: wait for its job too.
	require.Eventually(t, func() bool {
		m = b.scrape(t)
		return m.value("greffier_jobs", "kind", "archive_meeting", "state", "completed") >= 1
	}, 60*time.Second, 100*time.Millisecond)

	require.Equal(t, 1.0, m.value("greffier_meetings", "state", "ready"))
	for _, st := range []string{"created", "live", "ended", "incomplete", "failed"} {
		require.Equal(t, 0.0, m.value("greffier_meetings", "state", st), st)
	}
	require.Equal(t, 0.0, m.value("greffier_participants", "kind", "publisher"), "everyone hung up")
	require.Equal(t, 0.0, m.value("greffier_recorder_tracks"))

	// The packets the publishers sent came in (UDP: on a loaded loopback
	// the kernel may drop one, seen once in 902); every packet that came in
	// was written to a recording or dropped by the recorder for a reason,
	// and the recorder counted as lost no more than the network lost.
	received := m.value("greffier_sfu_packets_received_total")
	require.LessOrEqual(t, received, float64(sent), "packets sent by the two publishers")
	require.InDelta(t, float64(sent), received, float64(sent)/100, "packets sent by the two publishers")
	dropped := 0.0
	for _, r := range []string{"late", "duplicate", "garbage", "bad_timestamp", "overflow"} {
		dropped += m.value("greffier_recorder_packets_dropped_total", "reason", r)
	}
	for _, r := range []string{"too_large", "rate", "malformed", "srtp"} {
		require.Equal(t, 0.0, m.value("greffier_sfu_packets_dropped_total", "reason", r), r)
	}
	require.Equal(t, received, m.value("greffier_recorder_packets_written_total")+dropped)
	require.Equal(t, 0.0, m.value("greffier_sfu_packets_forwarded_total"), "nobody listened")
	require.LessOrEqual(t, m.value("greffier_recorder_packets_lost_total"), float64(sent)-received)

	// Each segment was one successful call to the backend, measured.
	calls := float64(b.double.Requests())
	require.Equal(t, float64(now.Pipeline.SegmentsTranscribed), calls)
	require.Equal(t, calls, m.value("greffier_transcribe_calls_total", "backend", "transcription", "outcome", "success"))
	require.Equal(t, 0.0, m.value("greffier_transcribe_calls_total", "backend", "transcription", "outcome", "failure"))
	require.Equal(t, calls, m.value("greffier_backend_request_seconds", "backend", "transcription"))
	require.Equal(t, calls, m.value("greffier_jobs", "kind", "transcribe_segment", "state", "completed"))
	require.Equal(t, 1.0, m.value("greffier_jobs", "kind", "assemble_minutes", "state", "completed"))
	for _, f := range m["greffier_jobs"].Metric {
		for _, l := range f.Label {
			if l.GetName() == "state" {
				require.Equal(t, "completed", l.GetValue(), "no job left behind: %v", f)
			}
		}
	}
	require.Equal(t, 0.0, m.value("greffier_backend_breaker_state", "backend", "transcription"), "closed")
	require.Equal(t, 1.0, m.value("greffier_minutes_latency_seconds"), "one meeting's minutes")
	require.Equal(t, -1.0, m.value("greffier_storage_errors_total"), "no storage error")
	require.Equal(t, -1.0, m.value("greffier_metrics_errors"))
	// Everything received was written and stored: the recorder is not
	// behind, and its spool holds nothing once the tracks are stored.
	require.Equal(t, 0.0, m.value("greffier_recorder_queued_packets"))
	require.Equal(t, 0.0, m.value("greffier_spool_bytes"))
	require.Equal(t, 0.0, m.value("greffier_transcribe_in_flight", "phase", "running"))
	require.Equal(t, 0.0, m.value("greffier_transcribe_in_flight", "phase", "waiting"))

	// The log: the backend answered the start's probe; each event of the
	// meeting once, with its id, at info; no warning from pion for the two
	// publishers' normal hang-ups.
	recs := logs.records(t)
	probed := 0
	for _, r := range recs {
		if r["msg"] == "speech backend answered" && r["backend"] == "transcription" {
			probed++
		}
	}
	require.Equal(t, 1, probed, "the start's probe of the transcription backend")
	for _, msg := range []string{"meeting created", "meeting live", "meeting ended", "minutes ready", "archive ready"} {
		var got []map[string]any
		for _, r := range recs {
			if r["msg"] == msg && r["meeting"] == mt.id {
				got = append(got, r)
			}
		}
		require.Len(t, got, 1, msg)
		require.Equal(t, "INFO", got[0]["level"], msg)
	}
	for _, r := range recs {
		if _, fromPion := r["pion"]; fromPion {
			require.Contains(t, []any{"DEBUG", "INFO"}, r["level"], "a normal hang-up logs no WebRTC warning: %v", r)
		}
	}
}

// TestMetricsCountWhatFailed: a transcription backend that fails six
// times, a summary backend that always fails, and the counters say so:
// the failed calls, the breaker opening (and closed again once the
// backend answers), the summary's failed call, timed.
func TestMetricsCountWhatFailed(t *testing.T) {
	t.Parallel()
	const failures = 6 // more than the breaker's threshold in a row
	b := setup(t, setupOptions{backend: transcribetest.Options{FailFirst: failures, FailStatus: http.StatusServiceUnavailable},
		summary: &summarizetest.Options{FailFirst: 1 << 30, FailStatus: http.StatusServiceUnavailable}})
	m := b.aliceSpeaksThenEnds(t)
	var now meetingAnswer
	require.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &now)
		return now.State != "ended"
	}, 120*time.Second, 100*time.Millisecond)
	require.NotEqual(t, "failed", now.State, "minutes without a summary: %+v", now.Pipeline)

	s := b.scrape(t)
	requests := float64(b.double.Requests())
	success := s.value("greffier_transcribe_calls_total", "backend", "transcription", "outcome", "success")
	require.Equal(t, float64(now.Pipeline.SegmentsTranscribed), success)
	require.Equal(t, requests, success+failures, "every request the backend saw is a success or one of its failures")
	// The guard counts as rejected, not failed, the failure that opens
	// its breaker (the caller is told to wait, as when failed fast).
	opened := s.value("greffier_backend_breaker_opened_total", "backend", "transcription")
	require.GreaterOrEqual(t, opened, 1.0, "five failures in a row open the breaker")
	require.Equal(t, float64(failures), s.value("greffier_transcribe_calls_total", "backend", "transcription", "outcome", "failure")+opened)
	require.GreaterOrEqual(t, s.value("greffier_transcribe_calls_total", "backend", "transcription", "outcome", "rejected"), opened)
	require.Equal(t, 0.0, s.value("greffier_backend_breaker_state", "backend", "transcription"), "closed again")
	require.Equal(t, requests, s.value("greffier_backend_request_seconds", "backend", "transcription"))

	// One call for the minutes, failed after the client's own retries
	// (each a request the chat server saw).
	require.Greater(t, b.chat.Requests(), 1)
	require.Equal(t, 1.0, s.value("greffier_backend_errors_total", "backend", "summary"))
	require.Equal(t, 1.0, s.value("greffier_backend_request_seconds", "backend", "summary"))
}

// TestStorageErrorsAreCounted: a blob store that fails (a real disk store
// whose directory became a file) counts each failed operation by kind; a
// missing object is an answer, not an error.
func TestStorageErrorsAreCounted(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "blobs")
	disk, err := blob.NewDisk(dir)
	require.NoError(t, err)
	m := newMetrics()
	b := countedBlobs{Store: disk, errors: m.storageErrors}
	ctx := context.Background()
	_, err = b.Put(ctx, "m/ok", strings.NewReader("x"), 1)
	require.NoError(t, err)
	_, err = b.Stat(ctx, "m/missing")
	require.ErrorIs(t, err, blob.ErrNotFound)
	count := func(op string) float64 {
		var d dto.Metric
		require.NoError(t, m.storageErrors.WithLabelValues(op).Write(&d))
		return d.GetCounter().GetValue()
	}
	for _, op := range []string{"put", "get", "stat", "delete"} {
		require.Zero(t, count(op), "no failure yet: %s", op)
	}

	require.NoError(t, os.RemoveAll(dir))
	require.NoError(t, os.WriteFile(dir, []byte("not a directory"), 0o600))
	_, err = b.Put(ctx, "m/new", strings.NewReader("y"), 1)
	require.Error(t, err)
	require.Error(t, b.Delete(ctx, "m/ok"))
	_, err = b.Get(ctx, "m/ok")
	require.ErrorIs(t, err, blob.ErrNotFound, "under a file, nothing is found")
	require.Equal(t, 1.0, count("put"))
	require.Equal(t, 1.0, count("delete"))
	require.Zero(t, count("get"), "a missing object is an answer")
}

// TestBusyMediaPortNamesTheSetting: `greffier serve` on a media port
// another process holds fails, naming the setting to change (and, when
// only its TCP twin is taken, the one that turns ICE over TCP off), not a
// field of the code.
func TestBusyMediaPortNamesTheSetting(t *testing.T) {
	t.Parallel()
	serve := func(media string) error {
		env := map[string]string{"GREFFIER_DATA_DIR": t.TempDir(), "GREFFIER_HTTP_ADDR": "127.0.0.1:0",
			"GREFFIER_MEDIA_ADDR": media, "GREFFIER_LOG_LEVEL": "error"}
		// A start that wrongly succeeds stops here, and fails below.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		return run(ctx, []string{"serve"}, getenvOf(env), io.Discard, io.Discard)
	}
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer udp.Close()
	err = serve(udp.LocalAddr().String())
	require.ErrorIs(t, err, syscall.EADDRINUSE)
	require.ErrorContains(t, err, "the media port "+udp.LocalAddr().String()+" is busy")
	require.ErrorContains(t, err, "--media-addr / GREFFIER_MEDIA_ADDR")
	require.NotContains(t, err.Error(), "UDPAddr")

	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer tcp.Close()
	err = serve(tcp.Addr().String())
	require.ErrorIs(t, err, syscall.EADDRINUSE)
	require.ErrorContains(t, err, "busy over TCP")
	require.ErrorContains(t, err, "--media-addr / GREFFIER_MEDIA_ADDR")
	require.ErrorContains(t, err, "--ice-tcp=false / GREFFIER_ICE_TCP=false")
	require.NotContains(t, err.Error(), "ICETCP")
}

// TestStartErrorsNameTheSetting: what fails only when serve starts (a data
// directory that is a file, a TLS certificate that is not there) names the
// setting to change, as the configuration's own errors do.
func TestStartErrorsNameTheSetting(t *testing.T) {
	t.Parallel()
	serve := func(env map[string]string) error {
		env["GREFFIER_HTTP_ADDR"], env["GREFFIER_MEDIA_ADDR"], env["GREFFIER_LOG_LEVEL"] = "127.0.0.1:0", "127.0.0.1:0", "error"
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		return run(ctx, []string{"serve"}, getenvOf(env), io.Discard, io.Discard)
	}
	file := filepath.Join(t.TempDir(), "not-a-directory")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o600))
	require.ErrorContains(t, serve(map[string]string{"GREFFIER_DATA_DIR": file}), "--data-dir / GREFFIER_DATA_DIR")

	missing := filepath.Join(t.TempDir(), "cert.pem")
	err := serve(map[string]string{"GREFFIER_DATA_DIR": t.TempDir(), "GREFFIER_TLS_CERT_FILE": missing, "GREFFIER_TLS_KEY_FILE": missing})
	require.ErrorContains(t, err, "--tls-cert-file / GREFFIER_TLS_CERT_FILE")
	require.ErrorContains(t, err, missing)
}

// tcpProxy forwards a port to target until stopped: stopping it is a
// dependency going away (the real one, Postgres, keeps running for the
// other tests).
type tcpProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &tcpProxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

// stop closes the port and every connection through it.
func (p *tcpProxy) stop() {
	_ = p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

type readyAnswer struct {
	Ready    bool          `json:"ready"`
	NotReady string        `json:"not_ready"`
	Checks   []checkResult `json:"checks"`
}

// ready asks /readyz (without a token: probes carry none); it may be
// called from require.Eventually's goroutine, so it reports failures in
// its answer rather than stopping the test.
func (b *testBundle) ready(t *testing.T) (int, readyAnswer) {
	t.Helper()
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Get(b.url + "/readyz")
	if err != nil {
		return 0, readyAnswer{NotReady: "request failed: " + err.Error()}
	}
	defer resp.Body.Close()
	var a readyAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return resp.StatusCode, readyAnswer{NotReady: "unreadable answer: " + err.Error()}
	}
	return resp.StatusCode, a
}

// TestReadyzNamesEachDependencyThatIsDown starts Greffier on Postgres
// (through a port that can be closed), a stoppable S3 server and every
// kind of backend, checks /readyz says ready, then takes each dependency
// away in turn and checks /readyz answers 503 naming it with a reason,
// while /healthz still says the process is alive.
func TestReadyzNamesEachDependencyThatIsDown(t *testing.T) {
	t.Parallel()
	pgURL := testenv.Postgres(t)
	pgHost := strings.SplitN(strings.SplitN(pgURL, "@", 2)[1], "/", 2)[0]
	pg := newTCPProxy(t, pgHost)
	s3 := testenv.StartS3Server(t)
	s3cfg := s3.NewBucket(t)
	chat := summarizetest.NewServer(summarizetest.Options{})
	t.Cleanup(chat.Close)
	dd := diarizetest.NewServer(diarizetest.Options{})
	t.Cleanup(dd.Close)
	ky := kyutaitest.NewServer(kyutaitest.Options{})
	t.Cleanup(ky.Close)
	b := setup(t, setupOptions{configure: func(c *Config) {
		c.PostgresURL = strings.Replace(pgURL, pgHost, pg.addr(), 1)
		c.S3Endpoint, c.S3Bucket, c.S3AccessKey, c.S3SecretKey = s3cfg.Endpoint, s3cfg.Bucket, s3cfg.AccessKey, s3cfg.SecretKey
		c.SummaryURL, c.SummaryModel = chat.BaseURL(), "test-chat"
		c.DiarizeURL = dd.URL()
		c.CaptionsURL = ky.URL()
	}})
	status, a := b.ready(t)
	require.Equal(t, http.StatusOK, status, "%+v", a)
	require.True(t, a.Ready)
	names := []string{}
	for _, c := range a.Checks {
		require.True(t, c.OK, "%+v", c)
		names = append(names, c.Name)
	}
	require.ElementsMatch(t, []string{"database", "storage", "transcription", "summary", "diarization", "captions"}, names)

	down := []struct {
		name string
		stop func()
	}{
		{"transcription", b.double.Close},
		{"summary", chat.Close},
		{"diarization", dd.Close},
		{"captions", ky.Close},
		{"storage", func() { require.NoError(t, s3.Stop()) }},
		{"database", pg.stop},
	}
	var gone []string
	for _, d := range down {
		d.stop()
		gone = append(gone, d.name)
		var (
			a      readyAnswer
			status int
		)
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if status, a = b.ready(t); status == http.StatusServiceUnavailable && len(strings.Split(a.NotReady, ", ")) == len(gone) {
				break
			}
		}
		require.Equal(t, http.StatusServiceUnavailable, status, "after stopping %s: %+v", d.name, a)
		require.False(t, a.Ready)
		require.ElementsMatch(t, gone, strings.Split(a.NotReady, ", "), "%+v", a)
		for _, c := range a.Checks {
			if c.Name == d.name {
				require.False(t, c.OK)
				require.NotEmpty(t, c.Error, "the reason %s is not ready", c.Name)
				require.NotEmpty(t, c.Where)
			}
		}
		resp, err := http.Get(b.url + "/healthz")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "alive, if not ready")
	}
	// The server stops with its database gone; its clean-up may fail.
	b.stopped = true
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = b.app.Stop(sctx)
}

// logBuffer collects JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) records(t *testing.T) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(l.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &r), line)
		out = append(out, r)
	}
	return out
}

// TestServeLogsWhatAnOperatorNeeds runs `greffier serve` itself with JSON
// logs and no speech server: the banner says where everything is and that
// the backend did not answer, the API token is said generated only the
// first time, each meeting event is one line with the meeting's id, and
// River's routine lines stay at debug.
func TestServeLogsWhatAnOperatorNeeds(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	deadURL := "http://" + closed.Addr().String() + "/v1"
	require.NoError(t, closed.Close())
	httpAddr := freePort(t, "tcp")
	env := map[string]string{"GREFFIER_DATA_DIR": dir, "GREFFIER_HTTP_ADDR": httpAddr, "GREFFIER_MEDIA_ADDR": "127.0.0.1:0",
		"GREFFIER_TRANSCRIBE_URL": deadURL, "GREFFIER_LOG_FORMAT": "json", "GREFFIER_JOB_POLL_INTERVAL": "50ms"}
	serveOnce := func(work func(base, token string)) []map[string]any {
		logs := &logBuffer{}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- run(ctx, []string{"serve"}, func(k string) string { return env[k] }, io.Discard, logs) }()
		base := "http://" + httpAddr
		require.Eventually(t, func() bool {
			resp, err := http.Get(base + "/healthz")
			if err == nil {
				resp.Body.Close()
			}
			return err == nil
		}, 30*time.Second, 50*time.Millisecond)
		token, err := secretFile(dir, "api-token")
		require.NoError(t, err)
		work(base, token)
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(60 * time.Second):
			t.Fatal("serve did not stop")
		}
		return logs.records(t)
	}
	find := func(recs []map[string]any, msg string) []map[string]any {
		var out []map[string]any
		for _, r := range recs {
			if r["msg"] == msg {
				out = append(out, r)
			}
		}
		return out
	}

	var emptyID, spokenID string
	first := serveOnce(func(base, token string) {
		b := &testBundle{url: base, token: token}
		// A meeting nobody joined: its (empty) minutes come at once.
		var m meetingAnswer
		require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{"title": "logs"}, &m))
		emptyID = m.ID
		require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, nil))
		require.Eventually(t, func() bool {
			b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &m)
			return m.State != "ended"
		}, 30*time.Second, 50*time.Millisecond)
		// Deleted, it says so once it is gone.
		require.Equal(t, http.StatusAccepted, b.call(t, "DELETE", "/v1/meetings/"+m.ID, nil, nil))
		require.Eventually(t, func() bool {
			return b.call(t, "GET", "/v1/meetings/"+m.ID, nil, nil) == http.StatusNotFound
		}, 30*time.Second, 50*time.Millisecond)
		// A meeting alice speaks in: its speech waits for the backend,
		// and its progress says the backend is unreachable.
		spoken := b.aliceSpeaksThenEnds(t)
		spokenID = spoken.ID
		var w struct {
			Pipeline struct {
				Waiting []struct {
					Backend   string `json:"backend"`
					LastError string `json:"last_error"`
				} `json:"waiting"`
			} `json:"pipeline"`
		}
		require.Eventually(t, func() bool {
			b.call(t, "GET", "/v1/meetings/"+spokenID, nil, &w)
			return len(w.Pipeline.Waiting) > 0
		}, 30*time.Second, 50*time.Millisecond)
		require.Contains(t, w.Pipeline.Waiting[0].Backend, deadURL)
		require.Contains(t, w.Pipeline.Waiting[0].LastError, "backend unreachable")
	})
	banner := find(first, "greffier serving")
	require.Len(t, banner, 1)
	require.Equal(t, "http://"+httpAddr+"/join/", banner[0]["join_page"])
	for _, k := range []string{"api", "media_udp", "database", "storage", "data_dir", "metrics", "ready"} {
		require.NotEmpty(t, banner[0][k], k)
	}
	require.Len(t, find(first, "API token generated"), 1)
	var backendDown []map[string]any
	for _, r := range first {
		if strings.HasPrefix(r["msg"].(string), "transcription backend did not answer") {
			backendDown = append(backendDown, r)
		}
	}
	require.Len(t, backendDown, 1)
	require.Equal(t, "WARN", backendDown[0]["level"])
	require.Contains(t, backendDown[0]["err"], "unreachable")
	for _, id := range []string{emptyID, spokenID} {
		for _, msg := range []string{"meeting created", "meeting ended"} {
			got := 0
			for _, r := range find(first, msg) {
				if r["meeting"] == id {
					got++
				}
			}
			require.Equal(t, 1, got, "%s %s", msg, id)
		}
	}
	deleted := find(first, "meeting deleted")
	require.Len(t, deleted, 1)
	require.Equal(t, emptyID, deleted[0]["meeting"])
	require.Equal(t, "INFO", deleted[0]["level"])
	live := find(first, "meeting live")
	require.Len(t, live, 1)
	require.Equal(t, spokenID, live[0]["meeting"])
	minutesMade := append(find(first, "minutes ready"), find(first, "minutes incomplete: some speech is missing, and the minutes say whose and why")...)
	require.Len(t, minutesMade, 1)
	require.Equal(t, emptyID, minutesMade[0]["meeting"])
	for _, r := range first {
		msg := r["msg"].(string)
		require.NotContains(t, msg, "Producer job counts")
		require.NotContains(t, msg, "poll only mode")
		require.NotContains(t, msg, "migration")
	}

	second := serveOnce(func(string, string) {})
	require.Empty(t, find(second, "API token generated"), "read back from its file, not generated")
}

// secretFile reads a generated secret.
func secretFile(dir, name string) (string, error) {
	v, generated, err := secret("", dir, name)
	if generated {
		return "", errors.New(name + " was not generated by the server")
	}
	return v, err
}

// TestJobsDashboardIsTheAdmins: River UI is served under /admin/jobs/ to
// the API token (bearer, or the password of Basic authentication for a
// browser) and to nobody else, and it reads this server's jobs, on SQLite
// and on Postgres.
func TestJobsDashboardIsTheAdmins(t *testing.T) {
	t.Parallel()
	for name, scaleOut := range map[string]bool{"sqlite": false, "postgres": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOptions{scaleOut: scaleOut})
			b.aliceSpeaksThenEnds(t)
			get := func(path string, auth func(*http.Request)) (int, string, http.Header) {
				req, err := http.NewRequest(http.MethodGet, b.url+path, nil)
				require.NoError(t, err)
				if auth != nil {
					auth(req)
				}
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				require.NoError(t, err)
				return resp.StatusCode, string(body), resp.Header
			}
			bearer := func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+b.token) }
			basic := func(r *http.Request) { r.SetBasicAuth("admin", b.token) }
			wrong := func(r *http.Request) { r.SetBasicAuth("admin", "not-the-token") }

			for _, auth := range []func(*http.Request){nil, wrong} {
				status, body, h := get("/admin/jobs/", auth)
				require.Equal(t, http.StatusUnauthorized, status)
				require.Contains(t, h.Get("WWW-Authenticate"), "Basic")
				require.Contains(t, body, `"code": "unauthorized"`)
			}
			status, body, _ := get("/admin/jobs/", basic)
			require.Equal(t, http.StatusOK, status)
			// A stored admin key is an admin; a host key is not.
			for role, want := range map[string]int{"admin": http.StatusOK, "host": http.StatusForbidden} {
				var k struct{ Key string }
				require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/keys", map[string]any{"name": role + "-key", "role": role}, &k))
				status, _, _ := get("/admin/jobs/", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+k.Key) })
				require.Equal(t, want, status, role)
				status, _, _ = get("/metrics", func(r *http.Request) { r.SetBasicAuth("x", k.Key) })
				require.Equal(t, want, status, role)
			}
			require.Contains(t, body, "<html")

			var jobs struct {
				Data []struct {
					Kind  string `json:"kind"`
					State string `json:"state"`
				} `json:"data"`
			}
			require.Eventually(t, func() bool {
				status, body, _ := get("/admin/jobs/api/jobs?state=completed&limit=100", bearer)
				if status != http.StatusOK || json.Unmarshal([]byte(body), &jobs) != nil {
					return false
				}
				for _, j := range jobs.Data {
					if j.Kind == "assemble_minutes" {
						return true
					}
				}
				return false
			}, 60*time.Second, 200*time.Millisecond, "the meeting's jobs are listed")
		})
	}
}

// TestMetricsOnTheirOwnAddress: with GREFFIER_METRICS_ADDR, /metrics is
// served there to anyone (a private network's scraper) and no longer on
// the API address.
func TestMetricsOnTheirOwnAddress(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{configure: func(c *Config) { c.MetricsAddr = "127.0.0.1:0" }})
	resp, err := http.Get("http://" + b.app.metricsLn.Addr().String() + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	for _, st := range []string{"importing", "created", "live", "ended", "ready", "incomplete", "failed", "deleting"} {
		require.Contains(t, string(body), `greffier_meetings{state="`+st+`"} 0`)
	}
	require.Contains(t, string(body), "greffier_sfu_packets_received_total 0")

	req, err := http.NewRequest(http.MethodGet, b.url+"/metrics", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+b.token)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

// TestOperationsDocListsEveryMetric: the metrics table of
// docs/operations.md names every family Greffier exports, and no other.
func TestOperationsDocListsEveryMetric(t *testing.T) {
	t.Parallel()
	ch := make(chan *prometheus.Desc, 64)
	m := newMetrics()
	for _, c := range []prometheus.Collector{m.backendLatency, m.backendErrors, m.storageErrors, m.minutesLatency} {
		c.Describe(ch)
	}
	for _, d := range collectorDescs {
		ch <- d
	}
	close(ch)
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	var code []string
	for d := range ch {
		match := fqName.FindStringSubmatch(d.String())
		require.NotNil(t, match, d.String())
		code = append(code, match[1])
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	require.NoError(t, err)
	var doc []string
	for _, row := range regexp.MustCompile("(?m)^\\| `(greffier_[a-z_]+)` \\|").FindAllStringSubmatch(string(raw), -1) {
		doc = append(doc, row[1])
	}
	require.ElementsMatch(t, code, doc, "docs/operations.md's metrics table")
}
