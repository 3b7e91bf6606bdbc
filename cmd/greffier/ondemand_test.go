package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/minutes"
	"github.com/greffier/greffier/sfu/sfutest"
)

// frame is one Opus packet of the publishers: the precision the gate
// keeps audio to, on arrival (TestTapWritesNothingWhileRecordingIsOffAndOneSegmentPerStretch,
// in package meeting, holds it to that with a clock it drives).
const frame = 20

// arrivalSlack is how late a packet may reach the gate on this shared,
// loaded machine. The gate decides on arrival, a segment sits on the
// meeting clock at its first packet's arrival and its length is the RTP
// span of the packets kept, so a packet held up in the sender, the network
// stack or the SFU's read loop moves an edge by its delay. Measured
// 2026-12-06 at load averages 7 to 12 on 2 cores: up to 40 ms.
const arrivalSlack = 50

// longSpeech is alice's fixture three times over (27 s), re-encoded as a
// browser sends it (32 kbit/s, 20 ms frames).
func longSpeech(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "long.opus")
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-stream_loop", "2",
		"-i", filepath.Join(fixtures, "alice.opus"), "-c:a", "libopus", "-b:a", "32k", "-frame_duration", "20",
		"-y", path).CombinedOutput()
	require.NoError(t, err, "ffmpeg (scripts/test.sh installs it): %s", out)
	return path
}

// joinDo sends a request with a participant's join token and reads the
// whole answer.
func (b *testBundle) joinDo(t *testing.T, method, path, joinToken, contentType, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, b.url+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+joinToken)
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, raw
}

// joinCall sends JSON with a participant's join token.
func (b *testBundle) joinCall(t *testing.T, method, path, joinToken, body string) (int, string) {
	t.Helper()
	resp, raw := b.joinDo(t, method, path, joinToken, "application/json", body)
	return resp.StatusCode, string(raw)
}

// unrecordedMeeting creates a meeting of alice and bob that starts with
// recording off.
func (b *testBundle) unrecordedMeeting(t *testing.T) meetingAnswer {
	t.Helper()
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"title": "Huis clos", "recording": false,
		"participants": []map[string]any{{"identity": "alice", "display_name": "Alice Martin"},
			{"identity": "bob", "display_name": "Bob Durand"}},
	}, &m))
	return m
}

type switchesAnswer struct {
	Recording     bool     `json:"recording"`
	Transcription bool     `json:"transcription"`
	Declined      []string `json:"declined"`
	Controls      []struct {
		Kind     string  `json:"kind"`
		Identity string  `json:"identity"`
		On       bool    `json:"on"`
		At       float64 `json:"at"`
	} `json:"controls"`
}

// TestRecordingOnDemandKeepsExactlyTheRecordedStretch: a meeting created
// with recording off, recording started by the host at 0:10 and stopped at
// 0:20 on the meeting clock while alice speaks throughout, and bob, who
// declined to be recorded, too. Exactly alice's 0:10–0:20 is kept (to a
// frame on arrival, plus what this loaded machine delays a packet:
// arrivalSlack); nothing of bob, nothing outside the stretch, on disk or
// in the bucket; the minutes say what was not recorded and are complete.
func TestRecordingOnDemandKeepsExactlyTheRecordedStretch(t *testing.T) {
	t.Parallel()
	speech := longSpeech(t)
	for name, scaleOut := range map[string]bool{"sqlite+disk": false, "postgres+s3": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testRecordingOnDemand(t, setup(t, setupOptions{scaleOut: scaleOut}), speech)
		})
	}
}

func testRecordingOnDemand(t *testing.T, b *testBundle, speech string) {
	ctx := context.Background()
	m := b.unrecordedMeeting(t)
	tokens := map[string]string{}
	for _, j := range m.Join {
		tokens[j.Identity] = j.Token
	}
	var sw switchesAnswer
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/recording", nil, &sw))
	require.False(t, sw.Recording)
	require.True(t, sw.Transcription)

	// Bob declines before joining, with his join token; an API key is
	// not a participant.
	status, body := b.joinCall(t, "POST", "/v1/meetings/"+m.ID+"/consent", tokens["bob"], `{"record":false}`)
	require.Equal(t, http.StatusOK, status, body)
	require.NoError(t, json.Unmarshal([]byte(body), &sw))
	require.Equal(t, []string{"bob"}, sw.Declined)
	status, _ = b.joinCall(t, "POST", "/v1/meetings/"+m.ID+"/consent", b.token, `{"record":false}`)
	require.Equal(t, http.StatusUnauthorized, status)

	pubs := map[string]*sfutest.Publisher{}
	for who, tok := range tokens {
		p, err := sfutest.Publish(ctx, sfutest.PublishOptions{WHIPURL: b.url + "/v1/whip", Token: tok, OggPath: speech})
		require.NoError(t, err)
		pubs[who] = p
	}
	var live meetingAnswer
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &live))
	require.NotNil(t, live.StartedAt)
	zero := *live.StartedAt

	// The host starts recording at 0:10 and stops it at 0:20.
	time.Sleep(time.Until(zero.Add(10 * time.Second)))
	var started, stopped switchesAnswer
	require.Equal(t, http.StatusOK, b.call(t, "POST", "/v1/meetings/"+m.ID+"/recording/start", nil, &started))
	require.True(t, started.Recording)
	time.Sleep(time.Until(zero.Add(20 * time.Second)))
	require.Equal(t, http.StatusOK, b.call(t, "POST", "/v1/meetings/"+m.ID+"/recording/stop", nil, &stopped))
	require.False(t, stopped.Recording)
	startMS := int64(started.Controls[len(started.Controls)-1].At * 1000)
	stopMS := int64(stopped.Controls[len(stopped.Controls)-1].At * 1000)
	require.InDelta(t, 10000, startMS, 1000)
	require.InDelta(t, 20000, stopMS, 1000)

	for _, p := range pubs {
		select {
		case <-p.Done():
		case <-time.After(40 * time.Second):
			t.Fatal("publisher did not finish sending its file")
		}
		require.NoError(t, p.Close(ctx))
	}
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, nil))
	var now meetingAnswer
	require.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &now)
		return now.State == "ready" || now.State == "incomplete" || now.State == "failed"
	}, 60*time.Second, 100*time.Millisecond)
	require.Equal(t, "ready", now.State, "pipeline: %+v", now.Pipeline)

	// One track: alice's, exactly the recorded stretch.
	tracks, err := b.app.store.Tracks(ctx, m.ID)
	require.NoError(t, err)
	require.Len(t, tracks, 1, "tracks: %+v", tracks)
	tr := tracks[0]
	require.Equal(t, "alice", tr.Identity)
	require.Equal(t, store.TrackStored, tr.State, tr.Failure)
	require.InDelta(t, stopMS-startMS, tr.DurationMS, frame+arrivalSlack, "the audio kept is the stretch recorded")
	require.GreaterOrEqual(t, tr.StartMS, startMS, "nothing before recording started")
	require.LessOrEqual(t, tr.StartMS, startMS+frame+arrivalSlack, "the first packet after the start is kept")
	// The end sits where the first packet's arrival put the segment plus
	// the RTP span kept: the start's error and the last frame's add up.
	require.InDelta(t, stopMS, tr.StartMS+tr.DurationMS, 2*frame+arrivalSlack, "the stretch ends when recording stopped")

	// The meeting's events hold each start and stop on the meeting clock.
	events, err := b.app.store.Events(ctx, m.ID)
	require.NoError(t, err)
	at := map[string]int64{}
	for _, e := range events {
		at[e.Kind] = e.AtMS
	}
	require.Equal(t, startMS, at["recording_started"])
	require.Equal(t, stopMS, at["recording_stopped"])

	// Nothing else is kept: every recording object is this track's, every
	// piece of speech lies within the stretch, and the spool is empty.
	// The whole-meeting files, made from the track, are built in the
	// spool: they are awaited first.
	var objects []blob.Info
	require.Eventually(t, func() bool {
		objects, err = b.app.blobs.List(ctx, "")
		require.NoError(t, err)
		for _, key := range []string{layout.ArchiveWebM(m.ID), layout.ArchiveMix(m.ID), layout.SpeakerAudio(m.ID, tr.ID)} {
			if !slices.ContainsFunc(objects, func(o blob.Info) bool { return o.Key == key }) {
				return false
			}
		}
		return true
	}, 60*time.Second, 100*time.Millisecond)
	speechPrefix := strings.TrimSuffix(layout.SpeechAudio(m.ID, tr.ID, 0), "000000000000.ogg")
	for _, o := range objects {
		switch {
		case o.Key == layout.Track(m.ID, tr.ID), o.Key == layout.ArchiveWebM(m.ID), o.Key == layout.ArchiveMix(m.ID),
			o.Key == layout.SpeakerAudio(m.ID, tr.ID), strings.HasPrefix(o.Key, layout.MinutesPrefix(m.ID)):
		case strings.HasPrefix(o.Key, speechPrefix):
			ms, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(o.Key, speechPrefix), ".ogg"), 10, 64)
			require.NoError(t, err, o.Key)
			require.True(t, ms >= tr.StartMS && ms < tr.StartMS+tr.DurationMS, "speech %s outside the recorded stretch", o.Key)
		default:
			t.Errorf("object %s is not of the recorded stretch", o.Key)
		}
	}
	// An archive file leaves the spool just after it is stored.
	var spooled []string
	require.Eventually(t, func() bool {
		spooled = nil
		require.NoError(t, filepath.WalkDir(filepath.Join(b.cfg.DataDir, "spool"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				spooled = append(spooled, p)
			}
			return err
		}))
		return len(spooled) == 0
	}, 10*time.Second, 50*time.Millisecond, "spool: %v", spooled)

	// The minutes state what was not recorded, and are complete.
	var doc minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &doc))
	require.True(t, doc.Complete, "missing: %+v", doc.Missing)
	endMS := now.EndedAt.Sub(zero).Milliseconds()
	require.Equal(t, []minutes.Gap{
		{Start: 0, End: minutes.Seconds(startMS), Reason: minutes.ReasonNotRecorded},
		{Speaker: "bob", Name: "Bob Durand", Start: 0, End: minutes.Seconds(endMS), Reason: minutes.ReasonDeclined},
		{Start: minutes.Seconds(stopMS), End: minutes.Seconds(endMS), Reason: minutes.ReasonNotRecorded},
	}, doc.NotRecorded)
	require.NotEmpty(t, doc.Turns, "alice spoke while recorded")
	for _, turn := range doc.Turns {
		require.Equal(t, "alice", turn.Speaker)
		require.True(t, turn.Start.MS() >= tr.StartMS && turn.End.MS() <= tr.StartMS+tr.DurationMS+frame, "turn %+v", turn)
	}
	var md string
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes.md", nil, &md))
	require.Contains(t, md, "## Not recorded")
	require.Contains(t, md, "- Bob Durand, 00:00:00 to ")

	// An ended meeting's recording can no longer be switched.
	require.Equal(t, http.StatusConflict, b.call(t, "POST", "/v1/meetings/"+m.ID+"/recording/start", nil, nil))
}

func TestCommandLineStartsAndStopsRecordingAndTranscription(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	env := cliEnv{"GREFFIER_URL": b.url, "GREFFIER_API_KEY": b.token}
	var created struct {
		ID       string `json:"id"`
		Switches struct {
			Recording, Transcription bool
		} `json:"switches"`
	}
	out := env.must(t, "meeting", "create", "--title", "Huis clos", "--recording=false", "--json")
	require.NoError(t, json.Unmarshal([]byte(out), &created), out)
	require.False(t, created.Switches.Recording)
	require.True(t, created.Switches.Transcription)

	require.Equal(t, created.ID+"\trecording on\ttranscription on\n", env.must(t, "meeting", "record", "start", created.ID))
	require.Equal(t, created.ID+"\trecording on\ttranscription off\n", env.must(t, "meeting", "transcribe", "stop", created.ID))
	var sw switchesAnswer
	require.NoError(t, json.Unmarshal([]byte(env.must(t, "meeting", "record", "stop", created.ID, "--json")), &sw))
	require.False(t, sw.Recording)
	require.False(t, sw.Transcription)
	require.Len(t, sw.Controls, 4, "the creation's switch, then each of the host's three")

	_, err := env.run(t, "meeting", "record", "pause", created.ID)
	require.ErrorContains(t, err, "usage: greffier meeting record start|stop ID")
	env.must(t, "meeting", "end", created.ID)
	_, err = env.run(t, "meeting", "record", "start", created.ID)
	require.ErrorContains(t, err, "can no longer be started or stopped")
}

// TestWHIPClientsAreToldWhereTheRecordingStateIs: a WHIP client that is
// not the room page finds the meeting's event stream in the 201's Link
// header and reads the recording state there with its join token.
func TestWHIPClientsAreToldWhereTheRecordingStateIs(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"recording": false, "participants": []map[string]any{{"identity": "alice"}}}, &m))
	resp, _ := b.joinDo(t, http.MethodPost, "/v1/whip", m.Join[0].Token, "application/sdp", opusOffer(t))
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	var events string
	for _, l := range resp.Header.Values("Link") {
		if target, ok := strings.CutSuffix(l, `>; rel="urn:ietf:params:whip:ext:greffier:events"`); ok {
			events = strings.TrimPrefix(target, "<")
		}
	}
	require.Equal(t, "/v1/meetings/"+m.ID+"/room", events, "links: %v", resp.Header.Values("Link"))

	// Bounded: a stream that never says so fails the test.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sreq, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url+events, nil)
	require.NoError(t, err)
	sreq.Header.Set("Authorization", "Bearer "+m.Join[0].Token)
	stream, err := http.DefaultClient.Do(sreq)
	require.NoError(t, err)
	defer stream.Body.Close()
	require.Equal(t, http.StatusOK, stream.StatusCode)
	// The first room event says recording is off; once the host starts
	// it, a new one says it is on.
	lines := bufio.NewScanner(stream.Body)
	next := func() map[string]any {
		for lines.Scan() {
			if data, ok := strings.CutPrefix(lines.Text(), "data: "); ok {
				var room map[string]any
				require.NoError(t, json.Unmarshal([]byte(data), &room))
				return room
			}
		}
		t.Fatalf("the room stream ended: %v", lines.Err())
		return nil
	}
	require.Equal(t, false, next()["recording"])
	require.Equal(t, http.StatusOK, b.call(t, "POST", "/v1/meetings/"+m.ID+"/recording/start", nil, nil))
	room := next()
	for room["recording"] != true {
		room = next()
	}

	// Consent is the participant's, said clearly.
	status, body := b.joinCall(t, "POST", "/v1/meetings/"+m.ID+"/consent", m.Join[0].Token, `{}`)
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, body, "bad_consent")
	status, _ = b.joinCall(t, "POST", "/v1/meetings/"+m.ID+"/consent", m.Join[0].Token, `{"record":false,"extra":1}`)
	require.Equal(t, http.StatusBadRequest, status, "an unknown field is refused, not ignored")
	status, _ = b.joinCall(t, "POST", "/v1/meetings/mtg_other/consent", m.Join[0].Token, `{"record":false}`)
	require.Equal(t, http.StatusUnauthorized, status, "a token of another meeting")
	require.Equal(t, http.StatusNotFound, b.call(t, "POST", "/v1/meetings/mtg_nosuchmeeting/recording/stop", nil, nil))
	status, _ = b.joinCall(t, "POST", "/v1/meetings/"+m.ID+"/consent", m.Join[0].Token, `{"record":false}`)
	require.Equal(t, http.StatusOK, status)
	for room["declined"] == nil || len(room["declined"].([]any)) == 0 {
		room = next()
	}
	require.Equal(t, []any{"alice"}, room["declined"], "the room stream says who declined")
}
