package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/google/pprof/profile"
)

// stage is one part of the server's work, recognised in a CPU profile's
// stacks by the functions it runs.
type stage struct {
	name string
	// funcs are substrings of function names: a sample belongs to the
	// first stage (in stages' order) one of whose funcs is anywhere on its
	// stack, so a stage listed earlier takes what it calls from a later
	// one (the spool's write system calls are spool I/O, not the socket's).
	funcs []string
}

// stages splits the server's CPU by what it is spent on, recording first (most
// specific first), then the SFU's own work, then what serves everyone
// (River, the database, the garbage collector, the scheduler).
var stages = []stage{
	{"checkpoints", []string{"recorder.(*checkpointer)"}},
	{"job inserts (segment stored, job queued)", []string{"jobs.(*Pipeline).storeLiveSpeech", "jobs.(*Pipeline).runLive",
		"jobs.(*LiveTrack).Close"}},
	{"segment cutting", []string{"jobs.(*cutter).cut"}},
	{"levels and voice activity", []string{"jobs.(*cutter)", "jobs.(*LiveTrack).Block", "greffier/diarize."}},
	{"loss stated as gaps (sidecar rewritten, catalog told)", []string{"recorder.(*Recorder).writeSidecar",
		"recorder.writeSidecar", "recorder.(*Writer).recordGap"}},
	{"spool I/O", []string{"recorder.(*spoolFile)"}},
	{"WebM writing", []string{"github.com/at-wat/ebml-go", "recorder.(*Writer).drain", "recorder.(*Writer).run",
		"recorder.(*webmWriter)"}},
	{"sequencer (recorder's WriteRTP)", []string{"recorder.(*sequencer)", "recorder.(*Writer).WriteRTP"}},
	{"tap (SFU to recorder)", []string{"sfu.(*publishedTrack).record", "main.(*keptTap)",
		"meeting.(*gatedTrack)"}},
	{"event log (speaking turns stored)", []string{"meeting.(*EventLog)"}},
	{"other recorder and pipeline", []string{"greffier/recorder.", "greffier/jobs.", "greffier/meeting."}},
	{"SRTP receive (decrypt)", []string{"srtp/v3.(*Context).DecryptRTP"}},
	{"SFU forwarding (levels, slots, encrypt, send)", []string{"sfu.(*publishedTrack).handle", "sfu.(*sender)",
		"sfu.(*outbound)", "sfu.(*room)"}},
	{"SFU socket read and the rest of the SFU", []string{"greffier/sfu."}},
	{"pion (ICE, DTLS, RTCP)", []string{"github.com/pion/"}},
	{"River running jobs (segments' transcription)", []string{"river/internal/jobexecutor", "river/internal/jobcompleter"}},
	{"River polling and maintenance", []string{"github.com/riverqueue/"}},
	{"database (other)", []string{"modernc.org/sqlite", "github.com/jackc/", "database/sql"}},
	{"garbage collector", []string{"runtime.gcBgMarkWorker", "runtime.gcAssist", "runtime.bgsweep", "runtime.bgscavenge",
		"runtime.mallocgc"}},
	{"scheduler and other runtime", []string{"runtime."}},
}

// stageShare is one stage's share of a profile.
type stageShare struct {
	Stage   string  `json:"stage"`
	Share   float64 `json:"share"`     // of the profile's CPU samples
	PerRxUS float64 `json:"us_per_rx"` // server CPU per received packet, by that share
}

// splitProfile reads a CPU profile and splits its samples by stage.
// Samples in no stage are "other".
func splitProfile(path string) (map[string]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("stage split: %w", err)
	}
	defer f.Close()
	return splitProfileFrom(f)
}

func splitProfileFrom(r io.Reader) (map[string]float64, error) {
	p, err := profile.Parse(r)
	if err != nil {
		return nil, fmt.Errorf("stage split: %w", err)
	}
	vi := len(p.SampleType) - 1 // cpu nanoseconds
	var total float64
	shares := map[string]float64{}
	for _, s := range p.Sample {
		v := float64(s.Value[vi])
		total += v
		shares[classify(s)] += v
	}
	if total > 0 {
		for k := range shares {
			shares[k] /= total
		}
	}
	return shares, nil
}

func classify(s *profile.Sample) string {
	for _, st := range stages {
		for _, loc := range s.Location {
			for _, l := range loc.Line {
				if l.Function == nil {
					continue
				}
				for _, fn := range st.funcs {
					if strings.Contains(l.Function.Name, fn) {
						return st.name
					}
				}
			}
		}
	}
	return "other"
}

// printSplit prints the stage split of saved CPU profiles, one column
// each: -split a.prof,b.prof.
func printSplit(w io.Writer, paths []string) error {
	cols := make([]map[string]float64, len(paths))
	for i, p := range paths {
		var err error
		if cols[i], err = splitProfile(p); err != nil {
			return err
		}
	}
	for _, st := range append(stages, stage{name: "other"}) {
		if _, err := fmt.Fprintf(w, "%-55s", st.name); err != nil {
			return err
		}
		for _, c := range cols {
			fmt.Fprintf(w, " %6.2f%%", 100*c[st.name])
		}
		fmt.Fprintln(w)
	}
	return nil
}
