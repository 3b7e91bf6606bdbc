package main

import (
	"debug/elf"
	"debug/gosym"
	"os"
	"strings"
	"testing"

	"github.com/google/pprof/profile"
	"github.com/stretchr/testify/require"
)

// formerFuncs are stage patterns kept only to split profiles taken before
// the code they name was removed or renamed (docs/profiles/2026-12-06-
// recording): ebml-go wrote the recorder's WebM until then, and
// writeSidecar was a function before the spool was encrypted.
var formerFuncs = map[string]bool{"github.com/at-wat/ebml-go": true, "recorder.writeSidecar": true}

// TestEveryStageNamesCodeThatExists guards the stage split against
// renames: a stage whose functions no longer exist would silently read 0%
// and its CPU would land in a coarser stage. Every pattern must match a
// function linked into this binary, which holds the whole server sfubench
// runs.
func TestEveryStageNamesCodeThatExists(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	f, err := elf.Open(exe)
	if err != nil {
		t.Skipf("not an ELF binary (%v): the function check reads its pclntab", err)
	}
	defer f.Close()
	// go test strips the symbol table; the runtime's own table of
	// functions (what profiles are symbolized from) is always there.
	pcln, text := f.Section(".gopclntab"), f.Section(".text")
	require.NotNil(t, pcln)
	require.NotNil(t, text)
	data, err := pcln.Data()
	require.NoError(t, err)
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr))
	require.NoError(t, err)
	var names []string
	for _, fn := range tab.Funcs {
		names = append(names, fn.Name)
	}
	require.NotEmpty(t, names)
	for _, st := range stages {
		for _, fn := range st.funcs {
			if formerFuncs[fn] {
				continue
			}
			// This binary links sfubench as its package, not as main.
			want := fn
			if rest, ok := strings.CutPrefix(fn, "main."); ok {
				want = "cmd/sfubench." + rest
			}
			found := false
			for _, n := range names {
				if strings.Contains(n, want) {
					found = true
					break
				}
			}
			require.True(t, found, "stage %q: no function matches %q", st.name, fn)
		}
	}
}

// TestClassifyTakesTheMostSpecificStage checks the split's rule on stacks
// the full server has: a sample goes to the first stage, in stages' order,
// with a function on its stack.
func TestClassifyTakesTheMostSpecificStage(t *testing.T) {
	const g = "github.com/greffier/greffier/"
	sample := func(stack ...string) *profile.Sample {
		s := &profile.Sample{}
		for _, fn := range stack { // leaf first, as in a profile
			s.Location = append(s.Location, &profile.Location{Line: []profile.Line{{Function: &profile.Function{Name: fn}}}})
		}
		return s
	}
	for _, tc := range []struct {
		stack []string
		want  string
	}{
		{[]string{"syscall.Syscall", g + "recorder.(*spoolFile).flushLocked", g + "recorder.(*Writer).run"}, "spool I/O"},
		{[]string{g + "recorder.(*webmWriter).block", g + "recorder.(*Writer).drain", g + "recorder.(*Writer).run"}, "WebM writing"},
		{[]string{g + "diarize.(*VoiceDetector).WriteLevel", g + "jobs.(*LiveTrack).Block", g + "recorder.(*Writer).drain"},
			"levels and voice activity"},
		{[]string{g + "recorder.(*sequencer).push", g + "recorder.(*Writer).WriteRTP", g + "meeting.(*gatedTrack).WriteRTP",
			g + "sfu.(*publishedTrack).record"}, "sequencer (recorder's WriteRTP)"},
		{[]string{"sync/atomic.(*Pointer[...]).Load", g + "meeting.(*gatedTrack).WriteRTP"}, "tap (SFU to recorder)"},
		{[]string{"os.(*File).Sync", g + "recorder.(*Recorder).writeSidecar", g + "recorder.(*Writer).drain"},
			"loss stated as gaps (sidecar rewritten, catalog told)"},
		{[]string{"modernc.org/sqlite.(*conn).exec", g + "jobs.(*Pipeline).storeLiveSpeech"},
			"job inserts (segment stored, job queued)"},
		{[]string{"modernc.org/sqlite.(*conn).query", "github.com/riverqueue/river/internal/maintenance.(*JobScheduler).runOnce"},
			"River polling and maintenance"},
		{[]string{"runtime.futex", "runtime.findRunnable"}, "scheduler and other runtime"},
	} {
		require.Equal(t, tc.want, classify(sample(tc.stack...)), "%v", tc.stack)
	}
}
