package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/store"
)

// probeTimeout bounds one readiness check: a dependency slower than this
// to answer a trivial request is not ready to serve.
const probeTimeout = 3 * time.Second

// readinessCheck is one dependency /readyz looks at.
type readinessCheck struct {
	Name  string // database, storage, transcription, summary, diarization, captions
	Where string // what it checks, shown to operators (no secrets)
	check func(context.Context) error
}

// checkResult is a check's outcome as /readyz answers it.
type checkResult struct {
	Name  string `json:"name"`
	Where string `json:"where"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// readiness lists the checks of a configured Greffier.
func readiness(cfg Config, st *store.Store, blobs blob.Store, atRest string) []readinessCheck {
	where := "SQLite in " + cfg.DataDir
	if st.Dialect() == store.Postgres {
		where = "Postgres " + redactURL(cfg.PostgresURL)
	}
	checks := []readinessCheck{{Name: "database", Where: where, check: func(ctx context.Context) error {
		var one int
		return st.DB().QueryRowContext(ctx, "SELECT 1").Scan(&one)
	}}}
	where = "disk " + cfg.DataDir + "/blobs"
	if cfg.S3Endpoint != "" {
		where = "S3 bucket " + cfg.S3Bucket + " at " + cfg.S3Endpoint
	}
	where += "; at rest: " + atRest
	checks = append(checks, readinessCheck{Name: "storage", Where: where, check: func(ctx context.Context) error {
		// Any answer about an object that is never there shows the store
		// answers and the bucket (or directory) exists.
		_, err := blobs.Stat(ctx, "readyz/probe")
		if errors.Is(err, blob.ErrNotFound) {
			return nil
		}
		if err == nil {
			return nil
		}
		return err
	}})
	for _, b := range configuredBackends(cfg) {
		checks = append(checks, readinessCheck{Name: b.name, Where: redactURL(b.url), check: func(ctx context.Context) error {
			return probeHTTP(ctx, b.url)
		}})
	}
	return checks
}

// backendURL is a configured speech or summary backend.
type backendURL struct{ name, url string }

func configuredBackends(cfg Config) []backendURL {
	var out []backendURL
	for _, b := range []backendURL{{"transcription", cfg.TranscribeURL}, {"summary", cfg.SummaryURL},
		{"diarization", cfg.DiarizeURL}, {"captions", cfg.CaptionsURL}} {
		if b.url != "" {
			out = append(out, b)
		}
	}
	return out
}

// probeHTTP asks rawURL for anything: any HTTP answer, even an error
// status, shows the server is up (the real calls say more, in the
// meeting's progress); no answer is the failure. A WebSocket URL is
// probed over HTTP.
func probeHTTP(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("unreadable URL: %w", err)
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	}
	u.User = nil
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the URL is shown beside the error
		}
		return fmt.Errorf("unreachable: %w", err)
	}
	_ = resp.Body.Close()
	return nil
}

// runChecks runs every check at once, each bounded by probeTimeout.
func runChecks(ctx context.Context, checks []readinessCheck) []checkResult {
	out := make([]checkResult, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, probeTimeout)
			defer cancel()
			out[i] = checkResult{Name: c.Name, Where: c.Where, OK: true}
			if err := c.check(cctx); err != nil {
				out[i].OK, out[i].Error = false, err.Error()
			}
		})
	}
	wg.Wait()
	return out
}

// readyHandler is /readyz: 200 when every dependency answers, 503 with
// each one's reason otherwise.
func readyHandler(checks []readinessCheck) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		results := runChecks(r.Context(), checks)
		ready := true
		var down []string
		for _, c := range results {
			if !c.OK {
				ready = false
				down = append(down, c.Name)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		status := http.StatusOK
		if !ready {
			status = http.StatusServiceUnavailable
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(struct {
			Ready    bool          `json:"ready"`
			NotReady string        `json:"not_ready,omitempty"`
			Checks   []checkResult `json:"checks"`
		}{ready, strings.Join(down, ", "), results})
	})
}
