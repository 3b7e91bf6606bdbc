package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/api"
	"github.com/greffier/greffier/internal/store"
)

// access says who may call a route.
type access struct {
	route string
	// roles allowed; "public" for a route that asks for no key.
	roles []string
	note  string // shown in the docs' matrix
}

var (
	everyRole  = []string{"admin", "host", "archivist", "agent"}
	runners    = []string{"admin", "host"}
	readers    = []string{"admin", "host", "archivist"}
	keepers    = []string{"admin", "archivist"}
	adminsOnly = []string{"admin"}
	importers  = []string{"admin", "host", "archivist"}
)

// roleMatrix is the whole allow/deny matrix, written out by hand: the test
// holds the routes to it, and docs/api.md shows it.
var roleMatrix = []access{
	{"GET /v1/openapi.json", []string{"public"}, "no key needed"},
	{"GET /v1/search", everyRole, "a host finds only its own meetings' speech"},
	{"POST /v1/mcp", everyRole, "MCP tools see what the key sees: a host its own meetings"},
	{"POST /v1/meetings", runners, ""},
	{"GET /v1/meetings", everyRole, "a host lists its own meetings"},
	{"GET /v1/meetings/{id}", everyRole, ""},
	{"PATCH /v1/meetings/{id}", runners, ""},
	{"POST /v1/meetings/{id}/end", runners, ""},
	{"POST /v1/meetings/{id}/tokens", runners, ""},
	{"DELETE /v1/meetings/{id}/tokens/{token}", runners, ""},
	{"POST /v1/meetings/{id}/participants/{identity}/revoke", runners, ""},
	{"GET /v1/meetings/{id}/participants", readers, ""},
	{"GET /v1/meetings/{id}/events", readers, ""},
	{"PATCH /v1/meetings/{id}/participants/{identity}", runners, ""},
	{"POST /v1/meetings/{id}/rerun", runners, ""},
	{"GET /v1/meetings/{id}/recording", readers, ""},
	{"POST /v1/meetings/{id}/recording/start", runners, ""},
	{"POST /v1/meetings/{id}/recording/stop", runners, ""},
	{"POST /v1/meetings/{id}/transcription/start", runners, ""},
	{"POST /v1/meetings/{id}/transcription/stop", runners, ""},
	{"GET /v1/meetings/{id}/tracks", readers, ""},
	{"GET /v1/meetings/{id}/tracks/{file}", keepers, ""},
	{"GET /v1/meetings/{id}/archive.webm", keepers, ""},
	{"GET /v1/meetings/{id}/mix.flac", keepers, ""},
	{"GET /v1/meetings/{id}/speakers/{file}", keepers, ""},
	{"POST /v1/livekit/rooms/{room}/record", runners, "when LiveKit is configured"},
	{"POST /v1/livekit/webhook", nil, "no key: LiveKit's signature (a bad one gets 401)"},
	{"GET /v1/meetings/{id}/minutes", everyRole, "and every rendering: also a join token with the minutes right, for its own meeting"},
	{"GET /v1/meetings/{id}/minutes.json", everyRole, ""},
	{"GET /v1/meetings/{id}/minutes.vtt", everyRole, ""},
	{"GET /v1/meetings/{id}/minutes.srt", everyRole, ""},
	{"GET /v1/meetings/{id}/minutes.md", everyRole, ""},
	{"GET /v1/meetings/{id}/minutes.txt", everyRole, ""},
	{"GET /v1/meetings/{id}/captions", everyRole, "participants use their join token"},
	{"PATCH /v1/meetings/{id}/retention", keepers, ""},
	{"DELETE /v1/meetings/{id}", keepers, "409 while live or under legal hold"},
	{"POST /v1/imports", importers, ""},
	{"HEAD /v1/imports/{upload}", importers, ""},
	{"PATCH /v1/imports/{upload}", importers, ""},
	{"DELETE /v1/imports/{upload}", importers, ""},
	{"POST /v1/meetings/import", importers, "a host's import is its own meeting"},
	{"GET /v1/meetings/{id}/room", readers, "participants use their join token"},
	{"POST /v1/meetings/{id}/name", nil, "no key: a join token with the name right (the participant chooses their name)"},
	{"POST /v1/meetings/{id}/consent", nil, "no key: a join token with the publish right (the participant declines to be recorded)"},
	{"POST /v1/session", everyRole, "the key comes in the body; sets a session cookie"},
	{"GET /v1/session", everyRole, "bearer key or session cookie"},
	{"DELETE /v1/session", []string{"public"}, "signs out"},
	{"POST /v1/keys", adminsOnly, ""},
	{"GET /v1/keys", adminsOnly, ""},
	{"DELETE /v1/keys/{id}", adminsOnly, ""},
	{"GET /v1/audit", adminsOnly, ""},
	{"GET /v1/nodes", adminsOnly, ""},
}

// newKey creates a key through the API and returns its id and secret.
func (b *bundle) newKey(t *testing.T, name, role string, allMeetings bool) (id, key string) {
	t.Helper()
	body := fmt.Sprintf(`{"name":%q,"role":%q,"all_meetings":%t}`, name, role, allMeetings)
	k := decode[struct{ ID, Key string }](t, b.call(t, "POST", "/v1/keys", body), http.StatusCreated)
	return k.ID, k.Key
}

// as sends a request with key (none if "") and a JSON body.
func (b *bundle) as(t *testing.T, key, method, path, body string) answer {
	t.Helper()
	h := []string{"Content-Type", "application/json"}
	if key != "" {
		h = append(h, "Authorization", "Bearer "+key)
	}
	a := b.do(t, method, path, body, h...)
	require.NoError(t, a.err)
	return a
}

// asOpen is as for a route that may stream (the room): it reads the
// status, and the body only when the answer is not the stream.
func (b *bundle) asOpen(t *testing.T, key, method, path, body string) answer {
	t.Helper()
	if method != http.MethodGet || !strings.HasSuffix(path, "/room") {
		return b.as(t, key, method, path, body)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, b.srv.URL+path, nil)
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode != http.StatusOK {
		a.body, a.err = io.ReadAll(resp.Body)
	}
	return a
}

// sessionCall sends row's request as key: a sign-in carries the key in
// its body, as a browser does, every other route in the header.
func (b *bundle) sessionCall(t *testing.T, route, key, method, path, body string) answer {
	t.Helper()
	if route == "POST /v1/session" {
		return b.as(t, "", method, path, fmt.Sprintf(`{"key":%q}`, key))
	}
	return b.asOpen(t, key, method, path, body)
}

// fill puts values in a route pattern's wildcards.
func fill(pattern, meetingID string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	if strings.HasPrefix(path, "/v1/keys/") {
		return method, strings.ReplaceAll(path, "{id}", "key_none")
	}
	return method, strings.NewReplacer("{id}", meetingID, "{token}", "tok_none", "{identity}", "alice",
		"{file}", "alice.flac", "{room}", "conseil").Replace(path)
}

// TestEveryRouteAnswersEachRoleAsTheMatrixSays walks every route the API
// serves with every role, no key, a revoked key and an expired key: 401
// without a valid key, 403 for a role without the permission, an answer
// from the route otherwise (a host meets 404 for a meeting it did not
// create).
func TestEveryRouteAnswersEachRoleAsTheMatrixSays(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		served := []string{}
		for _, r := range b.api.Routes() {
			served = append(served, r.Pattern)
		}
		listed := []string{}
		for _, row := range roleMatrix {
			listed = append(listed, row.route)
		}
		require.ElementsMatch(t, served, listed, "every route served has a row in roleMatrix, and every row a route")

		keys := map[string]string{"admin (bootstrap)": apiToken}
		for _, role := range everyRole {
			_, keys[role] = b.newKey(t, role+" key", role, false)
		}
		_, keys["host (all meetings)"] = b.newKey(t, "host all", "host", true)
		_, keys["host (another's meeting)"] = b.newKey(t, "other host", "host", false)
		revokedID, revoked := b.newKey(t, "revoked", "admin", false)
		require.Equal(t, http.StatusNoContent, b.call(t, "DELETE", "/v1/keys/"+revokedID, "").status)
		expired := "grf_expired-key-for-the-test"
		_, err := b.store.CreateAPIKey(ctx, store.APIKey{ID: store.NewID("key"), Name: "expired", Role: "admin",
			Hash: sha(([]byte)(expired)), ExpiresAt: time.Now().Add(-time.Minute)})
		require.NoError(t, err)

		// The meeting the routes act on is the host's own.
		m := decode[struct{ ID string }](t, b.as(t, keys["host"], "POST", "/v1/meetings", `{"title":"Matrix"}`), http.StatusCreated)

		for _, row := range roleMatrix {
			method, path := fill(row.route, m.ID)
			body := ""
			if method == "POST" || method == "PATCH" {
				body = "{}"
			}
			for who, key := range map[string]string{"no key": "", "revoked key": revoked, "expired key": expired,
				"unknown key": "grf_unknown"} {
				a := b.sessionCall(t, row.route, key, method, path, body)
				if slices.Contains(row.roles, "public") {
					require.True(t, a.status >= 200 && a.status < 300, "%s with %s: %d", row.route, who, a.status)
					continue
				}
				require.Equal(t, http.StatusUnauthorized, a.status, "%s with %s: %s", row.route, who, a.body)
				if method != http.MethodHead { // a HEAD answer has no body
					want := "unauthorized"
					if row.route == "POST /v1/session" {
						want = "bad_key"
					}
					require.Equal(t, want, errorCode(t, a))
				}
			}
			for who, key := range keys {
				role, _, _ := strings.Cut(who, " ")
				a := b.sessionCall(t, row.route, key, method, path, body)
				allowed := slices.Contains(row.roles, role) || slices.Contains(row.roles, "public")
				switch {
				case !allowed && (row.route == "GET /v1/meetings/{id}/captions" || row.route == "GET /v1/meetings/{id}/room" ||
					row.route == "POST /v1/meetings/{id}/name" || row.route == "POST /v1/livekit/webhook" ||
					row.route == "POST /v1/meetings/{id}/consent"):
					require.Equal(t, http.StatusUnauthorized, a.status, "%s as %s", row.route, who)
				case !allowed:
					require.Equal(t, http.StatusForbidden, a.status, "%s as %s: %s", row.route, who, a.body)
					if method != http.MethodHead {
						require.Equal(t, "forbidden", errorCode(t, a))
					}
				case who == "host (another's meeting)" && strings.Contains(row.route, "/v1/meetings/{id}"):
					want := http.StatusNotFound
					if strings.HasSuffix(row.route, "/captions") || strings.HasSuffix(row.route, "/room") {
						want = http.StatusUnauthorized
					}
					require.Equal(t, want, a.status, "%s as %s: %s", row.route, who, a.body)
				default:
					require.NotContains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, a.status,
						"%s as %s: %s", row.route, who, a.body)
				}
			}
		}
	})
}

const (
	matrixBegin = "<!-- role-matrix:begin (generated by TestTheDocsShowTheRoleMatrix) -->"
	matrixEnd   = "<!-- role-matrix:end -->"
)

// matrixMarkdown renders roleMatrix as the docs show it.
func matrixMarkdown() string {
	var sb strings.Builder
	sb.WriteString("| route | admin | host | archivist | agent | note |\n|---|---|---|---|---|---|\n")
	for _, row := range roleMatrix {
		fmt.Fprintf(&sb, "| `%s` |", row.route)
		for _, role := range everyRole {
			switch {
			case slices.Contains(row.roles, "public"):
				sb.WriteString(" any |")
			case slices.Contains(row.roles, role) && role == "host" && strings.Contains(row.route, "/v1/meetings/{id}"):
				sb.WriteString(" own |")
			case slices.Contains(row.roles, role):
				sb.WriteString(" yes |")
			default:
				sb.WriteString(" no |")
			}
		}
		fmt.Fprintf(&sb, " %s |\n", row.note)
	}
	return sb.String()
}

// TestTheDocsShowTheRoleMatrix holds docs/api.md's matrix to the one the
// routes are tested against. GREFFIER_UPDATE_DOCS=1 rewrites it.
func TestTheDocsShowTheRoleMatrix(t *testing.T) {
	t.Parallel()
	path := filepath.Join("..", "docs", "api.md")
	doc, err := os.ReadFile(path)
	require.NoError(t, err)
	before, rest, ok := strings.Cut(string(doc), matrixBegin)
	require.True(t, ok, "docs/api.md has the marker %s", matrixBegin)
	_, after, ok := strings.Cut(rest, matrixEnd)
	require.True(t, ok, "docs/api.md has the marker %s", matrixEnd)
	want := before + matrixBegin + "\n" + matrixMarkdown() + matrixEnd + after
	if os.Getenv("GREFFIER_UPDATE_DOCS") == "1" {
		require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
		return
	}
	require.Equal(t, want, string(doc), "docs/api.md's role matrix is stale: run GREFFIER_UPDATE_DOCS=1 go test ./api -run TestTheDocsShowTheRoleMatrix")
}

// The roles' permissions, as the contract lists them.
func TestRolesHoldTheirPermissions(t *testing.T) {
	t.Parallel()
	require.Equal(t, []string{"meetings:create", "meetings:list", "meetings:read", "meetings:control", "minutes:read",
		"recordings:import"}, api.RoleHost.Permissions())
	require.Equal(t, []string{"meetings:list", "minutes:read"}, api.RoleAgent.Permissions())
	require.Equal(t, []string{"meetings:list", "meetings:read", "minutes:read", "recordings:read", "recordings:manage",
		"recordings:import"}, api.RoleArchivist.Permissions())
	require.Len(t, api.RoleAdmin.Permissions(), 10)
	require.Nil(t, api.Role("root").Permissions())
}
