package diarizetest_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/diarize/diarizetest"
	"github.com/greffier/greffier/internal/audio"
)

const key = "k"

func post(t *testing.T, url, auth, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+auth)
	req.Header.Set("Content-Type", "application/json")
	return send(t, req)
}

func send(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	var out map[string]any
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

func TestServerValidates(t *testing.T) {
	t.Parallel()
	s := diarizetest.NewServer(diarizetest.Options{APIKey: key})
	t.Cleanup(s.Close)
	u := s.URL() + "/v1/diarize"

	status, body := post(t, u, "wrong", `{"url":"https://a/b.wav"}`)
	require.Equal(t, http.StatusUnauthorized, status)
	require.Equal(t, "Invalid API key", body["message"])

	for req, msg := range map[string]string{
		`{}`:                                    "url must be",
		`{"url":"http://a/b.wav"}`:              "https or media",
		`{"url":"media://nope"}`:                "not found",
		`{"url":"https://a/b.wav","model":"x"}`: "model must be",
		`{"url":"https://a/b.wav","numSpeakers":2,"minSpeakers":1}`: "cannot be combined",
		`{"url":"https://a/b.wav","minSpeakers":3,"maxSpeakers":2}`: "must not exceed",
		`{"url":"https://a/b.wav","numSpeakers":0}`:                 "at least 1",
		`{"url":"https://a/b.wav","webhook":"nope"}`:                "webhook",
		`{"url":"https://a/b.wav","surprise":true}`:                 "unknown field",
	} {
		status, body := post(t, u, key, req)
		require.Equal(t, http.StatusBadRequest, status, req)
		require.Contains(t, body["message"], msg, req)
	}
	require.Empty(t, s.Received())

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL()+"/v1/jobs/nope", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	status, _ = send(t, req)
	require.Equal(t, http.StatusNotFound, status)
}

func TestServerPresignedPutIsSingleUse(t *testing.T) {
	t.Parallel()
	s := diarizetest.NewServer(diarizetest.Options{})
	t.Cleanup(s.Close)
	status, body := post(t, s.URL()+"/v1/media/input", "", `{"url":"media://a/b"}`)
	require.Equal(t, http.StatusCreated, status)
	put := body["url"].(string)
	for i, want := range []int{http.StatusOK, http.StatusForbidden} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, put, strings.NewReader("bytes"))
		require.NoError(t, err)
		status, _ := send(t, req)
		require.Equal(t, want, status, "PUT %d", i)
	}
	got, ok := s.Media("a/b")
	require.True(t, ok)
	require.Equal(t, "bytes", string(got))
}

// The double's webhooks carry what a pyannoteAI receiver checks, computed
// here independently of Sign.
func TestServerWebhookSignatureAndRetries(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		heard []http.Header
		done  = make(chan []byte, 1)
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m := hmac.New(sha256.New, []byte("secret"))
		m.Write([]byte("v0:" + r.Header.Get("X-Request-Timestamp") + ":"))
		m.Write(body)
		if base64.StdEncoding.EncodeToString(m.Sum(nil)) != r.Header.Get("X-Signature") {
			r.Header.Set("Bad-Signature", "yes") // checked once the test goroutine has it
		}
		mu.Lock()
		heard = append(heard, r.Header.Clone())
		n := len(heard)
		mu.Unlock()
		if n < 3 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		done <- body
	}))
	t.Cleanup(hook.Close)

	samples, err := diarizetest.Synthesize([]diarizetest.Speech{{Pitch: 250, Start: ms(200), End: ms(700)}})
	require.NoError(t, err)
	var wav bytes.Buffer
	require.NoError(t, audio.WriteWAV(&wav, samples))
	audioSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(wav.Bytes()) }))
	t.Cleanup(audioSrv.Close)

	s := diarizetest.NewServer(diarizetest.Options{
		WebhookSecret: "secret", AllowHTTP: true,
		WebhookRetryDelays: []time.Duration{0, ms(5), ms(5)},
	})
	t.Cleanup(s.Close)
	status, _ := post(t, s.URL()+"/v1/diarize", "", `{"url":"`+audioSrv.URL+`/a.wav","webhook":"`+hook.URL+`"}`)
	require.Equal(t, http.StatusOK, status)

	var job struct {
		Status string `json:"status"`
		Output struct {
			Diarization []struct {
				Speaker    string
				Start, End float64
			} `json:"diarization"`
		} `json:"output"`
	}
	select {
	case body := <-done:
		require.NoError(t, json.Unmarshal(body, &job))
	case <-t.Context().Done():
		t.Fatal("no webhook")
	}
	require.Equal(t, "succeeded", job.Status)
	require.Len(t, job.Output.Diarization, 1)
	require.Equal(t, "SPEAKER_00", job.Output.Diarization[0].Speaker)
	require.InDelta(t, 0.2, job.Output.Diarization[0].Start, 0.01)
	require.InDelta(t, 0.7, job.Output.Diarization[0].End, 0.01)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, heard, 3)
	for i, h := range heard {
		require.Empty(t, h.Get("Bad-Signature"), "delivery %d wrongly signed", i)
	}
	require.Empty(t, heard[0].Get("X-Retry-Num"))
	require.Equal(t, "1", heard[1].Get("X-Retry-Num"))
	require.Equal(t, "2", heard[2].Get("X-Retry-Num"))
}
