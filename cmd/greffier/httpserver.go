package main

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/greffier/greffier/internal/httperr"
)

// newHTTPServer bounds what a client may hold: its headers and its whole
// request must arrive in time, an idle kept-alive connection closes, and a
// response waits for a client that takes nothing for at most
// HTTPWriteTimeout. That last bound is renewed at every write
// (writeProgress), so long downloads and the captions stream, which write
// as they go, are never cut while the client keeps reading.
func newHTTPServer(cfg Config, mux *http.ServeMux, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           writeProgress(httperr.Routes(mux), cfg.HTTPWriteTimeout),
		ReadHeaderTimeout: cfg.HTTPReadHeaderTimeout,
		ReadTimeout:       cfg.HTTPReadTimeout,
		WriteTimeout:      cfg.HTTPWriteTimeout,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// writeProgress moves the connection's write deadline to timeout from now
// before every write and flush of a response: the server's WriteTimeout
// then bounds a stall, not the length of a response.
func writeProgress(next http.Handler, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&progressWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: timeout}, r)
	})
}

type progressWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (p *progressWriter) renew() { _ = p.rc.SetWriteDeadline(time.Now().Add(p.timeout)) }

func (p *progressWriter) WriteHeader(status int) {
	p.renew()
	p.ResponseWriter.WriteHeader(status)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.renew()
	return p.ResponseWriter.Write(b)
}

// Flush keeps the writer an http.Flusher for streams (SSE).
func (p *progressWriter) Flush() {
	p.renew()
	_ = p.rc.Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (p *progressWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }
