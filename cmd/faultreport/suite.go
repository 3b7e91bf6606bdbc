package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/greffier/greffier/internal/faulttest"
)

// testResult is one top-level fault test's outcome.
type testResult struct {
	pkg, name string
	outcome   string // pass, fail or skip
	seconds   float64
	skipWhy   string
}

// suiteResult is one run of the suite.
type suiteResult struct {
	command string
	tests   []testResult
	figures []faulttest.Line
	started time.Time
	elapsed time.Duration
}

func (r suiteResult) failed() int {
	n := 0
	for _, t := range r.tests {
		if t.outcome == "fail" {
			n++
		}
	}
	return n
}

// total adds up a figure over every test.
func (r suiteResult) total(m faulttest.Metric) float64 {
	var v float64
	for _, f := range r.figures {
		if f.Metric == m {
			v += f.Value
		}
	}
	return v
}

// testEvent is one line of `go test -json`.
type testEvent struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

// runSuite runs the fault tests with the figures file set, and reads their
// outcomes from go test's JSON stream (its output is echoed to stderr so a
// failure can be read as it happens).
func runSuite(ctx context.Context, o options, figures string) (suiteResult, error) {
	args := []string{"test", "-json", "-count=1", "-timeout", o.timeout.String(), "-run", o.run}
	if o.race {
		args = append(args, "-race")
	}
	args = append(args, strings.Fields(o.pkgs)...)
	res := suiteResult{command: "go " + strings.Join(args, " ")}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(), faulttest.EnvReport+"="+figures)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("start go test: %w", err)
	}
	skips := map[string]string{}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev testEvent
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		// Subtests carry their parent's name before a slash: the
		// report counts the suite's tests, not their cases.
		if ev.Test == "" || strings.Contains(ev.Test, "/") {
			continue
		}
		key := ev.Package + "." + ev.Test
		switch ev.Action {
		case "output":
			// A skip's reason is the test's last line of its own.
			if line := strings.TrimSpace(ev.Output); line != "" && !strings.HasPrefix(line, "===") && !strings.HasPrefix(line, "---") {
				skips[key] = line
			}
			fmt.Fprint(os.Stderr, ev.Output)
		case "pass", "fail", "skip":
			t := testResult{pkg: ev.Package, name: ev.Test, outcome: ev.Action, seconds: ev.Elapsed}
			if ev.Action == "skip" {
				t.skipWhy = skips[key]
			}
			res.tests = append(res.tests, t)
		}
	}
	// go test exits 1 when a test fails: the outcomes say so already.
	if err := cmd.Wait(); err != nil && res.failed() == 0 {
		return res, fmt.Errorf("%s: %w", res.command, err)
	}
	sort.Slice(res.tests, func(i, j int) bool {
		if res.tests[i].pkg != res.tests[j].pkg {
			return res.tests[i].pkg < res.tests[j].pkg
		}
		return res.tests[i].name < res.tests[j].name
	})
	return res, nil
}

// readFigures reads what the tests reported; no file means no figures.
func readFigures(path string) ([]faulttest.Line, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []faulttest.Line
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l faulttest.Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("figures file %s: %w", path, err)
		}
		lines = append(lines, l)
	}
	return lines, sc.Err()
}
