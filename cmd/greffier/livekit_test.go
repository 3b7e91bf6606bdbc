package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	lkproto "github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/audio"
	"github.com/greffier/greffier/internal/testenv"
	"github.com/greffier/greffier/minutes"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

// liveKitKey and liveKitSecret are the test server's only API key.
const (
	liveKitKey    = "greffier-test"
	liveKitSecret = "a-secret-of-forty-characters-for-tests!!"
)

// liveKitBinary finds livekit-server: GREFFIER_LIVEKIT_SERVER, then PATH,
// then $GOPATH/bin (where scripts/test.sh installs it). A test without it
// is skipped, unless GREFFIER_REQUIRE_LIVEKIT says it must run.
func liveKitBinary(t testing.TB) string {
	t.Helper()
	p, err := testenv.Program("livekit-server", "GREFFIER_LIVEKIT_SERVER")
	if err == nil {
		return p
	}
	if os.Getenv("GREFFIER_REQUIRE_LIVEKIT") != "" {
		t.Fatalf("%v, and GREFFIER_REQUIRE_LIVEKIT requires it: run scripts/test.sh, which builds it", err)
	}
	t.Skipf("%v: scripts/test.sh builds it", err)
	return ""
}

// liveKitServer is a real livekit-server, single node, on loopback.
type liveKitServer struct {
	url  string // ws://127.0.0.1:port
	http string // http://127.0.0.1:port
	// bin, conf and log start it again on the same ports (restart).
	bin, conf string
	log       *os.File
	cmd       *exec.Cmd
}

// startLiveKit starts livekit-server on free loopback ports, sending its
// webhooks to webhookURL ("" for none); it is killed when the test ends.
func startLiveKit(t testing.TB, webhookURL string) *liveKitServer {
	t.Helper()
	bin := liveKitBinary(t)
	port := freePort(t, "tcp")
	_, p, _ := net.SplitHostPort(port)
	_, tcp, _ := net.SplitHostPort(freePort(t, "tcp"))
	_, udp, _ := net.SplitHostPort(freePort(t, "udp"))
	conf := fmt.Sprintf(`port: %s
bind_addresses: ["127.0.0.1"]
rtc:
  udp_port: %s
  tcp_port: %s
  use_external_ip: false
  node_ip: 127.0.0.1
  enable_loopback_candidate: true
keys:
  %s: %s
logging:
  level: warn
`, p, udp, tcp, liveKitKey, liveKitSecret)
	if webhookURL != "" {
		conf += fmt.Sprintf("webhook:\n  api_key: %s\n  urls: [%q]\n", liveKitKey, webhookURL)
	}
	dir := t.TempDir()
	confPath := filepath.Join(dir, "livekit.yaml")
	require.NoError(t, os.WriteFile(confPath, []byte(conf), 0o600))
	logf, err := os.Create(filepath.Join(dir, "livekit.log"))
	require.NoError(t, err)
	lk := &liveKitServer{url: "ws://" + port, http: "http://" + port, bin: bin, conf: confPath, log: logf}
	lk.start(t)
	t.Cleanup(func() {
		lk.kill()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("livekit-server log:\n%s", b)
		}
	})
	return lk
}

// start runs the server and waits until it answers.
func (lk *liveKitServer) start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(lk.bin, "--config", lk.conf)
	cmd.Stdout, cmd.Stderr = lk.log, lk.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	lk.cmd = cmd
	require.Eventually(t, func() bool {
		resp, err := http.Get(lk.http)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 60*time.Second, 100*time.Millisecond, "livekit-server did not come up")
}

// kill stops the server with SIGKILL: its rooms are gone with it.
func (lk *liveKitServer) kill() {
	if lk.cmd != nil {
		_ = lk.cmd.Process.Kill()
		_ = lk.cmd.Wait()
		lk.cmd = nil
	}
}

// configureLiveKit points a Greffier configuration at lk.
func (lk *liveKitServer) configure(cfg *Config, autoRecord string) {
	cfg.LiveKitURL, cfg.LiveKitAPIKey, cfg.LiveKitAPISecret, cfg.LiveKitAutoRecord = lk.url, liveKitKey, liveKitSecret, autoRecord
}

// deleteRoom closes a room as its application would at the meeting's end.
func (lk *liveKitServer) deleteRoom(t *testing.T, room string) {
	t.Helper()
	_, err := lksdk.NewRoomServiceClient(lk.http, liveKitKey, liveKitSecret).
		DeleteRoom(context.Background(), &lkproto.DeleteRoomRequest{Room: room})
	require.NoError(t, err)
}

// lkPublisher is a participant of a LiveKit room, with the LiveKit SDK,
// who says an Ogg Opus file at its real pace once Greffier listens.
type lkPublisher struct {
	room    *lksdk.Room
	done    chan struct{}
	stop    chan struct{}
	started atomic.Pointer[time.Time]
	sentMS  atomic.Int64
}

// publishToLiveKit joins room as identity (name) and publishes a
// microphone track; it sends the file's first packet (silence) again and
// again until heard says Greffier receives it (LiveKit tells a publisher
// of its subscribers, but not of hidden ones), then the file.
func publishToLiveKit(t testing.TB, lk *liveKitServer, room, identity, name, oggPath string, heard func() bool) *lkPublisher {
	t.Helper()
	raw, err := os.ReadFile(oggPath)
	require.NoError(t, err)
	_, packets, err := audio.OggOpusPackets(raw)
	require.NoError(t, err)
	r, err := lksdk.ConnectToRoom(lk.url, lksdk.ConnectInfo{APIKey: liveKitKey, APISecret: liveKitSecret, RoomName: room,
		ParticipantIdentity: identity, ParticipantName: name}, lksdk.NewRoomCallback())
	require.NoError(t, err)
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
		"audio", identity)
	require.NoError(t, err)
	_, err = r.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{Name: "microphone", Source: lkproto.TrackSource_MICROPHONE})
	require.NoError(t, err)
	p := &lkPublisher{room: r, done: make(chan struct{}), stop: make(chan struct{})}
	t.Cleanup(p.leave)
	isHeard := make(chan struct{})
	go func() {
		for !heard() {
			select {
			case <-time.After(100 * time.Millisecond):
			case <-p.stop:
				return
			}
		}
		close(isHeard)
	}()
	go func() {
		frame := time.Duration(packets[0].Samples) * time.Second / 48000
		tick := time.NewTicker(frame)
		defer tick.Stop()
		// The lead-in's RTP clock follows the wall clock, however late the
		// ticks come on a loaded machine: each sample's duration (the RTP
		// time to the next) is the wall time since the previous one, so
		// the RTP time of the file's start is its wall time, within a tick.
		gap, last := frame, time.Now()
		for lead := true; lead; {
			select {
			case <-isHeard:
				lead = false
				continue
			default:
			}
			if err := track.WriteSample(media.Sample{Data: packets[0].Data, Duration: gap}); err != nil {
				return
			}
			select {
			case <-tick.C:
			case <-p.stop:
				return
			}
			now := time.Now()
			gap, last = now.Sub(last), now
		}
		defer close(p.done)
		timer := time.NewTimer(0)
		defer timer.Stop()
		start := time.Now()
		p.started.Store(&start)
		var at int64 // samples at 48 kHz sent so far
		for _, pkt := range packets {
			timer.Reset(time.Until(start.Add(time.Duration(at) * time.Second / 48000)))
			select {
			case <-timer.C:
			case <-p.stop:
				return
			}
			d := time.Duration(pkt.Samples) * time.Second / 48000
			if err := track.WriteSample(media.Sample{Data: pkt.Data, Duration: d}); err != nil {
				return
			}
			at += int64(pkt.Samples)
			p.sentMS.Store(at / 48)
		}
	}()
	return p
}

// wait waits for the whole file to be sent.
func (p *lkPublisher) wait(t testing.TB) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatal("a LiveKit publisher did not finish sending its file (did Greffier never subscribe?)")
	}
}

// leave stops sending and leaves the room.
func (p *lkPublisher) leave() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
		p.room.Disconnect()
	}
}

// participants returns a meeting's participants' display names by identity.
func (b *testBundle) participants(t testing.TB, meetingID string) map[string]string {
	t.Helper()
	var ps struct {
		Participants []struct {
			Identity    string `json:"identity"`
			DisplayName string `json:"display_name"`
		} `json:"participants"`
	}
	b.call(t, "GET", "/v1/meetings/"+meetingID+"/participants", nil, &ps)
	out := map[string]string{}
	for _, p := range ps.Participants {
		out[p.Identity] = p.DisplayName
	}
	return out
}

// hears reports whether Greffier receives identity's audio in the meeting
// (a LiveKit participant joins the meeting with their first packet).
func (b *testBundle) hears(t testing.TB, meetingID, identity string) bool {
	t.Helper()
	_, ok := b.participants(t, meetingID)[identity]
	return ok
}

// signedWebhook is a LiveKit webhook request for event on room, signed
// with secret (LiveKit's: a JWT of the API key carrying the body's SHA-256).
func signedWebhook(t *testing.T, url, event, room, secret string) *http.Request {
	t.Helper()
	body := []byte(fmt.Sprintf(`{"event":%q,"room":{"name":%q},"id":"EV_test","createdAt":"%d"}`, event, room, time.Now().Unix()))
	sum := sha256.Sum256(body)
	at := auth.NewAccessToken(liveKitKey, secret).SetValidFor(time.Minute)
	at.SetSha256(base64.StdEncoding.EncodeToString(sum[:]))
	tok, err := at.ToJWT()
	require.NoError(t, err)
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/webhook+json")
	req.Header.Set("Authorization", tok)
	return req
}

func statusOf(t *testing.T, req *http.Request) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// TestLiveKitRoomStartedByWebhookBecomesMinutes has a real livekit-server
// send its room webhooks to Greffier, set to record every room: a forged
// webhook is refused and changes nothing; the room's start records it;
// two LiveKit participants speak; one renames themself; the room's end
// ends the meeting; the minutes give every word to the right identity
// under its current name.
func TestLiveKitRoomStartedByWebhookBecomesMinutes(t *testing.T) {
	t.Parallel()
	httpAddr := freePort(t, "tcp")
	hook := "http://" + httpAddr + "/v1/livekit/webhook"
	lk := startLiveKit(t, hook)
	logs := &logBuffer{}
	b := setup(t, setupOptions{logs: logs, configure: func(cfg *Config) {
		cfg.HTTPAddr = httpAddr
		lk.configure(cfg, "*")
	}})

	// Forged: signed with another secret, or not at all.
	require.Equal(t, http.StatusUnauthorized, statusOf(t, signedWebhook(t, hook, "room_started", "forged", "not-"+liveKitSecret)))
	unsigned := signedWebhook(t, hook, "room_started", "forged", liveKitSecret)
	unsigned.Header.Del("Authorization")
	require.Equal(t, http.StatusUnauthorized, statusOf(t, unsigned))
	var list struct {
		Meetings []meetingAnswer `json:"meetings"`
	}
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings", nil, &list))
	require.Empty(t, list.Meetings, "a forged webhook created a meeting")

	const room = "conseil"
	names := map[string]string{"alice": "Alice Martin", "bob": "Bob Durand"}
	pubs := map[string]*lkPublisher{}
	for who, name := range names {
		pubs[who] = publishToLiveKit(t, lk, room, who, name, filepath.Join(fixtures, who+".opus"), func() bool {
			var list struct {
				Meetings []meetingAnswer `json:"meetings"`
			}
			b.call(t, "GET", "/v1/meetings", nil, &list)
			return len(list.Meetings) == 1 && b.hears(t, list.Meetings[0].ID, who)
		})
	}
	for _, p := range pubs {
		p.wait(t)
	}
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings", nil, &list))
	require.Len(t, list.Meetings, 1, "room_started recorded the room once")
	id := list.Meetings[0].ID
	var m meetingAnswer
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+id, nil, &m))
	require.Equal(t, "live", m.State)
	require.NotNil(t, m.StartedAt)
	// Its going live is logged once, however close the two joined.
	live := 0
	for _, r := range logs.records(t) {
		if r["msg"] == "meeting live" && r["meeting"] == id {
			live++
		}
	}
	require.Equal(t, 1, live, "one \"meeting live\" line")
	// A forged room_finished does not end it.
	require.Equal(t, http.StatusUnauthorized, statusOf(t, signedWebhook(t, hook, "room_finished", room, "not-"+liveKitSecret)))
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+id, nil, &m))
	require.Equal(t, "live", m.State)

	// The application renames a participant: the minutes show the new name.
	_, err := lksdk.NewRoomServiceClient(lk.http, liveKitKey, liveKitSecret).UpdateParticipant(context.Background(),
		&lkproto.UpdateParticipantRequest{Room: room, Identity: "bob", Name: "Robert Durand"})
	require.NoError(t, err)
	names["bob"] = "Robert Durand"
	require.Eventually(t, func() bool { return b.participants(t, id)["bob"] == "Robert Durand" },
		20*time.Second, 100*time.Millisecond, "the new name was not stored")

	lk.deleteRoom(t, room)
	var now meetingAnswer
	require.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+id, nil, &now)
		return now.State == "ready" || now.State == "incomplete" || now.State == "failed"
	}, 90*time.Second, 100*time.Millisecond)
	require.Equal(t, "ready", now.State, "pipeline: %+v", now.Pipeline)
	require.Equal(t, 2, now.Pipeline.Tracks)

	script, err := transcribetest.ReadScript(filepath.Join(fixtures, "script.json"))
	require.NoError(t, err)
	var doc minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+id+"/minutes", nil, &doc))
	require.True(t, doc.Complete, "missing: %+v", doc.Missing)
	offset := map[string]float64{}
	for who, p := range pubs {
		offset[who] = p.started.Load().Sub(*now.StartedAt).Seconds()
	}
	requireTurnsOf(t, doc, script, names, offset)
}

// TestLiveKitRoomRecordedOnRequestSurvivesAKill records a LiveKit room at
// the API's request (on Postgres), kills `greffier serve` with SIGKILL
// while a participant speaks and keeps it down for two seconds, during
// which she goes on speaking to LiveKit, then starts it again: the spooled
// audio is recovered, the room is joined again (her track goes on as a
// new segment, and a participant who comes later is recorded), the API
// ends the meeting, and every word she said is in the minutes or inside a
// stated gap, the downtime stated as such.
func TestLiveKitRoomRecordedOnRequestSurvivesAKill(t *testing.T) {
	t.Parallel()
	lk, c, b, script := startKillableOnLiveKit(t)

	const room = "commission"
	var m, again meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/livekit/rooms/"+room+"/record",
		map[string]any{"title": "Commission des finances"}, &m))
	require.Equal(t, "created", m.State)
	require.Equal(t, http.StatusOK, b.call(t, "POST", "/v1/livekit/rooms/"+room+"/record", nil, &again))
	require.Equal(t, m.ID, again.ID, "a room is recorded by one meeting at a time")

	alice := publishToLiveKit(t, lk, room, "alice", "Alice", filepath.Join(fixtures, "alice.opus"),
		func() bool { return b.hears(t, m.ID, "alice") })
	// Kill once 4.5 s are sent: alice's first sentence (1.0–2.5 s) is in;
	// her second (5.5–6.6 s) comes while Greffier is down.
	require.Eventually(t, func() bool { return alice.sentMS.Load() >= 4500 }, 30*time.Second, 10*time.Millisecond)
	atKill := alice.sentMS.Load()
	kill9(t, c)
	time.Sleep(2 * time.Second) // down longer than what the recovery states lost
	startChild(t, c)
	// After the restart, bob joins and speaks: the room is recorded again.
	bob := publishToLiveKit(t, lk, room, "bob", "Bob", filepath.Join(fixtures, "bob.opus"),
		func() bool { return b.hears(t, m.ID, "bob") })
	alice.wait(t)
	bob.wait(t)

	var list struct {
		Tracks []struct {
			State      string
			Identity   string `json:"identity"`
			StartMS    int64  `json:"start_ms"`
			DurationMS int64  `json:"duration_ms"`
			GapMS      int64  `json:"gap_ms"`
		} `json:"tracks"`
	}
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/tracks", nil, &list))
	var aliceTracks []string
	for _, tr := range list.Tracks {
		if tr.Identity == "alice" {
			aliceTracks = append(aliceTracks, tr.State)
		}
	}
	require.GreaterOrEqual(t, len(aliceTracks), 2, "the recovered segment and the one recorded after rejoining: %+v", list.Tracks)
	require.Equal(t, "recovered", aliceTracks[0], "tracks: %+v", list.Tracks)
	t.Logf("sent %d ms before the kill; tracks %+v", atKill, list.Tracks)

	var ended meetingAnswer
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, &ended))
	now := finished(t, b, m.ID)
	var doc minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &doc))
	require.NotEmpty(t, doc.Turns)
	require.Equal(t, "alpha bravo charlie delta", doc.Turns[0].Text)
	require.Equal(t, "Alice", doc.Turns[0].Name)
	require.Equal(t, "incomplete", now.State, "pipeline: %+v", now.Pipeline)
	require.False(t, doc.Complete)
	require.Contains(t, fmt.Sprint(doc.Missing), "while it was down", "the downtime is stated: %+v", doc.Missing)

	// Every word is in the minutes or inside a stated gap of its speaker.
	starts := map[string]int64{}
	for who, p := range map[string]*lkPublisher{"alice": alice, "bob": bob} {
		starts[who] = p.started.Load().Sub(*ended.StartedAt).Milliseconds()
	}
	require.Zero(t, wordsLost(doc, script, starts), "minutes: %+v", doc)
	// Bob, heard only after the restart, is wholly in the minutes.
	var bobSaid []string
	for _, turn := range doc.Turns {
		if turn.Speaker == "bob" {
			bobSaid = append(bobSaid, turn.Text)
		}
	}
	require.Equal(t, []string{"echo foxtrot golf hotel", "lima mike november"}, bobSaid)
}

// TestLiveKitMeetingFollowsTheRecordingSwitch: a LiveKit room recorded at
// the API's request goes through the same gate as the SFU's tracks. The
// host stops recording after alice's first sentence and starts it again
// before her second: alice's track is two segments, nothing of the
// stretch between them is kept, and the minutes state that stretch as not
// recorded (and are complete: it is a choice, not a loss).
func TestLiveKitMeetingFollowsTheRecordingSwitch(t *testing.T) {
	t.Parallel()
	lk := startLiveKit(t, "")
	b := setup(t, setupOptions{configure: func(cfg *Config) { lk.configure(cfg, "") }})
	ctx := context.Background()
	const room = "huis-clos"
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/livekit/rooms/"+room+"/record",
		map[string]any{"title": "Huis clos"}, &m))
	alice := publishToLiveKit(t, lk, room, "alice", "Alice", filepath.Join(fixtures, "alice.opus"),
		func() bool { return b.hears(t, m.ID, "alice") })
	// Her first sentence is 1.0–2.5 s of the file, her second 5.5–6.6 s.
	require.Eventually(t, func() bool { return alice.sentMS.Load() >= 3200 }, 30*time.Second, 10*time.Millisecond)
	var stopped, started switchesAnswer
	require.Equal(t, http.StatusOK, b.call(t, "POST", "/v1/meetings/"+m.ID+"/recording/stop", nil, &stopped))
	require.False(t, stopped.Recording)
	require.Eventually(t, func() bool { return alice.sentMS.Load() >= 4600 }, 30*time.Second, 10*time.Millisecond)
	require.Equal(t, http.StatusOK, b.call(t, "POST", "/v1/meetings/"+m.ID+"/recording/start", nil, &started))
	require.True(t, started.Recording)
	stopMS := int64(stopped.Controls[len(stopped.Controls)-1].At * 1000)
	startMS := int64(started.Controls[len(started.Controls)-1].At * 1000)
	alice.wait(t)
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, nil))
	now := finished(t, b, m.ID)
	require.Equal(t, "ready", now.State, "pipeline: %+v", now.Pipeline)

	tracks, err := b.app.store.Tracks(ctx, m.ID)
	require.NoError(t, err)
	require.Len(t, tracks, 2, "one segment before the stop, one after the start: %+v", tracks)
	first, second := tracks[0], tracks[1]
	if second.StartMS < first.StartMS {
		first, second = second, first
	}
	require.LessOrEqual(t, first.StartMS+first.DurationMS, stopMS+frame+arrivalSlack, "nothing kept after the stop")
	require.GreaterOrEqual(t, second.StartMS, startMS, "nothing kept before the start")
	t.Logf("stop at %d ms, first segment ends at %d ms; start at %d ms, second segment starts at %d ms",
		stopMS, first.StartMS+first.DurationMS, startMS, second.StartMS)

	var doc minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &doc))
	require.True(t, doc.Complete, "missing: %+v", doc.Missing)
	require.Equal(t, []minutes.Gap{{Start: minutes.Seconds(stopMS), End: minutes.Seconds(startMS), Reason: minutes.ReasonNotRecorded}},
		doc.NotRecorded)
	var said []string
	for _, turn := range doc.Turns {
		said = append(said, turn.Text)
	}
	require.Equal(t, []string{"alpha bravo charlie delta", "india juliett kilo"}, said)
}
