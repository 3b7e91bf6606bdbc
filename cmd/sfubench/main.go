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
// It is a measuring tool: it must not import recorder, store or api, and
// it uses the SFU only through its exported API, as cmd/greffier does.
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
	// Child only.
	url string
}

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
	flag.StringVar(&o.url, "url", "", "internal: the server's base URL (clients role)")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	ctx := context.Background()
	var err error
	switch o.role {
	case "server":
		var rep *report
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
