// Command pipebench measures Greffier's speech pipeline on a whole meeting:
// how long after the end the minutes are ready, and how much CPU Greffier
// spends per second of the speech backend's time.
//
// A simulated meeting (speakers taking turns, saying the fixtures' tone
// speech; the others send Opus silence, or DTX) is driven into the real
// recorder packet by packet, faster than real time on a simulated clock
// (recorder.Config.Now). Everything downstream is the real code, wired as
// cmd/greffier wires it: live decoding and voice activity, WAVs in blob
// storage on disk, the store on SQLite (or Postgres), River jobs, the
// OpenAI client behind its Guard. The backend is transcribetest's double
// answering at a fixed speed, in a child process this command starts, so
// the CPU measured here (getrusage) is Greffier's alone.
//
//	go run ./cmd/pipebench -duration 60m -speakers 10 -speed 20 -slots 4
//
// It is a measuring tool: it must not be imported, and it uses the
// packages only through their exported APIs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"time"
)

// options are the command's flags.
type options struct {
	role       string
	duration   time.Duration
	speakers   int
	turn       time.Duration
	speed      float64
	slots      int
	pace       float64
	dtx        bool
	levels     bool
	poll       time.Duration
	postgres   string
	fixtures   string
	dataDir    string
	baseline   bool
	rerun      bool
	timeout    time.Duration
	cpuProfile string
	jsonOut    bool
}

// Defaults of the flags.
const (
	defaultDuration = 10 * time.Minute
	defaultSpeakers = 10
	defaultTurn     = 20 * time.Second
	defaultSpeed    = 20
	defaultSlots    = 4
	defaultPace     = 10
	defaultTimeout  = 10 * time.Minute
)

func (o options) validate() error {
	var errs []error
	if o.duration < 10*time.Second {
		errs = append(errs, fmt.Errorf("-duration %v: want at least 10s", o.duration))
	}
	if o.speakers < 1 || o.speakers > 500 {
		errs = append(errs, fmt.Errorf("-speakers %d: want 1 to 500", o.speakers))
	}
	if o.turn < time.Second {
		errs = append(errs, fmt.Errorf("-turn %v: want at least 1s", o.turn))
	}
	if o.speed <= 0 {
		errs = append(errs, fmt.Errorf("-speed %g: want a positive multiple of real time", o.speed))
	}
	if o.slots < 1 {
		errs = append(errs, fmt.Errorf("-slots %d: want at least 1", o.slots))
	}
	if o.pace < 0 {
		errs = append(errs, fmt.Errorf("-pace %g: want 0 (as fast as the recorder takes it) or a positive factor", o.pace))
	}
	if o.poll < 0 || o.timeout <= 0 {
		errs = append(errs, errors.New("-poll must not be negative and -timeout must be positive"))
	}
	if o.fixtures == "" {
		errs = append(errs, errors.New("-fixtures: set it to testdata/meeting"))
	}
	return errors.Join(errs...)
}

func main() {
	var o options
	flag.StringVar(&o.role, "role", "bench", "internal: bench (default) or backend (the child this command starts)")
	flag.DurationVar(&o.duration, "duration", defaultDuration, "meeting length (meeting time)")
	flag.IntVar(&o.speakers, "speakers", defaultSpeakers, "participants, each a recorded track, speaking in turn")
	flag.DurationVar(&o.turn, "turn", defaultTurn, "how long each speaker talks before the next one (about)")
	flag.Float64Var(&o.speed, "speed", defaultSpeed, "backend speed: each request answered after audio length / speed")
	flag.IntVar(&o.slots, "slots", defaultSlots, "backend slots: the pipeline's TranscribeWorkers and the Guard's concurrency")
	flag.Float64Var(&o.pace, "pace", defaultPace, "meeting time per wall time (0: as fast as the recorder takes packets)")
	flag.BoolVar(&o.dtx, "dtx", false, "silent participants send Opus DTX (a packet per 400 ms) instead of silence every 20 ms")
	flag.BoolVar(&o.levels, "levels", true, "packets carry RFC 6464 audio levels, as browsers send them (false: Greffier decodes to measure them)")
	flag.DurationVar(&o.poll, "poll", 0, "River's job poll interval (0: River's default, as cmd/greffier)")
	flag.StringVar(&o.postgres, "postgres", "", "Postgres URL; empty: SQLite in the data directory")
	flag.StringVar(&o.fixtures, "fixtures", "testdata/meeting", "directory of script.json and <speaker>.opus")
	flag.StringVar(&o.dataDir, "data", "", "data directory (default: a temporary one, removed)")
	flag.BoolVar(&o.baseline, "baseline", true, "first run the meeting through the recorder alone, to subtract its CPU")
	flag.BoolVar(&o.rerun, "rerun", true, "then re-run the pipeline over the stored tracks (the batch path), to load every slot")
	flag.DurationVar(&o.timeout, "timeout", defaultTimeout, "longest wait for the minutes after the end")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the full pass here")
	flag.BoolVar(&o.jsonOut, "json", false, "print the report as JSON")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	switch o.role {
	case "bench":
		var rep *report
		if rep, err = run(ctx, o, logger); err == nil {
			err = rep.print(os.Stdout, o.jsonOut)
		}
	case "backend":
		err = serveBackend(o.speed, os.Stdin, os.Stdout)
	default:
		err = fmt.Errorf("-role %q: use bench or backend", o.role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pipebench:", err)
		os.Exit(1)
	}
}
