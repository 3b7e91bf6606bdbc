package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/faulttest"
)

func TestReportAddsUpFiguresAndFlagsWhatMustBeZero(t *testing.T) {
	t.Parallel()
	r := suiteResult{
		command: "go test -run ^TestFault ./...",
		started: time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC),
		elapsed: 90 * time.Second,
		tests: []testResult{
			{pkg: "github.com/greffier/greffier/cmd/greffier", name: "TestFaultKill", outcome: "pass", seconds: 12},
			{pkg: "github.com/greffier/greffier/api", name: "TestFaultHostile", outcome: "fail", seconds: 3},
		},
		figures: []faulttest.Line{
			{Test: "TestFaultKill", Metric: faulttest.FaultsInjected, Value: 2},
			{Test: "TestFaultKill/sqlite", Metric: faulttest.AudioLostMS, Value: 400},
			{Test: "TestFaultKill/postgres", Metric: faulttest.AudioLostMS, Value: 800},
			{Test: "TestFaultHostile", Metric: faulttest.BadInput5xx, Value: 3},
		},
	}
	require.Equal(t, 1, r.failed())
	require.Equal(t, 3.0, r.total(faulttest.BadInput5xx))
	doc := render(r, "test machine")
	require.Contains(t, doc, "| audio lost per kill -9 | 600 ms on average, 800 ms at worst, over 2 kills |")
	require.Contains(t, doc, "| bad input 5xx | 3 | 0 |")
	require.Contains(t, doc, "| crashes | not measured by any test | 0 |")
	require.Contains(t, doc, "1 passed, 1 failed, 0 skipped")
	require.Contains(t, doc, "| cmd/greffier | TestFaultKill | pass | 12.0 | faults injected 2, audio lost ms per kill 400 and 800 |")
	require.True(t, strings.HasPrefix(doc, "# Reliability\n"))
}
