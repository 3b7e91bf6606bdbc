// Package faulttest lets the tests of the fault suite report what they
// measured, so that one command (scripts/reliability.sh) can write
// docs/reliability.md from a real run instead of from memory.
//
// The suite is every test whose name starts with TestFault. Each calls
// Report for the figures it observed; when GREFFIER_FAULT_REPORT names a
// file, Report appends one JSON line to it, otherwise it only logs. Test
// processes run in parallel, so each line is written with one O_APPEND write.
package faulttest

import (
	"encoding/json"
	"os"
	"testing"
)

// EnvReport names the file the figures are appended to.
const EnvReport = "GREFFIER_FAULT_REPORT"

// Metric is one figure of docs/reliability.md.
type Metric string

// The figures the reliability report adds up. All but the first two must be
// zero: a kill may lose the audio not yet on disk, and every injected fault
// is counted, but nothing else may be lost, stuck, answered with a 5xx or
// crash.
const (
	// FaultsInjected counts faults a test caused (a kill, a full disk, a
	// backend answering 500, one hostile request).
	FaultsInjected Metric = "faults_injected"
	// AudioLostMS is recorded audio lost to one kill -9, in milliseconds.
	AudioLostMS Metric = "audio_lost_ms_per_kill"
	// RecordingsLost counts tracks that were published but neither stored
	// nor stated as failed where the user looks.
	RecordingsLost Metric = "recordings_lost"
	// WordsLost counts spoken words missing from minutes that claim to be
	// complete, or missing without a stated gap.
	WordsLost Metric = "words_lost"
	// JobsStuck counts pipeline jobs still running or waiting when the
	// test expected the meeting to have moved on.
	JobsStuck Metric = "jobs_stuck"
	// BadInput5xx counts 5xx answers to hostile or malformed requests.
	BadInput5xx Metric = "bad_input_5xx"
	// Crashes counts processes that died without being killed.
	Crashes Metric = "crashes"
)

// Line is one reported figure.
type Line struct {
	Test   string  `json:"test"`
	Metric Metric  `json:"metric"`
	Value  float64 `json:"value"`
}

// Report logs a figure and, when the suite is run for the report, appends it
// to the report file.
func Report(t testing.TB, m Metric, v float64) {
	t.Helper()
	t.Logf("fault figure %s = %g", m, v)
	path := os.Getenv(EnvReport)
	if path == "" {
		return
	}
	b, err := json.Marshal(Line{Test: t.Name(), Metric: m, Value: v})
	if err != nil {
		t.Fatalf("faulttest: %v", err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatalf("faulttest: open %s: %v", path, err)
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		t.Fatalf("faulttest: write %s: %v", path, err)
	}
}
