package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/minutes"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

// liveKitEnv points a `greffier serve` at lk.
func liveKitEnv(lk *liveKitServer) []string {
	return []string{"GREFFIER_LIVEKIT_URL=" + lk.url, "GREFFIER_LIVEKIT_API_KEY=" + liveKitKey,
		"GREFFIER_LIVEKIT_API_SECRET=" + liveKitSecret}
}

// startKillableOnLiveKit starts a livekit-server and a `greffier serve`
// on Postgres recording from it, which the test may kill; with the
// fixtures' script.
func startKillableOnLiveKit(t *testing.T) (*liveKitServer, *child, *testBundle, transcribetest.Script) {
	t.Helper()
	lk := startLiveKit(t, "")
	bin := buildServe(t)
	script, err := transcribetest.ReadScript(filepath.Join(fixtures, "script.json"))
	require.NoError(t, err)
	double := transcribetest.NewServer(transcribetest.Options{})
	t.Cleanup(double.Close)
	c, b, _ := startKillable(t, bin, "postgres", double, liveKitEnv(lk)...)
	return lk, c, b, script
}

// segmentsOf lists who's tracks of a meeting, by start.
func segmentsOf(t *testing.T, b *testBundle, meetingID, who string) []int64 {
	t.Helper()
	var tracks trackAnswer
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+meetingID+"/tracks", nil, &tracks))
	var starts []int64
	for _, tr := range tracks.Tracks {
		if tr.Identity == who {
			starts = append(starts, tr.StartMS)
		}
	}
	slices.Sort(starts)
	return starts
}

// eventKinds lists a meeting's event kinds.
func eventKinds(t *testing.T, b *testBundle, meetingID string) []string {
	t.Helper()
	var events struct {
		Events []struct{ Kind, Identity string } `json:"events"`
	}
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+meetingID+"/events", nil, &events))
	var kinds []string
	for _, e := range events.Events {
		kinds = append(kinds, e.Kind)
	}
	return kinds
}

// gapsOf lists who's stated gaps whose reason contains reason.
func gapsOf(doc minutes.Document, who, reason string) []minutes.Gap {
	var out []minutes.Gap
	for _, g := range doc.Missing {
		if g.Speaker == who && strings.Contains(g.Reason, reason) {
			out = append(out, g)
		}
	}
	return out
}

// TestLiveKitServerKilledMidMeetingIsJoinedAgain kills livekit-server with
// SIGKILL while a participant speaks and starts it again on the same port:
// Greffier logs the lost connection in the meeting's events, joins the room
// again once LiveKit is back, records her new track, and the minutes state
// the stretch between the loss and her return, every word she said being
// in the minutes or inside that gap.
func TestLiveKitServerKilledMidMeetingIsJoinedAgain(t *testing.T) {
	t.Parallel()
	lk, _, b, script := startKillableOnLiveKit(t)

	const room = "assemblee"
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/livekit/rooms/"+room+"/record", nil, &m))
	alice := publishToLiveKit(t, lk, room, "alice", "Alice", filepath.Join(fixtures, "alice.opus"),
		func() bool { return b.hears(t, m.ID, "alice") })
	require.Eventually(t, func() bool { return alice.sentMS.Load() >= 3000 }, 30*time.Second, 10*time.Millisecond)
	lk.kill()
	time.Sleep(time.Second)
	lk.start(t)

	// Both SDKs join the new server's room: alice's track is recorded again
	// as a new segment.
	require.Eventually(t, func() bool { return len(segmentsOf(t, b, m.ID, "alice")) >= 2 }, 60*time.Second, 100*time.Millisecond)
	require.Contains(t, eventKinds(t, b, m.ID), "livekit_connection_lost")
	alice.wait(t)
	require.Contains(t, eventKinds(t, b, m.ID), "livekit_connection_restored")

	var ended meetingAnswer
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, &ended))
	done := finished(t, b, m.ID)
	var doc minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &doc))
	require.NotEmpty(t, doc.Turns)
	require.Equal(t, "alpha bravo charlie delta", doc.Turns[0].Text)
	require.Equal(t, "Alice", doc.Turns[0].Name)
	lost := gapsOf(doc, "alice", "the LiveKit connection was lost")
	require.Len(t, lost, 1, "missing: %+v", doc.Missing)
	segments := segmentsOf(t, b, m.ID, "alice")
	require.Equal(t, segments[len(segments)-1], lost[0].End.MS(), "the gap ends when she is heard again")
	t.Logf("segments %v; minutes say %+v", segments, lost[0])
	require.False(t, doc.Complete)
	require.Equal(t, "incomplete", done.State)
	starts := map[string]int64{"alice": alice.started.Load().Sub(*ended.StartedAt).Milliseconds()}
	require.Zero(t, wordsLost(doc, script, starts), "minutes: %+v", doc)
}

// TestLiveKitMeetingTakenOverByAnotherNode runs two `greffier serve`
// processes on one database, both configured for one livekit-server: the
// room is recorded by one node only (the meeting's placement), and when
// that node is killed the other takes the meeting over and joins the room;
// the minutes attribute every word to its speaker and state, for each, the
// stretch between the lost node's last checkpoint and their new segment.
func TestLiveKitMeetingTakenOverByAnotherNode(t *testing.T) {
	t.Parallel()
	lk := startLiveKit(t, "")
	bin := buildServe(t)
	script, err := transcribetest.ReadScript(filepath.Join(fixtures, "script.json"))
	require.NoError(t, err)
	c := startCluster(t, bin, liveKitEnv(lk)...)
	a := c.bundles[0]

	const room = "conseil"
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, a.call(t, "POST", "/v1/livekit/rooms/"+room+"/record", nil, &m))
	pubs := map[string]*lkPublisher{}
	for _, who := range []string{"alice", "bob"} {
		pubs[who] = publishToLiveKit(t, lk, room, who, strings.ToUpper(who[:1])+who[1:], filepath.Join(fixtures, who+".opus"),
			func() bool { return a.hears(t, m.ID, who) })
	}
	// Exactly one node records the room.
	recording := func(b *testBundle) string {
		var metrics string
		require.Equal(t, http.StatusOK, b.call(t, "GET", "/metrics", nil, &metrics))
		for _, line := range strings.Split(metrics, "\n") {
			if v, ok := strings.CutPrefix(line, "greffier_livekit_tracks_recorded "); ok {
				return v
			}
		}
		return ""
	}
	owner := -1
	require.Eventually(t, func() bool {
		got := []string{recording(c.bundles[0]), recording(c.bundles[1])}
		owner = slices.Index(got, "2")
		return owner >= 0 && got[1-owner] == "0"
	}, 30*time.Second, 100*time.Millisecond, "one node records both tracks, the other none")
	other := 1 - owner

	require.Eventually(t, func() bool { return pubs["alice"].sentMS.Load() >= 3000 && pubs["bob"].sentMS.Load() >= 3000 },
		30*time.Second, 10*time.Millisecond)
	kill9(t, c.nodes[owner])
	survivor := c.bundles[other]
	for _, who := range []string{"alice", "bob"} {
		require.Eventually(t, func() bool { return len(segmentsOf(t, survivor, m.ID, who)) >= 2 }, 30*time.Second, 100*time.Millisecond,
			"%s's track is recorded again by the other node", who)
	}
	require.Equal(t, "2", recording(survivor))
	for _, p := range pubs {
		p.wait(t)
	}
	var ended meetingAnswer
	require.Equal(t, http.StatusAccepted, survivor.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, &ended))
	done := finished(t, survivor, m.ID)
	require.Contains(t, eventKinds(t, survivor, m.ID), "media_node_lost")

	var doc minutes.Document
	require.Equal(t, http.StatusOK, survivor.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &doc))
	// Each word is its speaker's (the script gives each their own words).
	said := map[string]string{}
	for _, turn := range doc.Turns {
		require.Equal(t, map[string]string{"alice": "Alice", "bob": "Bob"}[turn.Speaker], turn.Name, "%+v", turn)
		said[turn.Speaker] += turn.Text + " "
	}
	// Whether a speaker's first sentence survives depends on whether a
	// checkpoint passed before the kill (late on a loaded machine): every
	// word is either here or inside a stated gap, checked below.
	require.NotEmpty(t, said["alice"], "%+v", said)
	require.NotEmpty(t, said["bob"], "%+v", said)
	require.NotContains(t, said["alice"], "echo", "%+v", said)
	require.NotContains(t, said["bob"], "alpha", "%+v", said)
	for _, who := range []string{"alice", "bob"} {
		// The lost node's recovery states the stretch from its last
		// checkpoint, up to the new segment if there is one by then; the
		// takeover, from the lost node's last heartbeat to the new
		// segment, what the recovery has not already stated (which of
		// the two comes first depends on the machine's speed). Together,
		// one unbroken stretch ending where the new segment starts.
		require.NotEmpty(t, gapsOf(doc, who, " lost at "), "%s: missing %+v", who, doc.Missing)
		stated := append(gapsOf(doc, who, " lost at "), gapsOf(doc, who, "recorder of this LiveKit room stopped")...)
		slices.SortFunc(stated, func(x, y minutes.Gap) int { return int(x.Start.MS() - y.Start.MS()) })
		end := stated[0].End.MS()
		for _, g := range stated[1:] {
			require.LessOrEqual(t, g.Start.MS(), end, "%s: the stated stretches meet: %+v", who, stated)
			end = max(end, g.End.MS())
		}
		segments := segmentsOf(t, survivor, m.ID, who)
		require.Equal(t, segments[len(segments)-1], end, "%s: the stated stretch ends at the new segment: %+v", who, stated)
		t.Logf("%s: segments %v; minutes say %s", who, segments, fmt.Sprint(gapsOf(doc, who, "")))
	}
	require.False(t, doc.Complete)
	require.Equal(t, "incomplete", done.State)
	starts := map[string]int64{}
	for who, p := range pubs {
		starts[who] = p.started.Load().Sub(*ended.StartedAt).Milliseconds()
	}
	require.Zero(t, wordsLost(doc, script, starts), "minutes: %+v", doc)
}
