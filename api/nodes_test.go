package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/api"
	"github.com/greffier/greffier/captions"
	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/token"
)

// TestNodesAreListedAndCaptionsFollowTheMedia: GET /v1/nodes shows each
// node with its roles, URL, load and placed meetings; a caption stream
// asked of a node that does not hold the meeting's media is redirected to
// the one that does, and served where it is.
func TestNodesAreListedAndCaptionsFollowTheMedia(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{SQLitePath: filepath.Join(t.TempDir(), "g.db")})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	blobs, err := blob.NewDisk(t.TempDir())
	require.NoError(t, err)
	signer, err := token.NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	require.NoError(t, err)
	media := &fakeMedia{store: st}
	a, err := api.New(api.Config{Token: apiToken, NodeID: "node_here", NodeURL: "http://node-here:8080"},
		api.Deps{Store: st, Blobs: blobs, Ender: media, Rerunner: media, Sessions: media, Signer: signer,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Captions: captions.NewHub()})
	require.NoError(t, err)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)

	require.NoError(t, st.Heartbeat(ctx, store.Node{ID: "node_here", Roles: []string{store.RoleAPI, store.RoleSFU},
		URL: "http://node-here:8080", MediaAddr: "10.0.0.1:7882"}))
	require.NoError(t, st.Heartbeat(ctx, store.Node{ID: "node_there", Roles: []string{store.RoleSFU},
		URL: "http://node-there:8080", Participants: 3}))
	there, here := placedMeeting(t, st, "node_there"), placedMeeting(t, st, "node_here")

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path, bearer string) *http.Response {
		req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
		require.NoError(t, err)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := noFollow.Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	resp := get("/v1/nodes", apiToken)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var list struct {
		Nodes []struct {
			ID        string   `json:"id"`
			Roles     []string `json:"roles"`
			URL       string   `json:"url"`
			MediaAddr string   `json:"media_addr"`
			Sessions  int      `json:"media_sessions"`
			Meetings  int      `json:"live_meetings"`
			Alive     bool     `json:"alive"`
		} `json:"nodes"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
	require.Len(t, list.Nodes, 2)
	require.Equal(t, "node_here", list.Nodes[0].ID)
	require.Equal(t, []string{"api", "sfu"}, list.Nodes[0].Roles)
	require.Equal(t, "10.0.0.1:7882", list.Nodes[0].MediaAddr)
	require.Equal(t, 3, list.Nodes[1].Sessions)
	for _, n := range list.Nodes {
		require.True(t, n.Alive)
		require.Equal(t, 1, n.Meetings, n.ID)
	}

	follow := func(m store.Meeting) *http.Response {
		tok, err := signer.Sign(token.Claims{MeetingID: m.ID, Identity: "alice", Rights: []token.Right{token.RightListen},
			ExpiresAt: time.Now().Add(time.Hour)})
		require.NoError(t, err)
		return get("/v1/meetings/"+m.ID+"/captions?token="+tok, "")
	}
	resp = follow(there)
	require.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode)
	require.Equal(t, "http://node-there:8080"+resp.Request.URL.RequestURI(), resp.Header.Get("Location"))
	resp = follow(here)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
}

// placedMeeting is a live meeting whose media is on node.
func placedMeeting(t *testing.T, st *store.Store, node string) store.Meeting {
	t.Helper()
	ctx := context.Background()
	m, err := st.CreateMeeting(ctx, "", "")
	require.NoError(t, err)
	_, err = st.Join(ctx, m.ID, "alice", "Alice")
	require.NoError(t, err)
	owner, err := st.PlaceMeeting(ctx, m.ID, node, time.Now().Add(-time.Minute))
	require.NoError(t, err)
	require.Equal(t, node, owner.ID)
	return m
}
