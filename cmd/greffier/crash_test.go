package main

import (
	"context"
	"database/sql"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/faulttest"
	"github.com/greffier/greffier/internal/testenv"
	"github.com/greffier/greffier/minutes"
	"github.com/greffier/greffier/sfu/sfutest"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

// child is `greffier serve` running as a separate process, so it can be
// killed for real.
type child struct {
	bin, dataDir  string
	httpAddr, udp string
	env           []string
	cmd           *exec.Cmd
	log           *os.File
}

func freePort(t *testing.T, network string) string {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		require.NoError(t, err)
		defer c.Close()
		return c.LocalAddr().String()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

func startChild(t *testing.T, c *child) {
	t.Helper()
	c.cmd = exec.Command(c.bin, "serve")
	c.cmd.Env = append(os.Environ(), c.env...)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, c.cmd.Start())
	t.Cleanup(func() { _ = c.cmd.Process.Kill(); _ = c.cmd.Wait() })
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + c.httpAddr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond, "greffier serve did not come up; see %s", c.log.Name())
}

// TestKillMidMeetingLosesAtMostASecond kills `greffier serve` with SIGKILL
// while a participant speaks, starts it again on the same data directory,
// and checks the recording was recovered (at most about a second lost)
// and the minutes still come out.
func TestKillMidMeetingLosesAtMostASecond(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "greffier")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))
	double := transcribetest.NewServer(transcribetest.Options{})
	t.Cleanup(double.Close)
	logf, err := os.Create(filepath.Join(dir, "serve.log"))
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("greffier serve log:\n%s", b)
		}
	})
	c := &child{bin: bin, dataDir: filepath.Join(dir, "data"), httpAddr: freePort(t, "tcp"), udp: freePort(t, "udp"), log: logf}
	c.env = []string{"GREFFIER_DATA_DIR=" + c.dataDir, "GREFFIER_HTTP_ADDR=" + c.httpAddr, "GREFFIER_MEDIA_ADDR=" + c.udp,
		"GREFFIER_API_TOKEN=crash-test-token", "GREFFIER_TRANSCRIBE_URL=" + double.BaseURL(),
		"GREFFIER_JOB_POLL_INTERVAL=50ms", "GREFFIER_JOB_RETRY_BASE=50ms", "GREFFIER_LOG_LEVEL=debug"}
	startChild(t, c)
	b := &testBundle{url: "http://" + c.httpAddr, token: "crash-test-token", double: double}

	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"participants": []map[string]any{{"identity": "alice", "display_name": "Alice"}}}, &m))
	ctx := context.Background()
	pub, err := sfutest.Publish(ctx, sfutest.PublishOptions{WHIPURL: b.url + "/v1/whip", Token: m.Join[0].Token,
		OggPath: filepath.Join(fixtures, "alice.opus")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.CloseWithoutDelete() })

	// Kill once 4.5 s are sent: alice's first sentence (1.0–2.5 s) is in.
	require.Eventually(t, func() bool { return len(pub.Sent()) >= 225 }, 20*time.Second, 10*time.Millisecond)
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGKILL))
	_ = c.cmd.Wait()
	sentMS := int64(len(pub.Sent())) * 20
	require.NoError(t, pub.CloseWithoutDelete())

	startChild(t, c)
	var list struct {
		Tracks []struct {
			State      string
			DurationMS int64 `json:"duration_ms"`
			GapMS      int64 `json:"gap_ms"`
		} `json:"tracks"`
	}
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/tracks", nil, &list))
	require.Len(t, list.Tracks, 1)
	tr := list.Tracks[0]
	require.Equal(t, "recovered", tr.State)
	require.Greater(t, tr.DurationMS, sentMS-1200, "at most about a second of audio lost (sent %d ms)", sentMS)
	require.LessOrEqual(t, tr.DurationMS, sentMS+100)

	var ended meetingAnswer
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, &ended))
	var now meetingAnswer
	require.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &now)
		return now.State == "ready" || now.State == "failed"
	}, 60*time.Second, 100*time.Millisecond)
	require.Equal(t, "ready", now.State)
	var doc minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &doc))
	require.NotEmpty(t, doc.Turns)
	require.Equal(t, "alpha bravo charlie delta", doc.Turns[0].Text)

}

// runningPipelineJobs counts the pipeline's jobs River shows as running in
// the database at url (a SQLite file or a Postgres URL).
func runningPipelineJobs(t *testing.T, dialect, url string) int {
	t.Helper()
	driver, dsn := "pgx", url
	if dialect == "sqlite" {
		driver, dsn = "sqlite", "file:"+url+"?_pragma=busy_timeout(10000)"
	}
	db, err := sql.Open(driver, dsn)
	require.NoError(t, err)
	defer db.Close()
	var n int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM river_job WHERE state = 'running'
		AND kind IN ('detect_speech', 'transcribe_segment', 'assemble_minutes')`).Scan(&n))
	return n
}

// TestFaultKillDuringTranscriptionResumesWithinSeconds kills `greffier
// serve` with SIGKILL while its transcription jobs are running (the
// backend holds their requests), starts it again, and checks the jobs the
// dead process held are taken up at once: the minutes come within seconds
// of the restart, on SQLite as on Postgres, where another node may be alive
// and only a stopped heartbeat tells a dead one.
func TestFaultKillDuringTranscriptionResumesWithinSeconds(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "greffier")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			// Alice's two sentences are held by the backend until the
			// server that sent them is killed; later requests are answered.
			double := transcribetest.NewServer(transcribetest.Options{Delay: 10 * time.Minute, DelayFirst: 2})
			t.Cleanup(double.Close)
			logf, err := os.Create(filepath.Join(dir, "serve.log"))
			require.NoError(t, err)
			t.Cleanup(func() {
				if t.Failed() {
					b, _ := os.ReadFile(logf.Name())
					t.Logf("greffier serve log:\n%s", b)
				}
			})
			c := &child{bin: bin, dataDir: filepath.Join(dir, "data"), httpAddr: freePort(t, "tcp"), udp: freePort(t, "udp"), log: logf}
			c.env = []string{"GREFFIER_DATA_DIR=" + c.dataDir, "GREFFIER_HTTP_ADDR=" + c.httpAddr, "GREFFIER_MEDIA_ADDR=" + c.udp,
				"GREFFIER_API_TOKEN=crash-test-token", "GREFFIER_TRANSCRIBE_URL=" + double.BaseURL(),
				"GREFFIER_JOB_POLL_INTERVAL=50ms", "GREFFIER_JOB_RETRY_BASE=50ms", "GREFFIER_LOG_LEVEL=debug"}
			dbURL := filepath.Join(c.dataDir, "greffier.db")
			if dialect == "postgres" {
				dbURL = testenv.Postgres(t)
				c.env = append(c.env, "GREFFIER_POSTGRES_URL="+dbURL)
			}
			startChild(t, c)
			b := &testBundle{url: "http://" + c.httpAddr, token: "crash-test-token", double: double}

			var m meetingAnswer
			require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
				"participants": []map[string]any{{"identity": "alice", "display_name": "Alice"}}}, &m))
			ctx := context.Background()
			pub, err := sfutest.Publish(ctx, sfutest.PublishOptions{WHIPURL: b.url + "/v1/whip", Token: m.Join[0].Token,
				OggPath: filepath.Join(fixtures, "alice.opus")})
			require.NoError(t, err)
			select {
			case <-pub.Done():
			case <-time.After(30 * time.Second):
				t.Fatal("publisher did not finish sending its file")
			}
			require.NoError(t, pub.Close(ctx))
			require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, nil))
			require.Eventually(t, func() bool {
				return double.Requests() >= 2 && runningPipelineJobs(t, dialect, dbURL) == 2
			}, 30*time.Second, 50*time.Millisecond, "both transcriptions running")

			require.NoError(t, c.cmd.Process.Signal(syscall.SIGKILL))
			_ = c.cmd.Wait()
			startChild(t, c)
			restarted := time.Now()

			// Hours under River's default rescue; seconds when a restart
			// (SQLite) or a silent heartbeat (Postgres) says who is dead.
			var now meetingAnswer
			for time.Since(restarted) < 45*time.Second {
				b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &now)
				if now.State != "ended" {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			t.Logf("state %s %v after the restart", now.State, time.Since(restarted).Round(time.Millisecond))
			// River records jobs' completion in batches: give it a moment
			// before counting what is still held.
			stuck := runningPipelineJobs(t, dialect, dbURL)
			for deadline := time.Now().Add(10 * time.Second); stuck > 0 && time.Now().Before(deadline); {
				time.Sleep(100 * time.Millisecond)
				stuck = runningPipelineJobs(t, dialect, dbURL)
			}
			faulttest.Report(t, faulttest.FaultsInjected, 1)
			faulttest.Report(t, faulttest.JobsStuck, float64(stuck))
			require.Equal(t, "ready", now.State, "pipeline: %+v", now.Pipeline)
			require.Zero(t, stuck)
			var doc minutes.Document
			require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &doc))
			require.True(t, doc.Complete, "missing: %+v", doc.Missing)
			script, err := transcribetest.ReadScript(filepath.Join(fixtures, "script.json"))
			require.NoError(t, err)
			spoken, heard := 0, 0
			for _, u := range script.Utterances {
				if u.Speaker == "alice" {
					spoken += len(u.Words)
				}
			}
			for _, turn := range doc.Turns {
				heard += len(turn.Words)
			}
			faulttest.Report(t, faulttest.WordsLost, float64(spoken-heard))
			require.Len(t, doc.Turns, 2)
			require.Equal(t, "alpha bravo charlie delta", doc.Turns[0].Text)
			require.Equal(t, spoken, heard)
		})
	}
}
