package kyutaitest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/transcribe/kyutaitest"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

// TestOggOpusFrames streams alice's Ogg Opus file in OggOpus frames cut
// anywhere, as moshi-server takes it: her words come back at her times,
// the model's delay later.
func TestOggOpusFrames(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "..", "testdata", "meeting")
	ogg, err := os.ReadFile(filepath.Join(dir, "alice.opus"))
	require.NoError(t, err)
	script, err := transcribetest.ReadScript(filepath.Join(dir, "script.json"))
	require.NoError(t, err)
	words := script.Words("alice")

	srv := kyutaitest.NewServer(kyutaitest.Options{})
	t.Cleanup(srv.Close)
	c, _, err := dialRaw(t, srv.URL(), nil)
	require.NoError(t, err)
	m, err := c.next()
	require.NoError(t, err)
	require.Equal(t, "Ready", m["type"])
	for from := 0; from < len(ogg); from += 777 {
		c.send(map[string]any{"type": "OggOpus", "data": ogg[from:min(from+777, len(ogg))]})
	}
	c.send(map[string]any{"type": "Marker", "id": int64(1)})
	c.audio(make([]float64, kyutaitest.SampleRate/2))

	var got []transcribetest.TimedWord
	for {
		m, err := c.next()
		require.NoError(t, err)
		switch m["type"] {
		case "Word":
			got = append(got, transcribetest.TimedWord{Text: m["text"].(string), Start: transcribetest.FromSeconds(num(m["start_time"]))})
		case "EndWord":
			got[len(got)-1].End = transcribetest.FromSeconds(num(m["stop_time"]))
		case "Marker":
			require.Len(t, got, len(words), "got %v", got)
			for i, w := range words {
				require.Equal(t, w.Text, got[i].Text)
				// 80 ms steps: up to 40 ms off, and the detector's 5 ms.
				require.InDelta(t, (w.Start + kyutaitest.DefaultModelDelay).Seconds(), got[i].Start.Seconds(), 0.05, w.Text)
				require.InDelta(t, (w.End + kyutaitest.DefaultModelDelay).Seconds(), got[i].End.Seconds(), 0.05, w.Text)
			}
			require.NoError(t, c.conn.Close(websocket.StatusNormalClosure, ""))
			srv.Close() // waits for the session to end
			// 9 s of Ogg Opus at 24 kHz, pre-skip dropped and the last
			// packet trimmed, and the silence.
			require.Equal(t, int64(9*kyutaitest.SampleRate+kyutaitest.SampleRate/2), srv.Sessions()[0].Received)
			return
		}
	}
}

func TestOggOpusFramesRefused(t *testing.T) {
	t.Parallel()
	srv := kyutaitest.NewServer(kyutaitest.Options{})
	t.Cleanup(srv.Close)
	c, _, err := dialRaw(t, srv.URL(), nil)
	require.NoError(t, err)
	_, err = c.next() // Ready
	require.NoError(t, err)
	c.send(map[string]any{"type": "OggOpus", "data": []byte("OggS and then nothing that Ogg would write")})
	for {
		m, err := c.next()
		require.NoError(t, err)
		if m["type"] == "Error" {
			require.Contains(t, m["message"], "not a readable Ogg Opus file")
			break
		}
	}
	_, err = c.next()
	require.Error(t, err, "the server closes the stream")
	require.True(t, strings.Contains(srv.Sessions()[0].Err, "OggOpus"), srv.Sessions()[0].Err)
}
