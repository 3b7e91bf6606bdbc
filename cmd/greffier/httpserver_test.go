package main

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The write timeout bounds a client that stops reading, never the length
// of a response that keeps going: a stream that writes now and then
// outlives it, and a stalled reader is cut off.
func TestWriteTimeoutCutsStalledReadersNotLongResponses(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.HTTPWriteTimeout = 300 * time.Millisecond
	stalled := make(chan error, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, _ *http.Request) {
		// A stream that lasts four write timeouts, as captions do.
		for range 8 {
			_, _ = io.WriteString(w, "tick\n")
			w.(http.Flusher).Flush()
			// The pace of the stream is what is tested: a write every
			// half timeout, lasting longer than the timeout in all.
			time.Sleep(cfg.HTTPWriteTimeout / 2)
		}
	})
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, _ *http.Request) {
		chunk := make([]byte, 64<<10)
		for range 4096 { // 256 MiB: far more than socket buffers hold
			if _, err := w.Write(chunk); err != nil {
				stalled <- err
				return
			}
		}
		stalled <- nil
	})
	srv := newHTTPServer(cfg, mux, slog.New(slog.DiscardHandler))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	resp, err := http.Get("http://" + ln.Addr().String() + "/stream")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err, "the stream was cut")
	require.Equal(t, 8, strings.Count(string(body), "tick"))

	conn, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	_, err = http.ReadResponse(bufio.NewReader(conn), nil) // then read nothing more
	require.NoError(t, err)
	select {
	case err := <-stalled:
		require.Error(t, err, "the server wrote 256 MiB to a client that read nothing")
	case <-time.After(30 * time.Second):
		t.Fatal("a client that reads nothing still holds its response after 30 s")
	}
}
