package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/transcribe/transcribetest"
)

// procUsage is what /proc says of a process: CPU time used so far, and
// resident memory now and at its peak.
type procUsage struct {
	cpu       time.Duration
	rss, peak int64 // bytes
}

func readProc(tb testing.TB, pid int) procUsage {
	tb.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(tb, err)
	// The fields after the command name, which may hold spaces, closed by ")".
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, err := strconv.ParseInt(fields[11], 10, 64)
	require.NoError(tb, err)
	stime, err := strconv.ParseInt(fields[12], 10, 64)
	require.NoError(tb, err)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(tb, err)
	var rssKB, peakKB int64
	for _, line := range strings.Split(string(status), "\n") {
		for prefix, into := range map[string]*int64{"VmRSS:": &rssKB, "VmHWM:": &peakKB} {
			if v, ok := strings.CutPrefix(line, prefix); ok {
				*into, err = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				require.NoError(tb, err)
			}
		}
	}
	const ticks = 100 // USER_HZ on Linux
	return procUsage{cpu: time.Duration(utime+stime) * time.Second / ticks, rss: rssKB * 1024, peak: peakKB * 1024}
}

// BenchmarkLiveKitRecordingCost measures what recording a LiveKit room
// costs `greffier serve` (a child process, SQLite, disk storage, the
// speech double as backend): its CPU time per second of each participant
// recorded, from the first packet heard to the last sent, transcription
// of the live path included, and its resident memory while recording,
// against the same process idle. livekit-server and the publishers run in
// other processes and are not counted. One iteration is one meeting of
// the 9 s fixtures; run with -benchtime=1x.
func BenchmarkLiveKitRecordingCost(b *testing.B) {
	lk := startLiveKit(b, "")
	bin := buildServe(b)
	for _, n := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("participants=%d", n), func(b *testing.B) {
			double := transcribetest.NewServer(transcribetest.Options{})
			b.Cleanup(double.Close)
			dir := b.TempDir()
			logf, err := os.Create(filepath.Join(dir, "serve.log"))
			require.NoError(b, err)
			c := &child{bin: bin, dataDir: filepath.Join(dir, "data"), httpAddr: freePort(b, "tcp"), udp: freePort(b, "udp"), log: logf}
			c.env = []string{"GREFFIER_DATA_DIR=" + c.dataDir, "GREFFIER_HTTP_ADDR=" + c.httpAddr, "GREFFIER_MEDIA_ADDR=" + c.udp,
				"GREFFIER_API_TOKEN=bench-token", "GREFFIER_TRANSCRIBE_URL=" + double.BaseURL(), "GREFFIER_LOG_LEVEL=warn",
				"GREFFIER_LIVEKIT_URL=" + lk.url, "GREFFIER_LIVEKIT_API_KEY=" + liveKitKey, "GREFFIER_LIVEKIT_API_SECRET=" + liveKitSecret}
			startChild(b, c)
			api := &testBundle{url: "http://" + c.httpAddr, token: "bench-token", double: double}
			var cpuPerSecond, rssPer, idleRSS float64
			for i := 0; i < b.N; i++ {
				room := fmt.Sprintf("bench-%d-%d", n, i)
				var m meetingAnswer
				require.Equal(b, http.StatusCreated, api.call(b, "POST", "/v1/livekit/rooms/"+room+"/record", nil, &m))
				idle := readProc(b, c.cmd.Process.Pid)
				pubs := make([]*lkPublisher, n)
				for k := range pubs {
					who := fmt.Sprintf("p%d", k)
					pubs[k] = publishToLiveKit(b, lk, room, who, who, filepath.Join(fixtures, []string{"alice", "bob"}[k%2]+".opus"),
						func() bool { return api.hears(b, m.ID, who) })
				}
				for _, p := range pubs {
					for p.started.Load() == nil {
						time.Sleep(10 * time.Millisecond)
					}
				}
				start := readProc(b, c.cmd.Process.Pid)
				began := time.Now()
				var peak int64
				for _, p := range pubs {
					for done := false; !done; {
						select {
						case <-p.done:
							done = true
						case <-time.After(200 * time.Millisecond):
							peak = max(peak, readProc(b, c.cmd.Process.Pid).rss)
						}
					}
				}
				end := readProc(b, c.cmd.Process.Pid)
				seconds := time.Since(began).Seconds() * float64(n)
				cpuPerSecond = float64(end.cpu-start.cpu) / float64(time.Millisecond) / seconds
				rssPer = float64(max(peak, end.rss)-idle.rss) / float64(n) / (1 << 20)
				idleRSS = float64(idle.rss) / (1 << 20)
				for _, p := range pubs {
					p.leave()
				}
				require.Equal(b, http.StatusAccepted, api.call(b, "POST", "/v1/meetings/"+m.ID+"/end", nil, nil))
			}
			b.ReportMetric(cpuPerSecond, "cpu-ms/participant-s")
			b.ReportMetric(cpuPerSecond/10, "%cpu/participant")
			b.ReportMetric(rssPer, "MiB-rss/participant")
			b.ReportMetric(idleRSS, "MiB-rss-idle")
		})
	}
}
