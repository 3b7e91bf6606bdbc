package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/rtp"

	"github.com/greffier/greffier/internal/token"
	"github.com/greffier/greffier/meeting"
	"github.com/greffier/greffier/sfu"
)

// benchMeetings admits everyone to any meeting.
type benchMeetings struct{ zero time.Time }

func (m benchMeetings) Join(context.Context, token.Claims) (time.Time, error) {
	return m.zero, nil
}
func (benchMeetings) Leave(context.Context, string, string) error { return nil }

// countTap stands in for the recorder: it counts, so the measurement is
// the SFU's cost and not the disk's.
type countTap struct{ packets, reports, tracks atomic.Uint64 }

func (c *countTap) OpenTrack(context.Context, sfu.TrackInfo) (sfu.TrackTap, error) {
	c.tracks.Add(1)
	return countTrack{c}, nil
}

type countTrack struct{ c *countTap }

func (t countTrack) WriteRTP(*rtp.Packet)                { t.c.packets.Add(1) }
func (t countTrack) WriteSenderReport(time.Time, uint32) { t.c.reports.Add(1) }
func (countTrack) Close(context.Context) error           { return nil }

func (c *countTap) snapshot() (packets, reports, tracks uint64) {
	return c.packets.Load(), c.reports.Load(), c.tracks.Load()
}

// sample is the server's resources at one instant.
type sample struct {
	at        time.Time
	cpu       time.Duration // user + system of this process
	heap      uint64        // live heap after a GC
	rss       uint64
	stats     sfu.Stats
	goroutine int
	udpDrops  uint64 // the whole machine's, from /proc/net/snmp
}

func takeSample(s *sfu.SFU, gc bool) sample {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	out := sample{at: time.Now(), cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		rss: rss(), goroutine: runtime.NumGoroutine(), udpDrops: udpRcvbufErrors()}
	if s != nil {
		out.stats = s.Stats()
	}
	if gc {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		out.heap = ms.HeapAlloc
	}
	return out
}

// rss reads VmRSS from /proc; 0 where there is no /proc.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// udpRcvbufErrors is the kernel's count of UDP datagrams dropped because
// a socket's receive buffer was full, machine-wide; 0 without /proc.
func udpRcvbufErrors() uint64 {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0
	}
	var names []string
	for line := range strings.Lines(string(b)) {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		for i, name := range names {
			if name == "RcvbufErrors" && i < len(fields) {
				n, _ := strconv.ParseUint(fields[i], 10, 64)
				return n
			}
		}
	}
	return 0
}

// runServer runs the SFU with o.tap, starts the clients' process and
// reports.
func runServer(ctx context.Context, o options, logger *slog.Logger) (*report, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	return runOne(ctx, o, o.tap, o.cpuProfile, logger)
}

// runOne measures one meeting with the given tap: "count" (the SFU alone)
// or "record" (the full server behind it). A CPU profile of the window is
// written to profPath, if set, and split by stage.
func runOne(ctx context.Context, o options, mode, profPath string, logger *slog.Logger) (*report, error) {
	secret := newSecret()
	signer, err := token.NewSigner([]byte(secret))
	if err != nil {
		return nil, err
	}
	runtime.GC()
	base := takeSample(nil, true)
	counter := &countTap{}
	var (
		tap      sfu.Tap = counter
		meetings sfu.Meetings
		observer sfu.Observer
		full     *fullServer
	)
	meetingID := "bench"
	meetings = benchMeetings{zero: time.Now()}
	if mode == tapRecord {
		if full, err = openFull(ctx, o, logger); err != nil {
			return nil, err
		}
		defer full.close(context.WithoutCancel(ctx), logger)
		tap, meetings, observer, meetingID = full.tap, meeting.NewJoins(full.store, logger), full.events, full.meeting.ID
	}
	s, err := sfu.New(sfu.Config{UDPAddr: "127.0.0.1:0", MaxParticipants: o.participants, Slots: o.slots, Observer: observer},
		meetings, signer, tap, logger)
	if err != nil {
		return nil, err
	}
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/whip", s.WHIPHandler())
	mux.Handle("/v1/whip/", s.WHIPHandler())
	mux.Handle("/v1/whep", s.WHEPHandler())
	mux.Handle("/v1/whep/", s.WHEPHandler())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	stopped := false
	stopSFU := func() {
		if stopped {
			return
		}
		stopped = true
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		_ = srv.Shutdown(sctx)
		if err := s.Stop(sctx); err != nil {
			logger.Error("stopping the SFU", "err", err)
		}
	}
	defer stopSFU()
	// The harness's own buffer exists before the empty sample, so that
	// the difference is the SFU's alone.
	scanBuf := make([]byte, 1<<20)
	empty := takeSample(s, true)

	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own binary to start the clients: %w", err)
	}
	cmd := exec.CommandContext(ctx, self, "-role=clients", "-url=http://"+ln.Addr().String(), "-meeting="+meetingID,
		"-participants="+strconv.Itoa(o.participants), "-duration="+o.duration.String(), "-warmup="+o.warmup.String(),
		"-slots="+strconv.Itoa(o.slots), "-rotate="+o.rotate.String(), "-payload="+strconv.Itoa(o.payload),
		"-senders="+strconv.Itoa(o.senders), "-connect-parallel="+strconv.Itoa(o.connectPar))
	cmd.Env = append(os.Environ(), secretEnv+"="+secret)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("clients' stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the clients' process: %w", err)
	}
	rep := report{Tap: mode, Participants: o.participants, Slots: o.slots, PayloadBytes: o.payload,
		GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(), BaseRSS: base.rss}
	if full != nil {
		rep.Database = string(full.store.Dialect())
	}
	var connected, start, stop, end sample
	var prof *os.File
	sc := bufio.NewScanner(out)
	sc.Buffer(scanBuf, 64<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "connected":
			connected = takeSample(s, true)
			if o.memProfile != "" {
				if err := writeHeapProfile(o.memProfile); err != nil {
					return nil, err
				}
			}
			fmt.Fprintf(os.Stderr, "sfubench: %d participants connected (tap %s)\n", o.participants, mode)
		case line == "start":
			if profPath != "" {
				if prof, err = os.Create(profPath); err == nil {
					err = pprof.StartCPUProfile(prof)
				}
				if err != nil {
					return nil, fmt.Errorf("-cpuprofile: %w", err)
				}
			}
			start = takeSample(s, false)
			fmt.Fprintf(os.Stderr, "sfubench: measuring for %s\n", o.duration)
		case line == "stop":
			stop = takeSample(s, false)
			if prof != nil {
				pprof.StopCPUProfile()
				_ = prof.Close()
			}
			// Everything the tracks hold after the window, the recorder's
			// and the live path's buffers at their fullest included.
			end = takeSample(s, true)
			if profPath != "" {
				if err := writeHeapProfile(strings.TrimSuffix(profPath, ".prof") + ".heap"); err != nil {
					return nil, err
				}
			}
		case strings.HasPrefix(line, "result "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "result ")), &rep.Clients); err != nil {
				return nil, fmt.Errorf("clients' result: %w", err)
			}
		}
	}
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("clients' process: %w", err)
	}
	if rep.Clients == nil || stop.at.IsZero() {
		return nil, errors.New("the clients' process ended without a result")
	}
	rep.fill(empty, connected, start, stop, end)
	pk, srs, tracks := counter.snapshot()
	rep.TapPackets, rep.TapSenderReports, rep.TapTracks = pk, srs, tracks
	if full != nil {
		// Every track closes, and is stored, as when a meeting ends.
		stopSFU()
		final := s.Stats()
		n, rs := full.tap.recorded()
		rep.RecordedPackets, rep.RecorderLost = rs.Written, rs.Lost
		rep.RecorderDropped = rs.Late + rs.Duplicate + rs.Garbage + rs.BadTimestamp + rs.Overflow
		rep.RecorderLate, rep.RecorderOverflow = rs.Late, rs.Overflow
		rep.TapTracks = uint64(n)
		rep.TapPackets = final.PacketsReceived - final.DroppedTooLarge - final.DroppedRate - final.DroppedMalformed - final.DroppedSRTP
	}
	if profPath != "" {
		shares, err := splitProfile(profPath)
		if err != nil {
			return nil, err
		}
		rep.setStages(shares)
	}
	return &rep, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("-memprofile: %w", err)
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		_ = f.Close()
		return fmt.Errorf("-memprofile: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("-memprofile: %w", err)
	}
	return nil
}
