package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/minutes"
	"github.com/greffier/greffier/summarize"
)

// The MCP server (Model Context Protocol, streamable HTTP) lets an
// assistant list meetings, search what was said, read minutes and
// summaries. It is served at /v1/mcp behind the API's authentication, and
// is stateless: every request stands alone, so any node answers and no
// session is kept.
//
// Every answer is bounded (mcpMaxTurns turns, mcpMaxChars characters of
// speech, mcpMaxHits hits, mcpMaxMeetings meetings) and says when it was
// cut and where to continue; every statement carries the meeting id and
// its start and end on the meeting clock, in seconds, so an assistant can
// quote and cite exactly.
const (
	mcpMaxTurns    = 200
	mcpMaxChars    = 40_000
	mcpMaxHits     = 50
	mcpMaxMeetings = 100
	// mcpResourceScheme names a meeting's minutes as a resource:
	// greffier://meetings/{id}/minutes (Markdown).
	mcpResourceScheme = "greffier://meetings/"
)

// mcpHandler builds the MCP endpoint over the API's store. The server is
// stateless: the SDK connects each request's session with the request's
// context, so the principal the API's guard put there reaches every tool
// (mcpCaller), and each tool sees what the key may see: a host key only
// its own meetings. A call without a principal is refused, never served
// as anyone.
func (a *API) mcpHandler() http.Handler {
	srv := mcp.NewServer(&mcp.Implementation{Name: "greffier", Version: "v1"}, &mcp.ServerOptions{
		Instructions: "Greffier keeps the minutes of recorded meetings. Search with search_transcripts, " +
			"then read around a hit with read_minutes (from/to in seconds on the meeting clock). " +
			"Cite meeting_id and start/end seconds for every quote.",
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "list_meetings", Description: "List meetings, newest first, with their state " +
		"and whether minutes exist."}, mcpBind(a, mcpTools.listMeetings))
	mcp.AddTool(srv, &mcp.Tool{Name: "search_transcripts", Description: "Full-text search of everything said, " +
		"most relevant first. Words are all required; \"quoted phrase\"; prefix*; case, accents and French or " +
		"English word endings do not matter."}, mcpBind(a, mcpTools.search))
	mcp.AddTool(srv, &mcp.Tool{Name: "read_minutes", Description: "Read a meeting's minutes (speaker turns with " +
		"times), whole or the stretch from/to (seconds on the meeting clock)."}, mcpBind(a, mcpTools.readMinutes))
	mcp.AddTool(srv, &mcp.Tool{Name: "read_speaker_turns", Description: "Read what one speaker said in a meeting, " +
		"turn by turn."}, mcpBind(a, mcpTools.speakerTurns))
	mcp.AddTool(srv, &mcp.Tool{Name: "get_summary", Description: "A meeting's summary (abstract, topics, decisions, " +
		"action items), each point citing the turns it came from."}, mcpBind(a, mcpTools.summary))
	srv.AddResourceTemplate(&mcp.ResourceTemplate{Name: "minutes", MIMEType: "text/markdown",
		URITemplate: mcpResourceScheme + "{id}/minutes", Description: "A meeting's minutes, as Markdown."},
		func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			t, err := a.mcpCaller(ctx)
			if err != nil {
				return nil, err
			}
			return t.readResource(ctx, req)
		})
	// resources/list names the minutes of the latest meetings: they are
	// rows, not resources registered one by one.
	srv.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "resources/list" {
				t, err := a.mcpCaller(ctx)
				if err != nil {
					return nil, err
				}
				return t.listResources(ctx)
			}
			return next(ctx, method, req)
		}
	})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{
		Stateless: true, JSONResponse: true,
		// The SDK refuses a loopback connection whose Host is not loopback
		// (DNS rebinding); a bearer token, which a rebinding page does not
		// have, is required here, and a reverse proxy on the same host
		// would be refused.
		DisableLocalhostProtection: true,
		MaxRequestBodyBytes:        64 << 10,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		jw := &mcpJSONErrors{ResponseWriter: w}
		h.ServeHTTP(jw, r)
		jw.finish()
	})
}

// mcpJSONErrors turns the SDK's plain-text transport errors (a wrong
// Accept or Content-Type, a malformed or oversized body) into the API's
// JSON error; JSON-RPC answers and errors pass through untouched.
type mcpJSONErrors struct {
	http.ResponseWriter
	status int // of a plain-text error held back; 0 when passing through
	msg    strings.Builder
}

func (e *mcpJSONErrors) WriteHeader(status int) {
	if status >= 400 && strings.HasPrefix(e.Header().Get("Content-Type"), "text/plain") {
		e.status = status
		return
	}
	e.ResponseWriter.WriteHeader(status)
}

func (e *mcpJSONErrors) Write(b []byte) (int, error) {
	if e.status != 0 {
		if e.msg.Len() < 1000 {
			e.msg.Write(b)
		}
		return len(b), nil
	}
	return e.ResponseWriter.Write(b)
}

func (e *mcpJSONErrors) Unwrap() http.ResponseWriter { return e.ResponseWriter }

func (e *mcpJSONErrors) finish() {
	if e.status == 0 {
		return
	}
	code := map[int]string{http.StatusRequestEntityTooLarge: "too_large",
		http.StatusUnsupportedMediaType: "unsupported_media_type", http.StatusMethodNotAllowed: "method_not_allowed",
		http.StatusNotFound: "not_found", http.StatusInternalServerError: "internal"}[e.status]
	if code == "" {
		code = "bad_mcp_request"
	}
	writeError(e.ResponseWriter, e.status, code, "MCP: "+strings.TrimSpace(e.msg.String()))
}

// mcpTools answers one MCP request for one caller.
type mcpTools struct {
	a *API
	p Principal
}

// errNoCaller would mean the SDK stopped handing the request's context to
// tools: refuse rather than answer as no one in particular.
var errNoCaller = errors.New("MCP: the caller's key is unknown to this request")

// mcpCaller is the tools of the key that sent the request.
func (a *API) mcpCaller(ctx context.Context) (mcpTools, error) {
	p, ok := PrincipalFrom(ctx)
	if !ok {
		return mcpTools{}, errNoCaller
	}
	return mcpTools{a: a, p: p}, nil
}

// mcpBind makes a tool of one of mcpTools' methods, for the request's
// caller.
func mcpBind[In, Out any](a *API, f func(mcpTools, context.Context, *mcp.CallToolRequest, In) (*mcp.CallToolResult, Out, error)) mcp.ToolHandlerFor[In, Out] {
	return func(ctx context.Context, req *mcp.CallToolRequest, in In) (*mcp.CallToolResult, Out, error) {
		t, err := a.mcpCaller(ctx)
		if err != nil {
			var zero Out
			return nil, zero, err
		}
		return f(t, ctx, req, in)
	}
}

// meetings lists the latest meetings the caller sees, newest first.
func (t mcpTools) meetings(ctx context.Context, limit int) ([]store.Meeting, error) {
	f := store.MeetingFilter{Limit: limit}
	if !t.p.SeesAll() {
		f.CreatedBy = t.p.KeyID
	}
	return t.a.store.MeetingsPage(ctx, f)
}

type mcpMeeting struct {
	ID        string     `json:"meeting_id"`
	Title     string     `json:"title"`
	State     string     `json:"state"`
	Language  string     `json:"language,omitempty"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	// Minutes is the resource URI of its minutes, once they exist.
	Minutes string `json:"minutes,omitempty"`
}

type mcpListIn struct {
	Limit int `json:"limit,omitempty" jsonschema:"how many meetings, 1 to 100 (default 20)"`
}

type mcpListOut struct {
	Meetings []mcpMeeting `json:"meetings"`
}

func (t mcpTools) listMeetings(ctx context.Context, _ *mcp.CallToolRequest, in mcpListIn) (*mcp.CallToolResult, mcpListOut, error) {
	limit := in.Limit
	if limit <= 0 {
		limit = 20
	}
	limit = min(limit, mcpMaxMeetings)
	ms, err := t.meetings(ctx, limit)
	if err != nil {
		return nil, mcpListOut{}, err
	}
	out := mcpListOut{Meetings: []mcpMeeting{}}
	for _, m := range ms {
		mm := mcpMeeting{ID: m.ID, Title: m.Title, State: string(m.State), Language: m.Language}
		if !m.StartedAt.IsZero() {
			t := m.StartedAt.UTC()
			mm.StartedAt = &t
		}
		if !m.EndedAt.IsZero() {
			t := m.EndedAt.UTC()
			mm.EndedAt = &t
		}
		v, err := t.a.store.LatestMinutesVersion(ctx, m.ID)
		if err != nil {
			return nil, mcpListOut{}, err
		}
		if v > 0 {
			mm.Minutes = mcpResourceScheme + m.ID + "/minutes"
		}
		out.Meetings = append(out.Meetings, mm)
	}
	return nil, out, nil
}

type mcpSearchIn struct {
	Query    string `json:"query" jsonschema:"words to find; \"quoted phrase\"; prefix*"`
	Meeting  string `json:"meeting_id,omitempty" jsonschema:"only this meeting"`
	Speaker  string `json:"speaker,omitempty" jsonschema:"only this speaker (identity)"`
	Language string `json:"language,omitempty" jsonschema:"only speech indexed in fr, en or other"`
	From     string `json:"from,omitempty" jsonschema:"said at or after this date or RFC 3339 time"`
	To       string `json:"to,omitempty" jsonschema:"said before this time, or on or before this date"`
	Limit    int    `json:"limit,omitempty" jsonschema:"hits per page, 1 to 50 (default 10)"`
	Cursor   string `json:"cursor,omitempty" jsonschema:"next_cursor of the previous page"`
}

type mcpHit struct {
	MeetingID string  `json:"meeting_id"`
	Title     string  `json:"title"`
	Speaker   string  `json:"speaker"`
	Name      string  `json:"name"`
	Start     float64 `json:"start" jsonschema:"seconds on the meeting clock"`
	End       float64 `json:"end" jsonschema:"seconds on the meeting clock"`
	// Text is what was said; Snippet marks the matched words «like this».
	Text    string `json:"text"`
	Snippet string `json:"snippet"`
}

type mcpSearchOut struct {
	Hits       []mcpHit `json:"hits"`
	NextCursor string   `json:"next_cursor,omitempty"`
}

func (t mcpTools) search(ctx context.Context, _ *mcp.CallToolRequest, in mcpSearchIn) (*mcp.CallToolResult, mcpSearchOut, error) {
	// The REST search's parameters, read by its own code: the tool
	// refuses what GET /v1/search refuses (a bad language, date or
	// query length), with the same words.
	q, err := searchQuery(url.Values{"q": {in.Query}, "meeting": {in.Meeting}, "speaker": {in.Speaker},
		"language": {in.Language}, "from": {in.From}, "to": {in.To}, "cursor": {in.Cursor}})
	if err != nil {
		return nil, mcpSearchOut{}, err
	}
	q.Limit = 10
	if in.Limit > 0 {
		q.Limit = min(in.Limit, mcpMaxHits)
	}
	if !t.p.SeesAll() {
		q.CreatedBy = t.p.KeyID
	}
	page, err := t.a.store.Search(ctx, q)
	if err != nil {
		return nil, mcpSearchOut{}, err
	}
	out := mcpSearchOut{Hits: []mcpHit{}, NextCursor: page.Next}
	for _, h := range page.Hits {
		out.Hits = append(out.Hits, mcpHit{MeetingID: h.MeetingID, Title: h.Title, Speaker: h.Identity, Name: h.Name,
			Start: secs(minutes.Seconds(h.StartMS)), End: secs(minutes.Seconds(h.EndMS)), Text: clipText(h.Text, 2000),
			Snippet: markSnippet(h.Snippet, h.Highlights)})
	}
	return nil, out, nil
}

// markSnippet writes the highlights as «» around the matched words.
func markSnippet(s string, hl [][2]int) string {
	r := []rune(s)
	var b strings.Builder
	at := 0
	for _, h := range hl {
		b.WriteString(string(r[at:h[0]]))
		b.WriteString("«" + string(r[h[0]:h[1]]) + "»")
		at = h[1]
	}
	b.WriteString(string(r[at:]))
	return b.String()
}

func secs(s minutes.Seconds) float64 { return float64(s) / 1000 }

// clipText bounds one text to n characters.
func clipText(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

type mcpMinutesIn struct {
	Meeting string  `json:"meeting_id"`
	From    float64 `json:"from,omitempty" jsonschema:"seconds on the meeting clock (default 0)"`
	To      float64 `json:"to,omitempty" jsonschema:"seconds on the meeting clock (default: the end)"`
}

type mcpSpeakerIn struct {
	Meeting string  `json:"meeting_id"`
	Speaker string  `json:"speaker" jsonschema:"the speaker's identity (see the speakers of read_minutes)"`
	From    float64 `json:"from,omitempty" jsonschema:"seconds on the meeting clock (default 0)"`
	To      float64 `json:"to,omitempty" jsonschema:"seconds on the meeting clock (default: the end)"`
}

type mcpTurn struct {
	Speaker string  `json:"speaker"`
	Name    string  `json:"name"`
	Start   float64 `json:"start"`
	End     float64 `json:"end"`
	Text    string  `json:"text"`
}

type mcpGap struct {
	Speaker string  `json:"speaker"`
	Start   float64 `json:"start"`
	End     float64 `json:"end"`
	Reason  string  `json:"reason"`
}

type mcpMinutesOut struct {
	MeetingID string            `json:"meeting_id"`
	Title     string            `json:"title"`
	Version   int               `json:"version"`
	StartedAt time.Time         `json:"started_at"`
	Complete  bool              `json:"complete" jsonschema:"every recorded second was transcribed"`
	Speakers  []minutes.Speaker `json:"speakers"`
	Turns     []mcpTurn         `json:"turns"`
	Missing   []mcpGap          `json:"missing" jsonschema:"stretches of speech that could not be transcribed"`
	// NotRecorded is not missing: the host's recording or transcription
	// was off, or a participant declined to be recorded.
	NotRecorded []mcpGap `json:"not_recorded,omitempty" jsonschema:"stretches not recorded by choice (speaker empty: everyone): recording or transcription off, or the participant declined"`
	Truncated   bool     `json:"truncated" jsonschema:"the answer was cut; ask again from next_from"`
	NextFrom    float64  `json:"next_from,omitempty"`
}

func (t mcpTools) readMinutes(ctx context.Context, _ *mcp.CallToolRequest, in mcpMinutesIn) (*mcp.CallToolResult, mcpMinutesOut, error) {
	doc, err := t.latestMinutes(ctx, in.Meeting)
	if err != nil {
		return nil, mcpMinutesOut{}, err
	}
	return nil, boundMinutes(doc, in.From, in.To, ""), nil
}

func (t mcpTools) speakerTurns(ctx context.Context, _ *mcp.CallToolRequest, in mcpSpeakerIn) (*mcp.CallToolResult, mcpMinutesOut, error) {
	if in.Speaker == "" {
		return nil, mcpMinutesOut{}, errors.New("give speaker: an identity from the minutes' speakers")
	}
	doc, err := t.latestMinutes(ctx, in.Meeting)
	if err != nil {
		return nil, mcpMinutesOut{}, err
	}
	return nil, boundMinutes(doc, in.From, in.To, in.Speaker), nil
}

// boundMinutes keeps the turns of [from, to) (of one speaker, if given),
// up to mcpMaxTurns turns and mcpMaxChars characters.
func boundMinutes(doc minutes.Document, from, to float64, speaker string) mcpMinutesOut {
	part := doc.Between(minutes.Seconds(from*1000), minutes.Seconds(to*1000))
	out := mcpMinutesOut{MeetingID: doc.MeetingID, Title: doc.Title, Version: doc.Version, StartedAt: doc.StartedAt,
		Complete: doc.Complete, Speakers: part.Speakers, Turns: []mcpTurn{}, Missing: []mcpGap{}}
	chars := 0
	for _, t := range part.Turns {
		if speaker != "" && t.Speaker != speaker {
			continue
		}
		n := len([]rune(t.Text))
		if len(out.Turns) == mcpMaxTurns || (chars+n > mcpMaxChars && len(out.Turns) > 0) {
			out.Truncated, out.NextFrom = true, secs(t.Start)
			break
		}
		chars += n
		out.Turns = append(out.Turns, mcpTurn{Speaker: t.Speaker, Name: t.Name, Start: secs(t.Start), End: secs(t.End),
			Text: clipText(t.Text, mcpMaxChars)})
	}
	for _, g := range part.Missing {
		if speaker == "" || g.Speaker == speaker {
			out.Missing = append(out.Missing, mcpGap{Speaker: g.Speaker, Start: secs(g.Start), End: secs(g.End), Reason: g.Reason})
		}
	}
	for _, g := range part.NotRecorded {
		if speaker == "" || g.Speaker == "" || g.Speaker == speaker {
			out.NotRecorded = append(out.NotRecorded, mcpGap{Speaker: g.Speaker, Start: secs(g.Start), End: secs(g.End), Reason: g.Reason})
		}
	}
	if len(out.Missing) > mcpMaxTurns {
		out.Missing, out.Truncated = out.Missing[:mcpMaxTurns], true
	}
	return out
}

// summaryPoint is what every kind of summary point has.
type summaryPoint struct {
	text, owner, due string
	cites            []summarize.Citation
}

type mcpSummaryIn struct {
	Meeting string `json:"meeting_id"`
}

type mcpCitation struct {
	MeetingID string  `json:"meeting_id"`
	Speaker   string  `json:"speaker"`
	Name      string  `json:"name"`
	Start     float64 `json:"start"`
	End       float64 `json:"end"`
	// Quote is the cited turn's text, as in the minutes.
	Quote string `json:"quote"`
}

type mcpPoint struct {
	Text      string        `json:"text"`
	Owner     string        `json:"owner,omitempty"`
	Due       string        `json:"due,omitempty"`
	Citations []mcpCitation `json:"citations"`
}

type mcpSummaryOut struct {
	MeetingID   string     `json:"meeting_id"`
	Version     int        `json:"version"`
	Available   bool       `json:"available"`
	Why         string     `json:"why,omitempty" jsonschema:"why there is no summary"`
	Abstract    *mcpPoint  `json:"abstract,omitempty"`
	Topics      []mcpPoint `json:"topics"`
	Decisions   []mcpPoint `json:"decisions"`
	ActionItems []mcpPoint `json:"action_items"`
}

func (t mcpTools) summary(ctx context.Context, _ *mcp.CallToolRequest, in mcpSummaryIn) (*mcp.CallToolResult, mcpSummaryOut, error) {
	doc, err := t.latestMinutes(ctx, in.Meeting)
	if err != nil {
		return nil, mcpSummaryOut{}, err
	}
	out := mcpSummaryOut{MeetingID: doc.MeetingID, Version: doc.Version, Topics: []mcpPoint{}, Decisions: []mcpPoint{},
		ActionItems: []mcpPoint{}}
	if doc.Summary == nil {
		out.Why = doc.SummaryError
		if out.Why == "" {
			out.Why = "these minutes have no summary (no chat backend was configured when they were made)"
		}
		return nil, out, nil
	}
	// A citation names its turn by index and times; the quote is read
	// from the minutes' turn at those times, so it is what the minutes say.
	point := func(p summaryPoint) mcpPoint {
		mp := mcpPoint{Text: p.text, Owner: p.owner, Due: p.due, Citations: []mcpCitation{}}
		for _, c := range p.cites {
			mc := mcpCitation{MeetingID: doc.MeetingID, Speaker: c.Speaker, Start: secs(minutes.Seconds(c.Start)),
				End: secs(minutes.Seconds(c.End))}
			if c.Turn >= 0 && c.Turn < len(doc.Turns) {
				t := doc.Turns[c.Turn]
				mc.Name, mc.Quote = t.Name, clipText(t.Text, 1000)
			}
			mp.Citations = append(mp.Citations, mc)
		}
		return mp
	}
	s := doc.Summary
	out.Available = true
	abs := point(summaryPoint{text: s.Abstract.Text, cites: s.Abstract.Citations})
	out.Abstract = &abs
	for _, p := range s.Topics {
		out.Topics = append(out.Topics, point(summaryPoint{text: p.Text, cites: p.Citations}))
	}
	for _, p := range s.Decisions {
		out.Decisions = append(out.Decisions, point(summaryPoint{text: p.Text, cites: p.Citations}))
	}
	for _, p := range s.ActionItems {
		out.ActionItems = append(out.ActionItems, point(summaryPoint{text: p.Text, cites: p.Citations, owner: p.Owner, due: p.Due}))
	}
	return nil, out, nil
}

func (t mcpTools) readResource(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	uri := req.Params.URI
	id, ok := strings.CutPrefix(uri, mcpResourceScheme)
	if ok {
		id, ok = strings.CutSuffix(id, "/minutes")
	}
	if !ok || id == "" || strings.Contains(id, "/") {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	doc, err := t.latestMinutes(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := doc.WriteMarkdown(&b); err != nil {
		return nil, err
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, MIMEType: "text/markdown", Text: b.String()}}}, nil
}

func (t mcpTools) listResources(ctx context.Context) (*mcp.ListResourcesResult, error) {
	ms, err := t.meetings(ctx, mcpMaxMeetings)
	if err != nil {
		return nil, err
	}
	out := &mcp.ListResourcesResult{Resources: []*mcp.Resource{}}
	for _, m := range ms {
		v, err := t.a.store.LatestMinutesVersion(ctx, m.ID)
		if err != nil {
			return nil, err
		}
		if v == 0 {
			continue
		}
		out.Resources = append(out.Resources, &mcp.Resource{URI: mcpResourceScheme + m.ID + "/minutes",
			Name: "minutes of " + m.ID, Title: m.Title, MIMEType: "text/markdown"})
	}
	return out, nil
}

// latestMinutes reads a meeting's latest minutes with its speakers' names
// as they are now; a meeting the caller may not see is not found.
func (t mcpTools) latestMinutes(ctx context.Context, meetingID string) (minutes.Document, error) {
	if meetingID == "" {
		return minutes.Document{}, errors.New("give meeting_id (list_meetings names them)")
	}
	m, err := t.a.store.Meeting(ctx, meetingID)
	if err == nil && !t.p.sees(m) {
		err = fmt.Errorf("meeting %s: %w", meetingID, store.ErrNotFound)
	}
	if err != nil {
		return minutes.Document{}, err
	}
	v, err := t.a.store.LatestMinutes(ctx, m.ID)
	if errors.Is(err, store.ErrNotFound) {
		return minutes.Document{}, fmt.Errorf("meeting %s has no minutes yet (it is %s): %w", m.ID, m.State, err)
	}
	if err != nil {
		return minutes.Document{}, err
	}
	var doc minutes.Document
	if err := json.Unmarshal(v.Body, &doc); err != nil {
		return minutes.Document{}, fmt.Errorf("decode minutes v%d of %s: %w", v.Version, m.ID, err)
	}
	parts, err := t.a.store.Participants(ctx, m.ID)
	if err != nil {
		return minutes.Document{}, err
	}
	names := make(map[string]string, len(parts))
	for _, p := range parts {
		names[p.Identity] = p.DisplayName
	}
	doc.Rename(names)
	return doc, nil
}
