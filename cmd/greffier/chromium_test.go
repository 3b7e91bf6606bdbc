package main

import (
	"bytes"
	"context"
	"net/url"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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

// startChromiumIn opens pageURL in headless Chromium (killed with its
// helpers when the test ends), in network namespace netns ("" for
// the test's own), its microphone playing wav in a loop when loop is set,
// with the extra command-line flags.
func startChromiumIn(t *testing.T, netns, pageURL, wav string, loop bool, flags ...string) *lockedBuffer {
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
	args = append(append(append(args, extra...), flags...), pageURL)
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
