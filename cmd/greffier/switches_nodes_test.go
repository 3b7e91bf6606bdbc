package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/minutes"
)

// TestRecordingStopSentToAnotherNodeStopsTheOwner: two `greffier serve`
// processes on one database and bucket; alice publishes to the node that
// holds the meeting; the host stops recording through the other node,
// after her first sentence. The owner stops her recording (her segment is
// stored while she goes on speaking), nothing more of hers is kept, and
// the minutes hold her first sentence only, stating the rest as not
// recorded.
func TestRecordingStopSentToAnotherNodeStopsTheOwner(t *testing.T) {
	t.Parallel()
	bin := buildServe(t)
	c := startCluster(t, bin)
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, c.bundles[0].call(t, "POST", "/v1/meetings", map[string]any{
		"participants": []map[string]any{{"identity": "alice", "display_name": "Alice"}}}, &m))
	alice := c.publish(t, 0, m, "alice")
	owner := c.index(t, hostOf(t, alice.Location()))
	other := c.bundles[1-owner]

	// Her first sentence is 1.0–2.5 s of the file, her second 5.5–6.6 s.
	require.Eventually(t, func() bool { return sentMS(alice) >= 3200 }, 20*time.Second, 10*time.Millisecond)
	var stopped switchesAnswer
	require.Equal(t, http.StatusOK, other.call(t, "POST", "/v1/meetings/"+m.ID+"/recording/stop", nil, &stopped))
	require.False(t, stopped.Recording)
	stopMS := int64(stopped.Controls[len(stopped.Controls)-1].At * 1000)
	var tracks trackAnswer
	require.Eventually(t, func() bool {
		c.bundles[owner].call(t, "GET", "/v1/meetings/"+m.ID+"/tracks", nil, &tracks)
		return len(tracks.Tracks) == 1 && tracks.Tracks[0].State == "stored"
	}, 20*time.Second, 20*time.Millisecond, "the owner stops and stores alice's segment while she speaks on: %+v", tracks.Tracks)
	require.Less(t, sentMS(alice), int64(9000), "she was still speaking when her segment was stored")

	select {
	case <-alice.Done():
	case <-time.After(40 * time.Second):
		t.Fatal("publisher did not finish sending its file")
	}
	require.Equal(t, http.StatusAccepted, other.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, nil))
	done := finished(t, other, m.ID)
	require.Equal(t, "ready", done.State, "%+v", done.Pipeline)
	require.Equal(t, http.StatusOK, other.call(t, "GET", "/v1/meetings/"+m.ID+"/tracks", nil, &tracks))
	require.Len(t, tracks.Tracks, 1, "no segment after the stop: %+v", tracks.Tracks)
	tr := tracks.Tracks[0]
	end := tr.StartMS + tr.DurationMS
	t.Logf("stop at %d ms on the meeting clock (taken on the node without media); the owner's segment ends at %d ms", stopMS, end)
	require.Less(t, end, stopMS+1000, "the owner stopped at the relayed stop, not later")

	var doc minutes.Document
	require.Equal(t, http.StatusOK, other.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &doc))
	require.True(t, doc.Complete, "missing: %+v", doc.Missing)
	require.Len(t, doc.NotRecorded, 1, "%+v", doc.NotRecorded)
	require.Equal(t, minutes.Seconds(stopMS), doc.NotRecorded[0].Start)
	require.Equal(t, minutes.ReasonNotRecorded, doc.NotRecorded[0].Reason)
	var said []string
	for _, turn := range doc.Turns {
		said = append(said, turn.Text)
	}
	require.Equal(t, []string{"alpha bravo charlie delta"}, said, "nothing said after the stop is kept")
}
