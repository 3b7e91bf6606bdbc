package sfu

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPionRoutineWarningsAreDebug: what pion says on every normal hang-up
// is kept at Debug; its other warnings stay warnings.
func TestPionRoutineWarningsAreDebug(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	f := &pionLoggers{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	l := f.NewLogger("pc")
	l.Warnf("Failed to accept RTP %v", "stream is already closed")
	l.Warn("Warning: mux: no endpoint for packet starting with 144, adding to queue size(0)")
	l.Warnf("Failed to read from candidate udp4 host 127.0.0.1:1: %s", "io: read/write on closed pipe")
	require.Empty(t, buf.String())
	l.Warnf("DTLS handshake failed: %s", "bad certificate")
	require.Equal(t, 1, strings.Count(buf.String(), "level=WARN"))
	require.Contains(t, buf.String(), "bad certificate")
}
