package sfu

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/pion/logging"
)

// pionLoggers routes pion's logs into our slog logger. pion's Info level is
// per-connection chatter, so it lands at Debug; Trace is dropped. pion
// asks for a dozen loggers per connection, one per scope: they are made
// once per scope and shared, a handler clone each otherwise.
type pionLoggers struct {
	log    *slog.Logger
	scopes sync.Map // scope → pionLogger
}

func (f *pionLoggers) NewLogger(scope string) logging.LeveledLogger {
	if l, ok := f.scopes.Load(scope); ok {
		return l.(pionLogger)
	}
	l, _ := f.scopes.LoadOrStore(scope, pionLogger{log: f.log.With("pion", scope)})
	return l.(pionLogger)
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) logf(level slog.Level, format string, args ...any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	l.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
}

// routineWarnings are what pion warns of while a connection is set up
// or hung up normally (a ping before any candidate pair, packets for a
// stream being closed, reads on a closed socket): logged at Debug, so
// that a warning in the log means something.
var routineWarnings = []string{
	"Failed to ping without candidate pairs",
	"no endpoint for packet",
	"stream is already closed",
	"read/write on closed pipe",
	"use of closed network connection",
	"Failed to accept RTP",
	"Failed to accept RTCP",
}

func warnLevel(msg string) slog.Level {
	for _, r := range routineWarnings {
		if strings.Contains(msg, r) {
			return slog.LevelDebug
		}
	}
	return slog.LevelWarn
}

func (l pionLogger) warnf(format string, args ...any) {
	if !l.log.Enabled(context.Background(), slog.LevelWarn) {
		return // nor Debug, lower still
	}
	msg := fmt.Sprintf(format, args...)
	l.log.Log(context.Background(), warnLevel(msg), msg)
}

func (pionLogger) Trace(string)                        {}
func (pionLogger) Tracef(string, ...any)               {}
func (l pionLogger) Debug(msg string)                  { l.log.Debug(msg) }
func (l pionLogger) Debugf(format string, args ...any) { l.logf(slog.LevelDebug, format, args...) }
func (l pionLogger) Info(msg string)                   { l.log.Debug(msg) }
func (l pionLogger) Infof(format string, args ...any)  { l.logf(slog.LevelDebug, format, args...) }
func (l pionLogger) Warn(msg string)                   { l.log.Log(context.Background(), warnLevel(msg), msg) }
func (l pionLogger) Warnf(format string, args ...any)  { l.warnf(format, args...) }
func (l pionLogger) Error(msg string)                  { l.log.Error(msg) }
func (l pionLogger) Errorf(format string, args ...any) { l.logf(slog.LevelError, format, args...) }
