package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/faulttest"
	"github.com/greffier/greffier/internal/testenv"
	"github.com/greffier/greffier/minutes"
	"github.com/greffier/greffier/sfu/sfutest"
	"github.com/greffier/greffier/summarize/summarizetest"
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

// freePort finds a loopback port for a child to listen on. A media port
// ("udp") serves ICE over TCP on the same number, and is restarted on after
// a kill: a port the kernel picked would be in its ephemeral range, where
// any outgoing TCP connection on this busy machine may take its TCP twin
// before the child binds it. So it is drawn below that range, and free over
// both UDP and TCP when drawn.
func freePort(t testing.TB, network string) string {
	t.Helper()
	if network == "udp" {
		for range 100 {
			addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
			c, err := net.ListenPacket("udp", addr)
			if err != nil {
				continue
			}
			l, err := net.Listen("tcp", addr)
			_ = c.Close()
			if err != nil {
				continue
			}
			_ = l.Close()
			return addr
		}
		t.Fatal("no free UDP and TCP port pair below the ephemeral range")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

func startChild(t testing.TB, c *child) {
	t.Helper()
	c.cmd = exec.Command(c.bin, "serve")
	c.cmd.Env = append(os.Environ(), c.env...)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, c.cmd.Start())
	cmd := c.cmd
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		// Every life of the child ends with a SIGKILL, the test's own
		// (kill9 or this cleanup); any other end is a crash.
		ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
		crashed := !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL
		if !crashed {
			faulttest.Report(t, faulttest.Crashes, 0)
		} else {
			faulttest.Report(t, faulttest.Crashes, 1)
			t.Errorf("greffier serve ended by itself (%v); see %s", cmd.ProcessState, c.log.Name())
		}
	})
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + c.httpAddr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond, "greffier serve did not come up; see %s", c.log.Name())
}

// buildServe builds the greffier binary the kill tests run as a child.
func buildServe(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "greffier")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))
	return bin
}

// startKillable starts `greffier serve` from bin as a child on dialect
// (sqlite or postgres) with the speech double and any extra environment,
// and returns it, a bundle to call its API, and its database (a SQLite
// file or a Postgres URL). The child's log is shown when the test fails.
func startKillable(t *testing.T, bin, dialect string, double *transcribetest.Server, extra ...string) (*child, *testBundle, string) {
	t.Helper()
	dir := t.TempDir()
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
	c.env = append(c.env, extra...)
	dbURL := filepath.Join(c.dataDir, "greffier.db")
	if dialect == "postgres" {
		dbURL = testenv.Postgres(t)
		c.env = append(c.env, "GREFFIER_POSTGRES_URL="+dbURL)
	}
	startChild(t, c)
	return c, &testBundle{url: "http://" + c.httpAddr, token: "crash-test-token", double: double}, dbURL
}

// kill9 kills the child with SIGKILL and waits for it to be gone.
func kill9(t *testing.T, c *child) {
	t.Helper()
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGKILL))
	_ = c.cmd.Wait()
}

// sentMS is how much of its file the publisher has sent, in ms of audio:
// the span of the RTP timestamps sent (48 kHz) plus the last packet's 20 ms.
func sentMS(pub *sfutest.Publisher) int64 {
	sent := pub.Sent()
	if len(sent) == 0 {
		return 0
	}
	return int64(sent[len(sent)-1].Timestamp-sent[0].Timestamp)/48 + 20
}

// wordsUntil keeps the words of speaker's utterances that were wholly
// spoken in the first untilMS of the fixture.
func wordsUntil(script transcribetest.Script, speaker string, untilMS int64) transcribetest.Script {
	out := transcribetest.Script{Length: script.Length, SampleRate: script.SampleRate}
	for _, u := range script.Utterances {
		if u.Speaker != speaker {
			continue
		}
		kept := u
		kept.Words = nil
		for _, w := range u.Words {
			if int64(w.End*1000) <= untilMS {
				kept.Words = append(kept.Words, w)
			}
		}
		if len(kept.Words) > 0 {
			out.Utterances = append(out.Utterances, kept)
		}
	}
	return out
}

// TestFaultKillMidMeetingLosesAtMostASecond kills `greffier serve` with
// SIGKILL while a participant speaks, starts it again on the same data
// directory and database, and checks the recording was recovered (at most
// about a second lost, the lost stretch stated) and that every word spoken
// before the kill is in the minutes or inside a stated gap, on SQLite as on
// Postgres, and with the data at rest encrypted (whose spool, as the kill
// left it, holds no audio in clear).
func TestFaultKillMidMeetingLosesAtMostASecond(t *testing.T) {
	t.Parallel()
	bin := buildServe(t)
	script, err := transcribetest.ReadScript(filepath.Join(fixtures, "script.json"))
	require.NoError(t, err)
	for _, name := range []string{"sqlite", "postgres", "sqlite+encrypted"} {
		dialect, encrypted := strings.CutSuffix(name, "+encrypted")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			double := transcribetest.NewServer(transcribetest.Options{})
			t.Cleanup(double.Close)
			var extra []string
			if encrypted {
				extra = append(extra, "GREFFIER_KEK_FILE="+writeKEK(t))
			}
			c, b, _ := startKillable(t, bin, dialect, double, extra...)

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
			atKill := sentMS(pub)
			kill9(t, c)
			afterKill := sentMS(pub)
			require.NoError(t, pub.CloseWithoutDelete())
			if encrypted {
				spools, err := filepath.Glob(filepath.Join(c.dataDir, "spool", m.ID, "*"))
				require.NoError(t, err)
				require.Len(t, spools, 2, "the killed track's spool and sidecar")
				for _, p := range spools {
					raw, err := os.ReadFile(p)
					require.NoError(t, err)
					require.Greater(t, len(raw), 1000*strings.Count(p, ".webm"), "%s holds what was spooled", p)
					requireNoClearSignature(t, p, raw)
				}
			}

			startChild(t, c)
			var list struct {
				Tracks []struct {
					State      string
					StartMS    int64 `json:"start_ms"`
					DurationMS int64 `json:"duration_ms"`
					GapMS      int64 `json:"gap_ms"`
				} `json:"tracks"`
			}
			require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/tracks", nil, &list))
			require.Len(t, list.Tracks, 1)
			tr := list.Tracks[0]
			t.Logf("sent %d ms before the kill, %d by its end; recovered %+v", atKill, afterKill, tr)
			faulttest.Report(t, faulttest.FaultsInjected, 1)
			faulttest.Report(t, faulttest.AudioLostMS, float64(max(atKill-tr.DurationMS, 0)))
			lost := b.recordingsLost(t, m.ID, "alice")
			faulttest.Report(t, faulttest.RecordingsLost, float64(lost))
			require.Zero(t, lost)
			require.Equal(t, "recovered", tr.State)
			require.Greater(t, tr.DurationMS, atKill-1200, "at most about a second of audio lost (sent %d ms)", atKill)
			require.LessOrEqual(t, tr.DurationMS, afterKill+100)

			var ended meetingAnswer
			require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, &ended))
			var now meetingAnswer
			require.Eventually(t, func() bool {
				b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &now)
				return now.State != "ended"
			}, 45*time.Second, 100*time.Millisecond)
			var doc minutes.Document
			require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &doc))
			words := wordsLost(doc, wordsUntil(script, "alice", atKill), map[string]int64{"alice": tr.StartMS})
			faulttest.Report(t, faulttest.WordsLost, float64(words))
			require.Zero(t, words, "every word said before the kill is in the minutes or inside a stated gap")
			require.NotEmpty(t, doc.Turns)
			require.Equal(t, "alpha bravo charlie delta", doc.Turns[0].Text)
			// A stretch the kill cut off is stated, and then the minutes
			// cannot claim to be complete.
			if tr.GapMS > 0 {
				require.Equal(t, "incomplete", now.State, "pipeline: %+v", now.Pipeline)
				require.False(t, doc.Complete)
				require.NotEmpty(t, doc.Missing)
			} else {
				require.Equal(t, "ready", now.State, "pipeline: %+v", now.Pipeline)
				require.True(t, doc.Complete, "missing: %+v", doc.Missing)
			}
		})
	}
}

// runningPipelineJobs lists the pipeline's jobs River shows as running in
// the given database.
func runningPipelineJobs(t *testing.T, dialect, url string) []string {
	t.Helper()
	return runningJobs(t, dialect, url, "detect_speech", "transcribe_segment", "assemble_minutes")
}

// runningJobs lists the jobs of the given kinds River shows as running, each
// with the node that holds it, so that a failure names what is stuck.
func runningJobs(t *testing.T, dialect, url string, kinds ...string) []string {
	t.Helper()
	driver, dsn := "pgx", url
	if dialect == "sqlite" {
		driver, dsn = "sqlite", "file:"+url+"?_pragma=busy_timeout(10000)"
	}
	db, err := sql.Open(driver, dsn)
	require.NoError(t, err)
	defer db.Close()
	var held []string
	rows, err := db.Query(`SELECT id, kind, attempt, attempted_by FROM river_job WHERE state = 'running'`)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var (
			id, attempt int64
			kind        string
			by          sql.NullString
		)
		require.NoError(t, rows.Scan(&id, &kind, &attempt, &by))
		if slices.Contains(kinds, kind) {
			held = append(held, fmt.Sprintf("%s #%d attempt %d by %s", kind, id, attempt, by.String))
		}
	}
	require.NoError(t, rows.Err())
	return held
}

// jobsStillHeld waits for the pipeline's jobs to be done with after a
// restart and returns those still running. A job the dead process held is
// taken up once its node has been silent for the node timeout (10 s) and
// then runs again; River records completions in batches. Three node
// timeouts tell a job that is late on a loaded machine from one nobody
// will take up, which River alone would leave for hours.
func jobsStillHeld(t *testing.T, dialect, url string) []string {
	t.Helper()
	var held []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		if held = runningPipelineJobs(t, dialect, url); len(held) == 0 || time.Now().After(deadline) {
			return held
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFaultKillDuringTranscriptionResumesWithinSeconds kills `greffier
// serve` with SIGKILL while its transcription jobs are running (the
// backend holds their requests), starts it again, and checks the jobs the
// dead process held are taken up at once: the minutes come within seconds
// of the restart, on SQLite as on Postgres, where another node may be alive
// and only a stopped heartbeat tells a dead one.
func TestFaultKillDuringTranscriptionResumesWithinSeconds(t *testing.T) {
	t.Parallel()
	bin := buildServe(t)
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			// Alice's first sentence is held by the backend until the
			// server that sent it is killed; later requests are answered.
			// Her second waits for it (a speaker's segments go in order,
			// each prompted with the words before it).
			double := transcribetest.NewServer(transcribetest.Options{Delay: 10 * time.Minute, DelayFirst: 1})
			t.Cleanup(double.Close)
			c, b, dbURL := startKillable(t, bin, dialect, double)

			m := b.aliceSpeaksThenEnds(t)
			require.Eventually(t, func() bool {
				return double.Requests() >= 1 && len(runningPipelineJobs(t, dialect, dbURL)) == 1
			}, 30*time.Second, 50*time.Millisecond, "her first transcription running")

			// Hours under River's default rescue; seconds when a restart
			// (SQLite) or a silent heartbeat (Postgres) says who is dead.
			now, _ := b.killAndRestart(t, c, m.ID)
			held := jobsStillHeld(t, dialect, dbURL)
			stuck := len(held)
			faulttest.Report(t, faulttest.FaultsInjected, 1)
			faulttest.Report(t, faulttest.JobsStuck, float64(stuck))
			require.Equal(t, "ready", now.State, "pipeline: %+v", now.Pipeline)
			require.Empty(t, held, "jobs still held long after the restart")
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

// TestFaultKillDuringAssemblyResumesWithinSeconds kills `greffier serve`
// with SIGKILL while it assembles the minutes (the chat backend holds the
// summary it asked for), starts it again, and checks the assembly the dead
// process held is taken up at once: the minutes come within seconds, once,
// whole and summarised, on SQLite as on Postgres.
func TestFaultKillDuringAssemblyResumesWithinSeconds(t *testing.T) {
	t.Parallel()
	bin := buildServe(t)
	script, err := transcribetest.ReadScript(filepath.Join(fixtures, "script.json"))
	require.NoError(t, err)
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			double := transcribetest.NewServer(transcribetest.Options{})
			t.Cleanup(double.Close)
			// The first summary is held until the server that asked for
			// it is killed; the restarted one is answered.
			chat := summarizetest.NewServer(summarizetest.Options{Stall: true, StallFirst: 1})
			t.Cleanup(chat.Close)
			c, b, dbURL := startKillable(t, bin, dialect, double,
				"GREFFIER_SUMMARY_URL="+chat.BaseURL(), "GREFFIER_SUMMARY_MODEL=test-chat")

			m := b.aliceSpeaksThenEnds(t)
			require.Eventually(t, func() bool {
				return chat.Requests() >= 1 && len(runningJobs(t, dialect, dbURL, "assemble_minutes")) == 1
			}, 30*time.Second, 50*time.Millisecond, "the assembly is running, waiting for its summary")

			now, took := b.killAndRestart(t, c, m.ID)
			held := jobsStillHeld(t, dialect, dbURL)
			stuck := len(held)
			faulttest.Report(t, faulttest.FaultsInjected, 1)
			faulttest.Report(t, faulttest.JobsStuck, float64(stuck))
			require.Equal(t, "ready", now.State, "pipeline: %+v", now.Pipeline)
			require.Less(t, took, 30*time.Second, "the dead process's assembly is taken up without waiting for a rescue window")
			require.Empty(t, held, "jobs still held long after the restart")

			var doc minutes.Document
			require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &doc))
			var tr trackAnswer
			require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/tracks", nil, &tr))
			require.Len(t, tr.Tracks, 1)
			words := wordsLost(doc, wordsUntil(script, "alice", int64(script.Length*1000)), map[string]int64{"alice": tr.Tracks[0].StartMS})
			faulttest.Report(t, faulttest.WordsLost, float64(words))
			require.Zero(t, words)
			require.True(t, doc.Complete, "missing: %+v", doc.Missing)
			require.Len(t, doc.Turns, 2)
			require.Equal(t, "alpha bravo charlie delta", doc.Turns[0].Text)
			require.Equal(t, "transcript+summary", doc.Content, "the restarted process summarised the minutes")
			require.Equal(t, 2, chat.Requests(), "the held summary and the restarted one")
			// Assembled once: the killed assembly saved nothing, so there
			// is one version, not two.
			require.Equal(t, 1, doc.Version)
			var e struct{ Error struct{ Code string } }
			require.Equal(t, http.StatusNotFound, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes?version=2", nil, &e))
		})
	}
}

// aliceSpeaksThenEnds holds a meeting in which alice says her fixture to
// its end, then ends it.
func (b *testBundle) aliceSpeaksThenEnds(t *testing.T) meetingAnswer {
	t.Helper()
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
	return m
}

// killAndRestart kills the child with SIGKILL, starts it again on the same
// data, and waits (up to 45 s) for the meeting to leave `ended`; it returns
// the meeting then and how long after the restart that was.
func (b *testBundle) killAndRestart(t *testing.T, c *child, meetingID string) (meetingAnswer, time.Duration) {
	t.Helper()
	kill9(t, c)
	startChild(t, c)
	restarted := time.Now()
	var now meetingAnswer
	assert.Eventually(t, func() bool {
		now = meetingAnswer{}
		b.call(t, "GET", "/v1/meetings/"+meetingID, nil, &now)
		return now.State != "ended"
	}, 45*time.Second, 100*time.Millisecond)
	took := time.Since(restarted)
	t.Logf("state %s %v after the restart", now.State, took.Round(time.Millisecond))
	return now, took
}
