// Command greffier records online meetings speaker by speaker and turns them
// into timestamped minutes. `greffier serve` runs everything on embedded
// defaults: SQLite and recordings under ./greffier-data. The other
// commands are a client of a running server's API, or say how this one
// is configured and built.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "greffier:", err)
		os.Exit(1)
	}
}

const usage = `usage: greffier COMMAND [flags]   (greffier COMMAND -h for its flags)

Server:
  serve                       run Greffier
  config                      print the effective configuration (secrets masked)
  version                     print the version and build

Client of a running server (GREFFIER_URL, default http://127.0.0.1:8080; the API key
from GREFFIER_API_KEY, GREFFIER_API_KEY_FILE or --key-file; --json for scripts):
  meetings                    list meetings
  meeting create|end|rerun    create a meeting (--recording=false: the host starts it), end one, make its minutes again
  meeting record|transcribe start|stop ID   start or stop a meeting's recording or transcription
  minutes ID                  print a meeting's minutes (--format md|vtt|srt|txt|json)
  download ID                 download recordings, archive or mix (resumes)
  search QUERY                search what was said (--meeting, --speaker, --language, --from, --to, --cursor)
  keys [create NAME --role R | revoke ID]   manage API keys
`

var errUsage = errors.New("unknown command (greffier help lists them)")

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], getenv, stdout, stderr)
	case "config":
		err = printConfig(args[1:], getenv, stdout)
	case "version":
		err = printVersion(stdout)
	case "help", "-h", "--help":
		_, err = fmt.Fprint(stdout, usage)
	default:
		err = runClient(ctx, args, getenv, stdout, stderr)
	}
	if errors.Is(err, flag.ErrHelp) {
		return nil // asked for, and written
	}
	return err
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, _, err := loadConfig("serve", args, getenv, stdout)
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	app, err := NewApp(ctx, cfg, logger)
	if err != nil {
		return err
	}
	if err := app.Start(ctx); err != nil {
		_ = app.Stop(context.Background())
		return err
	}
	<-ctx.Done()
	stop() // a second signal now kills the process at once
	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	return app.Stop(sctx)
}
