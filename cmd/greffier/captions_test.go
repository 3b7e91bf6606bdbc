package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/captions"
	"github.com/greffier/greffier/internal/faulttest"
	"github.com/greffier/greffier/transcribe/kyutaitest"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

type receivedCaption struct {
	captions.Caption
	at time.Time
}

// follow reads a meeting's caption stream as a browser's EventSource would
// (join token in the query) until the stream ends.
func follow(t *testing.T, url string) (<-chan receivedCaption, <-chan struct{}) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	out, done := make(chan receivedCaption, 1024), make(chan struct{})
	go func() {
		defer close(done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
				if event == "end" {
					return
				}
			case strings.HasPrefix(line, "data: ") && event == "caption":
				var c captions.Caption
				if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &c) == nil {
					out <- receivedCaption{c, time.Now()}
				}
			}
		}
	}()
	return out, done
}

// Live captions: each speaker's words reach a listener as they are
// recognised, with the speaker's name and meeting-clock times, within a
// second of the backend emitting them.
func TestLiveCaptions(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{captions: &kyutaitest.Options{}})
	script, err := transcribetest.ReadScript(filepath.Join(fixtures, "script.json"))
	require.NoError(t, err)

	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"captions": true,
		"participants": []map[string]any{
			{"identity": "alice", "display_name": "Alice Martin"},
			{"identity": "bob", "display_name": "Bob Durand", "rights": []string{"publish", "listen"}},
		},
	}, &m))
	caps, ended := follow(t, b.url+"/v1/meetings/"+m.ID+"/captions?token="+m.Join[1].Token)

	ctx := context.Background()
	pubs := b.publishAll(t, m)
	for _, p := range pubs {
		require.NoError(t, p.Close(ctx))
	}
	var end meetingAnswer
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, &end))
	select {
	case <-ended:
	case <-time.After(20 * time.Second):
		t.Fatal("the caption stream did not end with the meeting")
	}
	// The reader is done: everything it got is in the channel.
	finals := map[string]receivedCaption{}
	partial := map[string]bool{}
	for len(caps) > 0 {
		c := <-caps
		if c.Final {
			finals[c.Text] = c
		} else {
			partial[c.Text] = true
		}
	}
	for _, u := range script.Utterances {
		offset := pubs[u.Speaker].Started().Sub(*end.StartedAt).Seconds()
		for _, w := range u.Words {
			c, ok := finals[w.Text]
			require.True(t, ok, "no final caption for %q (got %v)", w.Text, finals)
			require.True(t, partial[w.Text], "%q came only final", w.Text)
			require.Equal(t, u.Speaker, c.Speaker)
			require.Equal(t, map[string]string{"alice": "Alice Martin", "bob": "Bob Durand"}[u.Speaker], c.Name)
			require.InDelta(t, offset+w.Start, float64(c.StartMS)/1000, 0.3, "%q start", w.Text)
			require.InDelta(t, offset+w.End, float64(c.EndMS)/1000, 0.3, "%q end", w.Text)
		}
	}
	// Within a second of the backend saying it.
	for _, e := range b.kyutai.Emitted() {
		if !e.Final {
			continue
		}
		c, ok := finals[e.Text]
		require.True(t, ok, "emitted %q never reached the listener", e.Text)
		require.Less(t, c.at.Sub(e.At), time.Second, "%q took %s", e.Text, c.at.Sub(e.At))
	}
}

// TestFaultRevokedTokenClosesItsCaptionStream: a caption stream already
// open when its join token, or its participant, is revoked ends then, not
// whenever the listener leaves; other listeners' streams stay open, and
// every stream ends with the meeting.
func TestFaultRevokedTokenClosesItsCaptionStream(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{captions: &kyutaitest.Options{}})
	var m struct {
		ID   string        `json:"id"`
		Join []tokenAnswer `json:"join"`
	}
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"participants": []map[string]any{{"identity": "alice"}, {"identity": "bob"}}}, &m))
	stream := func(tok string) <-chan struct{} {
		_, done := follow(t, b.url+"/v1/meetings/"+m.ID+"/captions?token="+tok)
		return done
	}
	open := func(done <-chan struct{}) bool {
		select {
		case <-done:
			return false
		default:
			return true
		}
	}
	var second tokenAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings/"+m.ID+"/tokens", map[string]any{"identity": "bob"}, &second))
	alice, bob, bob2 := stream(m.Join[0].Token), stream(m.Join[1].Token), stream(second.Token)
	faults := 0
	closedWithin := func(done <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("%s stayed open", what)
		}
	}

	require.Equal(t, http.StatusOK, b.call(t, "POST", "/v1/meetings/"+m.ID+"/participants/alice/revoke", nil, nil))
	faults++
	closedWithin(alice, "the stream of a revoked participant")
	require.True(t, open(bob) && open(bob2), "others' streams stay open")

	require.Equal(t, http.StatusNoContent, b.call(t, "DELETE", "/v1/meetings/"+m.ID+"/tokens/"+m.Join[1].TokenID, nil, nil))
	faults++
	closedWithin(bob, "the stream of a revoked token")
	require.True(t, open(bob2), "the stream of bob's other token stays open")

	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, nil))
	closedWithin(bob2, "a stream of an ended meeting")
	faulttest.Report(t, faulttest.FaultsInjected, float64(faults))
}
