package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/remote"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// interopDir holds the page and the bundle of the npm WHIP/WHEP clients
// (README.md there says how it was built, from which versions).
const interopDir = "../../testdata/interop"

// pageResult is one step a page reported, with when it arrived.
type pageResult struct {
	Step       string  `json:"step"`
	Message    string  `json:"message"`
	Level      float64 `json:"level"`
	ETag       string  `json:"etag"`
	ETagBefore string  `json:"etagBefore"`
	ICE        string  `json:"ice"`
	// Path is the publisher's selected local candidate: its type and,
	// for a relayed one, the protocol to the TURN server ("relay/tcp").
	Path string `json:"path"`
	at   time.Time
}

// methodCounter counts the requests Greffier got, by method.
type methodCounter struct {
	mu   sync.Mutex
	n    map[string]int
	seen []string // "METHOD path status", for failure messages
}

// requests counts the requests whose "METHOD path" starts with prefix.
func (c *methodCounter) requests(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range c.seen {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

func (c *methodCounter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.seen, "\n")
}

// statusWriter keeps the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
	body   []byte // the first bytes of an error's body
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status >= 400 && len(w.body) < 600 {
		w.body = append(w.body, p...)
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (c *methodCounter) count(m string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[m]
}

// runInterop has Chromium run client ("medooze" or "eyevinn") from a page
// on its own origin against Greffier's API on another, publishing as alice
// and listening as bob, and returns the steps the page reported, the
// meeting and the methods Greffier saw.
func runInterop(t *testing.T, client string) (map[string]pageResult, string, *testBundle, *methodCounter) {
	t.Helper()
	return runInteropIn(t, client, "", "")
}

// runInteropIn is runInterop with Chromium in network namespace netns,
// which reaches this host at hostIP: Greffier then listens there, with its
// TURN server on and no ICE-TCP, so that TURN is the only TCP path.
func runInteropIn(t *testing.T, client, netns, hostIP string) (map[string]pageResult, string, *testBundle, *methodCounter) {
	t.Helper()
	opts := setupOptions{}
	listenOn := "127.0.0.1:0"
	if netns != "" {
		listenOn = net.JoinHostPort(hostIP, "0")
		opts.configure = func(c *Config) {
			c.HTTPAddr, c.MediaAddr = listenOn, listenOn
			c.TURN, c.TURNUDPAddr, c.TURNTCPAddr = true, listenOn, listenOn
			c.ICETCP = false
		}
	}
	b := setup(t, opts)
	wav := filepath.Join(t.TempDir(), "alice.wav")
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", filepath.Join(fixtures, "alice.opus"),
		"-ar", "48000", "-ac", "1", "-c:a", "pcm_s16le", "-y", wav).CombinedOutput()
	require.NoError(t, err, "decode the fixture to WAV: %s", out)

	// Greffier behind a counting proxy: the API's origin.
	appURL, err := url.Parse(b.url)
	require.NoError(t, err)
	methods := &methodCounter{n: map[string]int{}}
	proxy := httputil.NewSingleHostReverseProxy(appURL)
	api := newTestServer(t, listenOn, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		methods.mu.Lock()
		methods.n[r.Method]++
		methods.mu.Unlock()
		var reqBody []byte
		if r.Method == http.MethodPatch {
			reqBody, _ = io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(reqBody))
		}
		sw := &statusWriter{ResponseWriter: w}
		proxy.ServeHTTP(sw, r)
		methods.mu.Lock()
		methods.seen = append(methods.seen, fmt.Sprintf("%s %s %d %q %s", r.Method, r.URL.Path, sw.status, reqBody, sw.body))
		methods.mu.Unlock()
	}))
	t.Cleanup(api.Close)

	// The page on another origin (another port), as any web tool that
	// embeds these clients serves it.
	results := make(chan pageResult, 16)
	page := http.NewServeMux()
	page.Handle("GET /", http.FileServer(http.Dir(interopDir)))
	page.HandleFunc("POST /result", func(w http.ResponseWriter, r *http.Request) {
		var res pageResult
		body, _ := io.ReadAll(r.Body)
		if json.Unmarshal(body, &res) == nil {
			res.at = time.Now()
			results <- res
		}
	})
	front := newTestServer(t, listenOn, page)
	t.Cleanup(front.Close)

	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"title": "Interop " + client,
		"participants": []map[string]any{
			{"identity": "alice", "display_name": "Alice"},
			{"identity": "bob", "display_name": "Bob", "rights": []string{"listen"}},
		},
	}, &m))
	require.Len(t, m.Join, 2)
	params, err := json.Marshal(map[string]string{"api": api.URL, "client": client,
		"publish": m.Join[0].Token, "listen": m.Join[1].Token})
	require.NoError(t, err)
	log := startChromiumIn(t, netns, front.URL+"/page.html#"+url.PathEscape(string(params)), wav, true)

	got := map[string]pageResult{}
	deadline := time.After(45 * time.Second)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("chromium said:\n%s", log)
		}
	})
	for got["deleted"].Step == "" {
		select {
		case res := <-results:
			require.NotEqual(t, "error", res.Step, "the page failed: %s\nchromium said:\n%s", res.Message, log)
			got[res.Step] = res
		case <-deadline:
			t.Fatalf("the page reported only %v; chromium said:\n%s", got, log)
		}
	}
	return got, m.ID, b, methods
}

// newTestServer is httptest.NewServer listening on addr.
func newTestServer(t *testing.T, addr string, h http.Handler) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(h)
	_ = srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	return srv
}

// udpBlockedNamespace makes a network namespace joined to this host by a
// veth pair, whose own UDP is dropped on the way out (nftables), as behind
// a firewall that lets only TCP through. It returns the namespace's name
// and this host's address on the pair. It needs root (CI and
// scripts/test.sh run as root) and nft (scripts/test.sh installs it).
func udpBlockedNamespace(t *testing.T) (string, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("this test makes a network namespace and needs root: run scripts/test.sh as root, as CI does")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to block UDP for the browser: run scripts/test.sh, which installs iproute2 and nftables", tool)
		}
	}
	var rnd [2]byte
	_, _ = rand.Read(rnd[:])
	id := hex.EncodeToString(rnd[:])
	ns, host, peer := "greffier-"+id, "gfh"+id, "gfn"+id
	// A /30 of 10.231.0.0/16 per test, from the same random bits.
	hostIP := fmt.Sprintf("10.231.%d.%d", rnd[0], rnd[1]&0xfc+1)
	nsIP := fmt.Sprintf("10.231.%d.%d", rnd[0], rnd[1]&0xfc+2)
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		require.NoError(t, err, "%v: %s", args, out)
	}
	run("ip", "netns", "add", ns)
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "del", ns).Run()
		_ = exec.Command("ip", "link", "del", host).Run()
	})
	run("ip", "link", "add", host, "type", "veth", "peer", "name", peer)
	run("ip", "link", "set", peer, "netns", ns)
	run("ip", "addr", "add", hostIP+"/30", "dev", host)
	run("ip", "link", "set", host, "up")
	run("ip", "netns", "exec", ns, "ip", "addr", "add", nsIP+"/30", "dev", peer)
	run("ip", "netns", "exec", ns, "ip", "link", "set", peer, "up")
	run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
	run("ip", "netns", "exec", ns, "nft", "add table inet greffier; "+
		"add chain inet greffier out { type filter hook output priority 0; policy accept; }; "+
		"add rule inet greffier out oifname \""+peer+"\" meta l4proto udp drop")
	// The block holds: a UDP datagram from the namespace is refused.
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "ruleset").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "udp drop")
	return ns, hostIP
}

// requireRecorded ends the meeting and checks alice's one recording lasts
// from her first packet to her DELETE.
func requireRecorded(t *testing.T, b *testBundle, meetingID string, deletedAt time.Time) {
	t.Helper()
	var ended meetingAnswer
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+meetingID+"/end", nil, &ended))
	require.NotNil(t, ended.StartedAt)
	type track struct {
		Identity, State string
		StartMS         int64 `json:"start_ms"`
		DurationMS      int64 `json:"duration_ms"`
	}
	var list struct {
		Tracks []track `json:"tracks"`
	}
	require.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+meetingID+"/tracks", nil, &list)
		return len(list.Tracks) == 1 && list.Tracks[0].State == "stored"
	}, 30*time.Second, 100*time.Millisecond, "tracks: %+v", list.Tracks)
	tr := list.Tracks[0]
	require.Equal(t, "alice", tr.Identity)
	trackStart := ended.StartedAt.Add(time.Duration(tr.StartMS) * time.Millisecond)
	// As in TestBrowserPublishesAndIsRecorded: a starved browser may send
	// its last captured audio late, in a burst.
	require.InDelta(t, deletedAt.Sub(trackStart).Seconds(), float64(tr.DurationMS)/1000, 1.5,
		"track of %d ms started %s before the DELETE", tr.DurationMS, deletedAt.Sub(trackStart))
	require.Greater(t, tr.DurationMS, int64(5000), "the recording holds the publisher's whole time")
}

// heardLevel is the least RMS level (full scale 1) taken for speech: the
// fixture's speech, heard through Greffier, measures far above it, and a
// slot with nothing forwarded plays silence, near 0.
const heardLevel = 0.01

// TestMedoozeWHIPWHEPClientsPublishRestartListenAndLeaveFromAnotherOrigin
// runs the npm whip-whep 1.2.0 clients in Chromium with normal browser
// security (CORS): publish with trickle, restart ICE, listen as another
// participant, delete.
func TestMedoozeWHIPWHEPClientsPublishRestartListenAndLeaveFromAnotherOrigin(t *testing.T) {
	t.Parallel()
	got, meetingID, b, methods := runInterop(t, "medooze")
	require.NotEmpty(t, got["published"].ETag)
	r := got["restarted"]
	require.NotEmpty(t, r.ETag)
	require.NotEqual(t, r.ETagBefore, r.ETag, "an ICE restart gives a new ETag")
	require.Equal(t, "connected", r.ICE, "the client spliced the restart's answer and reconnected")
	t.Logf("the listener heard alice at RMS %.3f", got["heard"].Level)
	require.Greater(t, got["heard"].Level, heardLevel, "the listener hears alice")
	// Trickled candidates, the restart, then the listener's trickle.
	require.GreaterOrEqual(t, methods.count("PATCH"), 3)
	require.Positive(t, methods.count("OPTIONS"), "the browser sent CORS preflights")
	require.Equal(t, 1, methods.requests("DELETE /v1/whip/"))
	requireRecorded(t, b, meetingID, got["deleted"].at)
}

// TestEyevinnWHIPClientPublishesAndLeavesFromAnotherOrigin runs the npm
// @eyevinn/whip-web-client 1.1.7 in Chromium: it asks for ICE servers and
// trickle support with OPTIONS, publishes, trickles and deletes. That
// client has neither an ICE restart nor WHEP (the listener is whip-whep's).
// Its trickle finds no mid in an offer whose first mid is "0" (it reads it
// as the number 0), so the page gives its offer a first, video, section
// (page.html), which Greffier rejects: its fragments, with session-level
// credentials, the ETag header instead of If-Match and candidates of
// component 0, are then taken (204).
func TestEyevinnWHIPClientPublishesAndLeavesFromAnotherOrigin(t *testing.T) {
	t.Parallel()
	got, meetingID, b, methods := runInterop(t, "eyevinn")
	require.Positive(t, methods.requests("PATCH /v1/whip/"),
		"its trickle passed CORS (PATCH with its ETag header); requests:\n%s", methods)
	methods.mu.Lock()
	taken := 0
	for _, s := range methods.seen {
		if f := strings.Fields(s); len(f) > 2 && f[0] == "PATCH" && f[2] == "204" {
			taken++
		}
	}
	methods.mu.Unlock()
	require.Positive(t, taken, "its trickled candidates were taken; requests:\n%s", methods)
	t.Logf("the listener heard alice at RMS %.3f", got["heard"].Level)
	require.Greater(t, got["heard"].Level, heardLevel, "the listener hears alice")
	require.Equal(t, 1, methods.requests("DELETE /v1/whip/"))
	requireRecorded(t, b, meetingID, got["deleted"].at)
}

// TestABrowserWithoutUDPPublishesAndListensThroughTURNOverTCP runs the
// whip-whep clients in Chromium inside a network namespace whose UDP is
// dropped by nftables: the browser takes the TURN servers from the Link
// headers of Greffier's answers, and with ICE-TCP off the embedded TURN
// server over TCP is its only way to the media port. It publishes, is
// recorded, restarts ICE and listens all the same.
func TestABrowserWithoutUDPPublishesAndListensThroughTURNOverTCP(t *testing.T) {
	t.Parallel()
	ns, hostIP := udpBlockedNamespace(t)
	got, meetingID, b, _ := runInteropIn(t, "medooze", ns, hostIP)
	require.Equal(t, "relay/tcp", got["published"].Path, "the browser went through TURN over TCP")
	t.Logf("the listener heard alice at RMS %.3f", got["heard"].Level)
	require.Greater(t, got["heard"].Level, heardLevel, "the listener, relayed too, hears alice")
	requireRecorded(t, b, meetingID, got["deleted"].at)
}

// dialInNamespace connects to addr (TCP) from inside network namespace
// ns: the socket is made by a thread that entered ns, and stays there.
func dialInNamespace(ns, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// The thread enters ns, makes the socket (which stays there), and
		// goes back to its own namespace before it serves other
		// goroutines. It must not end instead: a child process started
		// from it (the shared S3 gateway, a Chromium, a server) is killed
		// when its parent thread exits (Pdeathsig), as the whole suite
		// found out when the gateway died under every later test.
		runtime.LockOSThread()
		home, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{nil, err}
			return
		}
		defer home.Close()
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{nil, fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		conn, err := net.Dial("tcp", addr)
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			// Back home: the thread may serve others. Otherwise it stays
			// locked, and ends with this goroutine.
			runtime.UnlockOSThread()
		}
		done <- result{conn, err}
	}()
	r := <-done
	return r.conn, r.err
}

// devToolsIn starts Chromium in network namespace ns (its microphone
// playing wav, pages of origin treated as secure) and returns a chromedp
// context driving it: Chromium's DevTools listen on the namespace's
// loopback only, reached through a proxy on this host's.
func devToolsIn(t *testing.T, ns, origin, wav string) context.Context {
	t.Helper()
	log := startChromiumIn(t, ns, origin+"/healthz", wav, true, "--remote-debugging-port=0")
	listening := regexp.MustCompile(`DevTools listening on ws://127\.0\.0\.1:(\d+)(/devtools/browser/\S+)`)
	var m []string
	require.Eventually(t, func() bool {
		m = listening.FindStringSubmatch(log.String())
		return m != nil
	}, 30*time.Second, 50*time.Millisecond, "chromium's DevTools address; it said:\n%s", log)
	proxy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	go func() {
		for {
			c, err := proxy.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := dialInNamespace(ns, "127.0.0.1:"+m[1])
				if err != nil {
					// chromedp then fails to connect and says so; a
					// t.Logf here could come after the test's end.
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c) }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	actx, acancel := remote.NewAllocator(context.Background(), "ws://"+proxy.Addr().String()+m[2])
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		acancel()
	})
	require.NoError(t, chromedp.Do(ctx), "drive chromium")
	return ctx
}

// TestTheWebRoomWithoutUDPJoinsThroughTURNOverTCP: the web room takes its
// ICE servers from /v1/ice-servers. Its Chromium runs in a network
// namespace whose UDP nftables drops, and Greffier has ICE-TCP off, so the
// embedded TURN server over TCP is the room's only way in: alice joins, is
// recorded, and her speech is heard live.
func TestTheWebRoomWithoutUDPJoinsThroughTURNOverTCP(t *testing.T) {
	t.Parallel()
	ns, hostIP := udpBlockedNamespace(t)
	listenOn := net.JoinHostPort(hostIP, "0")
	b := setup(t, setupOptions{configure: func(c *Config) {
		c.HTTPAddr, c.MediaAddr = listenOn, listenOn
		c.TURN, c.TURNUDPAddr, c.TURNTCPAddr = true, listenOn, listenOn
		c.ICETCP = false
	}})
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"title":        "Room behind a firewall",
		"participants": []map[string]any{{"identity": "alice", "display_name": "Alice"}},
	}, &m))
	require.Len(t, m.Join, 1)
	ctx := devToolsIn(t, ns, b.url, fixtureWAV(t, "alice"))
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.url+"/join/#token="+url.QueryEscape(m.Join[0].Token))))
	waitJS(t, ctx, `document.body.dataset.state === 'ready'`, "the pre-join page")
	click(t, ctx, "#join")
	var live meetingAnswer
	require.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &live)
		return live.Pipeline != nil && live.Pipeline.Tracks == 1 && live.Pipeline.Segments >= 1
	}, 60*time.Second, 200*time.Millisecond, "the room, relayed over TCP, is recorded and its speech heard live: %+v", live.Pipeline)
	require.Contains(t, eval[string](t, ctx, `document.body.dataset.iceServers || ''`), "?transport=tcp",
		"the room took the TURN servers")
}
