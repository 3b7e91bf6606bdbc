package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/greffier/greffier/transcribe/transcribetest"
)

// backendStats is what the backend's process saw, at the double's door.
type backendStats struct {
	Requests int `json:"requests"`
	// MaxInFlight is the most requests the double held at once.
	MaxInFlight int `json:"max_in_flight"`
	// ServiceSeconds sums every request's time at the double, from its
	// arrival to the end of the answer: the backend's time, slot-seconds.
	ServiceSeconds float64 `json:"service_seconds"`
	// BusySeconds is the wall time with at least one request in flight.
	BusySeconds float64 `json:"busy_seconds"`
}

// counter is a reverse proxy in front of the double that counts requests
// in flight: the double's own API has no such count, and measuring here
// keeps the measurement out of Greffier's process.
type counter struct {
	proxy *httputil.ReverseProxy

	mu        sync.Mutex
	st        backendStats
	inFlight  int
	busySince time.Time
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/stats" {
		c.mu.Lock()
		st := c.st
		if r.URL.Query().Has("reset") {
			// A new phase: counts start over.
			c.st = backendStats{MaxInFlight: c.inFlight}
			if c.inFlight > 0 {
				c.st.BusySeconds -= time.Since(c.busySince).Seconds()
			}
		}
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
		return
	}
	start := time.Now()
	c.mu.Lock()
	c.st.Requests++
	if c.inFlight == 0 {
		c.busySince = start
	}
	c.inFlight++
	c.st.MaxInFlight = max(c.st.MaxInFlight, c.inFlight)
	c.mu.Unlock()
	defer func() {
		end := time.Now()
		c.mu.Lock()
		c.inFlight--
		c.st.ServiceSeconds += end.Sub(start).Seconds()
		if c.inFlight == 0 {
			c.st.BusySeconds += end.Sub(c.busySince).Seconds()
		}
		c.mu.Unlock()
	}()
	c.proxy.ServeHTTP(w, r)
}

// serveBackend is the child process: the transcription double at a fixed
// speed behind the counter. It prints the counter's URL, then serves until
// its stdin closes (the parent exited or is done).
func serveBackend(speed float64, stdin io.Reader, stdout io.Writer) error {
	dbl := transcribetest.NewServer(transcribetest.Options{Speed: speed})
	defer dbl.Close()
	target, err := url.Parse(dbl.URL())
	if err != nil {
		return fmt.Errorf("double's URL: %w", err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	// Many parallel slots: keep a connection per slot to the double.
	proxy.Transport = &http.Transport{MaxIdleConnsPerHost: 256}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: &counter{proxy: proxy}, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	if _, err := fmt.Fprintf(stdout, "url http://%s\n", ln.Addr()); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, stdin)
	return err
}

// backendProc is the child process as the parent sees it.
type backendProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	url   string // root; the API is under /v1
}

// startBackend starts this binary again as the backend's process.
func startBackend(ctx context.Context, speed float64) (*backendProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own binary to start the backend: %w", err)
	}
	cmd := exec.CommandContext(ctx, self, "-role=backend", "-speed="+strconv.FormatFloat(speed, 'g', -1, 64))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the backend's process: %w", err)
	}
	b := &backendProc{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(out).ReadString('\n')
	if u, ok := strings.CutPrefix(strings.TrimSpace(line), "url "); err == nil && ok {
		b.url = u
		return b, nil
	}
	b.stop()
	return nil, fmt.Errorf("the backend's process did not say where it listens (got %q): %w", line, errors.Join(err, errors.New("no url line")))
}

// stats returns the counts since the last reset, and resets them.
func (b *backendProc) stats(ctx context.Context) (backendStats, error) {
	var st backendStats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url+"/stats?reset", nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, fmt.Errorf("backend stats: %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("backend stats: %w", err)
	}
	return st, nil
}

// stop closes the child's stdin, which ends it, and waits for it.
func (b *backendProc) stop() {
	_ = b.stdin.Close()
	_ = b.cmd.Wait()
}
