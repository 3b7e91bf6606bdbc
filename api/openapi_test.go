package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/api"
	"github.com/greffier/greffier/internal/store"
)

// The parts of the OpenAPI document the tests read.
type oaDoc struct {
	OpenAPI    string                                    `json:"openapi"`
	Paths      map[string]map[string]oaOp                `json:"paths"`
	Components struct{ Responses map[string]oaResponse } `json:"components"`
}

type oaOp struct {
	Permission string `json:"x-permission"`
	// ServedBy names the package that serves an operation the API does
	// not (the SFU's WHIP, WHEP and ICE servers): cmd/greffier's tests
	// hold those to the whole server.
	ServedBy   string `json:"x-served-by"`
	Parameters []struct {
		Name string `json:"name"`
		In   string `json:"in"`
	} `json:"parameters"`
	RequestBody *struct {
		Content map[string]oaMedia `json:"content"`
	} `json:"requestBody"`
	Responses map[string]oaResponse `json:"responses"`
}

type oaResponse struct {
	Ref     string             `json:"$ref"`
	Content map[string]oaMedia `json:"content"`
}

type oaMedia struct {
	Schema  json.RawMessage `json:"schema"`
	Example json.RawMessage `json:"example"`
}

// openAPI reads the served document and compiles its schemas.
type openAPI struct {
	doc      oaDoc
	compiler *jsonschema.Compiler
	compiled map[string]*jsonschema.Schema
	// checked holds the route patterns whose real answers were held to
	// the document, so that a test can ask for every route.
	checked map[string]bool
}

const docURL = "https://greffier.invalid/openapi.json"

func loadOpenAPI(t *testing.T) *openAPI {
	t.Helper()
	var d oaDoc
	require.NoError(t, json.Unmarshal(api.OpenAPI, &d))
	require.True(t, strings.HasPrefix(d.OpenAPI, "3.1."), "OpenAPI 3.1, whose schemas are JSON Schema 2020-12")
	raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(api.OpenAPI))
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	require.NoError(t, c.AddResource(docURL, raw))
	return &openAPI{doc: d, compiler: c, compiled: map[string]*jsonschema.Schema{}, checked: map[string]bool{}}
}

// pointer escapes JSON pointer tokens into a URL fragment.
func pointer(tokens ...string) string {
	var sb strings.Builder
	for _, tok := range tokens {
		tok = strings.NewReplacer("~", "~0", "/", "~1").Replace(tok)
		sb.WriteString("/" + url.PathEscape(tok))
	}
	return sb.String()
}

// schema compiles the schema at a JSON pointer into the document.
func (o *openAPI) schema(t *testing.T, tokens ...string) *jsonschema.Schema {
	t.Helper()
	loc := docURL + "#" + pointer(tokens...)
	if s, ok := o.compiled[loc]; ok {
		return s
	}
	s, err := o.compiler.Compile(loc)
	require.NoError(t, err, "compile %s", loc)
	o.compiled[loc] = s
	return s
}

// response resolves an operation's documented answer for status.
func (o *openAPI) response(path, method string, status int) (resp oaResponse, tokens []string) {
	op := o.doc.Paths[path][strings.ToLower(method)]
	code := fmt.Sprint(status)
	r, ok := op.Responses[code]
	if !ok {
		code = "default"
		r = op.Responses[code]
	}
	tokens = []string{"paths", path, strings.ToLower(method), "responses", code}
	if name, ok := strings.CutPrefix(r.Ref, "#/components/responses/"); ok {
		return o.doc.Components.Responses[name], []string{"components", "responses", name}
	}
	return r, tokens
}

func validate(t *testing.T, s *jsonschema.Schema, body []byte, what string) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	require.NoError(t, err, "%s: %s", what, body)
	require.NoError(t, s.Validate(v), "%s does not fit its documented schema: %s", what, body)
}

func TestTheOpenAPIDocumentListsExactlyTheRoutesServed(t *testing.T) {
	b := setupOn(t, store.SQLite, false)
	o := loadOpenAPI(t)
	var documented, elsewhere []string
	for path, ops := range o.doc.Paths {
		for method, op := range ops {
			if op.ServedBy != "" {
				elsewhere = append(elsewhere, strings.ToUpper(method)+" "+path)
				continue
			}
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	require.NotEmpty(t, elsewhere, "the media routes are documented too")
	var served []string
	for _, r := range b.api.Routes() {
		served = append(served, r.Pattern)
		method, path, _ := strings.Cut(r.Pattern, " ")
		op, ok := o.doc.Paths[path][strings.ToLower(method)]
		if !ok {
			continue // reported below, with every other difference
		}
		want := r.Permission
		if want == api.PermPublic {
			want = "none"
		}
		require.Equal(t, want, op.Permission, "%s: x-permission is the permission the route asks for", r.Pattern)
		require.Contains(t, op.Responses, "default", "%s documents its errors", r.Pattern)
		var declared []string
		for _, p := range op.Parameters {
			if p.In == "path" {
				declared = append(declared, p.Name)
			}
		}
		var wildcards []string
		for _, m := range regexp.MustCompile(`\{(\w+)\}`).FindAllStringSubmatch(path, -1) {
			wildcards = append(wildcards, m[1])
		}
		require.ElementsMatch(t, wildcards, declared, "%s: its path parameters", r.Pattern)
	}
	require.ElementsMatch(t, served, documented,
		"every route served is in api/openapi.json and every documented operation is served: document a new route there")

	// The error answer is documented once, and is what every path answers.
	validate(t, o.schema(t, "components", "schemas", "Error"), b.get(t, "/v1/nowhere").body, "an unknown path's answer")
}

func TestTheOpenAPIExamplesFitTheirSchemas(t *testing.T) {
	t.Parallel()
	o := loadOpenAPI(t)
	examples := 0
	check := func(where []string, media map[string]oaMedia) {
		for ct, m := range media {
			var schema bytes.Buffer
			require.NoError(t, json.Compact(&schema, m.Schema))
			if ct != "application/json" || schema.String() == `{"type":"object"}` {
				continue // the document itself: the tests here are its check
			}
			tokens := append(slices.Clone(where), "content", ct)
			require.NotEmpty(t, m.Example, "%s has an example", pointer(tokens...))
			validate(t, o.schema(t, append(tokens, "schema")...), m.Example, "the example at "+pointer(tokens...))
			examples++
		}
	}
	for path, ops := range o.doc.Paths {
		for method, op := range ops {
			if op.RequestBody != nil {
				check([]string{"paths", path, method, "requestBody"}, op.RequestBody.Content)
			}
			for code, r := range op.Responses {
				if r.Ref == "" {
					check([]string{"paths", path, method, "responses", code}, r.Content)
				}
			}
		}
	}
	for name, r := range o.doc.Components.Responses {
		check([]string{"components", "responses", name}, r.Content)
	}
	require.Greater(t, examples, 20)
	// A schema that accepted anything would make these checks empty.
	bad := []byte(`{"id":"mtg_x","title":"T","state":"sleeping","captions":false,"created_at":"now","whip_url":"","whep_url":""}`)
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(bad))
	require.NoError(t, err)
	require.Error(t, o.schema(t, "components", "schemas", "Meeting").Validate(v))
}

// conform sends a request as key and checks the JSON answer against the
// schema documented for the route pattern and the status it got.
func (b *bundle) conform(t *testing.T, o *openAPI, key, pattern, path, body string) answer {
	t.Helper()
	method, _, _ := strings.Cut(pattern, " ")
	a := b.as(t, key, method, path, body)
	o.check(t, pattern, a)
	return a
}

// conformDo is conform with the request's headers given whole (a body
// that is not JSON, a join token instead of a key).
func (b *bundle) conformDo(t *testing.T, o *openAPI, pattern, path, body string, header ...string) answer {
	t.Helper()
	method, _, _ := strings.Cut(pattern, " ")
	a := b.do(t, method, path, body, header...)
	require.NoError(t, a.err)
	o.check(t, pattern, a)
	return a
}

// check holds answer a of route pattern to the schema documented for its
// status and content type.
func (o *openAPI) check(t *testing.T, pattern string, a answer) {
	t.Helper()
	o.checked[pattern] = true
	method, docPath, _ := strings.Cut(pattern, " ")
	resp, tokens := o.response(docPath, method, a.status)
	_, documented := o.doc.Paths[docPath][strings.ToLower(method)].Responses[fmt.Sprint(a.status)]
	if !documented && a.status < 400 {
		require.Fail(t, "undocumented status", "%s answered %d, which is not among its documented answers", pattern, a.status)
	}
	ct, _, _ := mime.ParseMediaType(a.header.Get("Content-Type"))
	if method == http.MethodHead {
		return // no body: the status is what a HEAD answers
	}
	if len(a.body) == 0 {
		require.Empty(t, resp.Content, "%s answered %d with no body, as documented", pattern, a.status)
		return
	}
	_, ok := resp.Content[ct]
	require.True(t, ok, "%s answered %d as %s, which is not documented", pattern, a.status, ct)
	if ct == "application/json" {
		validate(t, o.schema(t, append(tokens, "content", ct, "schema")...), a.body, fmt.Sprintf("%s's %d answer", pattern, a.status))
	}
}

func TestRealAnswersFitTheOpenAPIDocument(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		o := loadOpenAPI(t)
		served := b.do(t, "GET", "/v1/openapi.json", "")
		require.Equal(t, http.StatusOK, served.status)
		require.Equal(t, api.OpenAPI, served.body, "served without a key, as embedded")

		admin := apiToken
		_, host := b.newKey(t, "host", "host", false)
		_, archivist := b.newKey(t, "archivist", "archivist", false)
		_, agent := b.newKey(t, "agent", "agent", false)

		a := b.conform(t, o, admin, "POST /v1/keys", "/v1/keys", `{"name":"later","role":"host","all_meetings":true,"expires_at":"2099-01-01T00:00:00Z"}`)
		require.Equal(t, http.StatusCreated, a.status)
		later := decode[struct{ ID string }](t, a, http.StatusCreated)
		b.conform(t, o, admin, "POST /v1/keys", "/v1/keys", `{"name":"x","role":"root"}`)
		b.conform(t, o, admin, "GET /v1/keys", "/v1/keys?limit=2", "")
		require.Equal(t, http.StatusNoContent, b.conform(t, o, admin, "DELETE /v1/keys/{id}", "/v1/keys/"+later.ID, "").status)

		a = b.conform(t, o, host, "POST /v1/meetings", "/v1/meetings",
			`{"title":"Conseil","language":"fr","participants":[{"identity":"alice","display_name":"Alice"},{"identity":"bob"}]}`)
		m := decode[meetingAnswer](t, a, http.StatusCreated)
		mp := "/v1/meetings/" + m.ID
		b.conform(t, o, host, "POST /v1/meetings", "/v1/meetings", `{"title":`)
		b.conform(t, o, agent, "POST /v1/meetings", "/v1/meetings", `{}`)
		require.Equal(t, http.StatusOK, b.conform(t, o, "", "POST /v1/session", "/v1/session", `{"key":"`+host+`"}`).status)
		b.conform(t, o, "", "POST /v1/session", "/v1/session", `{"key":"grf_nope"}`)
		require.Equal(t, http.StatusOK, b.conform(t, o, archivist, "GET /v1/session", "/v1/session", "").status)
		b.conform(t, o, "", "GET /v1/session", "/v1/session", "")
		require.Equal(t, http.StatusNoContent, b.conform(t, o, "", "DELETE /v1/session", "/v1/session", "").status)
		b.conform(t, o, "", "GET /v1/meetings", "/v1/meetings", "")
		b.conform(t, o, host, "GET /v1/meetings", "/v1/meetings?limit=1", "")
		b.conform(t, o, agent, "GET /v1/meetings", "/v1/meetings?state=created", "")
		b.conform(t, o, agent, "GET /v1/meetings/{id}", mp, "")
		b.conform(t, o, host, "PATCH /v1/meetings/{id}", mp, `{"webhook_url":"https://203.0.113.7/hook"}`)
		tok := decode[joinAnswer](t, b.conform(t, o, host, "POST /v1/meetings/{id}/tokens", mp+"/tokens", `{"identity":"carol"}`), http.StatusCreated)
		b.conform(t, o, host, "DELETE /v1/meetings/{id}/tokens/{token}", mp+"/tokens/"+tok.TokenID, "")
		b.conform(t, o, host, "POST /v1/meetings/{id}/participants/{identity}/revoke", mp+"/participants/bob/revoke", "")

		_, err := b.store.Join(ctx, b.m.ID, "alice", "Alice")
		require.NoError(t, err)
		require.NoError(t, b.store.AddEvent(ctx, store.Event{MeetingID: b.m.ID, Kind: "joined", Identity: "alice"}))
		b.storeSpeech(t, "alice", 1000, 3000, "Le budget augmente.")
		bp := "/v1/meetings/" + b.m.ID
		b.conform(t, o, admin, "GET /v1/meetings/{id}/participants", bp+"/participants", "")
		b.conform(t, o, archivist, "GET /v1/meetings/{id}/events", bp+"/events?limit=1", "")
		b.conform(t, o, admin, "PATCH /v1/meetings/{id}/participants/{identity}", bp+"/participants/alice", `{"display_name":"Alice M."}`)
		tracks := decode[struct{ Tracks []struct{ ID string } }](t,
			b.conform(t, o, archivist, "GET /v1/meetings/{id}/tracks", bp+"/tracks", ""), http.StatusOK)
		b.conform(t, o, archivist, "GET /v1/meetings/{id}/tracks/{file}", bp+"/tracks/"+tracks.Tracks[0].ID+".webm", "")
		b.conform(t, o, archivist, "GET /v1/meetings/{id}/mix.flac", bp+"/mix.flac", "")
		b.conform(t, o, agent, "GET /v1/search", "/v1/search?q=budget", "")
		b.conform(t, o, agent, "GET /v1/search", "/v1/search?q=", "")
		b.conform(t, o, host, "GET /v1/search", "/v1/search?q=budget&language=fr&from=2020-01-01&to=2099-01-01&limit=1", "")
		b.conform(t, o, agent, "GET /v1/search", "/v1/search?q=budget&cursor=nope", "")
		a = b.conform(t, o, agent, "POST /v1/mcp", "/v1/mcp", `{}`) // no Accept: the API's JSON error
		require.Equal(t, http.StatusBadRequest, a.status)
		for key, body := range map[string]string{
			agent: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_transcripts","arguments":{"query":"budget"}}}`,
			host:  `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`,
			admin: `{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		} {
			a := b.mcpPost(t, key, "application/json", "application/json, text/event-stream", body)
			resp, tokens := o.response("/v1/mcp", "POST", a.status)
			if len(a.body) == 0 {
				require.Equal(t, http.StatusAccepted, a.status, "a notification: %s", body)
				require.Empty(t, resp.Content)
				continue
			}
			require.Equal(t, http.StatusOK, a.status, "%s", a.body)
			validate(t, o.schema(t, append(tokens, "content", "application/json", "schema")...), a.body, "an MCP answer")
		}
		b.conform(t, o, admin, "POST /v1/meetings/{id}/end", bp+"/end", "")
		b.conform(t, o, admin, "POST /v1/meetings/{id}/end", bp+"/end", "")
		b.conform(t, o, agent, "GET /v1/meetings/{id}", bp, "")
		_, _, err = b.store.SaveMinutes(ctx, b.m.ID, "d1", minutesDoc(t, b.m, 1, "Le budget augmente."))
		require.NoError(t, err)
		b.conform(t, o, agent, "GET /v1/meetings/{id}/minutes", bp+"/minutes", "")
		b.conform(t, o, agent, "GET /v1/meetings/{id}/minutes.json", bp+"/minutes.json", "")
		b.conform(t, o, agent, "GET /v1/meetings/{id}/minutes.md", bp+"/minutes.md", "")
		b.conform(t, o, agent, "GET /v1/meetings/{id}/minutes", bp+"/minutes?version=9", "")
		b.conform(t, o, agent, "GET /v1/meetings/{id}/minutes.json", bp+"/minutes.json?from=1&to=2.5", "")
		b.conform(t, o, agent, "GET /v1/meetings/{id}/minutes", bp+"/minutes?from=later", "")
		b.conform(t, o, admin, "POST /v1/meetings/{id}/rerun", bp+"/rerun", "")
		b.conform(t, o, admin, "GET /v1/audit", "/v1/audit?limit=5", "")
		b.conform(t, o, admin, "GET /v1/audit", "/v1/audit?meeting="+m.ID, "")

		// Every other route, so that none can drift from its entry.
		b.conform(t, o, "", "GET /v1/openapi.json", "/v1/openapi.json", "")
		for _, ext := range []string{"vtt", "srt", "txt"} {
			require.Equal(t, http.StatusOK, b.conform(t, o, agent, "GET /v1/meetings/{id}/minutes."+ext, bp+"/minutes."+ext, "").status)
		}
		b.conform(t, o, archivist, "GET /v1/meetings/{id}/archive.webm", bp+"/archive.webm", "")
		b.conform(t, o, archivist, "GET /v1/meetings/{id}/speakers/{file}", bp+"/speakers/alice.flac", "")
		require.Equal(t, http.StatusOK, b.conform(t, o, admin, "GET /v1/nodes", "/v1/nodes", "").status)
		b.conform(t, o, host, "GET /v1/meetings/{id}/recording", mp+"/recording", "")
		for _, sw := range []string{"recording/start", "recording/stop", "transcription/start", "transcription/stop"} {
			b.conform(t, o, host, "POST /v1/meetings/{id}/"+sw, mp+"/"+sw, "")
		}
		// The streams answer their refusals in JSON.
		b.conform(t, o, "", "GET /v1/meetings/{id}/captions", mp+"/captions", "")
		b.conform(t, o, "", "GET /v1/meetings/{id}/room", mp+"/room", "")
		dan := decode[joinAnswer](t, b.conform(t, o, host, "POST /v1/meetings/{id}/tokens", mp+"/tokens",
			`{"identity":"dan","rights":["publish","listen","name"]}`), http.StatusCreated)
		joinHeaders := []string{"Authorization", "Bearer " + dan.Token, "Content-Type", "application/json"}
		require.Equal(t, http.StatusOK, b.conformDo(t, o, "POST /v1/meetings/{id}/name", mp+"/name", `{"display_name":"Dan"}`, joinHeaders...).status)
		// Without recording switches (none here) consent answers 503.
		b.conformDo(t, o, "POST /v1/meetings/{id}/consent", mp+"/consent", `{"record":false}`, joinHeaders...)
		b.conform(t, o, "", "POST /v1/meetings/{id}/consent", mp+"/consent", `{"record":false}`)
		a = b.conform(t, o, host, "POST /v1/livekit/rooms/{room}/record", "/v1/livekit/rooms/conseil/record", `{"title":"Conseil"}`)
		require.Equal(t, http.StatusCreated, a.status, "%s", a.body)
		a = b.conformDo(t, o, "POST /v1/livekit/webhook", "/v1/livekit/webhook", `{"event":"room_started","room":{"name":"x"}}`,
			"Content-Type", "application/webhook+json", "Authorization", "not-a-signature")
		require.Equal(t, http.StatusUnauthorized, a.status)

		// Imports: a session, its offset, bytes that are not audio (the
		// format is refused), an abandoned session, an import of nothing.
		up := decode[struct{ ID string }](t, b.conform(t, o, archivist, "POST /v1/imports", "/v1/imports", `{"size":16}`), http.StatusCreated)
		require.Equal(t, http.StatusOK, b.conformDo(t, o, "HEAD /v1/imports/{upload}", "/v1/imports/"+up.ID, "",
			"Authorization", "Bearer "+archivist).status)
		a = b.conformDo(t, o, "PATCH /v1/imports/{upload}", "/v1/imports/"+up.ID, "not audio at all",
			"Authorization", "Bearer "+archivist, "Content-Type", "application/offset+octet-stream", "Upload-Offset", "0")
		require.Equal(t, http.StatusUnsupportedMediaType, a.status, "%s", a.body)
		b.conformDo(t, o, "HEAD /v1/imports/{upload}", "/v1/imports/"+up.ID, "", "Authorization", "Bearer "+archivist)
		up = decode[struct{ ID string }](t, b.conform(t, o, archivist, "POST /v1/imports", "/v1/imports", `{"size":16}`), http.StatusCreated)
		require.Equal(t, http.StatusNoContent, b.conform(t, o, archivist, "DELETE /v1/imports/{upload}", "/v1/imports/"+up.ID, "").status)
		a = b.conform(t, o, archivist, "POST /v1/meetings/import", "/v1/meetings/import",
			`{"speakers":[{"upload":"`+up.ID+`","identity":"alice"}]}`)
		require.Equal(t, http.StatusBadRequest, a.status, "%s", a.body)

		// Retention, legal hold, deletion.
		require.Equal(t, http.StatusOK, b.conform(t, o, archivist, "PATCH /v1/meetings/{id}/retention", bp+"/retention",
			`{"recordings_seconds":3600,"transcripts_seconds":0,"legal_hold":true}`).status)
		b.conform(t, o, archivist, "PATCH /v1/meetings/{id}/retention", bp+"/retention", `{"recordings_seconds":-1}`)
		require.Equal(t, http.StatusConflict, b.conform(t, o, archivist, "DELETE /v1/meetings/{id}", bp, "").status)
		b.conform(t, o, archivist, "PATCH /v1/meetings/{id}/retention", bp+"/retention", `{"legal_hold":false}`)
		require.Equal(t, http.StatusAccepted, b.conform(t, o, archivist, "DELETE /v1/meetings/{id}", bp, "").status)

		var unchecked []string
		for _, r := range b.api.Routes() {
			if !o.checked[r.Pattern] {
				unchecked = append(unchecked, r.Pattern)
			}
		}
		require.Empty(t, unchecked, "every route's real answer is held to the document: add a call here")
	})
}

// TestTheOpenAPIRequestExamplesAreAcceptedByTheirRoutes sends every
// documented JSON request example to its route: the server's decoder,
// which refuses unknown fields and wrong types (400 bad_json), takes each
// one. An answer may still refuse what the example names (a meeting or an
// upload this server does not have): that is the route's check, not the
// body's shape.
func TestTheOpenAPIRequestExamplesAreAcceptedByTheirRoutes(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		o := loadOpenAPI(t)
		sent := 0
		for path, ops := range o.doc.Paths {
			for method, op := range ops {
				if op.RequestBody == nil {
					continue
				}
				media, ok := op.RequestBody.Content["application/json"]
				if !ok || len(media.Example) == 0 {
					continue
				}
				// Each on a meeting of its own, with a participant who may
				// name themself and publish (name, consent take a join token).
				m := decode[meetingAnswer](t, b.call(t, "POST", "/v1/meetings",
					`{"participants":[{"identity":"alice","rights":["publish","listen","name"]}]}`), http.StatusCreated)
				pattern := strings.ToUpper(method) + " " + path
				_, filled := fill(pattern, m.ID)
				key := "Bearer " + apiToken
				if strings.HasSuffix(path, "/name") || strings.HasSuffix(path, "/consent") {
					tok := decode[joinAnswer](t, b.call(t, "POST", "/v1/meetings/"+m.ID+"/tokens",
						`{"identity":"bob","rights":["publish","listen","name"]}`), http.StatusCreated)
					key = "Bearer " + tok.Token
				}
				h := []string{"Authorization", key, "Content-Type", "application/json"}
				if path == "/v1/mcp" {
					h = append(h, "Accept", "application/json, text/event-stream")
				}
				a := b.do(t, strings.ToUpper(method), filled, string(media.Example), h...)
				require.NoError(t, a.err)
				if a.status >= 400 && len(a.body) > 0 && strings.Contains(a.header.Get("Content-Type"), "json") {
					var e struct {
						Error struct{ Code, Message string }
					}
					if json.Unmarshal(a.body, &e) == nil {
						require.NotContains(t, []string{"bad_json", "unsupported_media_type"}, e.Error.Code,
							"%s refuses its own documented example: %s", pattern, e.Error.Message)
					}
				}
				require.NotEqual(t, http.StatusUnsupportedMediaType, a.status, "%s: %s", pattern, a.body)
				sent++
			}
		}
		require.GreaterOrEqual(t, sent, 12)
	})
}
