package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"
)

// certFiles serves the certificate in a pair of PEM files and re-reads them
// when either file's modification time or size changes, so a renewed
// certificate (certbot, cert-manager) is served to new connections without
// a restart. The check is two stat calls per handshake, in the handshake's
// own goroutine: no watcher goroutine, no timer.
type certFiles struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	version [2]fileVersion
}

type fileVersion struct {
	mod  time.Time
	size int64
}

// newCertFiles loads the pair once, so a bad pair stops the start with a
// clear error instead of failing every handshake.
func newCertFiles(certFile, keyFile string, log *slog.Logger) (*certFiles, error) {
	c := &certFiles{certFile: certFile, keyFile: keyFile, log: log}
	v, err := c.versions()
	if err != nil {
		return nil, err
	}
	if err := c.load(v); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *certFiles) versions() ([2]fileVersion, error) {
	var out [2]fileVersion
	for i, name := range []string{c.certFile, c.keyFile} {
		fi, err := os.Stat(name)
		if err != nil {
			return out, fmt.Errorf("TLS: %w", err)
		}
		out[i] = fileVersion{fi.ModTime(), fi.Size()}
	}
	return out, nil
}

func (c *certFiles) load(v [2]fileVersion) error {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("TLS: certificate %s with key %s: %w", c.certFile, c.keyFile, err)
	}
	c.cert, c.version = &cert, v
	return nil
}

// GetCertificate is tls.Config's hook. A pair that fails to load (caught
// half-written, or a key not matching its certificate) leaves the previous
// certificate in service; the next handshake tries again.
func (c *certFiles) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, err := c.versions()
	if err == nil && v != c.version {
		if err = c.load(v); err == nil {
			c.log.Info("TLS certificate reloaded", "cert_file", c.certFile)
		}
	}
	if err != nil {
		c.log.Warn("TLS certificate not reloaded, serving the previous one", "err", err)
	}
	return c.cert, nil
}

func (c *certFiles) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.GetCertificate}
}

// hsts tells browsers that came over HTTPS to come back only over HTTPS
// for a year. It is sent only when this server terminates TLS: behind a
// proxy, the proxy knows whether the client's connection was secure.
func hsts(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}
