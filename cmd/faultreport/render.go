package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"github.com/greffier/greffier/internal/faulttest"
)

// mustBeZero are the figures a sound run leaves at zero; the others
// (faults injected, audio lost to a kill) are what the suite did and what
// a kill may cost.
var mustBeZero = []faulttest.Metric{faulttest.RecordingsLost, faulttest.WordsLost,
	faulttest.JobsStuck, faulttest.BadInput5xx, faulttest.Crashes}

// machine describes where the suite ran, for the report's reader.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if name, ok := strings.CutPrefix(l, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	kernel := "unknown kernel"
	if out, err := exec.Command("uname", "-sr").Output(); err == nil {
		kernel = strings.TrimSpace(string(out))
	}
	return fmt.Sprintf("%d × %s, %s, %s", runtime.NumCPU(), cpu, kernel, runtime.Version())
}

func render(r suiteResult, machine string) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("# Reliability\n\n")
	w("What Greffier's fault suite measured on its last run. Regenerate with\n`go run ./cmd/faultreport` (it runs every test named `TestFault…` and rewrites this\nfile); the same tests run in CI with the rest of the suite.\n\n")
	w("- Run: %s UTC, %.0f s\n", r.started.Format("2006-01-02 15:04"), r.elapsed.Seconds())
	w("- Machine: %s\n", machine)
	w("- Command: `%s`\n", r.command)
	w("- Tests: %d passed, %d failed, %d skipped\n\n", r.count("pass"), r.failed(), r.count("skip"))

	w("## Figures\n\n| figure | total | must be |\n|---|---|---|\n")
	w("| faults injected | %g | (what the suite did) |\n", r.total(faulttest.FaultsInjected))
	kills, lost, worst := r.perKill()
	if kills > 0 {
		w("| audio lost per kill -9 | %.0f ms on average, %.0f ms at worst, over %d kills | about a second (the spool's checkpoint) |\n", lost/float64(kills), worst, kills)
	} else {
		w("| audio lost per kill -9 | no kill measured | |\n")
	}
	for _, m := range mustBeZero {
		total := fmt.Sprintf("%g", r.total(m))
		if !r.measured(m) {
			total = "not measured by any test"
		}
		w("| %s | %s | 0 |\n", strings.ReplaceAll(string(m), "_", " "), total)
	}

	w("\n## Tests\n\nSeconds are go test's for the test function itself: a test whose cases run in\nparallel shows little, its cases' time is in the run's total.\n\n")
	w("| package | test | result | seconds | figures |\n|---|---|---|---|---|\n")
	for _, t := range r.tests {
		outcome := t.outcome
		if t.skipWhy != "" {
			outcome += ": " + strings.ReplaceAll(t.skipWhy, "|", "\\|")
		}
		w("| %s | %s | %s | %.1f | %s |\n", strings.TrimPrefix(t.pkg, "github.com/greffier/greffier/"),
			t.name, outcome, t.seconds, r.figuresOf(t))
	}
	return b.String()
}

// measured reports whether any test reported m: a zero nobody measured is
// not a zero.
func (r suiteResult) measured(m faulttest.Metric) bool {
	for _, f := range r.figures {
		if f.Metric == m {
			return true
		}
	}
	return false
}

func (r suiteResult) count(outcome string) int {
	n := 0
	for _, t := range r.tests {
		if t.outcome == outcome {
			n++
		}
	}
	return n
}

// perKill gives how many kills reported lost audio, the sum and the worst.
func (r suiteResult) perKill() (kills int, sum, worst float64) {
	for _, f := range r.figures {
		if f.Metric == faulttest.AudioLostMS {
			kills++
			sum += f.Value
			worst = max(worst, f.Value)
		}
	}
	return kills, sum, worst
}

// figuresOf lists one test's figures, subtests included: counts summed by
// metric, audio lost listed kill by kill (a sum of two kills' losses would
// read as one kill's).
func (r suiteResult) figuresOf(t testResult) string {
	sums := map[faulttest.Metric]float64{}
	var kills []string
	var order []faulttest.Metric
	for _, f := range r.figures {
		if f.Test != t.name && !strings.HasPrefix(f.Test, t.name+"/") {
			continue
		}
		if _, seen := sums[f.Metric]; !seen {
			order = append(order, f.Metric)
		}
		sums[f.Metric] += f.Value
		if f.Metric == faulttest.AudioLostMS {
			kills = append(kills, fmt.Sprintf("%g", f.Value))
		}
	}
	var parts []string
	for _, m := range order {
		v := fmt.Sprintf("%g", sums[m])
		if m == faulttest.AudioLostMS {
			v = strings.Join(kills, " and ")
		}
		parts = append(parts, strings.ReplaceAll(string(m), "_", " ")+" "+v)
	}
	return strings.Join(parts, ", ")
}
