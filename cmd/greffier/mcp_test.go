package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/minutes"
	"github.com/greffier/greffier/summarize/summarizetest"
)

// bearerTransport adds an Authorization header to every request of the
// MCP client.
type bearerTransport struct{ token string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

func mcpConnect(ctx context.Context, url, token string) (*mcp.ClientSession, error) {
	return mcp.NewClient(&mcp.Implementation{Name: "assistant", Version: "v0"}, nil).Connect(ctx,
		&mcp.StreamableClientTransport{Endpoint: url + "/v1/mcp", HTTPClient: &http.Client{Transport: bearerTransport{token}},
			MaxRetries: -1}, nil)
}

// mcpCall calls a tool and decodes its structured answer.
func mcpCall[T any](t *testing.T, s *mcp.ClientSession, name string, args map[string]any) T {
	t.Helper()
	res, err := s.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	require.NoError(t, err)
	require.False(t, res.IsError, "%s: %+v", name, res.Content)
	raw, err := json.Marshal(res.StructuredContent)
	require.NoError(t, err)
	var v T
	require.NoError(t, json.Unmarshal(raw, &v), string(raw))
	return v
}

// An assistant with an agent key reads a meeting the whole pipeline made
// (speech, transcription, minutes, summary) through the served binary's
// /v1/mcp, with the SDK's own client: every tool, and every time it cites
// is one the minutes hold. Keys it must not use are refused.
func TestAnAssistantReadsARealMeetingOverMCP(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{summary: &summarizetest.Options{}})
	ctx := context.Background()
	mt, now := b.holdMeeting(t, map[string]string{"alice": "Alice Martin", "bob": "Bob Durand"}, holdOptions{})
	require.Equal(t, "ready", now.State, "pipeline: %+v", now.Pipeline)
	var doc minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+mt.id+"/minutes", nil, &doc))
	require.NotNil(t, doc.Summary, "summary error: %s", doc.SummaryError)
	require.GreaterOrEqual(t, len(doc.Turns), 4)

	var key apiKey
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/keys", map[string]any{"name": "assistant", "role": "agent"}, &key))
	s, err := mcpConnect(ctx, b.url, key.Key)
	require.NoError(t, err)
	defer s.Close()
	require.Equal(t, "greffier", s.InitializeResult().ServerInfo.Name)
	tools, err := s.ListTools(ctx, nil)
	require.NoError(t, err)
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	require.ElementsMatch(t, []string{"list_meetings", "search_transcripts", "read_minutes", "read_speaker_turns", "get_summary"}, names)

	type turn struct {
		Speaker, Name, Text string
		Start, End          float64
	}
	turns := make([]turn, len(doc.Turns))
	for i, tu := range doc.Turns {
		turns[i] = turn{Speaker: tu.Speaker, Name: tu.Name, Text: tu.Text, Start: float64(tu.Start.MS()) / 1000, End: float64(tu.End.MS()) / 1000}
	}

	list := mcpCall[struct {
		Meetings []struct {
			ID      string `json:"meeting_id"`
			State   string
			Minutes string
		}
	}](t, s, "list_meetings", nil)
	require.Len(t, list.Meetings, 1)
	require.Equal(t, mt.id, list.Meetings[0].ID)
	require.Equal(t, "greffier://meetings/"+mt.id+"/minutes", list.Meetings[0].Minutes)

	// A hit names the meeting, the speaker and a stretch inside the turn
	// of the minutes that holds its words.
	found := mcpCall[struct {
		Hits []struct {
			MeetingID              string `json:"meeting_id"`
			Speaker, Text, Snippet string
			Start, End             float64
		}
	}](t, s, "search_transcripts", map[string]any{"query": "FOXTROT golf"})
	require.Len(t, found.Hits, 1)
	h := found.Hits[0]
	require.Equal(t, mt.id, h.MeetingID)
	require.Equal(t, "bob", h.Speaker)
	require.Contains(t, h.Snippet, "«foxtrot» «golf»")
	held := false
	for _, tu := range turns {
		// The hit is the stretch of speech the turn was made from: within
		// half a second of the turn's edges (the segment's padding).
		held = held || (tu.Speaker == h.Speaker && strings.Contains(tu.Text, h.Text) && h.Start >= tu.Start-0.5 && h.End <= tu.End+0.5)
	}
	require.True(t, held, "hit %+v is in no turn of %+v", h, turns)

	type minutesAnswer struct {
		MeetingID string `json:"meeting_id"`
		Version   int
		Complete  bool
		Turns     []turn
	}
	whole := mcpCall[minutesAnswer](t, s, "read_minutes", map[string]any{"meeting_id": mt.id})
	require.Equal(t, mt.id, whole.MeetingID)
	require.Equal(t, doc.Version, whole.Version)
	require.Equal(t, turns, whole.Turns, "read_minutes is the minutes, turn for turn")
	part := mcpCall[minutesAnswer](t, s, "read_minutes", map[string]any{"meeting_id": mt.id, "from": turns[1].Start, "to": turns[1].End})
	require.Contains(t, part.Turns, turns[1])
	require.Less(t, len(part.Turns), len(turns))
	var bobs []turn
	for _, tu := range turns {
		if tu.Speaker == "bob" {
			bobs = append(bobs, tu)
		}
	}
	require.Equal(t, bobs, mcpCall[minutesAnswer](t, s, "read_speaker_turns", map[string]any{"meeting_id": mt.id, "speaker": "bob"}).Turns)

	// Every citation of the summary quotes a turn of the minutes, at its
	// times.
	type point struct {
		Text      string
		Citations []struct {
			MeetingID  string `json:"meeting_id"`
			Speaker    string
			Name       string
			Start, End float64
			Quote      string
		}
	}
	sum := mcpCall[struct {
		Available   bool
		Abstract    point
		Topics      []point
		Decisions   []point
		ActionItems []point `json:"action_items"`
	}](t, s, "get_summary", map[string]any{"meeting_id": mt.id})
	require.True(t, sum.Available)
	require.Equal(t, doc.Summary.Abstract.Text, sum.Abstract.Text)
	points := append([]point{sum.Abstract}, sum.Topics...)
	points = append(points, sum.Decisions...)
	points = append(points, sum.ActionItems...)
	cited := 0
	for _, p := range points {
		for _, c := range p.Citations {
			require.Equal(t, mt.id, c.MeetingID)
			require.Contains(t, turns, turn{Speaker: c.Speaker, Name: c.Name, Text: c.Quote, Start: c.Start, End: c.End}, p.Text)
			cited++
		}
	}
	require.Positive(t, cited)

	// The minutes as a resource: the Markdown rendering.
	res, err := s.ListResources(ctx, nil)
	require.NoError(t, err)
	require.Len(t, res.Resources, 1)
	read, err := s.ReadResource(ctx, &mcp.ReadResourceParams{URI: res.Resources[0].URI})
	require.NoError(t, err)
	var md string
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+mt.id+"/minutes.md", nil, &md))
	require.Equal(t, md, read.Contents[0].Text)

	// Refused before any tool runs: no key, a wrong one, a participant's
	// join token, a revoked key.
	var created meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{"title": "Autre",
		"participants": []map[string]any{{"identity": "carol"}}}, &created))
	require.Equal(t, http.StatusNoContent, b.call(t, "DELETE", "/v1/keys/"+key.ID, nil, nil))
	for name, token := range map[string]string{"no key": "", "a wrong key": "wrong", "a join token": created.Join[0].Token,
		"a revoked key": key.Key} {
		_, err := mcpConnect(ctx, b.url, token)
		require.Error(t, err, name)
		require.Contains(t, err.Error(), "Unauthorized", name)
	}
}
