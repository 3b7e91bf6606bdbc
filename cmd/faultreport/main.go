// Command faultreport runs Greffier's fault suite (every test named
// TestFault…) and writes what it measured to docs/reliability.md:
//
//	go run ./cmd/faultreport
//
// The tests report their figures through internal/faulttest; this command
// gives them a file to append to, runs `go test -json`, and adds up the
// figures and the tests' outcomes. It exits non-zero when a test failed or a
// figure that must be zero is not, so the report can never say "all well"
// over a failing run.
//
// It is a measuring tool: it must not be imported.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"time"
)

func main() {
	out := flag.String("out", "docs/reliability.md", "report to write")
	run := flag.String("run", "^TestFault", "tests to run (go test -run)")
	pkgs := flag.String("pkgs", "./...", "packages to test")
	race := flag.Bool("race", false, "run the suite with the race detector (slower; CI runs it so)")
	timeout := flag.Duration("timeout", 20*time.Minute, "go test -timeout")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := report(ctx, options{out: *out, run: *run, pkgs: *pkgs, race: *race, timeout: *timeout}); err != nil {
		fmt.Fprintln(os.Stderr, "faultreport:", err)
		os.Exit(1)
	}
}

type options struct {
	out, run, pkgs string
	race           bool
	timeout        time.Duration
}

func report(ctx context.Context, o options) error {
	dir, err := os.MkdirTemp("", "faultreport")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	figures := filepath.Join(dir, "figures.jsonl")
	started := time.Now().UTC()
	res, err := runSuite(ctx, o, figures)
	if err != nil {
		return err
	}
	res.started, res.elapsed = started, time.Since(started)
	if res.figures, err = readFigures(figures); err != nil {
		return err
	}
	doc := render(res, machine())
	if err := os.WriteFile(o.out, []byte(doc), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", o.out, err)
	}
	fmt.Printf("wrote %s: %d tests, %d failed\n", o.out, len(res.tests), res.failed())
	var errs []error
	if n := res.failed(); n > 0 {
		errs = append(errs, fmt.Errorf("%d fault tests failed", n))
	}
	if len(res.tests) == 0 {
		errs = append(errs, fmt.Errorf("no test matched -run %q", o.run))
	}
	for _, m := range mustBeZero {
		if v := res.total(m); v != 0 {
			errs = append(errs, fmt.Errorf("%s is %g, must be 0", m, v))
		}
	}
	return errors.Join(errs...)
}
