package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/api"
)

// TestTheMediaRoutesAreServedAsDocumented holds the operations of the
// OpenAPI document that the API does not serve itself (x-served-by: the
// SFU's WHIP, WHEP and ICE servers) to a whole server: each is served (not
// the API's "no such route", not a 405) and answers a status it documents,
// or the JSON error; a participant's join token gets the ICE servers in
// the documented shape. (The WHIP and WHEP offers' 201 is what every
// meeting of the end-to-end tests goes through.)
func TestTheMediaRoutesAreServedAsDocumented(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	var doc struct {
		Paths map[string]map[string]struct {
			ServedBy  string                     `json:"x-served-by"`
			Responses map[string]json.RawMessage `json:"responses"`
		} `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(api.OpenAPI, &doc))
	checked := 0
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if op.ServedBy == "" {
				continue
			}
			checked++
			what := strings.ToUpper(method) + " " + path
			req, err := http.NewRequest(strings.ToUpper(method), b.url+strings.ReplaceAll(path, "{session}", "0123456789abcdef"), nil)
			require.NoError(t, err)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			require.NotEqual(t, http.StatusMethodNotAllowed, resp.StatusCode, "%s is served: %s", what, body)
			if _, ok := op.Responses[fmt.Sprint(resp.StatusCode)]; ok {
				continue
			}
			require.GreaterOrEqual(t, resp.StatusCode, 400, "%s answered %d, which it does not document", what, resp.StatusCode)
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"), what)
			var e struct {
				Error struct{ Code, Message string }
			}
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			require.NoError(t, dec.Decode(&e), "%s: the documented error: %s", what, body)
			require.NotEmpty(t, e.Error.Code, what)
			require.NotContains(t, e.Error.Message, "no such route", "%s is served", what)
		}
	}
	require.Equal(t, 7, checked, "WHIP and WHEP (offer, PATCH, DELETE) and the ICE servers")

	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"participants": []map[string]any{{"identity": "alice"}}}, &m))
	req, err := http.NewRequest(http.MethodGet, b.url+"/v1/ice-servers", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+m.Join[0].Token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var servers struct {
		ICEServers []struct {
			URLs       []string `json:"urls"`
			Username   string   `json:"username"`
			Credential string   `json:"credential"`
		} `json:"ice_servers"`
	}
	dec := json.NewDecoder(resp.Body)
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&servers), "the documented shape, nothing more")
	require.NotNil(t, servers.ICEServers)
}
