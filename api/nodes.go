package api

import (
	"net/http"
	"time"
)

// nodeJSON is one node as GET /v1/nodes shows it.
type nodeJSON struct {
	ID        string    `json:"id"`
	Roles     []string  `json:"roles"`
	URL       string    `json:"url"`
	MediaAddr string    `json:"media_addr,omitempty"`
	Sessions  int       `json:"media_sessions"`
	Meetings  int       `json:"live_meetings"`
	StartedAt time.Time `json:"started_at"`
	Heartbeat time.Time `json:"heartbeat_at"`
	Alive     bool      `json:"alive"`
}

// listNodes shows the processes sharing this database, as their heartbeats
// say, with the live meetings placed on each: which node holds which
// meeting's media, and which stopped beating.
func (a *API) listNodes(w http.ResponseWriter, r *http.Request) {
	// A day of rows at most: nodes silent longer are forgotten.
	nodes, err := a.store.Nodes(r.Context(), a.now().Add(-24*time.Hour))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	placed, err := a.store.PlacedMeetings(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	aliveSince := a.now().Add(-a.nodeTimeout)
	out := make([]nodeJSON, len(nodes))
	for i, n := range nodes {
		roles := n.Roles
		if roles == nil {
			roles = []string{}
		}
		out[i] = nodeJSON{ID: n.ID, Roles: roles, URL: n.URL, MediaAddr: n.MediaAddr, Sessions: n.Participants,
			Meetings: placed[n.ID], StartedAt: n.StartedAt, Heartbeat: n.HeartbeatAt, Alive: !n.HeartbeatAt.Before(aliveSince)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"nodes": out})
}
