package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/minutes"
	"github.com/greffier/greffier/web"
)

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startChromium opens pageURL in headless Chromium whose microphone plays
// wav once. It is killed, with its helper processes, when the test ends.
func startChromium(t *testing.T, pageURL, wav string) *lockedBuffer {
	t.Helper()
	return startChromiumIn(t, "", pageURL, wav, false)
}

// startChromiumIn is startChromium in network namespace netns ("" for
// the test's own), its microphone playing wav in a loop when loop is set.
func startChromiumIn(t *testing.T, netns, pageURL, wav string, loop bool) *lockedBuffer {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is needed for the browser test: run scripts/test.sh, which installs Debian's chromium package")
	}
	var prefix, extra []string
	if netns != "" {
		prefix = []string{"netns", "exec", netns, bin}
		// The page is served from the pair's address, not loopback: only
		// a secure context may open the microphone.
		if u, err := url.Parse(pageURL); err == nil {
			extra = append(extra, "--unsafely-treat-insecure-origin-as-secure="+u.Scheme+"://"+u.Host)
		}
		if bin, err = exec.LookPath("ip"); err != nil {
			t.Fatalf("ip (iproute2) is needed to run chromium in a network namespace")
		}
	}
	capture := wav + "%noloop"
	if loop {
		capture = wav
	}
	args := append(prefix,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(),
		"--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
		"--use-file-for-fake-audio-capture="+capture,
		// The SFU has mDNS off: the browser must show its real addresses.
		"--disable-features=WebRtcHideLocalIpsWithMdns",
		"--autoplay-policy=no-user-gesture-required",
		"--enable-logging=stderr", "--v=0")
	args = append(append(args, extra...), pageURL)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// Chromium forks helpers: kill the whole group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	return out
}

// TestBrowserPublishesAndIsRecorded has a real Chromium join a meeting
// through the join page, speak the alice fixture into its fake microphone
// over WHIP, and checks the recording and the minutes it becomes.
func TestBrowserPublishesAndIsRecorded(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})

	wav := filepath.Join(t.TempDir(), "alice.wav")
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", filepath.Join(fixtures, "alice.opus"),
		"-ar", "48000", "-ac", "1", "-c:a", "pcm_s16le", "-y", wav).CombinedOutput()
	require.NoError(t, err, "decode the fixture to WAV: %s", out)

	// The join page on the same origin as the API, as cmd/greffier mounts
	// it; the rest goes to the running Greffier.
	appURL, err := url.Parse(b.url)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/join/", web.Handler())
	mux.Handle("/", httputil.NewSingleHostReverseProxy(appURL))
	front := httptest.NewServer(mux)
	t.Cleanup(front.Close)

	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"title":        "Browser",
		"participants": []map[string]any{{"identity": "alice", "display_name": "Alice Martin"}},
	}, &m))
	require.Len(t, m.Join, 1)
	log := startChromium(t, front.URL+"/join/#token="+url.QueryEscape(m.Join[0].Token), wav)

	// The browser is publishing once the recorder has its track.
	var live struct {
		Pipeline *struct {
			Tracks   int `json:"tracks"`
			Segments int `json:"segments"`
		} `json:"pipeline"`
	}
	require.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &live)
		return live.Pipeline != nil && live.Pipeline.Tracks == 1
	}, 30*time.Second, 100*time.Millisecond, "no track from the browser; chromium said:\n%s", log)
	// The fixture's two utterances are heard live (the second ends at
	// 6.6 s): the browser has said everything worth recording.
	require.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &live)
		return live.Pipeline.Segments >= 2
	}, 30*time.Second, 100*time.Millisecond, "speech not detected live: %+v", live.Pipeline)

	endAt := time.Now()
	var ended meetingAnswer
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, &ended))
	require.NotNil(t, ended.StartedAt)
	var done meetingAnswer
	require.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &done)
		return done.State == "ready" || done.State == "failed"
	}, 60*time.Second, 100*time.Millisecond)
	require.Equal(t, "ready", done.State, "pipeline: %+v", done.Pipeline)

	var list struct {
		Tracks []struct {
			Identity, State string
			StartMS         int64 `json:"start_ms"`
			DurationMS      int64 `json:"duration_ms"`
		} `json:"tracks"`
	}
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/tracks", nil, &list))
	require.Len(t, list.Tracks, 1)
	tr := list.Tracks[0]
	require.Equal(t, "alice", tr.Identity)
	require.Equal(t, "stored", tr.State)
	// The recording lasts from the browser's first packet to the end of
	// the meeting: nothing squeezed out, nothing invented. A browser
	// starved of CPU sends its captured audio late and in a burst, so on a
	// loaded machine the audio may end up to a second longer than the
	// wall time its packets took to arrive.
	trackStart := ended.StartedAt.Add(time.Duration(tr.StartMS) * time.Millisecond)
	require.InDelta(t, endAt.Sub(trackStart).Seconds(), float64(tr.DurationMS)/1000, 1.2,
		"track of %d ms started %s before the end", tr.DurationMS, endAt.Sub(trackStart))
	require.Greater(t, tr.DurationMS, int64(3000), "the recording holds speech")

	var doc minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &doc))
	var said []string
	for _, turn := range doc.Turns {
		require.Equal(t, "alice", turn.Speaker)
		said = append(said, turn.Text)
	}
	// The fixture's tone words survive the browser's own Opus encoding.
	// Chromium plays the file into its fake microphone from the moment the
	// page asks for it, and loops it: on a slow machine the connection may
	// come up after the first words, so the minutes hold whole sentences
	// of the fixture, in its order, starting wherever the track did.
	fixture := []string{"alpha bravo charlie delta", "india juliett kilo"}
	require.NotEmpty(t, said, "no speech in the minutes")
	first := slices.Index(fixture, said[0])
	if first < 0 {
		// The first sentence may have been cut by the late start.
		said = said[1:]
		require.NotEmpty(t, said, "minutes: %v", said)
		first = slices.Index(fixture, said[0])
	}
	require.GreaterOrEqual(t, first, 0, "minutes: %s", strings.Join(said, " | "))
	for i, s := range said {
		require.Equal(t, fixture[(first+i)%len(fixture)], s, "minutes: %s", strings.Join(said, " | "))
	}
}
