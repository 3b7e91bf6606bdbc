package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/audio"
	"github.com/greffier/greffier/internal/speechtest"
	"github.com/greffier/greffier/minutes"
	"github.com/greffier/greffier/summarize/summarizetest"
	"github.com/greffier/greffier/transcribe/kyutaitest"
	"github.com/greffier/greffier/transcribe/transcribetest"
	"github.com/greffier/greffier/web"
)

// The browser tests drive Debian's chromium over the DevTools protocol
// (chromedp). Each participant is a browser of its own, because a
// browser's fake microphone plays one file.

// fixtureWAV decodes a speech fixture to the WAV Chromium's fake
// microphone plays (in a loop).
func fixtureWAV(t *testing.T, name string) string {
	t.Helper()
	wav := filepath.Join(t.TempDir(), name+".wav")
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", filepath.Join(fixtures, name+".opus"),
		"-ar", "48000", "-ac", "1", "-c:a", "pcm_s16le", "-y", wav).CombinedOutput()
	require.NoError(t, err, "decode the fixture to WAV: %s", out)
	return wav
}

// newBrowser starts headless Chromium whose microphone plays wav (none
// when empty), in a loop unless wav ends with "%noloop"; it is stopped
// when the test ends. The page language is
// English unless a page switches it.
func newBrowser(t *testing.T, wav string, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is needed for the browser tests: run scripts/test.sh, which installs Debian's chromium package")
	}
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
		chromedp.Flag("lang", "en-US"),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		// The SFU has mDNS off: the browser must show its real addresses.
		chromedp.Flag("disable-features", "Translate,BlinkGenPropertyTrees,WebRtcHideLocalIpsWithMdns"),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
	)
	if wav != "" {
		opts = append(opts, chromedp.Flag("use-file-for-fake-audio-capture", wav))
	}
	opts = append(opts, extra...)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		acancel()
	})
	require.NoError(t, chromedp.Do(ctx), "start chromium")
	return ctx
}

// eval runs a JavaScript expression in the page (awaiting a promise) and
// decodes its value.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	require.NoError(t, err, "evaluate %s", expr)
	return v
}

// waitJS polls a page until expr is true, failing after a generous
// deadline with what the page shows.
func waitJS(t *testing.T, ctx context.Context, expr, what string) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		if eval[bool](t, ctx, "!!("+expr+")") {
			return
		}
		if time.Now().After(deadline) {
			text := eval[string](t, ctx, "document.body.innerText")
			t.Fatalf("%s: still not true: %s\npage says:\n%s", what, expr, text)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func click(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel))), "click %s", sel)
}

// pageCheck screenshots the page at desktop and phone widths into the
// test's artefact directory (go test -artifacts keeps them), checks that
// nothing is wider than the screen, and runs axe-core in it: no serious or
// critical violation.
type pageCheck struct {
	dir string
	axe string
}

func newPageCheck(t *testing.T) pageCheck {
	t.Helper()
	path := os.Getenv("GREFFIER_AXE_JS")
	if path == "" {
		path = "../../.cache/npm/node_modules/axe-core/axe.min.js"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("axe-core is needed for the accessibility checks: run scripts/test.sh, which installs it from npm (%v)", err)
	}
	return pageCheck{dir: t.ArtifactDir(), axe: string(b)}
}

type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

func (c pageCheck) check(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	for _, size := range []struct {
		label string
		w, h  int64
	}{{"desktop", 1280, 900}, {"phone", 390, 844}} {
		require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(size.w, size.h)))
		// Nothing wider than the screen: a phone scrolls down, never sideways.
		wide := eval[[]string](t, ctx, fmt.Sprintf(`document.documentElement.scrollWidth <= %d ? [] :
			[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > %d + 1)
				.map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : '')).slice(0, 10)`, size.w, size.w))
		if len(wide) > 0 {
			t.Errorf("%s page at %s width (%d px): wider than the screen: %v", name, size.label, size.w, wide)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(c.dir, name+"-"+size.label+".png"), png, 0o644))
	}
	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)))
	if !eval[bool](t, ctx, "typeof axe !== 'undefined'") {
		eval[bool](t, ctx, c.axe+"\n;true")
	}
	vs := eval[[]axeViolation](t, ctx, `axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(v =>
		({id: v.id, impact: v.impact || '', help: v.help, nodes: v.nodes.map(n => n.target.join(' '))})))`)
	for _, v := range vs {
		if v.Impact == "serious" || v.Impact == "critical" {
			t.Errorf("%s page: %s accessibility violation %s (%s) at %v", name, v.Impact, v.ID, v.Help, v.Nodes)
		} else {
			t.Logf("%s page: minor accessibility finding %s (%s)", name, v.ID, v.Help)
		}
	}
}

// TestBrowserMeetingRoomAndMinutes is a meeting as people see it: two
// participants join from their links in two Chromiums, hear each other,
// see who is here and who speaks and the live captions; the host ends the
// meeting from the host pages and both rooms say so within 2 s; then the
// host reads the minutes, plays a line and searches.
func TestBrowserMeetingRoomAndMinutes(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{captions: &kyutaitest.Options{}, summary: &summarizetest.Options{}})
	check := newPageCheck(t)
	script, err := transcribetest.ReadScript(filepath.Join(fixtures, "script.json"))
	require.NoError(t, err)

	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"title":    "Weekly sync",
		"captions": true,
		"participants": []map[string]any{
			{"identity": "alice", "display_name": "Alice Martin"},
			// Bob's link lets him type his name, and read the minutes
			// afterwards.
			{"identity": "bob", "display_name": "Guest", "rights": []string{"publish", "listen", "name", "minutes"}},
		},
	}, &m))
	require.Len(t, m.Join, 2)
	alice := newBrowser(t, fixtureWAV(t, "alice"))
	bob := newBrowser(t, fixtureWAV(t, "bob"))
	rooms := map[string]context.Context{"alice": alice, "bob": bob}

	for i, who := range []string{"alice", "bob"} {
		ctx := rooms[who]
		require.Equal(t, who, m.Join[i].Identity)
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.url+"/join/#token="+url.QueryEscape(m.Join[i].Token))))
		waitJS(t, ctx, `document.body.dataset.state === 'ready'`, who+"'s pre-join page")
		notice := eval[string](t, ctx, `document.getElementById('notice-title').textContent`)
		require.Equal(t, "This meeting is recorded and transcribed", notice)
		// Seen, not only marked: a stylesheet can show what is marked hidden.
		nameField := eval[bool](t, ctx, `document.getElementById('name-field').checkVisibility()`)
		if who == "alice" {
			require.False(t, nameField, "alice's link names her: no name field")
			require.Equal(t, "Alice Martin", eval[string](t, ctx, `document.getElementById('me').textContent`))
			check.check(t, ctx, "room-prejoin")
			click(t, ctx, "#join")
			continue
		}
		require.True(t, nameField, "bob's link lets him choose his name")
		require.Equal(t, "Guest", eval[string](t, ctx, `document.getElementById('name').value`), "the host's suggestion")
		eval[bool](t, ctx, `(document.getElementById('name').value = '') === ''`)
		click(t, ctx, "#join")
		waitJS(t, ctx, `document.getElementById('error').textContent.includes('Type your name')`, "an empty name is asked for")
		require.NoError(t, chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#name"), "Bob Durand")))
		check.check(t, ctx, "room-prejoin-name")
		click(t, ctx, "#join")
	}
	for who, ctx := range rooms {
		waitJS(t, ctx, `document.body.dataset.state === 'joined'`, who+" joins")
		eval[bool](t, ctx, watchSpeakingAlone)
	}
	// Each sees the other here and hears them; each sees, in turn, the
	// other speaking alone and themself speaking alone (the fixtures take
	// turns), and a screen reader is told who speaks.
	for who, other := range map[string]string{"alice": "bob", "bob": "alice"} {
		ctx := rooms[who]
		waitJS(t, ctx, fmt.Sprintf(`document.querySelector('#people li[data-identity=%q][data-here="true"]')`, other),
			who+" sees "+other+" here")
		waitJS(t, ctx, `Number(document.body.dataset.heardPeak || 0) > 0.02`, who+" hears the others")
		waitJS(t, ctx, fmt.Sprintf(`window.spokeAlone.has(%q) && window.spokeAlone.has(%q)`, other, who),
			who+" sees "+other+" and themself speak in turn")
		waitJS(t, ctx, `document.getElementById('speaker-news').textContent.includes('is speaking')`,
			who+"'s screen reader is told who speaks")
	}
	// Live captions: the fixture's words, with the speaker's name.
	var words []string
	for _, u := range script.Utterances {
		for _, w := range u.Words {
			words = append(words, w.Text)
		}
	}
	wordsJS := "[" + strings.Join(quoteAll(words), ",") + "]"
	for who, ctx := range rooms {
		waitJS(t, ctx, `!document.getElementById('captions-box').hidden && `+wordsJS+
			`.some(w => document.getElementById('captions').textContent.includes(w))`, who+" reads live captions")
	}
	check.check(t, alice, "room-live")
	// Mute is a toggle a screen reader hears about.
	click(t, bob, "#mute")
	waitJS(t, bob, `document.getElementById('mute').getAttribute('aria-pressed') === 'true'`, "bob mutes")
	click(t, bob, "#mute")
	waitJS(t, bob, `document.getElementById('mute').getAttribute('aria-pressed') === 'false'`, "bob unmutes")
	waitJS(t, alice, `document.querySelector('#people li[data-identity="bob"] .name')?.textContent === 'Bob Durand'`,
		"the name bob chose shows in alice's list")

	// Bob's own level meter moves; he picks another microphone in the
	// room: the page sends it, his meter moves with it, and alice hears
	// him through it. He picks another output: every voice he hears
	// plays there, also after a reconnection (below).
	waitJS(t, bob, `Number(document.body.dataset.levelPeak || 0) > 0.02`, "bob's level meter moves")
	require.Equal(t, "Fake Default Audio Input", eval[string](t, bob, `document.body.dataset.mic`))
	micLabel := eval[string](t, bob, `(() => { const s = document.getElementById('mic-live');
		const o = [...s.options].find(o => o.textContent === 'Fake Audio Input 1'); if (!o) return [...s.options].map(o => o.textContent).join(', ');
		s.value = o.value; document.body.dataset.levelPeak = '0'; s.dispatchEvent(new Event('change')); return o.textContent; })()`)
	require.Equal(t, "Fake Audio Input 1", micLabel, "the microphones bob may pick")
	eval[bool](t, alice, `(document.body.dataset.heardPeak = '0') === '0'`)
	waitJS(t, bob, `document.body.dataset.mic === 'Fake Audio Input 1'`, "bob's page sends the microphone he picked")
	waitJS(t, bob, `Number(document.body.dataset.levelPeak || 0) > 0.02`, "bob's level meter moves with the new microphone")
	waitJS(t, alice, `Number(document.body.dataset.heardPeak || 0) > 0.02`, "alice hears bob through his new microphone")
	output := eval[string](t, bob, `(() => { const s = document.getElementById('output-live');
		const o = [...s.options].find(o => o.textContent === 'Fake Audio Output 1'); if (!o) return '';
		s.value = o.value; s.dispatchEvent(new Event('change')); return o.value; })()`)
	require.NotEmpty(t, output, "bob may pick an output")
	playsOn := fmt.Sprintf(`(() => { const as = [...document.querySelectorAll('#audio audio')]; return as.length > 0 && as.every(a => a.sinkId === %q); })()`, output)
	waitJS(t, bob, playsOn, "what bob hears plays on the output he picked")

	// The server cuts bob's listening session: his page says the
	// connection is lost and retries, then hears the others again.
	session := eval[string](t, bob, `document.body.dataset.listenSession`)
	require.NotEmpty(t, session)
	eval[bool](t, bob, `(document.body.dataset.heardPeak = '0') === '0'`)
	req, err := http.NewRequest(http.MethodDelete, session, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+m.Join[1].Token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "closing bob's session from outside")
	waitJS(t, bob, `document.getElementById('status').textContent === 'Connection lost; trying again…'`, "bob's page says the connection is lost")
	check.check(t, bob, "room-reconnecting")
	waitJS(t, bob, fmt.Sprintf(`document.body.dataset.listenSession !== %q && document.getElementById('status').textContent === 'You are in the meeting.'`, session),
		"bob's page reconnects")
	waitJS(t, bob, `Number(document.body.dataset.heardPeak || 0) > 0.02`, "bob hears the others again")
	waitJS(t, bob, playsOn, "after reconnecting, what bob hears still plays on the output he picked")

	// The host signs in, in a tab of its own, and ends the meeting.
	host, cancelHost := chromedp.NewContext(alice)
	t.Cleanup(cancelHost)
	require.NoError(t, chromedp.Do(host, chromedp.Navigate(b.url+"/app/")))
	waitJS(t, host, `document.body.dataset.view === 'signin'`, "sign-in page")
	check.check(t, host, "app-signin")
	require.NoError(t, chromedp.Do(host, chromedp.SendKeys(chromedp.CSS("#key"), "wrong-key")))
	click(t, host, "button[type=submit]")
	waitJS(t, host, `document.getElementById('error').textContent.includes('refused')`, "a wrong key is refused")
	eval[bool](t, host, `(document.getElementById('key').value = '') === ''`)
	require.NoError(t, chromedp.Do(host, chromedp.SendKeys(chromedp.CSS("#key"), b.token)))
	click(t, host, "button[type=submit]")
	waitJS(t, host, fmt.Sprintf(`document.querySelector('#meeting-rows tr[data-id=%q][data-state="live"]')`, m.ID), "meeting list")
	check.check(t, host, "app-meetings")
	href := eval[string](t, host, "location.href")
	require.NotContains(t, href, b.token, "the key never goes in a URL")
	require.NoError(t, chromedp.Do(host, chromedp.Navigate(b.url+"/app/#/m/"+m.ID)))
	waitJS(t, host, `document.querySelector('#people li[data-identity="alice"][data-here="true"]') && document.getElementById('end')`, "host's live meeting page")
	check.check(t, host, "app-meeting-live")
	clicked := eval[float64](t, host, `(() => { const t0 = Date.now(); document.getElementById('end').click(); return t0; })()`)
	for who, ctx := range rooms {
		waitJS(t, ctx, `document.body.dataset.state === 'ended'`, who+"'s page says the meeting ended")
		endedAt := eval[float64](t, ctx, `Number(document.body.dataset.endedAt)`)
		text := eval[string](t, ctx, `document.getElementById('ended-title').textContent`)
		require.Equal(t, "The meeting has ended; the minutes will be ready shortly.", text)
		// The target is 2 s; how long it takes is measured (the log
		// line below, docs/benchmarks.md), not asserted to the millisecond
		// on a machine that may be busy. The bound only catches a page that
		// no longer hears the end pushed (it used to learn 40 s later).
		require.LessOrEqual(t, endedAt-clicked, 10000.0, "%s's page learnt of the end %.0f ms after the host clicked", who, endedAt-clicked)
		t.Logf("%s's page said the meeting ended %.0f ms after the host clicked", who, endedAt-clicked)
	}
	waitJS(t, host, `document.getElementById('status').textContent.includes('has ended')`, "host's page says the meeting ended")
	// Alice's link does not read the minutes: her page says whom to ask;
	// bob's follows their making (TestBrowserPublishesAndIsRecorded
	// sees it wait; here the pipeline may be done already).
	waitJS(t, alice, `!document.getElementById('minutes-ask').hidden && document.getElementById('minutes-ask').textContent.includes('ask the host')`,
		"alice's page says whom to ask for the minutes")
	waitJS(t, bob, `['waiting', 'shown'].includes(document.body.dataset.minutes) && document.getElementById('minutes-ask').hidden`,
		"bob's page follows the minutes")
	check.check(t, bob, "room-ended")
	click(t, bob, "#lang")
	waitJS(t, bob, `document.getElementById('ended-title').textContent === 'La réunion est terminée ; le compte rendu sera bientôt prêt.' && document.documentElement.lang === 'fr'`,
		"the room switches to French")

	// Links that cannot join say why, in words.
	late := alice
	for _, c := range []struct{ hash, want string }{
		{"", "This page needs the link you were given"},
		{"#token=not-a-token", "This link is not valid"},
		{"#token=" + url.QueryEscape(m.Join[1].Token), "The meeting has ended; the minutes will be ready shortly."},
	} {
		eval[bool](t, late, `localStorage.removeItem('greffier.lang') ?? true`)
		require.NoError(t, chromedp.Do(late, chromedp.Navigate(b.url+"/join/?"+fmt.Sprint(len(c.hash))+c.hash)))
		waitJS(t, late, fmt.Sprintf(`document.body.innerText.includes(%q)`, c.want), "the page for link "+c.hash)
	}
	var short struct {
		Join []struct {
			Token     string    `json:"token"`
			ExpiresAt time.Time `json:"expires_at"`
		} `json:"join"`
	}
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"participants": []map[string]any{{"identity": "carol", "ttl_seconds": 1}}}, &short))
	require.Eventually(t, func() bool { return time.Now().After(short.Join[0].ExpiresAt.Add(time.Second)) },
		10*time.Second, 100*time.Millisecond, "the link expires")
	require.NoError(t, chromedp.Do(late, chromedp.Navigate(b.url+"/join/?expired#token="+url.QueryEscape(short.Join[0].Token))))
	waitJS(t, late, `document.body.innerText.includes('This link expired on')`, "an expired link")

	// The minutes, with the recording of the mix.
	require.Eventually(t, func() bool {
		var mm meetingAnswer
		b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &mm)
		if mm.State != "ready" {
			return false
		}
		for _, f := range []string{"mix.flac", "archive.webm", "speakers/alice.flac", "speakers/bob.flac"} {
			if b.call(t, "GET", "/v1/meetings/"+m.ID+"/"+f, nil, nil) != http.StatusOK {
				return false
			}
		}
		return true
	}, 90*time.Second, 200*time.Millisecond, "the meeting's minutes and recordings")
	var doc minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &doc))
	// Bob's link, still open, now shows them (in French, his choice),
	// read with his join token: his words under the name he chose.
	waitJS(t, bob, `document.body.dataset.minutes === 'shown' && document.querySelectorAll('#transcript li').length === `+fmt.Sprint(len(doc.Turns)),
		"bob's link shows the minutes")
	bobSaid := eval[[]string](t, bob, `[...document.querySelectorAll('#transcript li[data-speaker="bob"] .who')].map(e => e.textContent)`)
	require.NotEmpty(t, bobSaid)
	for _, who := range bobSaid {
		require.Equal(t, "Bob Durand", who)
	}
	minutesText := eval[string](t, bob, `document.getElementById('minutes').textContent`)
	require.Contains(t, minutesText, "Compte rendu")
	require.Contains(t, minutesText, "Transcription")
	check.check(t, bob, "room-minutes")
	// A new page load: the host's tab may already show this meeting.
	require.NoError(t, chromedp.Do(host, chromedp.Navigate(b.url+"/app/?reload#/m/"+m.ID)))
	waitJS(t, host, `document.getElementById('player') && document.querySelectorAll('#transcript li').length === `+fmt.Sprint(len(doc.Turns)), "the transcript")
	for _, turn := range doc.Turns {
		got := eval[struct {
			Who  string `json:"who"`
			Said string `json:"said"`
		}](t, host, fmt.Sprintf(`(() => { const li = [...document.querySelectorAll('#transcript li')].find(li => Math.abs(li.dataset.start - %f) < 0.001);
			return {who: li.querySelector('.who').textContent, said: li.querySelector('.said').textContent}; })()`, secs(turn.Start)))
		require.Equal(t, map[string]string{"alice": "Alice Martin", "bob": "Bob Durand"}[turn.Speaker], got.Who, "turn at %v", turn.Start)
		require.Equal(t, turn.Text, got.Said)
	}
	var speakers []string
	for _, turn := range doc.Turns {
		if !slices.Contains(speakers, turn.Speaker) {
			speakers = append(speakers, turn.Speaker)
		}
	}
	require.ElementsMatch(t, []string{"alice", "bob"}, speakers, "each person's words under their name")
	check.check(t, host, "app-minutes")

	// The summary, each point with its citations: a citation plays its turn.
	require.NotNil(t, doc.Summary, "summary error: %s", doc.SummaryError)
	require.NotEmpty(t, doc.Summary.Abstract.Citations)
	abstract := eval[string](t, host, `document.querySelector('.summary p').textContent`)
	require.Contains(t, abstract, doc.Summary.Abstract.Text)
	cited := doc.Summary.Abstract.Citations[0]
	eval[bool](t, host, `new Promise(ok => { const a = document.getElementById('player');
		a.addEventListener('seeked', () => ok(true), {once: true});
		setTimeout(() => ok(false), 20000);
		document.querySelector('.summary p button.cite').click(); })`)
	require.InDelta(t, secs(minutes.Seconds(cited.Start)), eval[float64](t, host, `document.getElementById('player').currentTime`), 0.5,
		"a citation plays its turn")
	eval[bool](t, host, `document.getElementById('player').pause() ?? true`)

	// Every download answers, with the session cookie alone.
	statuses := eval[map[string]int](t, host, `Promise.all([...document.querySelectorAll('.downloads a')].map(a =>
		fetch(a.href).then(r => [new URL(a.href).pathname, r.status]))).then(Object.fromEntries)`)
	require.Len(t, statuses, 5+2+2, "minutes in 5 formats, the mix, the archive, each speaker: %v", statuses)
	for path, status := range statuses {
		require.Equal(t, http.StatusOK, status, path)
	}

	// Clicking a line plays that moment, and that line is the current one
	// (both read when the player has moved: it plays on, so a later look
	// would find it further on, maybe on the next line); then the current
	// line follows playback to a later line. The page notes every change
	// of the current line with the player's position, so that a slow
	// machine misses none.
	line := doc.Turns[len(doc.Turns)/2]
	eval[bool](t, host, `(() => { const a = document.getElementById('player'); window.currents = [];
		new MutationObserver(() => { const li = document.querySelector('#transcript li[aria-current="true"]');
			if (li) window.currents.push({start: Number(li.dataset.start), end: Number(li.dataset.end), time: a.currentTime}); })
			.observe(document.getElementById('transcript'), {subtree: true, attributes: true, attributeFilter: ['aria-current']});
		return true; })()`)
	clickedAt := eval[struct {
		Time    float64 `json:"time"`
		Current float64 `json:"current"`
		Playing bool    `json:"playing"`
	}](t, host, fmt.Sprintf(`new Promise((ok, fail) => { const a = document.getElementById('player');
		a.addEventListener('seeked', () => ok({time: a.currentTime, playing: !a.paused,
			current: Number(document.querySelector('#transcript li[aria-current="true"]')?.dataset.start ?? -1)}), {once: true});
		setTimeout(() => fail(new Error('the player never moved')), 20000);
		[...document.querySelectorAll('#transcript li')].find(li => Math.abs(li.dataset.start - %f) < 0.001).querySelector('button').click(); })`,
		secs(line.Start)))
	require.InDelta(t, secs(line.Start), clickedAt.Time, 0.5, "the player's position after clicking the line at %v", line.Start)
	require.InDelta(t, secs(line.Start), clickedAt.Current, 0.001, "the clicked line is the current one")
	require.True(t, clickedAt.Playing, "the clicked line plays")
	waitJS(t, host, fmt.Sprintf(`window.currents.some(c => c.start > %f)`, secs(line.Start)), "the current line follows playback")
	eval[bool](t, host, `document.getElementById('player').pause() ?? true`)
	type current struct{ Start, End, Time float64 }
	for _, c := range eval[[]current](t, host, `window.currents`) {
		// The page keeps a line current 0.3 s past its end; the position
		// is read just after the change, when the player has moved on a
		// little (generously: the machine may be loaded).
		require.True(t, c.Start-0.05 <= c.Time && c.Time < c.End+0.3+1, "line %v–%v marked current at %v", c.Start, c.End, c.Time)
	}

	// Search finds a spoken word and jumps to its moment.
	word := doc.Turns[len(doc.Turns)-1].Words[0].Word
	require.NoError(t, chromedp.Do(host, chromedp.Navigate(b.url+"/app/#/search")))
	waitJS(t, host, `document.getElementById('q')`, "search page")
	require.NoError(t, chromedp.Do(host, chromedp.SendKeys(chromedp.CSS("#q"), word)))
	click(t, host, "form[role=search] button[type=submit]")
	waitJS(t, host, `document.querySelector('#results .hits li a')`, "search results for "+word)
	check.check(t, host, "app-search")
	hitHref := eval[string](t, host, `document.querySelector('#results .hits li a').getAttribute('href')`)
	u, err := url.Parse(strings.TrimPrefix(hitHref, "#"))
	require.NoError(t, err)
	var at float64
	_, err = fmt.Sscan(u.Query().Get("t"), &at)
	require.NoError(t, err, "hit link %s", hitHref)
	click(t, host, "#results .hits li a")
	waitJS(t, host, fmt.Sprintf(`(() => { const a = document.getElementById('player'); return a && a.readyState >= 1 && Math.abs(a.currentTime - %f) <= 0.5; })()`, at),
		"the player jumps to the hit")
	// The hit is where the word was said: in (or just before, as the
	// stretch of speech the search found starts at its segment's edge)
	// the turn that holds it.
	hitTurn := slices.IndexFunc(doc.Turns, func(tu minutes.Turn) bool {
		return secs(tu.Start)-0.5 <= at && at < secs(tu.End) && strings.Contains(tu.Text, word)
	})
	require.GreaterOrEqual(t, hitTurn, 0, "the hit at %v is not where %q was said: %+v", at, word, doc.Turns)

	// Renaming a speaker shows the new name in the transcript.
	eval[bool](t, host, `(document.getElementById('rename-bob').value = '') === ''`)
	require.NoError(t, chromedp.Do(host, chromedp.SendKeys(chromedp.CSS("#rename-bob"), "Robert Durand")))
	click(t, host, "#rename-bob + button")
	waitJS(t, host, `[...document.querySelectorAll('#transcript li[data-speaker="bob"] .who')].every(e => e.textContent === 'Robert Durand')`,
		"bob renamed in the transcript")
}

// TestBrowserMinutesCurrentLineWhenPeopleTalkOverEachOther shows the
// minutes' player (web/assets/minutes.js) in Chromium over a transcript
// whose lines overlap, as they do when people talk over each other: a
// clicked line becomes the current one even inside another person's longer
// line (it used to stay on the earlier line, so a short line said over a
// long one was never current), and the current line follows playback.
func TestBrowserMinutesCurrentLineWhenPeopleTalkOverEachOther(t *testing.T) {
	t.Parallel()
	// Alice speaks from 2 to 5 s; Bob says something short over her, from
	// 3 to 4 s; Alice speaks again from 6 to 9.5 s. The mix is 12 s of
	// quiet.
	doc := map[string]any{
		"complete": true,
		"speakers": []map[string]string{{"id": "alice", "name": "Alice"}, {"id": "bob", "name": "Bob"}},
		"turns": []map[string]any{
			{"speaker": "alice", "name": "Alice", "start": 2.0, "end": 5.0, "text": "a long line"},
			{"speaker": "bob", "name": "Bob", "start": 3.0, "end": 4.0, "text": "a short one over it"},
			{"speaker": "alice", "name": "Alice", "start": 6.0, "end": 9.5, "text": "the last line"},
		},
	}
	docJSON, err := json.Marshal(doc)
	require.NoError(t, err)
	const rate = 8000
	mix := audio.EncodeWAV(make([]int16, 12*rate), rate)
	mux := http.NewServeMux()
	mux.Handle("/", web.Handler())
	mux.HandleFunc("GET /fixture/page.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html lang="en"><title>minutes</title><main id="root"></main><script type="module" src="/fixture/page.js"></script>`)
	})
	mux.HandleFunc("GET /fixture/page.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		fmt.Fprintf(w, `import { minutesView } from '/assets/minutes.js';
document.getElementById('root').replaceChildren(...minutesView(%s, { mix: '/fixture/mix.wav' }));
window.currents = [];
new MutationObserver(() => window.currents.push(document.querySelector('#transcript li[aria-current="true"]')?.dataset.i ?? 'none'))
  .observe(document.getElementById('transcript'), { subtree: true, attributes: true, attributeFilter: ['aria-current'] });
document.body.dataset.ready = 'true';
`, docJSON)
	})
	mux.HandleFunc("GET /fixture/mix.wav", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/wav")
		http.ServeContent(w, r, "mix.wav", time.Time{}, bytes.NewReader(mix))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	ctx := newBrowser(t, "")
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/fixture/page.html")))
	waitJS(t, ctx, `document.body.dataset.ready === 'true' && document.getElementById('player').readyState >= 1`, "the minutes and their player")

	type atSeek struct {
		Time    float64 `json:"time"`
		Current string  `json:"current"`
	}
	// seekAndPause runs act, which moves the player, and answers, once the
	// player has moved, where it is and which line is current; it pauses
	// the player there, so that what is checked is not a passing instant.
	seekAndPause := func(act string) atSeek {
		return eval[atSeek](t, ctx, `new Promise((ok, fail) => { const a = document.getElementById('player');
			a.addEventListener('seeked', () => { a.pause();
				ok({time: a.currentTime, current: document.querySelector('#transcript li[aria-current="true"]')?.dataset.i ?? 'none'}); }, {once: true});
			setTimeout(() => fail(new Error('the player never moved')), 30000);
			`+act+` })`)
	}
	line := func(i int) string {
		return fmt.Sprintf(`document.querySelectorAll('#transcript li')[%d].querySelector('button').click();`, i)
	}
	at := func(act string, want float64, current, why string) {
		t.Helper()
		got := seekAndPause(act)
		require.InDelta(t, want, got.Time, 0.05, "%s: the player's position", why)
		require.Equal(t, current, got.Current, "%s: the current line", why)
	}
	// A click on Bob's line, said over Alice's: his line is current.
	at(line(1), 3.0, "1", "clicking bob's line, which alice's holds")
	at(line(0), 2.0, "0", "clicking alice's line")
	// The player moved by hand: where both lines are, the newest voice;
	// just after a line, that line a moment longer; then none.
	at(`a.currentTime = 3.5;`, 3.5, "1", "in the overlap")
	at(`a.currentTime = 5.2;`, 5.2, "0", "just after alice's line")
	at(`a.currentTime = 5.6;`, 5.6, "none", "in the pause")

	// Playing from Bob's line, the current line follows: Bob's, then
	// Alice's (her long line outlasts his), none in the pause, then her
	// last line. The page
	// notes each change, so that none is missed on a slow machine.
	eval[bool](t, ctx, `(window.currents = []) && true`)
	at(line(1), 3.0, "1", "clicking bob's line again")
	eval[bool](t, ctx, `document.getElementById('player').play().then(() => true)`)
	waitJS(t, ctx, `window.currents.includes('2')`, "playback reaches the last line")
	require.Equal(t, []string{"1", "0", "none", "2"}, eval[[]string](t, ctx, `window.currents.slice(0, 4)`),
		"the current line follows playback")
}

func secs(s minutes.Seconds) float64 { return float64(s.MS()) / 1000 }

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// TestBrowserPublishesAndIsRecorded has a real Chromium join a meeting
// through the meeting room, speak the alice fixture into its fake microphone
// over WHIP, and checks the recording and the minutes it becomes.
func TestBrowserPublishesAndIsRecorded(t *testing.T) {
	t.Parallel()
	// The transcription backend holds every answer until released: the
	// host's pages show the pipeline waiting on it meanwhile.
	b := setup(t, setupOptions{backend: transcribetest.Options{Delay: 10 * time.Minute}})
	t.Cleanup(b.double.Release)

	// Once: a meeting ended mid-sentence would cut the last one short.
	wav := fixtureWAV(t, "alice") + "%noloop"

	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"title": "Browser",
		"participants": []map[string]any{{"identity": "alice", "display_name": "Alice Martin",
			"rights": []string{"publish", "listen", "minutes"}}},
	}, &m))
	require.Len(t, m.Join, 1)
	ctx := newBrowser(t, wav)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.url+"/join/#token="+url.QueryEscape(m.Join[0].Token))))
	waitJS(t, ctx, `document.body.dataset.state === 'ready'`, "the pre-join page")
	click(t, ctx, "#join")

	// The browser is publishing once the recorder has its track.
	var live meetingAnswer
	require.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &live)
		return live.Pipeline != nil && live.Pipeline.Tracks == 1
	}, 30*time.Second, 100*time.Millisecond, "no track from the browser")
	trackSeen := time.Now()
	// The fixture's two utterances are heard live (the second ends at
	// 6.6 s of its 9 s): the browser has said everything worth recording.
	// Chromium plays the file once from when the page opens the
	// microphone, before the connection is up (ICE gathering alone may
	// take seconds on a loaded machine): when the first utterance was lost
	// that way, the second is all there is, once the file has surely
	// played out.
	require.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &live)
		s := live.Pipeline.Segments
		return s >= 2 || s == 1 && time.Since(trackSeen) > 12*time.Second
	}, 45*time.Second, 100*time.Millisecond, "speech not detected live: %+v", live.Pipeline)

	endAt := time.Now()
	var ended meetingAnswer
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, &ended))
	require.NotNil(t, ended.StartedAt)

	// Alice's page waits for the minutes, which her link may read.
	check := newPageCheck(t)
	waitJS(t, ctx, `document.body.dataset.minutes === 'waiting' && document.getElementById('minutes-state').textContent.includes('being prepared')`,
		"alice's page waits for the minutes")
	check.check(t, ctx, "room-minutes-waiting")
	// The waiting line follows a switch of language, there and back.
	click(t, ctx, "#lang")
	waitJS(t, ctx, `document.getElementById('minutes-state').textContent === 'Le compte rendu est en préparation ; cette page l’affiche dès qu’il est prêt.'`,
		"the waiting line in French")
	click(t, ctx, "#lang")
	waitJS(t, ctx, `document.getElementById('minutes-state').textContent.includes('being prepared')`, "the waiting line in English again")

	// The host's list shows the meeting waiting for transcription, with
	// its progress, and so does its page.
	host := b.signedInHost(t, ctx)
	row := fmt.Sprintf(`document.querySelector('#meeting-rows tr[data-id=%q][data-state="ended"]')`, m.ID)
	waitJS(t, host, row+` && / 0\/[1-9]\d*$/.test(`+row+`.children[1].textContent)`, "the list shows the transcription's progress")
	check.check(t, host, "app-meetings-progress")
	require.NoError(t, chromedp.Do(host, chromedp.Navigate(b.url+"/app/#/m/"+m.ID)))
	waitJS(t, host, `document.getElementById('meeting-state')?.dataset.state === 'ended' && /Progress: 0 of [1-9]/.test(document.getElementById('meeting-state').textContent)`,
		"the meeting's page shows the transcription's progress")
	b.double.Release()
	waitJS(t, host, `document.getElementById('meeting-state')?.dataset.state === 'ready' && document.querySelector('#transcript li')`,
		"the meeting's page follows the pipeline to its minutes")
	waitJS(t, ctx, `document.body.dataset.minutes === 'shown' && document.querySelector('#transcript li .who')?.textContent === 'Alice Martin'`,
		"alice's page shows the minutes once made")

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

	// The rerun button transcribes the meeting again (the same minutes
	// make no new version): the page follows it back to the minutes.
	requests := b.double.Requests()
	click(t, host, "#rerun")
	waitJS(t, host, `document.getElementById('status').textContent === 'Transcription started again.'`, "the rerun is acknowledged")
	require.Eventually(t, func() bool {
		var again meetingAnswer
		b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &again)
		return again.State == "ready" && b.double.Requests() > requests
	}, 60*time.Second, 100*time.Millisecond, "the rerun transcribes the meeting again")
	waitJS(t, host, `document.getElementById('meeting-state')?.dataset.state === 'ready' && document.querySelector('#transcript li')`,
		"the page shows the new minutes")

	// A host creates a meeting whose links let each person type their
	// name and read the minutes afterwards.
	require.NoError(t, chromedp.Do(host, chromedp.Navigate(b.url+"/app/#/")))
	waitJS(t, host, `document.getElementById('new-title')`, "the new meeting form")
	require.NoError(t, chromedp.Do(host, chromedp.SendKeys(chromedp.CSS("#new-title"), "Open day"),
		chromedp.SendKeys(chromedp.CSS("#new-people"), "Zoé")))
	click(t, host, "#new-choose-name")
	click(t, host, "#new-read-minutes")
	click(t, host, "form.card button[type=submit]")
	waitJS(t, host, `document.querySelector('#new-links input.link-field')`, "the new meeting's links")
	rights := eval[[]string](t, host, `(() => { const tok = new URLSearchParams(new URL(document.querySelector('#new-links input.link-field').value).hash.slice(1)).get('token');
		return JSON.parse(atob(tok.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).rights; })()`)
	require.ElementsMatch(t, []string{"publish", "listen", "name", "minutes"}, rights)
	// Each link has its copy button (a real click: the clipboard wants a
	// person's gesture).
	click(t, host, "#new-links li button")
	waitJS(t, host, `document.getElementById('status').textContent === 'Link copied.'`, "Zoé's link is copied")
}

// A participant whose browser refuses the microphone is told so in words,
// and can try again.
func TestBrowserRoomSaysWhenTheMicrophoneIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"participants": []map[string]any{{"identity": "alice", "display_name": "Alice Martin"}},
	}, &m))
	ctx := newBrowser(t, "", chromedp.Flag("use-fake-ui-for-media-stream", false), chromedp.Flag("deny-permission-prompts", true))
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.url+"/join/#token="+url.QueryEscape(m.Join[0].Token))))
	waitJS(t, ctx, `document.body.dataset.state === 'ready'`, "the pre-join page")
	click(t, ctx, "#join")
	waitJS(t, ctx, `document.getElementById('error').textContent.includes('Your browser refused the microphone')`, "the refusal in words")
	require.True(t, eval[bool](t, ctx, `!document.getElementById('join').disabled && !document.getElementById('prejoin').hidden`),
		"the participant can try again")
}

// TestBrowserRoomShowsRecordingStateAsTheHostTogglesIt: a meeting created
// with recording off says so before anyone joins; bob declines to be
// recorded on his pre-join page; the host starts and stops recording and
// transcription from the host's page, and alice's room announces each
// change; bob's says he is not recorded throughout.
func TestBrowserRoomShowsRecordingStateAsTheHostTogglesIt(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	check := newPageCheck(t)
	m := b.unrecordedMeeting(t)
	alice := newBrowser(t, fixtureWAV(t, "alice"))
	bob := newBrowser(t, fixtureWAV(t, "bob"))
	banner := func(recording, text string) string {
		return fmt.Sprintf(`document.getElementById('recording').dataset.recording === %q && `+
			`document.getElementById('recording').textContent === %q`, recording, text)
	}
	for i, ctx := range []context.Context{alice, bob} {
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.url+"/join/#token="+url.QueryEscape(m.Join[i].Token))))
		waitJS(t, ctx, `document.body.dataset.state === 'ready'`, m.Join[i].Identity+"'s pre-join page")
		waitJS(t, ctx, `document.getElementById('notice-title').textContent === 'This meeting is not recorded now'`,
			m.Join[i].Identity+" is told before joining that the meeting is not recorded")
		require.Equal(t, "live", eval[string](t, ctx, `document.getElementById('recording').getAttribute('aria-live') === 'assertive' ? 'live' : ''`))
	}
	check.check(t, alice, "room-prejoin-not-recorded")
	click(t, bob, "#decline")
	click(t, bob, "#join")
	click(t, alice, "#join")
	for _, ctx := range []context.Context{alice, bob} {
		waitJS(t, ctx, `document.body.dataset.state === 'joined'`, "joined")
	}
	var sw switchesAnswer
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/recording", nil, &sw))
	require.Equal(t, []string{"bob"}, sw.Declined, "bob's page declined before he joined")
	waitJS(t, alice, banner("off", "Recording is off: nothing is kept."), "alice's banner: off")
	waitJS(t, bob, banner("off", "You are not recorded: you declined."), "bob's banner: declined")

	// The host, on the host's page, starts recording.
	host := b.signedInHost(t, alice)
	waitJS(t, host, fmt.Sprintf(`document.querySelector('#meeting-rows tr[data-id=%q]')`, m.ID), "meeting list")
	require.NoError(t, chromedp.Do(host, chromedp.Navigate(b.url+"/app/#/m/"+m.ID)))
	waitJS(t, host, `document.getElementById('switches')?.dataset.recording === 'off' && document.getElementById('recording-toggle')?.textContent === 'Start recording'`,
		"the host's page shows recording off")
	check.check(t, host, "app-meeting-not-recorded")
	click(t, host, "#recording-toggle")
	waitJS(t, host, `document.getElementById('switches').dataset.recording === 'on' && document.getElementById('recording-toggle').getAttribute('aria-pressed') === 'true'`,
		"the host's page shows recording on")
	waitJS(t, alice, banner("on", "Recording and transcription are on."), "alice's room announces recording")
	waitJS(t, host, `document.getElementById('switches').textContent.endsWith('not recorded, by their choice: Bob Durand')`,
		"the host sees who declined")
	check.check(t, alice, "room-recorded")
	// Each page hears the change on its own stream: bob's may come after alice's.
	waitJS(t, bob, `document.body.dataset.recording === 'on' && document.getElementById('recording').textContent === 'You are not recorded: you declined.'`,
		"bob is told the meeting records the others, not him")

	click(t, host, "#transcription-toggle")
	waitJS(t, alice, banner("on", "Recording is on; transcription is off."), "alice's room announces transcription stopped")
	click(t, host, "#recording-toggle")
	waitJS(t, alice, banner("off", "Recording is off: nothing is kept."), "alice's room announces recording stopped")

	// Each start and stop is an event on the meeting clock.
	var events struct {
		Events []struct {
			Kind string `json:"kind"`
		} `json:"events"`
	}
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/events", nil, &events))
	var kinds []string
	for _, e := range events.Events {
		if strings.HasPrefix(e.Kind, "recording_") || strings.HasPrefix(e.Kind, "transcription_") {
			kinds = append(kinds, e.Kind)
		}
	}
	require.Equal(t, []string{"recording_started", "transcription_stopped", "recording_stopped"}, kinds)
}

// speechWAV has espeak-ng say text, once every period seconds (a WAV
// Chromium's fake microphone loops), starting at lead seconds: real speech,
// where the other browser tests play the project's tone speech (which the
// transcription and captions doubles read).
func speechWAV(t *testing.T, name, voice, text string, lead, period float64) string {
	t.Helper()
	const rate = 48000
	said, err := speechtest.Espeak(t.Context(), voice, text, 150, rate)
	if errors.Is(err, exec.ErrNotFound) {
		t.Fatalf("espeak-ng is needed for real speech: run scripts/test.sh, which installs it (%v)", err)
	}
	require.NoError(t, err)
	said = speechtest.TrimSilence(said)
	pcm := make([]int16, int(period*rate))
	start := int(lead * rate)
	require.Less(t, start+len(said), len(pcm), "%q fits in %v s", text, period)
	copy(pcm[start:], said)
	wav := filepath.Join(t.TempDir(), name+".wav")
	require.NoError(t, os.WriteFile(wav, audio.EncodeWAV(pcm, rate), 0o644))
	return wav
}

// TestBrowserRoomWithRealSpeech has two Chromiums speak real speech
// (espeak-ng) into their fake microphones: each hears the other, sees
// each speak in turn, and the recorder finds speech in both tracks. Alice
// uses the keyboard alone. The
// words themselves are checked with tone speech (TestBrowserMeetingRoomAndMinutes):
// the speech-to-text double reads only that.
func TestBrowserRoomWithRealSpeech(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"title": "Real voices",
		"participants": []map[string]any{
			{"identity": "alice", "display_name": "Alice Martin"},
			{"identity": "bob", "display_name": "Bob Durand"},
		},
	}, &m))
	// Different periods: whatever the two browsers' start times, their
	// voices drift apart, so each is heard alone now and then.
	rooms := map[string]context.Context{
		"alice": newBrowser(t, speechWAV(t, "alice", "en-us+f3", "Good morning everyone, let us look at the budget for the new school.", 0.5, 11)),
		"bob":   newBrowser(t, speechWAV(t, "bob", "en-us", "Thank you Alice, the numbers look right to me.", 5.5, 14)),
	}
	for i, who := range []string{"alice", "bob"} {
		ctx := rooms[who]
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.url+"/join/#token="+url.QueryEscape(m.Join[i].Token))))
		waitJS(t, ctx, `document.body.dataset.state === 'ready'`, who+"'s pre-join page")
		if who == "bob" {
			click(t, ctx, "#join")
			continue
		}
		// Alice joins with the keyboard alone: Tab goes through the
		// pre-join page's controls in reading order and Enter on Join
		// joins; focus then lands on the room's heading, the next Tab
		// reaches Mute, and Space toggles it.
		focused := func() string {
			return eval[string](t, ctx, `(e => e.id || e.className || e.tagName)(document.activeElement)`)
		}
		var order []string
		for range 12 {
			require.NoError(t, chromedp.Do(ctx, chromedp.KeyEvent(kb.Tab)))
			order = append(order, focused())
			if order[len(order)-1] == "join" {
				break
			}
		}
		require.Equal(t, []string{"skip", "lang", "mic", "output", "decline", "join"}, order, "the pre-join page's focus order")
		require.NoError(t, chromedp.Do(ctx, chromedp.KeyEvent(kb.Enter)))
		waitJS(t, ctx, `document.body.dataset.state === 'joined' && document.activeElement.id === 'room-title'`,
			"alice joins, and focus moves to the room")
		require.NoError(t, chromedp.Do(ctx, chromedp.KeyEvent(kb.Tab)))
		require.Equal(t, "mute", focused(), "after the room's heading, Mute")
		require.NoError(t, chromedp.Do(ctx, chromedp.KeyEvent(" ")))
		waitJS(t, ctx, `document.getElementById('mute').getAttribute('aria-pressed') === 'true'`, "Space mutes")
		require.NoError(t, chromedp.Do(ctx, chromedp.KeyEvent(" ")))
		waitJS(t, ctx, `document.getElementById('mute').getAttribute('aria-pressed') === 'false'`, "Space unmutes")
	}
	for who, ctx := range rooms {
		waitJS(t, ctx, `document.body.dataset.state === 'joined'`, who+" joins")
		eval[bool](t, ctx, watchSpeakingAlone)
	}
	for who, other := range map[string]string{"alice": "bob", "bob": "alice"} {
		ctx := rooms[who]
		waitJS(t, ctx, `Number(document.body.dataset.levelPeak || 0) > 0.02`, who+"'s own level meter moves")
		waitJS(t, ctx, `Number(document.body.dataset.heardPeak || 0) > 0.02`, who+" hears "+other)
		waitJS(t, ctx, fmt.Sprintf(`window.spokeAlone.has(%q) && window.spokeAlone.has(%q)`, other, who),
			who+" sees "+other+" and themself speak in turn")
	}
	// The recorder hears speech in both voices.
	var live meetingAnswer
	require.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &live)
		return live.Pipeline != nil && live.Pipeline.Tracks == 2 && live.Pipeline.Segments >= 2
	}, 60*time.Second, 200*time.Millisecond, "speech in both tracks: %+v", live.Pipeline)
	var events struct {
		Events []struct {
			Kind     string `json:"kind"`
			Identity string `json:"identity"`
		} `json:"events"`
	}
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/events?limit=1000", nil, &events))
	spoke := map[string]bool{}
	for _, e := range events.Events {
		if strings.Contains(e.Kind, "speak") {
			spoke[e.Identity] = true
		}
	}
	require.Equal(t, map[string]bool{"alice": true, "bob": true}, spoke, "speaking turns on the meeting clock: %+v", events.Events)
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, nil))
	for who, ctx := range rooms {
		waitJS(t, ctx, `document.body.dataset.state === 'ended'`, who+"'s page says the meeting ended")
	}
	// The pipeline takes the real speech through to minutes (whose words
	// the double cannot read): nothing is left running when the test
	// stops the server.
	var done meetingAnswer
	require.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &done)
		return done.State != "live" && done.State != "ended"
	}, 3*time.Minute, 200*time.Millisecond, "the pipeline finishes")
	require.Contains(t, []string{"ready", "incomplete"}, done.State, "failure: %s", done.Failure)
}

// TestBrowserHostPagesShowWhatTheKeysRoleAllows signs in with a key of
// each role and checks the pages show only what the role may do: a host
// sees its own meetings, creates them, ends and switches recording; an agent reads minutes and searches, and
// sees no control; an archivist gets the player and every download, and
// no control.
func TestBrowserHostPagesShowWhatTheKeysRoleAllows(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	keys := map[string]string{}
	for _, role := range []string{"host", "archivist", "agent"} {
		var k struct {
			Key string `json:"key"`
		}
		require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/keys", map[string]any{"name": role + " key", "role": role}, &k))
		keys[role] = k.Key
	}
	keys["admin"] = b.token
	// The admin's meeting, over and transcribed; the host's, live.
	participants := map[string]any{"participants": []map[string]any{{"identity": "alice", "display_name": "Alice Martin"}}}
	var done, live meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", participants, &done))
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+done.ID+"/end", nil, nil))
	require.Eventually(t, func() bool {
		var mm meetingAnswer
		b.call(t, "GET", "/v1/meetings/"+done.ID, nil, &mm)
		return mm.State == "ready" || mm.State == "incomplete"
	}, 60*time.Second, 100*time.Millisecond, "the admin's meeting gets its minutes")
	body, err := json.Marshal(participants)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, b.url+"/v1/meetings", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+keys["host"])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&live))
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)

	ctx := newBrowser(t, "")
	row := func(id string) string {
		return fmt.Sprintf(`document.querySelector('#meeting-rows tr[data-id=%q]')`, id)
	}
	open := func(id, ready, what string) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.url+"/app/#/m/"+id)))
		waitJS(t, ctx, ready, what)
	}
	// shown lists which of the pages' controls are in the page.
	shown := func() map[string]bool {
		t.Helper()
		return eval[map[string]bool](t, ctx, `Object.fromEntries(Object.entries({
			create: '#new-title', end: '#end', recordingToggle: '#recording-toggle', rerun: '#rerun',
			player: '#player', audioDownload: '.downloads a[href$=".flac"], .downloads a[href$=".webm"]',
			minutesDownload: '.downloads a[href$="minutes.md"]',
		}).map(([k, sel]) => [k, !!document.querySelector(sel)]))`)
	}
	signIn := func(role string) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.url+"/app/#/")))
		waitJS(t, ctx, `['signin', 'meetings'].includes(document.body.dataset.view)`, "the pages' first view")
		if eval[bool](t, ctx, `!document.getElementById('signout').hidden`) {
			click(t, ctx, "#signout")
		}
		waitJS(t, ctx, `document.body.dataset.view === 'signin'`, "the sign-in page")
		require.NoError(t, chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#key"), keys[role])))
		click(t, ctx, "button[type=submit]")
		waitJS(t, ctx, `document.body.dataset.view === 'meetings' && !document.getElementById('signout').hidden`, role+" signs in")
	}

	signIn("host")
	waitJS(t, ctx, row(live.ID), "the host's list shows its meeting")
	require.False(t, eval[bool](t, ctx, "!!"+row(done.ID)), "a host sees only the meetings its key created")
	require.True(t, shown()["create"], "a host creates meetings")
	require.True(t, eval[bool](t, ctx, `!document.getElementById('nav-search').hidden`), "a host searches")
	open(live.ID, `document.getElementById('end')`, "the host's live meeting")
	require.True(t, shown()["recordingToggle"], "a host starts and stops recording")
	open(done.ID, `document.getElementById('error').textContent === 'This meeting does not exist (any more). Check the link.'`,
		"another's meeting does not exist for a host")

	signIn("agent")
	waitJS(t, ctx, row(live.ID)+" && "+row(done.ID), "an agent's list shows every meeting")
	require.False(t, shown()["create"], "an agent creates no meeting")
	require.True(t, eval[bool](t, ctx, `!document.getElementById('nav-search').hidden`), "an agent searches")
	open(done.ID, `document.getElementById('transcript') && document.querySelector('.downloads a')`, "the minutes, for an agent")
	require.Equal(t, map[string]bool{"create": false, "end": false, "recordingToggle": false, "rerun": false,
		"player": false, "audioDownload": false, "minutesDownload": true}, shown(), "what an agent sees of the minutes")
	open(live.ID, `document.getElementById('meeting-state')?.dataset.state`, "a live meeting, for an agent")
	require.Equal(t, map[string]bool{"create": false, "end": false, "recordingToggle": false, "rerun": false,
		"player": false, "audioDownload": false, "minutesDownload": false}, shown(), "what an agent sees of a live meeting")

	signIn("archivist")
	waitJS(t, ctx, row(live.ID)+" && "+row(done.ID), "an archivist's list shows every meeting")
	require.False(t, shown()["create"], "an archivist creates no meeting")
	open(done.ID, `document.getElementById('transcript') && document.querySelector('.downloads a')`, "the minutes, for an archivist")
	require.Equal(t, map[string]bool{"create": false, "end": false, "recordingToggle": false, "rerun": false,
		"player": true, "audioDownload": true, "minutesDownload": true}, shown(), "what an archivist sees of the minutes")
	open(live.ID, `document.getElementById('meeting-state')?.dataset.state && document.getElementById('switches')`, "a live meeting, for an archivist")
	require.False(t, shown()["end"], "an archivist does not end meetings")
	require.False(t, shown()["recordingToggle"], "an archivist does not switch recording")

	// The admin key sees the controls an agent does not: the same page
	// shows them (so the checks above can fail).
	signIn("admin")
	open(done.ID, `document.getElementById('transcript') && document.querySelector('.downloads a')`, "the minutes, for the admin")
	got := shown()
	require.True(t, got["rerun"] && got["player"] && got["audioDownload"], "what the admin sees of the minutes: %v", got)

	// A browser in French gets the pages in French, the room too; the
	// switch turns them to English.
	fr := newBrowser(t, "", chromedp.Flag("lang", "fr-FR"), chromedp.Flag("accept-lang", "fr-FR,fr"))
	require.NoError(t, chromedp.Do(fr, chromedp.Navigate(b.url+"/app/")))
	waitJS(t, fr, `document.getElementById('signin-title')?.textContent === 'Se connecter' && document.documentElement.lang === 'fr'`,
		"the sign-in page in French")
	click(t, fr, "#lang")
	waitJS(t, fr, `document.getElementById('signin-title')?.textContent === 'Sign in' && document.documentElement.lang === 'en'`,
		"the sign-in page switched to English")
	eval[bool](t, fr, `localStorage.removeItem('greffier.lang') ?? true`)
	require.NoError(t, chromedp.Do(fr, chromedp.Navigate(b.url+"/join/#token="+url.QueryEscape(live.Join[0].Token))))
	waitJS(t, fr, `document.body.dataset.state === 'ready' && document.getElementById('join').textContent === 'Rejoindre la réunion'`,
		"the meeting room in French")
}

// signedInHost opens the host's pages in a tab of browser and signs in
// with the bootstrap key.
func (b *testBundle) signedInHost(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	host, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	require.NoError(t, chromedp.Do(host, chromedp.Navigate(b.url+"/app/")))
	waitJS(t, host, `document.body.dataset.view === 'signin'`, "sign-in page")
	require.NoError(t, chromedp.Do(host, chromedp.SendKeys(chromedp.CSS("#key"), b.token)))
	click(t, host, "button[type=submit]")
	return host
}

// watchSpeakingAlone notes, in window.spokeAlone, everyone the room's list
// ever showed speaking alone, as a person would see it change: who speaks
// alone is a moment, which polling alone could miss on a loaded machine.
const watchSpeakingAlone = `(() => {
	window.spokeAlone = new Set();
	const people = document.getElementById('people');
	new MutationObserver(() => {
		const on = [...people.querySelectorAll('li[data-speaking="true"]')].map(li => li.dataset.identity);
		if (on.length === 1) window.spokeAlone.add(on[0]);
	}).observe(people, {childList: true, subtree: true, attributes: true});
	return true; })()`
