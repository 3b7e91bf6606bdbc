package kyutaitest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
	"github.com/tinylib/msgp/msgp"
	"go.uber.org/goleak"

	"github.com/greffier/greffier/transcribe/kyutaitest"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// rawClient speaks the protocol by hand, as Kyutai's Python reference
// client does (float64 samples), so the double is checked against the
// wire format and not against Greffier's own client.
type rawClient struct {
	t    *testing.T
	conn *websocket.Conn
}

func dialRaw(t *testing.T, url string, h http.Header) (*rawClient, *http.Response, error) {
	t.Helper()
	conn, resp, err := websocket.Dial(t.Context(), url, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		return nil, resp, err
	}
	t.Cleanup(func() { _ = conn.CloseNow() })
	return &rawClient{t: t, conn: conn}, resp, nil
}

func (c *rawClient) send(m map[string]any) {
	c.t.Helper()
	b, err := msgp.AppendIntf(nil, m)
	require.NoError(c.t, err)
	require.NoError(c.t, c.conn.Write(c.t.Context(), websocket.MessageBinary, b))
}

func (c *rawClient) audio(pcm []float64) {
	c.t.Helper()
	for from := 0; from < len(pcm); from += 1000 { // any chunk length goes
		chunk := pcm[from:min(from+1000, len(pcm))]
		vals := make([]any, len(chunk))
		for i, v := range chunk {
			vals[i] = v
		}
		c.send(map[string]any{"type": "Audio", "pcm": vals})
	}
}

func (c *rawClient) next() (map[string]any, error) {
	typ, b, err := c.conn.Read(c.t.Context())
	if err != nil {
		return nil, err
	}
	require.Equal(c.t, websocket.MessageBinary, typ)
	m, _, err := msgp.ReadMapStrIntfBytes(b, nil)
	require.NoError(c.t, err)
	return m, nil
}

func tone24k(t *testing.T, words []transcribetest.TimedWord) []float64 {
	t.Helper()
	pcm, err := transcribetest.Synthesize(words, kyutaitest.SampleRate)
	require.NoError(t, err)
	out := make([]float64, len(pcm))
	for i, v := range pcm {
		out[i] = float64(v) / 32768
	}
	return out
}

func num(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case float32:
		return float64(n)
	case int64:
		return float64(n)
	case uint64:
		return float64(n)
	}
	return -1
}

func TestProtocolAgainstAReferenceStyleClient(t *testing.T) {
	t.Parallel()
	srv := kyutaitest.NewServer(kyutaitest.Options{APIKey: "k"})
	t.Cleanup(srv.Close)
	c, _, err := dialRaw(t, srv.URL()+"?auth_id=k", nil)
	require.NoError(t, err)
	m, err := c.next()
	require.NoError(t, err)
	require.Equal(t, "Ready", m["type"])

	words := transcribetest.Layout(time.Second, "quebec", "romeo", "three")
	c.audio(tone24k(t, words))
	c.audio(make([]float64, 2*kyutaitest.SampleRate)) // end padding
	c.send(map[string]any{"type": "Marker", "id": int64(42)})
	c.audio(make([]float64, kyutaitest.SampleRate))

	var got []transcribetest.TimedWord
	lastStep := -1.0
	for {
		m, err := c.next()
		require.NoError(t, err)
		switch m["type"] {
		case "Word":
			got = append(got, transcribetest.TimedWord{Text: m["text"].(string), Start: transcribetest.FromSeconds(num(m["start_time"]))})
		case "EndWord":
			require.NotEmpty(t, got)
			got[len(got)-1].End = transcribetest.FromSeconds(num(m["stop_time"]))
		case "Step":
			require.Equal(t, lastStep+1, num(m["step_idx"]))
			lastStep = num(m["step_idx"])
			require.GreaterOrEqual(t, num(m["buffered_pcm"]), 0.0)
			require.Len(t, m["prs"], 4)
		case "Marker":
			require.Equal(t, int64(42), m["id"])
			// All audio before the Marker was processed: 3.9 s = 48 steps.
			require.GreaterOrEqual(t, lastStep, 47.0)
			require.Len(t, got, len(words))
			for i, w := range words {
				require.Equal(t, w.Text, got[i].Text)
				// Times come 0.5 s late, at the model's 80 ms resolution.
				require.InDelta(t, (w.Start + kyutaitest.DefaultModelDelay).Seconds(), got[i].Start.Seconds(), 0.05)
				require.InDelta(t, (w.End + kyutaitest.DefaultModelDelay).Seconds(), got[i].End.Seconds(), 0.05)
			}
			require.NoError(t, c.conn.Close(websocket.StatusNormalClosure, ""))
			require.Eventually(t, func() bool { return srv.InUse() == 0 }, 5*time.Second, 5*time.Millisecond)
			require.True(t, srv.Sessions()[0].Clean)
			return
		default:
			t.Fatalf("unexpected frame %v", m)
		}
	}
}

func TestWordsComeFromTheAudio(t *testing.T) {
	t.Parallel()
	srv := kyutaitest.NewServer(kyutaitest.Options{ModelDelay: -1})
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		name  string
		words []transcribetest.TimedWord
	}{
		{"silence", nil},
		{"one word", transcribetest.Layout(200*time.Millisecond, "five")},
		{"other words", transcribetest.Layout(200*time.Millisecond, "zero", "alpha")},
	} {
		c, _, err := dialRaw(t, srv.URL(), nil)
		require.NoError(t, err)
		_, err = c.next() // Ready
		require.NoError(t, err)
		pcm := make([]float64, kyutaitest.SampleRate)
		if len(tc.words) > 0 {
			pcm = tone24k(t, tc.words)
		}
		c.audio(append(pcm, make([]float64, kyutaitest.SampleRate)...))
		c.send(map[string]any{"type": "Marker", "id": int64(1)})
		c.audio(make([]float64, kyutaitest.FrameSize))
		var texts []string
		for {
			m, err := c.next()
			require.NoError(t, err)
			if m["type"] == "Word" {
				texts = append(texts, m["text"].(string))
			}
			if m["type"] == "Marker" {
				break
			}
		}
		var want []string
		for _, w := range tc.words {
			want = append(want, w.Text)
		}
		require.Equal(t, want, texts, tc.name)
		require.NoError(t, c.conn.Close(websocket.StatusNormalClosure, ""))
	}
}

func TestAuthCapacityAndModulesInfo(t *testing.T) {
	t.Parallel()
	srv := kyutaitest.NewServer(kyutaitest.Options{APIKey: "k", Channels: 1})
	t.Cleanup(srv.Close)

	_, resp, err := dialRaw(t, srv.URL(), nil)
	require.Error(t, err)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "refused before the upgrade")

	h := http.Header{"Kyutai-Api-Key": {"k"}}
	first, _, err := dialRaw(t, srv.URL(), h)
	require.NoError(t, err)
	m, err := first.next()
	require.NoError(t, err)
	require.Equal(t, "Ready", m["type"])

	second, _, err := dialRaw(t, srv.URL(), h)
	require.NoError(t, err)
	m, err = second.next()
	require.NoError(t, err)
	require.Equal(t, map[string]any{"type": "Error", "message": kyutaitest.NoFreeChannels}, m)
	_, err = second.next()
	require.Error(t, err, "the server closes after turning a client away")
	require.Equal(t, 1, srv.Busy())

	res, err := http.Get(srv.HTTPURL() + "/api/modules_info")
	require.NoError(t, err)
	defer res.Body.Close()
	var info map[string]struct {
		Used  int `json:"used_slots"`
		Total int `json:"total_slots"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&info))
	require.Equal(t, 1, info["asr"].Used)
	require.Equal(t, 1, info["asr"].Total)
}

func TestRefusesBadFramesAndDropsIdleClients(t *testing.T) {
	t.Parallel()
	srv := kyutaitest.NewServer(kyutaitest.Options{IdleTimeout: 200 * time.Millisecond})
	t.Cleanup(srv.Close)

	c, _, err := dialRaw(t, srv.URL(), nil)
	require.NoError(t, err)
	_, err = c.next()
	require.NoError(t, err)
	require.NoError(t, c.conn.Write(t.Context(), websocket.MessageText, []byte(`{"type":"Audio"}`)))
	m, err := c.next()
	require.NoError(t, err)
	require.Equal(t, "Error", m["type"])

	idle, _, err := dialRaw(t, srv.URL(), nil)
	require.NoError(t, err)
	_, err = idle.next()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, _, err = idle.conn.Read(ctx)
	require.Error(t, err, "a silent client is dropped")
	require.NoError(t, ctx.Err(), "by the server, not by this test's deadline")
}
