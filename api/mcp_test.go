package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/minutes"
	"github.com/greffier/greffier/summarize"
)

// bearer adds the API token to every request of the MCP client.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

func (b *bundle) mcpSession(t *testing.T, token string) (*mcp.ClientSession, error) {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "v0"}, nil)
	return client.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: b.srv.URL + "/v1/mcp",
		HTTPClient: &http.Client{Transport: bearer{token}}, MaxRetries: -1}, nil)
}

// callTool calls a tool and decodes its structured answer into T.
func callTool[T any](t *testing.T, s *mcp.ClientSession, name string, args map[string]any) T {
	t.Helper()
	res, err := s.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	require.NoError(t, err)
	require.False(t, res.IsError, "%s: %+v", name, res.Content)
	b, err := json.Marshal(res.StructuredContent)
	require.NoError(t, err)
	var v T
	require.NoError(t, json.Unmarshal(b, &v))
	return v
}

type mcpTurnAnswer struct {
	Speaker, Name, Text string
	Start, End          float64
}

type mcpCitationAnswer struct {
	MeetingID     string `json:"meeting_id"`
	Speaker, Name string
	Start, End    float64
	Quote         string
}

type mcpPointAnswer struct {
	Text      string
	Owner     string
	Citations []mcpCitationAnswer
}

// mcpMeeting stores what was said in b.m as speech segments (what search
// finds) and as minutes with a summary (what the other tools read).
func mcpMeeting(t *testing.T, b *bundle) minutes.Document {
	t.Helper()
	ctx := context.Background()
	said := []struct {
		who, name  string
		start, end int64
		text       string
	}{
		{"alice", "Alice", 1000, 4000, "Le budget de la culture augmente."},
		{"bob", "Bob", 5000, 9000, "Le budget des sports baisse."},
		{"alice", "Alice", 10_000, 14_000, "Je propose de voter le budget vendredi."},
	}
	doc := minutes.Document{Schema: minutes.Schema, MeetingID: b.m.ID, Title: b.m.Title, Version: 1, Language: "fr",
		Speakers: []minutes.Speaker{{ID: "alice", Name: "Alice"}, {ID: "bob", Name: "Bob"}},
		Missing:  []minutes.Gap{}, Complete: true}
	for _, s := range said {
		_, err := b.store.Join(ctx, b.m.ID, s.who, s.name)
		require.NoError(t, err)
		b.storeSpeech(t, s.who, s.start, s.end, s.text)
		doc.Turns = append(doc.Turns, minutes.Turn{Speaker: s.who, Name: s.name, Start: minutes.Seconds(s.start),
			End: minutes.Seconds(s.end), Text: s.text})
	}
	cite := func(i int) summarize.Citation {
		tr := doc.Turns[i]
		return summarize.Citation{Turn: i, Start: summarize.Seconds(tr.Start), End: summarize.Seconds(tr.End), Speaker: tr.Speaker}
	}
	doc.SetSummary(&summarize.Summary{Language: "fr",
		Abstract:    summarize.Point{Text: "Le budget est débattu.", Citations: []summarize.Citation{cite(0), cite(1)}},
		Topics:      []summarize.Point{{Text: "Culture et sports", Citations: []summarize.Citation{cite(0), cite(1)}}},
		Decisions:   []summarize.Point{{Text: "Vote vendredi", Citations: []summarize.Citation{cite(2)}}},
		ActionItems: []summarize.ActionItem{{Point: summarize.Point{Text: "Préparer le vote", Citations: []summarize.Citation{cite(2)}}, Owner: "Alice", OwnerSpeaker: "alice", Due: "vendredi"}},
		Model:       "test", Parts: 1}, nil)
	body, err := json.Marshal(doc)
	require.NoError(t, err)
	_, _, err = b.store.SaveMinutes(ctx, b.m.ID, "d1", body)
	require.NoError(t, err)
	return doc
}

func TestMCPServesSearchMinutesAndSummariesWithCitations(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		doc := mcpMeeting(t, b)

		other, err := b.store.CreateMeeting(ctx, "Sans compte rendu", "en")
		require.NoError(t, err)

		s, err := b.mcpSession(t, apiToken)
		require.NoError(t, err)
		defer s.Close()
		require.Equal(t, "greffier", s.InitializeResult().ServerInfo.Name)

		tools, err := s.ListTools(ctx, nil)
		require.NoError(t, err)
		names := []string{}
		for _, tool := range tools.Tools {
			names = append(names, tool.Name)
		}
		require.ElementsMatch(t, []string{"list_meetings", "search_transcripts", "read_minutes", "read_speaker_turns", "get_summary"}, names)

		list := callTool[struct {
			Meetings []struct {
				ID      string `json:"meeting_id"`
				Title   string
				Minutes string
			}
		}](t, s, "list_meetings", nil)
		require.Len(t, list.Meetings, 2)
		byID := map[string]string{}
		for _, m := range list.Meetings {
			byID[m.ID] = m.Minutes
		}
		require.Equal(t, map[string]string{b.m.ID: "greffier://meetings/" + b.m.ID + "/minutes", other.ID: ""}, byID,
			"a meeting without minutes names no resource")

		// A hit cites meeting, speaker and times that are a turn of the
		// minutes.
		found := callTool[struct {
			Hits []struct {
				MeetingID                    string `json:"meeting_id"`
				Speaker, Name, Text, Snippet string
				Start, End                   float64
			}
			NextCursor string `json:"next_cursor"`
		}](t, s, "search_transcripts", map[string]any{"query": "BUDGETS", "speaker": "bob"})
		require.Len(t, found.Hits, 1)
		h := found.Hits[0]
		require.Equal(t, b.m.ID, h.MeetingID)
		require.Equal(t, "Le «budget» des sports baisse.", h.Snippet)
		require.Equal(t, mcpTurnAnswer{Speaker: "bob", Name: "Bob", Text: doc.Turns[1].Text, Start: 5, End: 9},
			mcpTurnAnswer{Speaker: h.Speaker, Name: h.Name, Text: h.Text, Start: h.Start, End: h.End})
		paged := callTool[struct {
			Hits       []struct{ Start float64 }
			NextCursor string `json:"next_cursor"`
		}](t, s, "search_transcripts", map[string]any{"query": "budget", "limit": 2})
		require.Len(t, paged.Hits, 2)
		require.NotEmpty(t, paged.NextCursor)
		rest := callTool[struct{ Hits []struct{ Start float64 } }](t, s, "search_transcripts",
			map[string]any{"query": "budget", "limit": 2, "cursor": paged.NextCursor})
		require.Len(t, rest.Hits, 1)

		type minutesAnswer struct {
			MeetingID string `json:"meeting_id"`
			Complete  bool
			Turns     []mcpTurnAnswer
			Truncated bool
		}
		whole := callTool[minutesAnswer](t, s, "read_minutes", map[string]any{"meeting_id": b.m.ID})
		require.Equal(t, b.m.ID, whole.MeetingID)
		require.True(t, whole.Complete)
		require.False(t, whole.Truncated)
		require.Len(t, whole.Turns, 3)
		for i, tr := range whole.Turns {
			require.Equal(t, turnAnswer(doc.Turns[i]), tr)
		}
		part := callTool[minutesAnswer](t, s, "read_minutes", map[string]any{"meeting_id": b.m.ID, "from": 4.5, "to": 9.5})
		require.Equal(t, []mcpTurnAnswer{turnAnswer(doc.Turns[1])}, part.Turns)
		alice := callTool[minutesAnswer](t, s, "read_speaker_turns", map[string]any{"meeting_id": b.m.ID, "speaker": "alice"})
		require.Equal(t, []mcpTurnAnswer{turnAnswer(doc.Turns[0]), turnAnswer(doc.Turns[2])}, alice.Turns)

		// Every citation of the summary is a turn of the minutes, quoted.
		sum := callTool[struct {
			Available   bool
			Abstract    mcpPointAnswer
			Topics      []mcpPointAnswer
			Decisions   []mcpPointAnswer
			ActionItems []mcpPointAnswer `json:"action_items"`
		}](t, s, "get_summary", map[string]any{"meeting_id": b.m.ID})
		require.True(t, sum.Available)
		require.Equal(t, "Le budget est débattu.", sum.Abstract.Text)
		points := append([]mcpPointAnswer{sum.Abstract}, sum.Topics...)
		points = append(points, sum.Decisions...)
		points = append(points, sum.ActionItems...)
		require.Len(t, points, 4)
		require.Equal(t, "Alice", sum.ActionItems[0].Owner)
		for _, p := range points {
			require.NotEmpty(t, p.Citations, p.Text)
			for _, c := range p.Citations {
				require.Equal(t, b.m.ID, c.MeetingID)
				require.Contains(t, whole.Turns, mcpTurnAnswer{Speaker: c.Speaker, Name: c.Name, Start: c.Start, End: c.End, Text: c.Quote})
			}
		}
		require.Equal(t, 10.0, sum.Decisions[0].Citations[0].Start)

		// The minutes as resources.
		res, err := s.ListResources(ctx, nil)
		require.NoError(t, err)
		require.Len(t, res.Resources, 1)
		require.Equal(t, "greffier://meetings/"+b.m.ID+"/minutes", res.Resources[0].URI)
		read, err := s.ReadResource(ctx, &mcp.ReadResourceParams{URI: res.Resources[0].URI})
		require.NoError(t, err)
		require.Len(t, read.Contents, 1)
		require.Contains(t, read.Contents[0].Text, "Le budget des sports baisse.")
		_, err = s.ReadResource(ctx, &mcp.ReadResourceParams{URI: "greffier://meetings/mtg_none/minutes"})
		require.Error(t, err)

		// Tool errors are answers the assistant can read.
		bad, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "read_minutes", Arguments: map[string]any{"meeting_id": "mtg_none"}})
		require.NoError(t, err)
		require.True(t, bad.IsError)
		// The search tool refuses what GET /v1/search refuses, saying why.
		for _, c := range []struct {
			args map[string]any
			why  string
		}{
			{map[string]any{"query": "x*"}, "prefix"},
			{map[string]any{"query": "  "}, "words to find"},
			{map[string]any{"query": strings.Repeat("budget ", 80)}, "at most 500"},
			{map[string]any{"query": "budget", "language": "de"}, "language must be fr, en or other"},
			{map[string]any{"query": "budget", "from": "yesterday"}, "from"},
			{map[string]any{"query": "budget", "cursor": "garbage"}, "cursor"},
		} {
			bad, err = s.CallTool(ctx, &mcp.CallToolParams{Name: "search_transcripts", Arguments: c.args})
			require.NoError(t, err)
			require.True(t, bad.IsError, "%v", c.args)
			require.Contains(t, bad.Content[0].(*mcp.TextContent).Text, c.why, "%v", c.args)
		}
	})
}

func turnAnswer(t minutes.Turn) mcpTurnAnswer {
	return mcpTurnAnswer{Speaker: t.Speaker, Name: t.Name, Text: t.Text, Start: float64(t.Start) / 1000, End: float64(t.End) / 1000}
}

func TestMCPAnswersAreBounded(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		doc := minutes.Document{Schema: minutes.Schema, MeetingID: b.m.ID, Title: b.m.Title, Version: 1,
			Speakers: []minutes.Speaker{{ID: "alice", Name: "Alice"}}, Missing: []minutes.Gap{}, Complete: true}
		for i := range 250 {
			doc.Turns = append(doc.Turns, minutes.Turn{Speaker: "alice", Name: "Alice", Start: minutes.Seconds(i * 2000),
				End: minutes.Seconds(i*2000 + 1500), Text: fmt.Sprintf("Point numéro %d.", i)})
		}
		body, err := json.Marshal(doc)
		require.NoError(t, err)
		_, _, err = b.store.SaveMinutes(ctx, b.m.ID, "d1", body)
		require.NoError(t, err)
		s, err := b.mcpSession(t, apiToken)
		require.NoError(t, err)
		defer s.Close()
		type answer struct {
			Turns     []mcpTurnAnswer
			Truncated bool
			NextFrom  float64 `json:"next_from"`
		}
		first := callTool[answer](t, s, "read_minutes", map[string]any{"meeting_id": b.m.ID})
		require.Len(t, first.Turns, 200)
		require.True(t, first.Truncated)
		require.Equal(t, 400.0, first.NextFrom)
		next := callTool[answer](t, s, "read_minutes", map[string]any{"meeting_id": b.m.ID, "from": first.NextFrom})
		require.Len(t, next.Turns, 50)
		require.False(t, next.Truncated)
		require.Equal(t, "Point numéro 200.", next.Turns[0].Text)
		sum := callTool[struct {
			Available bool
			Why       string
		}](t, s, "get_summary", map[string]any{"meeting_id": b.m.ID})
		require.False(t, sum.Available)
		require.NotEmpty(t, sum.Why)
	})
}

// mcpPost sends one raw JSON-RPC request to /v1/mcp with key.
func (b *bundle) mcpPost(t *testing.T, key, contentType, accept, body string) answer {
	t.Helper()
	h := []string{"Content-Type", contentType, "Accept", accept}
	if key != "" {
		h = append(h, "Authorization", "Bearer "+key)
	}
	a := b.do(t, "POST", "/v1/mcp", body, h...)
	require.NoError(t, a.err)
	return a
}

// TestMCPToolsSeeWhatTheirKeySees: a host's key lists, searches and reads
// only the meetings it created; an agent's and an archivist's (both hold
// minutes:read) see every meeting; a revoked key is refused.
func TestMCPToolsSeeWhatTheirKeySees(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		mcpMeeting(t, b) // the bootstrap admin's meeting
		_, host := b.newKey(t, "host", "host", false)
		_, hostAll := b.newKey(t, "host all", "host", true)
		_, agent := b.newKey(t, "agent", "agent", false)
		_, archivist := b.newKey(t, "archivist", "archivist", false)
		revokedID, revoked := b.newKey(t, "revoked agent", "agent", false)
		require.Equal(t, http.StatusNoContent, b.call(t, "DELETE", "/v1/keys/"+revokedID, "").status)

		created := decode[meetingAnswer](t, b.as(t, host, "POST", "/v1/meetings", `{"title":"Conseil du host","language":"fr"}`),
			http.StatusCreated)
		hm, err := b.store.Meeting(ctx, created.ID)
		require.NoError(t, err)
		hb := *b
		hb.m = hm
		mcpMeeting(t, &hb) // the host's meeting says the same words

		type searchAnswer struct {
			Hits []struct {
				MeetingID string `json:"meeting_id"`
			}
			NextCursor string `json:"next_cursor"`
		}
		// meetingsOf lists the meetings a key's tools see: listed, found by
		// search (page by page), and named as resources.
		meetingsOf := func(key string) (listed, found, resources []string) {
			s, err := b.mcpSession(t, key)
			require.NoError(t, err)
			defer s.Close()
			list := callTool[struct {
				Meetings []struct {
					ID string `json:"meeting_id"`
				}
			}](t, s, "list_meetings", nil)
			for _, m := range list.Meetings {
				listed = append(listed, m.ID)
			}
			cursor := ""
			for pages := 0; ; pages++ {
				require.Less(t, pages, 10)
				args := map[string]any{"query": "budget", "limit": 2}
				if cursor != "" {
					args["cursor"] = cursor
				}
				p := callTool[searchAnswer](t, s, "search_transcripts", args)
				if p.NextCursor != "" {
					require.Len(t, p.Hits, 2, "the store filters by key: pages are full")
				}
				for _, h := range p.Hits {
					found = append(found, h.MeetingID)
				}
				if cursor = p.NextCursor; cursor == "" {
					break
				}
			}
			res, err := s.ListResources(ctx, nil)
			require.NoError(t, err)
			for _, r := range res.Resources {
				resources = append(resources, r.URI)
			}
			return listed, found, resources
		}
		uri := func(id string) string { return "greffier://meetings/" + id + "/minutes" }
		both := []string{b.m.ID, hm.ID}

		listed, found, resources := meetingsOf(host)
		require.Equal(t, []string{hm.ID}, listed)
		require.Equal(t, []string{hm.ID, hm.ID, hm.ID}, found)
		require.Equal(t, []string{uri(hm.ID)}, resources)
		for _, key := range []string{agent, archivist, hostAll, apiToken} {
			listed, found, resources = meetingsOf(key)
			require.ElementsMatch(t, both, listed)
			require.Len(t, found, 6)
			require.Subset(t, found, both)
			require.ElementsMatch(t, []string{uri(b.m.ID), uri(hm.ID)}, resources)
		}

		// Another's meeting does not exist for the host, whichever tool asks.
		s, err := b.mcpSession(t, host)
		require.NoError(t, err)
		defer s.Close()
		for _, c := range []struct {
			tool string
			args map[string]any
		}{
			{"read_minutes", map[string]any{"meeting_id": b.m.ID}},
			{"read_speaker_turns", map[string]any{"meeting_id": b.m.ID, "speaker": "alice"}},
			{"get_summary", map[string]any{"meeting_id": b.m.ID}},
		} {
			res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: c.tool, Arguments: c.args})
			require.NoError(t, err)
			require.True(t, res.IsError, c.tool)
			require.Contains(t, res.Content[0].(*mcp.TextContent).Text, "not found", c.tool)
		}
		_, err = s.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri(b.m.ID)})
		require.Error(t, err)
		own := callTool[struct{ Turns []mcpTurnAnswer }](t, s, "read_minutes", map[string]any{"meeting_id": hm.ID})
		require.Len(t, own.Turns, 3)
		none := callTool[searchAnswer](t, s, "search_transcripts", map[string]any{"query": "budget", "meeting_id": b.m.ID})
		require.Empty(t, none.Hits)

		// A revoked key is refused before any tool runs, in the API's JSON.
		_, err = b.mcpSession(t, revoked)
		require.Error(t, err)
		call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_meetings","arguments":{}}}`
		a := b.mcpPost(t, revoked, "application/json", "application/json, text/event-stream", call)
		require.Equal(t, http.StatusUnauthorized, a.status)
		require.Equal(t, "unauthorized", errorCode(t, a))

		// Transport errors are the API's JSON errors too.
		a = b.mcpPost(t, agent, "application/json", "application/json", call)
		require.Equal(t, http.StatusBadRequest, a.status, "%s", a.body)
		require.Equal(t, "bad_mcp_request", errorCode(t, a))
		a = b.mcpPost(t, agent, "text/plain", "application/json, text/event-stream", call)
		require.Equal(t, http.StatusUnsupportedMediaType, a.status, "%s", a.body)
		require.Equal(t, "unsupported_media_type", errorCode(t, a))
		a = b.mcpPost(t, agent, "application/json", "application/json, text/event-stream", call)
		require.Equal(t, http.StatusOK, a.status, "%s", a.body)
		require.Contains(t, a.header.Get("Content-Type"), "application/json")

		// Reads through MCP are not audited, like searches.
		log := decode[auditAnswer](t, b.call(t, "GET", "/v1/audit?limit=1000", ""), http.StatusOK)
		for _, e := range log.Entries {
			require.NotEqual(t, "/v1/mcp", e.Route)
		}
		require.NotEmpty(t, log.Entries, "the keys' creation is audited")
	})
}

func TestMCPRefusesCallersWithoutTheAPIToken(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		_, err := b.mcpSession(t, "wrong")
		require.Error(t, err)
		for _, auth := range []string{"", "Bearer wrong"} {
			req, err := http.NewRequest("POST", b.srv.URL+"/v1/mcp", strings.NewReader(
				`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_meetings","arguments":{}}}`))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		}
		// Stateless: no event stream to open, said in the API's errors.
		a := b.call(t, "GET", "/v1/mcp", "")
		require.Equal(t, http.StatusMethodNotAllowed, a.status)
		require.Equal(t, "POST", a.header.Get("Allow"))
		require.Equal(t, "method_not_allowed", errorCode(t, a))
	})
}
