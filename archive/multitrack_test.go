package archive

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type probe struct {
	Streams []struct {
		Index     int               `json:"index"`
		CodecName string            `json:"codec_name"`
		CodecType string            `json:"codec_type"`
		Channels  int               `json:"channels"`
		Tags      map[string]string `json:"tags"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

func ffprobe(t testing.TB, path string) probe {
	t.Helper()
	var p probe
	out := runTool(t, "ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", path)
	require.NoError(t, json.Unmarshal(out, &p), "%s", out)
	return p
}

func writeMultitrackFile(t testing.TB, tracks []Track) (string, Stats) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "archive.webm")
	f, err := os.Create(path)
	require.NoError(t, err)
	st, err := WriteMultitrack(context.Background(), f, tracks)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	return path, st
}

func TestWriteMultitrackAlignsSpeakersOnTheMeetingClock(t *testing.T) {
	t.Parallel()
	m := newMeeting(t)
	path, st := writeMultitrackFile(t, m.tracks)

	require.Equal(t, 2, st.Speakers)
	require.Equal(t, 3, st.Segments)
	require.Zero(t, st.Overlapped)
	require.Zero(t, st.Truncated)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, fi.Size(), st.Bytes)
	for i, mt := range m.mem {
		require.EqualValues(t, 1, mt.opens.Load(), "segment %d opened once", i)
		require.EqualValues(t, 1, mt.closes.Load(), "segment %d closed", i)
	}
	// Alice's second segment ends last: 8 s on the meeting clock plus the
	// 5 s left of her 9 s recording.
	aliceEnd := time.Duration(aliceRejoinMS)*time.Millisecond + 9*time.Second - aliceSplit*20*time.Millisecond
	require.InDelta(t, aliceEnd.Seconds(), st.Duration.Seconds(), 0.03)

	p := ffprobe(t, path)
	require.Len(t, p.Streams, 2)
	for i, name := range []string{"Alice", "Bob"} {
		s := p.Streams[i]
		require.Equal(t, "audio", s.CodecType)
		require.Equal(t, "opus", s.CodecName)
		require.Equal(t, 1, s.Channels)
		require.Equal(t, name, s.Tags["title"])
		// ffmpeg hides "und"; it would show Matroska's default "eng" had
		// the Language element been left out (mkvinfo shows it below).
		require.NotContains(t, s.Tags, "language")
		require.NotEmpty(t, s.Tags["DURATION"])
	}
	require.Equal(t, tagDuration(st.Duration), p.Streams[0].Tags["DURATION"])
	dur, err := strconv.ParseFloat(p.Format.Duration, 64)
	require.NoError(t, err)
	require.InDelta(t, st.Duration.Seconds(), dur, 0.03)

	info := string(runTool(t, "mkvinfo", "--all", path))
	require.Contains(t, info, "Name: Alice")
	require.Contains(t, info, "Name: Bob")
	require.Contains(t, info, "Language: und")
	require.Contains(t, info, "Cues")
	require.Contains(t, info, "Seek head")
	require.Contains(t, info, "Codec-inherent delay: 00:00:00.006500000")
	require.NotContains(t, info, "Error")

	// Each track, decoded on its own, has its speaker's words at their
	// meeting-clock times.
	requireWordsAt(t, m.want["alice"], hear(t, extractTrack(t, path, 1)), 20*time.Millisecond)
	requireWordsAt(t, m.want["bob"], hear(t, extractTrack(t, path, 2)), 20*time.Millisecond)
}

// Only the first speaker is the default track: with every track marked
// default (Matroska's default when FlagDefault is left out), players that
// honour it play the first speaker alone.
func TestWriteMultitrackMarksOnlyTheFirstSpeakerDefault(t *testing.T) {
	t.Parallel()
	m := newMeeting(t)
	path, _ := writeMultitrackFile(t, m.tracks)

	out := runTool(t, "ffprobe", "-v", "error", "-show_entries", "stream=index:stream_disposition=default",
		"-of", "json", path)
	var p struct {
		Streams []struct {
			Index       int            `json:"index"`
			Disposition map[string]int `json:"disposition"`
		} `json:"streams"`
	}
	require.NoError(t, json.Unmarshal(out, &p), "%s", out)
	require.Len(t, p.Streams, 2)
	require.Equal(t, 1, p.Streams[0].Disposition["default"], "the first speaker is the default track: %s", out)
	require.Equal(t, 0, p.Streams[1].Disposition["default"], "the second speaker is not: %s", out)

	info := string(runTool(t, "mkvinfo", "--all", path))
	require.Contains(t, info, `"Default track" flag: 1`)
	require.Contains(t, info, `"Default track" flag: 0`)
}
