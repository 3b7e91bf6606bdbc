// Command sfubench measures Greffier's SFU under a full meeting: one
// meeting, every participant publishing 20 ms Opus-sized packets with the
// RFC 6464 audio-level extension and every one listening on N slots.
//
// The SFU runs in this process and the load generator (real pion peers) in
// a child process it starts, so getrusage(RUSAGE_SELF) here is the server's
// CPU alone and the heap and RSS deltas are the server's memory alone.
//
//	go run ./cmd/sfubench -participants 150 -duration 30s
//
// With -tap record the SFU's Tap is the full server behind it, wired as
// `greffier serve` wires it (recorder, live path, River, the store on
// SQLite or, with -postgres, Postgres; full.go); -tap both runs the SFU
// alone and the full server in turn, -rounds times, and reports their
// ratio, so that both are measured on the same machine in the same
// minutes. -stages DIR keeps each window's CPU profile there and splits
// the server's CPU by stage (stages.go).
//
//	go run ./cmd/sfubench -participants 150 -duration 20s -tap both -rounds 3 -stages /tmp/prof
//
// It uses the SFU only through its exported API, as cmd/greffier does.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// options are the command's flags, shared by both roles.
type options struct {
	role         string
	participants int
	duration     time.Duration
	warmup       time.Duration
	slots        int
	rotate       time.Duration
	payload      int
	senders      int
	connectPar   int
	cpuProfile   string
	memProfile   string
	jsonOut      bool
	tap          string
	rounds       int
	postgres     string
	dataDir      string
	stagesDir    string
	// Child only.
	url     string
	meeting string
}

// Taps -tap selects.
const (
	tapCount  = "count"
	tapRecord = "record"
	tapBoth   = "both"
)

func main() {
	var o options
	flag.StringVar(&o.role, "role", "server", "internal: server (default) or clients (the child this command starts)")
	flag.IntVar(&o.participants, "participants", 150, "people in the meeting, each publishing and listening")
	flag.DurationVar(&o.duration, "duration", 30*time.Second, "measured time, after warm-up")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "time between all connected and the measurement's start")
	flag.IntVar(&o.slots, "slots", 3, "slots per listener (the SFU's Config.Slots)")
	flag.DurationVar(&o.rotate, "rotate", 2*time.Second, "how often the loudest group of speakers changes (0: never)")
	flag.IntVar(&o.payload, "payload", 60, "Opus payload bytes per packet (60 is 24 kbit/s)")
	flag.IntVar(&o.senders, "senders", 4, "goroutines writing all publishers' packets")
	flag.IntVar(&o.connectPar, "connect-parallel", 8, "connections negotiated at once")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write the server's CPU profile of the measured window here")
	flag.StringVar(&o.memProfile, "memprofile", "", "write the server's heap profile, once everyone is connected, here")
	flag.BoolVar(&o.jsonOut, "json", false, "print the report as JSON")
	flag.StringVar(&o.tap, "tap", tapCount, "count: the SFU alone, its Tap a counter; record: the full server (recorder, live path, River, store); both: each in turn, -rounds times")
	flag.IntVar(&o.rounds, "rounds", 1, "with -tap both: how many pairs of runs")
	flag.StringVar(&o.postgres, "postgres", "", "with the recorder: the store's Postgres URL (default: SQLite in the data directory)")
	flag.StringVar(&o.dataDir, "data", "", "with the recorder: its data directory (default: a temporary one, removed after)")
	flag.StringVar(&o.stagesDir, "stages", "", "keep each window's CPU profile in this directory and split the server's CPU by stage")
	split := flag.String("split", "", "print the stage split of these saved CPU profiles (comma-separated) and exit")
	flag.StringVar(&o.url, "url", "", "internal: the server's base URL (clients role)")
	flag.StringVar(&o.meeting, "meeting", "bench", "internal: the meeting id (clients role)")
	flag.Parse()

	if *split != "" {
		if err := printSplit(os.Stdout, strings.Split(*split, ",")); err != nil {
			fmt.Fprintln(os.Stderr, "sfubench:", err)
			os.Exit(1)
		}
		return
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	ctx := context.Background()
	var err error
	switch o.role {
	case "server":
		if o.tap == tapBoth {
			var c *comparison
			if c, err = runCompare(ctx, o, logger); err == nil {
				err = c.print(os.Stdout, o.jsonOut)
			}
			break
		}
		var rep *report
		if o.stagesDir != "" && o.cpuProfile == "" {
			if err = os.MkdirAll(o.stagesDir, 0o755); err != nil {
				break
			}
			o.cpuProfile = filepath.Join(o.stagesDir, o.tap+".prof")
		}
		if rep, err = runServer(ctx, o, logger); err == nil {
			err = rep.print(os.Stdout, o.jsonOut)
		}
	case "clients":
		err = runClients(ctx, o, os.Getenv(secretEnv), os.Stdout)
	default:
		err = fmt.Errorf("-role %q: use server or clients", o.role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sfubench:", err)
		os.Exit(1)
	}
}

func (o options) validate() error {
	var errs []error
	if o.participants < 2 {
		errs = append(errs, errors.New("-participants: set at least 2"))
	}
	if o.duration <= 0 || o.warmup < 0 {
		errs = append(errs, errors.New("-duration must be positive and -warmup not negative"))
	}
	if o.slots < 1 || o.slots > 16 {
		errs = append(errs, errors.New("-slots: set 1 to 16"))
	}
	if o.payload < 16 || o.payload > 1200 {
		errs = append(errs, errors.New("-payload: set 16 to 1200 bytes"))
	}
	if o.tap != tapCount && o.tap != tapRecord && o.tap != tapBoth {
		errs = append(errs, fmt.Errorf("-tap %q: use count, record or both", o.tap))
	}
	if o.rounds < 1 {
		errs = append(errs, errors.New("-rounds: set at least 1"))
	}
	if o.senders < 1 || o.connectPar < 1 {
		errs = append(errs, errors.New("-senders and -connect-parallel: set at least 1"))
	}
	return errors.Join(errs...)
}

// secretEnv carries the join-token secret to the child, out of its
// command line.
const secretEnv = "SFUBENCH_SECRET"

func newSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
