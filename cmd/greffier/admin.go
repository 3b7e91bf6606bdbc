package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/greffier/greffier/api"
	"github.com/greffier/greffier/internal/httperr"
)

// jobsUIPrefix is where River UI, the jobs dashboard, is mounted.
const jobsUIPrefix = "/admin/jobs"

// adminOnly lets through the holders of an admin API key (the bootstrap
// API token or a stored key of role admin): as a bearer token (scrapers,
// scripts) or as the password of HTTP Basic authentication, whatever the
// user name, so that a browser can open the jobs dashboard.
func adminOnly(authenticate func(context.Context, string) (api.Principal, error), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		given := ""
		if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
			given = strings.TrimPrefix(h, "Bearer ")
		} else if _, pass, ok := r.BasicAuth(); ok {
			given = pass
		}
		p, err := authenticate(r.Context(), given)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="greffier admin", charset="UTF-8"`)
			httperr.Write(w, http.StatusUnauthorized, "unauthorized",
				"this needs an admin API key: as a bearer token, or as the password of HTTP Basic authentication ("+err.Error()+")")
			return
		}
		if p.Role != api.RoleAdmin {
			httperr.Write(w, http.StatusForbidden, "forbidden", fmt.Sprintf("this needs an admin API key; key %s is a %s key", p.KeyID, p.Role))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// banner logs, once started, where everything is and whether each
// speech backend answered, so that the first lines of the log say what
// an operator needs (and what is missing).
func (a *App) banner(ctx context.Context) {
	base := a.URL()
	metrics := base + "/metrics (admin keys)"
	if a.metricsLn != nil {
		metrics = "http://" + a.metricsLn.Addr().String() + "/metrics"
	}
	storage := "disk " + a.cfg.DataDir + "/blobs"
	if a.cfg.S3Endpoint != "" {
		storage = "S3 bucket " + a.cfg.S3Bucket + " at " + a.cfg.S3Endpoint
	}
	database := "SQLite " + a.cfg.DataDir + "/greffier.db"
	if a.cfg.PostgresURL != "" {
		database = "Postgres " + redactURL(a.cfg.PostgresURL)
	}
	a.log.Info("greffier serving", "api", base+"/v1/meetings", "join_page", base+"/join/",
		"media_udp", a.sfu.UDPAddr().String(), "turn", a.sfu.TURNAddrs(), "database", database, "storage", storage, "at_rest", a.atRest, "data_dir", a.cfg.DataDir,
		"health", base+"/healthz", "ready", base+"/readyz", "metrics", metrics, "jobs_dashboard", base+jobsUIPrefix+"/")
	for _, name := range a.generated {
		what := map[string]string{"api-token": "API token", "join-secret": "join secret", "webhook-secret": "webhook secret"}[name]
		a.log.Info(what+" generated", "file", a.cfg.DataDir+"/"+name)
	}
	var backends []readinessCheck
	for _, c := range a.checks {
		if c.Name != "database" && c.Name != "storage" {
			backends = append(backends, c)
		}
	}
	for _, r := range runChecks(ctx, backends) {
		if r.OK {
			a.log.Info("speech backend answered", "backend", r.Name, "url", r.Where)
		} else {
			a.log.Warn(fmt.Sprintf("%s backend did not answer: meetings are recorded, and their %s waits for it (shown in each meeting's pipeline.waiting)", r.Name, r.Name),
				"url", r.Where, "err", r.Error)
		}
	}
}
