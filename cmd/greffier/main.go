// Command greffier records online meetings speaker by speaker and turns them
// into timestamped minutes. `greffier serve` runs everything on embedded
// defaults: SQLite and recordings under ./greffier-data.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if err := run(os.Args[1:], os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "greffier:", err)
		os.Exit(1)
	}
}

const usage = `usage: greffier serve [flags]   (greffier serve -h lists the flags)`

func run(args []string, getenv func(string) string, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "serve" {
		return errors.New(usage)
	}
	cfg, err := LoadConfig(args[1:], getenv)
	if err != nil {
		return err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated by LoadConfig
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app, err := NewApp(ctx, cfg, logger)
	if err != nil {
		return err
	}
	if err := app.Start(ctx); err != nil {
		_ = app.Stop(context.Background())
		return err
	}
	if cfg.APIToken == "" {
		logger.Info("API token generated", "file", cfg.DataDir+"/api-token")
	}
	<-ctx.Done()
	stop() // a second signal now kills the process at once
	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	return app.Stop(sctx)
}
