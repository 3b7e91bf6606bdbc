package summarizetest_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/summarize/summarizetest"
)

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

const system = `Answer with one JSON object. Write every text in the language with ISO-639-1 code "en".`

// post sends a chat completion request and decodes the answer.
func post(t *testing.T, srv *summarizetest.Server, maxTokens int, msgs ...message) (int, map[string]any) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"model": "m", "messages": msgs, "max_tokens": maxTokens})
	require.NoError(t, err)
	resp, err := http.Post(srv.URL()+summarizetest.Path, "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return resp.StatusCode, out
}

func content(t *testing.T, out map[string]any) (string, string) {
	t.Helper()
	choice := out["choices"].([]any)[0].(map[string]any)
	return choice["message"].(map[string]any)["content"].(string), choice["finish_reason"].(string)
}

func TestDoubleDerivesItsAnswerFromTheTranscript(t *testing.T) {
	t.Parallel()
	srv := summarizetest.NewServer(summarizetest.Options{})
	t.Cleanup(srv.Close)
	user := "Transcript:\n" +
		"[T4 00:01:00–00:01:09] Ann Lee: The deployment pipeline is slow; the deployment takes an hour.\n" +
		"[T5 00:01:10–00:01:20] Raj Patel: We agreed to cache the deployment artifacts.\n" +
		"[T6 00:01:21–00:01:30] Ann Lee: Raj Patel will measure the pipeline by Monday.\n"
	status, out := post(t, srv, 1000, message{"system", system}, message{"user", user})
	require.Equal(t, http.StatusOK, status, out)
	text, finish := content(t, out)
	require.Equal(t, "stop", finish)
	var a struct {
		Language string
		Abstract struct {
			Text  string
			Turns []string
		}
		Topics []struct {
			Text  string
			Turns []string
		}
		Decisions []struct {
			Text  string
			Turns []string
		}
		Items []struct {
			Text, Owner, Due string
			Turns            []string
		} `json:"action_items"`
	}
	require.NoError(t, json.Unmarshal([]byte(text), &a))
	require.Equal(t, "en", a.Language)
	require.Equal(t, []string{"T4", "T6"}, a.Abstract.Turns)
	require.Len(t, a.Decisions, 1)
	require.Equal(t, []string{"T5"}, a.Decisions[0].Turns)
	require.Len(t, a.Items, 1)
	require.Equal(t, "Raj Patel", a.Items[0].Owner)
	require.Equal(t, "Monday", a.Items[0].Due)
	require.Equal(t, "measure the pipeline", a.Items[0].Text)
	require.Equal(t, "topic: deployment", a.Topics[0].Text)
	require.Equal(t, []string{"T4", "T5"}, a.Topics[0].Turns)

	got := srv.Received()
	require.Len(t, got, 1)
	require.Equal(t, []summarizetest.Turn{
		{ID: 4, Start: time.Minute, End: time.Minute + 9*time.Second, Name: "Ann Lee", Text: "The deployment pipeline is slow; the deployment takes an hour."},
		{ID: 5, Start: time.Minute + 10*time.Second, End: time.Minute + 20*time.Second, Name: "Raj Patel", Text: "We agreed to cache the deployment artifacts."},
		{ID: 6, Start: time.Minute + 21*time.Second, End: time.Minute + 30*time.Second, Name: "Ann Lee", Text: "Raj Patel will measure the pipeline by Monday."},
	}, got[0].Turns)
}

func TestDoubleRefusesWhatASummaryCannotComeFrom(t *testing.T) {
	t.Parallel()
	srv := summarizetest.NewServer(summarizetest.Options{MaxContextTokens: 200})
	t.Cleanup(srv.Close)
	for name, tc := range map[string]struct {
		system, user string
		maxTokens    int
		want         string
	}{
		"no transcript":      {system, "Summarise our meeting please.", 10, "no transcript lines"},
		"no times":           {system, "T1 Ann: hello\nT2 Raj: hi", 10, "no transcript lines"},
		"out of time order":  {system, "[T1 00:00:09–00:00:10] Ann: b\n[T2 00:00:01–00:00:02] Raj: a\n", 10, "out of time order"},
		"ends before starts": {system, "[T1 00:00:09–00:00:01] Ann: b\n", 10, "ends before it starts"},
		"no language":        {"Answer with one JSON object.", "[T1 00:00:01–00:00:02] Ann: a\n", 10, "names no language"},
		"over the context":   {system, "[T1 00:00:01–00:00:02] Ann: a\n", 190, "maximum context length is 200 tokens"},
	} {
		status, out := post(t, srv, tc.maxTokens, message{"system", tc.system}, message{"user", tc.user})
		require.Equal(t, http.StatusBadRequest, status, name)
		require.Contains(t, out["error"].(map[string]any)["message"], tc.want, name)
	}
	require.Empty(t, srv.Received())
}

func TestDoubleMisbehavesOnRequest(t *testing.T) {
	t.Parallel()
	user := "[T0 00:00:01–00:00:02] Ann Lee: We decided to ship.\n"

	srv := summarizetest.NewServer(summarizetest.Options{BadJSON: 1, Prose: true, UnknownCitations: true})
	t.Cleanup(srv.Close)
	_, out := post(t, srv, 1000, message{"system", system}, message{"user", user})
	text, _ := content(t, out)
	require.Error(t, json.Unmarshal([]byte(text), new(map[string]any)), "first reply is broken JSON")

	_, out = post(t, srv, 1000, message{"system", system}, message{"user", user})
	text, _ = content(t, out)
	require.True(t, strings.HasPrefix(text, "Here is the summary {as requested}:\n```json\n"), text)
	require.Contains(t, text, `"T1000"`, "cites a turn that does not exist")

	_, out = post(t, srv, 5, message{"system", system}, message{"user", user})
	text, finish := content(t, out)
	require.Equal(t, "length", finish)
	require.Len(t, text, 20)
}

// StallFirst holds only the first requests: the client that gave up on one
// is answered when it asks again.
func TestDoubleStallsOnlyTheFirstRequests(t *testing.T) {
	t.Parallel()
	srv := summarizetest.NewServer(summarizetest.Options{Stall: true, StallFirst: 1})
	t.Cleanup(srv.Close)
	user := "Transcript:\n[T1 00:00:01–00:00:03] Ann Lee: We agreed to meet again.\n"
	body, err := json.Marshal(map[string]any{"model": "m", "max_tokens": 1000,
		"messages": []message{{"system", system}, {"user", user}}})
	require.NoError(t, err)
	client := &http.Client{Timeout: 200 * time.Millisecond}
	_, err = client.Post(srv.URL()+summarizetest.Path, "application/json", bytes.NewReader(body))
	require.Error(t, err, "the first request is held until the client gives up")
	status, out := post(t, srv, 1000, message{"system", system}, message{"user", user})
	require.Equal(t, http.StatusOK, status, out)
	require.Equal(t, 2, srv.Requests())
}
