package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/testenv"
	"github.com/greffier/greffier/minutes"
	"github.com/greffier/greffier/sfu/sfutest"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

// nodeAnswer is one row of GET /v1/nodes.
type nodeAnswer struct {
	ID       string   `json:"id"`
	Roles    []string `json:"roles"`
	URL      string   `json:"url"`
	Sessions int      `json:"media_sessions"`
	Meetings int      `json:"live_meetings"`
	Alive    bool     `json:"alive"`
}

// cluster is two `greffier serve` processes on one Postgres database and
// one S3 bucket.
type cluster struct {
	nodes   []*child
	bundles []*testBundle
	dbURL   string
	double  *transcribetest.Server
}

// startCluster starts two nodes sharing a fresh database and bucket, with
// a short node timeout and checkpoint cadence (and any extra environment),
// and waits until each sees both alive.
func startCluster(t *testing.T, bin string, extra ...string) *cluster {
	t.Helper()
	c := &cluster{dbURL: testenv.Postgres(t), double: transcribetest.NewServer(transcribetest.Options{})}
	t.Cleanup(c.double.Close)
	s3 := testenv.S3(t)
	shared := []string{"GREFFIER_POSTGRES_URL=" + c.dbURL, "GREFFIER_S3_ENDPOINT=" + s3.Endpoint,
		"GREFFIER_S3_BUCKET=" + s3.Bucket, "GREFFIER_S3_ACCESS_KEY=" + s3.AccessKey, "GREFFIER_S3_SECRET_KEY=" + s3.SecretKey,
		"GREFFIER_S3_REGION=" + s3.Region, "GREFFIER_API_TOKEN=nodes-test-token",
		"GREFFIER_JOIN_SECRET=" + strings.Repeat("s", 40), "GREFFIER_WEBHOOK_SECRET=" + strings.Repeat("w", 40),
		"GREFFIER_TRANSCRIBE_URL=" + c.double.BaseURL(), "GREFFIER_JOB_POLL_INTERVAL=50ms", "GREFFIER_JOB_RETRY_BASE=50ms",
		"GREFFIER_NODE_TIMEOUT=2s", "GREFFIER_CHECKPOINT_INTERVAL=1s", "GREFFIER_LOST_MEDIA_AFTER=1s",
		"GREFFIER_LOG_LEVEL=debug"}
	shared = append(shared, extra...)
	for i := range 2 {
		dir := t.TempDir()
		logf, err := os.Create(filepath.Join(dir, "serve.log"))
		require.NoError(t, err)
		t.Cleanup(func() {
			if t.Failed() {
				b, _ := os.ReadFile(logf.Name())
				t.Logf("node %d log:\n%s", i, b)
			}
		})
		n := &child{bin: bin, dataDir: filepath.Join(dir, "data"), httpAddr: freePort(t, "tcp"), udp: freePort(t, "udp"), log: logf}
		n.env = append([]string{"GREFFIER_DATA_DIR=" + n.dataDir, "GREFFIER_HTTP_ADDR=" + n.httpAddr,
			"GREFFIER_NODE_URL=http://" + n.httpAddr, "GREFFIER_MEDIA_ADDR=" + n.udp}, shared...)
		startChild(t, n)
		c.nodes = append(c.nodes, n)
		c.bundles = append(c.bundles, &testBundle{url: "http://" + n.httpAddr, token: "nodes-test-token", double: c.double})
	}
	for _, b := range c.bundles {
		require.Eventually(t, func() bool { return len(aliveNodes(t, b)) == 2 }, 20*time.Second, 50*time.Millisecond)
	}
	return c
}

// aliveNodes lists the nodes b's API shows alive.
func aliveNodes(t *testing.T, b *testBundle) []nodeAnswer {
	t.Helper()
	var list struct {
		Nodes []nodeAnswer `json:"nodes"`
	}
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/nodes", nil, &list))
	return slices.DeleteFunc(list.Nodes, func(n nodeAnswer) bool { return !n.Alive })
}

// hostOf is the host:port of a session URL.
func hostOf(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	require.True(t, u.IsAbs(), "session URLs name their node: %s", raw)
	return u.Host
}

// index is the position of the node at host.
func (c *cluster) index(t *testing.T, host string) int {
	t.Helper()
	i := slices.IndexFunc(c.nodes, func(n *child) bool { return n.httpAddr == host })
	require.GreaterOrEqual(t, i, 0, "no node at %s", host)
	return i
}

// publish sends who's fixture to the meeting through node i's WHIP URL.
func (c *cluster) publish(t *testing.T, i int, m meetingAnswer, who string) *sfutest.Publisher {
	t.Helper()
	pub, err := sfutest.Publish(context.Background(), sfutest.PublishOptions{WHIPURL: c.bundles[i].url + "/v1/whip",
		Token: tokenOf(t, m, who), OggPath: filepath.Join(fixtures, who+".opus")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.CloseWithoutDelete() })
	return pub
}

// hears waits until a listener that joined through node i hears n voices.
func (c *cluster) hears(t *testing.T, i int, m meetingAnswer, who string, n int) *sfutest.Listener {
	t.Helper()
	l, err := sfutest.Listen(context.Background(), c.bundles[i].url+"/v1/whep", tokenOf(t, m, who))
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	require.Eventually(t, func() bool {
		heard := 0
		for _, pkts := range l.Packets() {
			if len(pkts) > 10 {
				heard++
			}
		}
		return heard >= n
	}, 20*time.Second, 20*time.Millisecond, "%s should hear %d voices through node %d", who, n, i)
	return l
}

func tokenOf(t *testing.T, m meetingAnswer, who string) string {
	t.Helper()
	for _, j := range m.Join {
		if j.Identity == who {
			return j.Token
		}
	}
	t.Fatalf("no join token for %s", who)
	return ""
}

// finished waits until the meeting's pipeline has produced its minutes,
// as node b's API shows it.
func finished(t *testing.T, b *testBundle, meetingID string) meetingAnswer {
	t.Helper()
	var now meetingAnswer
	require.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+meetingID, nil, &now)
		return now.State == "ready" || now.State == "incomplete" || now.State == "failed"
	}, 90*time.Second, 100*time.Millisecond, "meeting %s never finished: %+v", meetingID, now.Pipeline)
	return now
}

// TestTwoNodesShareOnePostgresAndOneBucket runs two `greffier serve`
// processes on one database and one bucket: the participants of a meeting
// who reach either node end up in one room, a second meeting goes to the
// other node, either node's API serves and ends every meeting, jobs run on
// both, and when the node holding a meeting is killed, its participants
// rejoin through the other and the minutes say which stretch of whose
// speech the kill lost.
func TestTwoNodesShareOnePostgresAndOneBucket(t *testing.T) {
	t.Parallel()
	bin := buildServe(t)
	script, err := transcribetest.ReadScript(filepath.Join(fixtures, "script.json"))
	require.NoError(t, err)
	c := startCluster(t, bin)
	a := c.bundles[0]

	var m1 meetingAnswer
	require.Equal(t, http.StatusCreated, a.call(t, "POST", "/v1/meetings", map[string]any{"participants": []map[string]any{
		{"identity": "alice", "display_name": "Alice"}, {"identity": "bob", "display_name": "Bob"},
		{"identity": "carol", "display_name": "Carol"}}}, &m1))
	// Alice comes through node 0, Bob through node 1: one room holds both.
	alice := c.publish(t, 0, m1, "alice")
	bob := c.publish(t, 1, m1, "bob")
	owner := c.index(t, hostOf(t, alice.Location()))
	require.Equal(t, hostOf(t, alice.Location()), hostOf(t, bob.Location()), "both publishers are in the room of one node")
	other := 1 - owner
	c.hears(t, other, m1, "carol", 2)

	// The second meeting's first participant, sent to the first meeting's
	// node, is placed on the other one, the least loaded.
	var m2 meetingAnswer
	require.Equal(t, http.StatusCreated, c.bundles[other].call(t, "POST", "/v1/meetings", map[string]any{
		"participants": []map[string]any{{"identity": "bob", "display_name": "Bob"}}}, &m2))
	bob2 := c.publish(t, owner, m2, "bob")
	require.Equal(t, c.nodes[other].httpAddr, hostOf(t, bob2.Location()))
	for _, b := range c.bundles {
		for _, id := range []string{m1.ID, m2.ID} {
			var got meetingAnswer
			require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+id, nil, &got))
			require.Equal(t, "live", got.State)
		}
		placed := map[string]int{}
		for _, n := range aliveNodes(t, b) {
			placed[n.URL] = n.Meetings
			require.ElementsMatch(t, []string{"api", "sfu", "worker"}, n.Roles)
		}
		require.Equal(t, map[string]int{c.bundles[0].url: 1, c.bundles[1].url: 1}, placed)
		var metrics string
		require.Equal(t, http.StatusOK, b.call(t, "GET", "/metrics", nil, &metrics))
		require.Contains(t, metrics, `greffier_nodes{alive="true"} 2`)
		require.Equal(t, 2, strings.Count(metrics, "\ngreffier_node_live_meetings{"), metrics)
	}

	// The node without the second meeting's media ends it: the holder is
	// told, closes the room and stores Bob's track.
	require.Equal(t, http.StatusAccepted, c.bundles[owner].call(t, "POST", "/v1/meetings/"+m2.ID+"/end", nil, nil))
	m2done := finished(t, c.bundles[owner], m2.ID)
	require.Equal(t, "ready", m2done.State, "%+v", m2done.Pipeline)

	db, err := sql.Open("pgx", c.dbURL)
	require.NoError(t, err)
	defer db.Close()

	// Kill the first meeting's node once both have spoken their first
	// sentence and a checkpoint has passed.
	require.Eventually(t, func() bool { return len(alice.Sent()) >= 225 && len(bob.Sent()) >= 225 },
		20*time.Second, 10*time.Millisecond)
	atKill := map[string]int64{"alice": sentMS(alice), "bob": sentMS(bob)}
	for i, n := range c.nodes {
		// Figures for docs/deployment.md, not assertions.
		u := readProc(t, n.cmd.Process.Pid)
		t.Logf("node %d (holds %s): %.2f s CPU since start, peak RSS %d MiB", i,
			map[bool]string{true: "meeting 1 (3 participants)", false: "meeting 2 (1 participant, ended)"}[i == owner], u.cpu.Seconds(), u.peak>>20)
	}
	kill9(t, c.nodes[owner])
	require.NoError(t, alice.CloseWithoutDelete())
	require.NoError(t, bob.CloseWithoutDelete())
	survivor := c.bundles[other]
	require.Eventually(t, func() bool { return len(aliveNodes(t, survivor)) == 1 }, 20*time.Second, 50*time.Millisecond)

	// They rejoin through the survivor (a new track segment each) and
	// hear each other there.
	c.publish(t, other, m1, "alice")
	c.publish(t, other, m1, "bob")
	c.hears(t, other, m1, "carol", 2)
	require.Equal(t, http.StatusAccepted, survivor.call(t, "POST", "/v1/meetings/"+m1.ID+"/end", nil, nil))
	m1done := finished(t, survivor, m1.ID)

	var events struct {
		Events []struct{ Kind, Identity string } `json:"events"`
	}
	require.Equal(t, http.StatusOK, survivor.call(t, "GET", "/v1/meetings/"+m1.ID+"/events", nil, &events))
	lostNode := ""
	for _, e := range events.Events {
		if e.Kind == "media_node_lost" {
			lostNode = e.Identity
		}
	}
	require.NotEmpty(t, lostNode, "the meeting's events say its media node was lost: %+v", events.Events)

	var tracks trackAnswer
	require.Equal(t, http.StatusOK, survivor.call(t, "GET", "/v1/meetings/"+m1.ID+"/tracks", nil, &tracks))
	firstStart := map[string]int64{}
	segments := map[string]int{}
	for _, tr := range tracks.Tracks {
		require.NotEqual(t, "recording", tr.State, "%+v", tracks.Tracks)
		if _, ok := firstStart[tr.Identity]; !ok || tr.StartMS < firstStart[tr.Identity] {
			firstStart[tr.Identity] = tr.StartMS
		}
		segments[tr.Identity]++
	}
	require.Equal(t, map[string]int{"alice": 2, "bob": 2}, segments, "a segment before the kill and one after, each")

	var doc minutes.Document
	require.Equal(t, http.StatusOK, survivor.call(t, "GET", "/v1/meetings/"+m1.ID+"/minutes", nil, &doc))
	for _, who := range []string{"alice", "bob"} {
		// What the kill lost is stated: from the last checkpoint to the
		// node's last heartbeat, with the reason.
		var lost []minutes.Gap
		for _, g := range doc.Missing {
			if g.Speaker == who && strings.Contains(g.Reason, "media node "+lostNode+" lost") {
				lost = append(lost, g)
			}
		}
		require.Len(t, lost, 1, "%s: missing %+v", who, doc.Missing)
		t.Logf("%s: %d ms sent before the kill; minutes say %+v", who, atKill[who], lost[0])
		require.LessOrEqual(t, lost[0].Start.MS(), firstStart[who]+atKill[who], "%s: the gap starts before the kill", who)
		require.GreaterOrEqual(t, lost[0].End.MS(), firstStart[who]+atKill[who], "%s: the gap lasts until the kill", who)
		words := wordsLost(doc, wordsUntil(script, who, atKill[who]), map[string]int64{who: firstStart[who]})
		require.Zero(t, words, "%s: every word said before the kill is in the minutes or inside a stated gap", who)
	}
	require.False(t, doc.Complete)
	require.Equal(t, "incomplete", m1done.State)

	// Any worker runs any meeting's jobs: the first meeting's media and
	// its recordings were the killed node's, and the survivor assembled its
	// minutes. Which node took each job before the kill is River's choice
	// (on a loaded machine one node may win them all): shown, not asserted.
	var survivorRan int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM river_job WHERE args->>'meeting_id' = $1
		AND attempted_by[array_length(attempted_by, 1)] <> $2`, m1.ID, lostNode).Scan(&survivorRan))
	require.Positive(t, survivorRan, "the survivor ran jobs of the meeting whose media the killed node held")
	t.Logf("nodes that worked jobs: %v (the killed one: %s)", jobHolders(t, db), lostNode)
}

// jobHolders lists the nodes (River client ids) that attempted any job.
func jobHolders(t *testing.T, db *sql.DB) []string {
	t.Helper()
	var holders []string
	rows, err := db.Query(`SELECT DISTINCT unnest(attempted_by) FROM river_job`)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var h string
		require.NoError(t, rows.Scan(&h))
		holders = append(holders, h)
	}
	require.NoError(t, rows.Err())
	return holders
}

// TestALostNodeThatComesBackStoresWhatItSpooled: a node killed while it
// held a meeting is marked lost (the meeting's progress says so, and its
// minutes wait); restarted on its data directory, it stores what it
// spooled, and the minutes hold its speech with at most the crash's last
// second missing, nothing declared lost with the node.
func TestALostNodeThatComesBackStoresWhatItSpooled(t *testing.T) {
	t.Parallel()
	bin := buildServe(t)
	script, err := transcribetest.ReadScript(filepath.Join(fixtures, "script.json"))
	require.NoError(t, err)
	c := startCluster(t, bin, "GREFFIER_LOST_MEDIA_AFTER=10m")
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, c.bundles[0].call(t, "POST", "/v1/meetings", map[string]any{
		"participants": []map[string]any{{"identity": "alice", "display_name": "Alice"}}}, &m))
	alice := c.publish(t, 0, m, "alice")
	owner := c.index(t, hostOf(t, alice.Location()))
	survivor := c.bundles[1-owner]
	require.Eventually(t, func() bool { return len(alice.Sent()) >= 225 }, 20*time.Second, 10*time.Millisecond)
	atKill := sentMS(alice)
	kill9(t, c.nodes[owner])
	require.NoError(t, alice.CloseWithoutDelete())

	require.Equal(t, http.StatusAccepted, survivor.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, nil))
	var now meetingAnswer
	require.Eventually(t, func() bool {
		survivor.call(t, "GET", "/v1/meetings/"+m.ID, nil, &now)
		return now.Pipeline != nil && slices.ContainsFunc(now.Pipeline.Failures, func(f struct{ Stage, Reason string }) bool {
			return f.Stage == "media" && strings.Contains(f.Reason, "media node")
		})
	}, 20*time.Second, 50*time.Millisecond, "the progress says the media node was lost")
	require.Equal(t, "ended", now.State, "no minutes while the node may come back")

	startChild(t, c.nodes[owner])
	done := finished(t, survivor, m.ID)
	var doc minutes.Document
	require.Equal(t, http.StatusOK, survivor.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &doc))
	for _, g := range doc.Missing {
		require.NotContains(t, g.Reason, "media node", "the node came back: nothing is declared lost with it")
	}
	var tracks trackAnswer
	require.Equal(t, http.StatusOK, survivor.call(t, "GET", "/v1/meetings/"+m.ID+"/tracks", nil, &tracks))
	require.Len(t, tracks.Tracks, 1)
	tr := tracks.Tracks[0]
	require.Equal(t, "recovered", tr.State)
	require.Greater(t, tr.DurationMS, atKill-1200, "at most about a second lost (sent %d ms)", atKill)
	words := wordsLost(doc, wordsUntil(script, "alice", atKill), map[string]int64{"alice": tr.StartMS})
	require.Zero(t, words, "every word said before the kill is in the minutes or inside a stated gap")
	t.Logf("sent %d ms before the kill; recovered %d ms; meeting %s, missing %+v", atKill, tr.DurationMS, done.State, doc.Missing)
}

// TestBrowserJoinsThroughANodeThatRedirectsIt: a real Chromium opens the
// room page on one node for a meeting whose media another node holds (an
// other origin: another port). Its WHIP and WHEP offers are redirected
// (307); Chromium drops the token on that cross-origin redirect, as the
// Fetch standard says, and the page sends the offer again to the node it
// was sent to: the browser publishes and listens in the one room.
func TestBrowserJoinsThroughANodeThatRedirectsIt(t *testing.T) {
	t.Parallel()
	bin := buildServe(t)
	// Each node runs its own TURN server, which relays to its own media
	// port only: the page must take the owner's.
	c := startCluster(t, bin, "GREFFIER_TURN=true", "GREFFIER_TURN_UDP_ADDR=127.0.0.1:0", "GREFFIER_TURN_TCP_ADDR=127.0.0.1:0")
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, c.bundles[0].call(t, "POST", "/v1/meetings", map[string]any{
		"participants": []map[string]any{{"identity": "alice", "display_name": "Alice"}, {"identity": "bob", "display_name": "Bob"}}}, &m))
	bob := c.publish(t, 0, m, "bob")
	owner := c.index(t, hostOf(t, bob.Location()))
	other := 1 - owner
	turnURLs := func(node int) string {
		req, err := http.NewRequestWithContext(t.Context(), "GET", c.bundles[node].url+"/v1/ice-servers", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+tokenOf(t, m, "alice"))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var got struct {
			ICEServers []struct {
				URLs []string `json:"urls"`
			} `json:"ice_servers"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
		var urls []string
		for _, s := range got.ICEServers {
			urls = append(urls, s.URLs...)
		}
		require.NotEmpty(t, urls)
		out, err := json.Marshal(urls)
		require.NoError(t, err)
		return string(out)
	}
	// Asked of the other node, the question follows its redirect.
	ownerTURN := turnURLs(owner)
	require.Equal(t, ownerTURN, turnURLs(other), "the other node sends the question to the owner")

	ctx := newBrowser(t, fixtureWAV(t, "alice"))
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.bundles[other].url+"/join/#token="+url.QueryEscape(tokenOf(t, m, "alice")))))
	waitJS(t, ctx, `document.body.dataset.state === 'ready'`, "the pre-join page")
	click(t, ctx, "#join")
	waitJS(t, ctx, `document.body.dataset.state === 'joined' || !document.getElementById('error').hidden`, "joined or failed")
	require.Equal(t, "joined", eval[string](t, ctx, `document.body.dataset.state`), "%s",
		eval[string](t, ctx, `document.getElementById('error').textContent`))
	require.JSONEq(t, ownerTURN, eval[string](t, ctx, `document.body.dataset.iceServers || 'null'`),
		"the page took the owner's ICE servers, whose TURN server relays to the meeting's media")
	// Both of the page's sessions are on the owner, the meeting's one room.
	require.Eventually(t, func() bool {
		for _, n := range aliveNodes(t, c.bundles[other]) {
			if n.URL == c.bundles[owner].url && n.Sessions == 3 {
				return true
			}
		}
		return false
	}, 45*time.Second, 100*time.Millisecond, "bob's session and the page's two on the owner")
	var now meetingAnswer
	require.Eventually(t, func() bool {
		c.bundles[other].call(t, "GET", "/v1/meetings/"+m.ID, nil, &now)
		return now.Pipeline != nil && now.Pipeline.Tracks == 2
	}, 45*time.Second, 100*time.Millisecond, "the browser's track is recorded beside bob's")
	for _, n := range aliveNodes(t, c.bundles[owner]) {
		if n.URL == c.bundles[other].url {
			require.Zero(t, n.Sessions, "the node the page came from holds no session")
		}
	}
}
