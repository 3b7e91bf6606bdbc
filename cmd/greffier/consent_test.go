package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/store"
)

// TestBrowserParticipantDeclinesAndAcceptsAgainInTheRoom: in a recorded
// meeting, alice, joined in a real Chromium, declines from the room page
// (not only before joining): her page says she is not recorded, the
// meeting's switches list her, her recording stops (its segment is
// stored, no new one opens); she accepts again from the same button, her
// page says she is recorded, and a new segment of hers is recorded.
func TestBrowserParticipantDeclinesAndAcceptsAgainInTheRoom(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	check := newPageCheck(t)
	ctx := context.Background()
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"participants": []map[string]any{{"identity": "alice", "display_name": "Alice Martin"}}}, &m))
	alice := newBrowser(t, fixtureWAV(t, "alice"))
	require.NoError(t, chromedp.Do(alice, chromedp.Navigate(b.url+"/join/#token="+url.QueryEscape(m.Join[0].Token))))
	waitJS(t, alice, `document.body.dataset.state === 'ready'`, "the pre-join page")
	require.True(t, eval[bool](t, alice, `document.getElementById('consent-toggle').hidden`), "no room button before joining")
	click(t, alice, "#join")
	waitJS(t, alice, `document.body.dataset.state === 'joined'`, "joined")
	banner := func(recording, text, pressed string) string {
		return fmt.Sprintf(`document.getElementById('recording').dataset.recording === %q && `+
			`document.getElementById('recording').textContent === %q && `+
			`document.getElementById('consent-toggle').getAttribute('aria-pressed') === %q`, recording, text, pressed)
	}
	waitJS(t, alice, banner("on", "Recording and transcription are on.", "false"), "alice is recorded")
	aliceTracks := func() []store.Track {
		tracks, err := b.app.store.Tracks(ctx, m.ID)
		require.NoError(t, err)
		return tracks
	}
	require.Eventually(t, func() bool { return len(aliceTracks()) == 1 }, 30*time.Second, 50*time.Millisecond,
		"alice's first segment is recorded")

	click(t, alice, "#consent-toggle")
	waitJS(t, alice, banner("off", "You are not recorded: you declined.", "true"), "alice's page says she declined")
	waitJS(t, alice, `document.getElementById('status').textContent === 'You declined: nothing you say is kept from now on.'`,
		"the page says what declining does")
	check.check(t, alice, "room-declined")
	var sw switchesAnswer
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/recording", nil, &sw))
	require.Equal(t, []string{"alice"}, sw.Declined)
	require.True(t, sw.Recording, "the meeting still records: only alice declined")
	require.Eventually(t, func() bool {
		tr := aliceTracks()
		return len(tr) == 1 && tr[0].State == store.TrackStored
	}, 30*time.Second, 50*time.Millisecond, "her segment ends and is stored when she declines")

	click(t, alice, "#consent-toggle")
	waitJS(t, alice, banner("on", "Recording and transcription are on.", "false"), "alice's page says she is recorded again")
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/recording", nil, &sw))
	require.Empty(t, sw.Declined)
	require.Eventually(t, func() bool { return len(aliceTracks()) == 2 }, 30*time.Second, 50*time.Millisecond,
		"a new segment of hers is recorded once she accepts again")
	var kinds []string
	events, err := b.app.store.Events(ctx, m.ID)
	require.NoError(t, err)
	for _, e := range events {
		if e.Kind == "consent_declined" || e.Kind == "consent_given" {
			kinds = append(kinds, e.Kind+" "+e.Identity)
		}
	}
	require.Equal(t, []string{"consent_declined alice", "consent_given alice"}, kinds)
	first, second := aliceTracks()[0], aliceTracks()[1]
	if second.StartMS < first.StartMS {
		first, second = second, first
	}
	require.GreaterOrEqual(t, second.StartMS, first.StartMS+first.DurationMS, "nothing of hers is kept between declining and accepting again")
}
