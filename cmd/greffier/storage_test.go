package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/faulttest"
	"github.com/greffier/greffier/minutes"
	"github.com/greffier/greffier/sfu/sfutest"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

type trackAnswer struct {
	Tracks []struct {
		ID         string `json:"id"`
		Identity   string `json:"identity"`
		State      string `json:"state"`
		StartMS    int64  `json:"start_ms"`
		DurationMS int64  `json:"duration_ms"`
		Failure    string `json:"failure"`
	} `json:"tracks"`
}

// recordingsLost counts the identities that published (or tried to) but
// have no track stored, recovered or stated failed.
func (b *testBundle) recordingsLost(t *testing.T, meetingID string, published ...string) int {
	t.Helper()
	var tr trackAnswer
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+meetingID+"/tracks", nil, &tr))
	lost := 0
	for _, who := range published {
		accounted := false
		for _, x := range tr.Tracks {
			if x.Identity == who && x.State != "recording" {
				accounted = true
			}
		}
		if !accounted {
			lost++
		}
	}
	return lost
}

// wordsLost counts the script's words of speakers that the minutes neither
// hold (same word within a second of where it was said) nor list inside a
// stated gap of that speaker. starts places each speaker's file on the
// meeting clock.
func wordsLost(doc minutes.Document, script transcribetest.Script, starts map[string]int64) int {
	lost := 0
	for _, u := range script.Utterances {
		start, ok := starts[u.Speaker]
		if !ok {
			continue
		}
		for _, w := range u.Words {
			at := start + int64(w.Start*1000)
			found := false
			for _, turn := range doc.Turns {
				for _, tw := range turn.Words {
					if turn.Speaker == u.Speaker && strings.EqualFold(tw.Word, w.Text) && abs(tw.Start.MS()-at) < 1000 {
						found = true
					}
				}
			}
			for _, g := range doc.Missing {
				if g.Speaker == u.Speaker && g.Start.MS() <= at+500 && g.End.MS() >= at-500 {
					found = true
				}
			}
			if !found {
				lost++
			}
		}
	}
	return lost
}

func abs(v int64) int64 { return max(v, -v) }

// TestFaultStorageFullBeforeMeetingRefusesPublisherAndSaysSo: with less free
// spool space than the configured minimum, a publisher is refused with 507
// and a JSON error naming the cause, instead of media nobody records; the
// meeting's progress and its minutes say who was not recorded and why, and
// the minutes are not complete.
func TestFaultStorageFullBeforeMeetingRefusesPublisherAndSaysSo(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{spoolMinFree: 1 << 60})
	ctx := context.Background()
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"participants": []map[string]any{{"identity": "alice", "display_name": "Alice"}}}, &m))
	_, err := sfutest.Publish(ctx, sfutest.PublishOptions{WHIPURL: b.url + "/v1/whip", Token: m.Join[0].Token,
		OggPath: filepath.Join(fixtures, "alice.opus")})
	var se *sfutest.StatusError
	require.ErrorAs(t, err, &se)
	require.Equal(t, http.StatusInsufficientStorage, se.StatusCode)
	require.Equal(t, "insufficient_storage", se.Code)
	require.Contains(t, se.Message, "spool disk nearly full")
	require.Contains(t, se.Message, "MinFreeBytes")

	var live meetingAnswer
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &live))
	require.Len(t, live.Pipeline.Failures, 1, "the meeting says at once that alice is not recorded")
	require.Equal(t, "record", live.Pipeline.Failures[0].Stage)
	require.Contains(t, live.Pipeline.Failures[0].Reason, "not recorded")

	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, nil))
	var now meetingAnswer
	require.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &now)
		return now.State != "ended" && now.State != "live"
	}, 30*time.Second, 50*time.Millisecond)
	var doc minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &doc))
	require.False(t, doc.Complete)
	require.Len(t, doc.Missing, 1)
	require.Equal(t, "alice", doc.Missing[0].Speaker)
	require.Contains(t, doc.Missing[0].Reason, "not recorded: spool disk nearly full")
	require.Greater(t, doc.Missing[0].End, doc.Missing[0].Start, "missing from the refusal to the meeting's end")

	faulttest.Report(t, faulttest.FaultsInjected, 1)
	lost := b.recordingsLost(t, m.ID, "alice")
	faulttest.Report(t, faulttest.RecordingsLost, float64(lost))
	require.Zero(t, lost)
}

// smallDisk mounts a tmpfs of size bytes, or skips where mounting is not
// allowed (not root): a real full disk, database and all, is the point.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fillDisk writes to dir until its file system is full and returns the
// filler's path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	block := make([]byte, 64<<10)
	for n := len(block); n > 0; n /= 2 {
		for {
			if _, err := f.Write(block[:n]); err != nil {
				require.True(t, errors.Is(err, syscall.ENOSPC), "%v", err)
				break
			}
		}
	}
	return path
}

// TestFaultStorageFullDuringMeetingThenSpaceBackFinishesWithoutRestart: the
// data disk (spool, database and recordings alike) fills while alice
// speaks. Once space is back, the meeting ends and its minutes come
// without a restart; they hold what was recorded and list the rest of
// alice's track as a stated gap, so they are not complete.
func TestFaultStorageFullDuringMeetingThenSpaceBackFinishesWithoutRestart(t *testing.T) {
	t.Parallel()
	disk := smallDisk(t, "48m")
	b := setup(t, setupOptions{dataDir: disk, spoolMinFree: 1 << 20})
	script, err := transcribetest.ReadScript(filepath.Join(fixtures, "script.json"))
	require.NoError(t, err)
	ctx := context.Background()
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"participants": []map[string]any{{"identity": "alice", "display_name": "Alice"}}}, &m))
	pub, err := sfutest.Publish(ctx, sfutest.PublishOptions{WHIPURL: b.url + "/v1/whip", Token: m.Join[0].Token,
		OggPath: filepath.Join(fixtures, "alice.opus")})
	require.NoError(t, err)
	// Her first sentence (1.0 to 2.5 s) reaches the disk; the disk fills
	// once 4.6 s are sent, before her second one (5.5 to 6.6 s). Counted
	// in packets sent, not in what the server did with them, so a loaded
	// machine cannot move the fill past the end of her speech.
	require.Eventually(t, func() bool { return len(pub.Sent()) >= 230 }, 20*time.Second, 5*time.Millisecond)
	filler := fillDisk(t, disk)
	<-pub.Done()
	require.NoError(t, pub.Close(ctx))

	require.NoError(t, os.Remove(filler)) // space is back
	var ended meetingAnswer
	require.Eventually(t, func() bool {
		return b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, &ended) == http.StatusAccepted
	}, 10*time.Second, 100*time.Millisecond)
	var now meetingAnswer
	ok := assert.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &now)
		return now.State != "ended" && now.State != "live"
	}, 45*time.Second, 100*time.Millisecond)
	require.True(t, ok, "meeting stuck in %s: %+v", now.State, now.Pipeline)
	require.Equal(t, "incomplete", now.State, "the minutes miss what the full disk lost")

	var doc minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/minutes", nil, &doc))
	require.False(t, doc.Complete)
	require.NotEmpty(t, doc.Turns, "what was recorded is in the minutes")
	var tr trackAnswer
	var diskGap *minutes.Gap
	for i, g := range doc.Missing {
		if g.Speaker == "alice" && strings.Contains(g.Reason, "full") {
			diskGap = &doc.Missing[i]
		}
	}
	require.NotNil(t, diskGap, "missing: %+v", doc.Missing)
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID+"/tracks", nil, &tr))
	require.Len(t, tr.Tracks, 1)
	track := tr.Tracks[0]
	require.Equal(t, "recovered", track.State, track.Failure)
	require.Equal(t, track.StartMS+track.DurationMS, diskGap.Start.MS(), "the gap starts where the recording stops")
	// How much of her speech the disk missed depends on when it filled
	// (the test fills it once her first sentence is transcribed, later on
	// a loaded machine); wherever that was, the gap runs to the end of
	// what she said.
	var saidUntil float64
	for _, u := range script.Utterances {
		if u.Speaker == "alice" {
			saidUntil = max(saidUntil, u.End)
		}
	}
	require.GreaterOrEqual(t, diskGap.End.MS(), track.StartMS+int64(saidUntil*1000)-500, "the gap runs to the end of what she said")

	faulttest.Report(t, faulttest.FaultsInjected, 1)
	lost := b.recordingsLost(t, m.ID, "alice")
	faulttest.Report(t, faulttest.RecordingsLost, float64(lost))
	require.Zero(t, lost)
	words := wordsLost(doc, script, map[string]int64{"alice": track.StartMS})
	faulttest.Report(t, faulttest.WordsLost, float64(words))
	require.Zero(t, words, "every word is in the minutes or inside a stated gap")
}
