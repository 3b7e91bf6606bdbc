package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// writeCert writes a self-signed certificate for 127.0.0.1 named cn, and
// returns its DER bytes.
func writeCert(t *testing.T, certFile, keyFile, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	// Written beside, then renamed over: what certbot and cert-manager do.
	for path, block := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "EC PRIVATE KEY", Bytes: kder}} {
		tmp := path + ".tmp"
		require.NoError(t, os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600))
		require.NoError(t, os.Rename(tmp, path))
	}
	return der
}

// peerCert opens a new TLS connection and returns the certificate the
// server presented.
func peerCert(t *testing.T, addr string) []byte {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test compares the certificate itself
	require.NoError(t, err)
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Raw
}

func TestServeTerminatesTLSAndReloadsTheCertificateWhenItChanges(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := writeCert(t, certFile, keyFile, "first")
	b := setup(t, setupOptions{configure: func(c *Config) { c.TLSCertFile, c.TLSKeyFile = certFile, keyFile }})
	require.Regexp(t, `^https://`, b.url)
	addr := b.app.listener.Addr().String()
	require.Equal(t, first, peerCert(t, addr))

	// A real client trusting the first certificate: HTTPS, HSTS, and the
	// session cookie marked Secure.
	pool := x509.NewCertPool()
	c, err := x509.ParseCertificate(first)
	require.NoError(t, err)
	pool.AddCert(c)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(b.url + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "max-age=31536000", resp.Header.Get("Strict-Transport-Security"))
	resp, err = client.Post(b.url+"/v1/session", "application/json", strings.NewReader(`{"key":"`+b.token+`"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.NotEmpty(t, resp.Cookies(), "status %d", resp.StatusCode)
	for _, ck := range resp.Cookies() {
		require.True(t, ck.Secure, "cookie %s over TLS is Secure", ck.Name)
	}

	// The files are replaced: the next connection gets the new certificate.
	second := writeCert(t, certFile, keyFile, "second")
	require.NotEqual(t, first, second)
	require.Equal(t, second, peerCert(t, addr))

	// A broken pair keeps the last good certificate in service.
	require.NoError(t, os.WriteFile(keyFile, []byte("not a key"), 0o600))
	require.Equal(t, second, peerCert(t, addr))
}

func TestTLSNeedsBothFilesAndAGoodPair(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TLSCertFile = "cert.pem"
	require.ErrorContains(t, cfg.validate(), "tls-key-file")
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	writeCert(t, cert, key, "x")
	require.NoError(t, os.WriteFile(key, []byte("garbage"), 0o600))
	_, err := newCertFiles(cert, key, nil)
	require.ErrorContains(t, err, "TLS: certificate")
}
