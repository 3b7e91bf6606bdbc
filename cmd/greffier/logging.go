package main

import (
	"context"
	"io"
	"log/slog"
)

// newLogger is the process's logger as configured (level and format,
// both validated by LoadConfig).
func newLogger(cfg Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// infoAsDebug logs a library's Info records at Debug: River's routine
// chatter (migrations, "Producer job counts" every few seconds, "entering
// poll only mode") is no event of the operator's; its warnings and errors
// keep their level.
type infoAsDebug struct{ slog.Handler }

func demoteInfo(l *slog.Logger) *slog.Logger { return slog.New(infoAsDebug{l.Handler()}) }

func (h infoAsDebug) Enabled(ctx context.Context, level slog.Level) bool {
	return h.Handler.Enabled(ctx, demoted(level))
}

func (h infoAsDebug) Handle(ctx context.Context, r slog.Record) error {
	r.Level = demoted(r.Level)
	return h.Handler.Handle(ctx, r)
}

func (h infoAsDebug) WithAttrs(attrs []slog.Attr) slog.Handler {
	return infoAsDebug{h.Handler.WithAttrs(attrs)}
}

func (h infoAsDebug) WithGroup(name string) slog.Handler {
	return infoAsDebug{h.Handler.WithGroup(name)}
}

func demoted(l slog.Level) slog.Level {
	if l >= slog.LevelInfo && l < slog.LevelWarn {
		return slog.LevelDebug
	}
	return l
}
