package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/rtp"

	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/jobs"
	"github.com/greffier/greffier/recorder"
	"github.com/greffier/greffier/transcribe"
)

// simClock is the meeting's clock: the driver moves it one tick per round
// of packets, so the recorder places packets as if they arrived in real
// time however fast they are sent.
type simClock struct{ ns atomic.Int64 }

func (c *simClock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *simClock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func newSimClock(t time.Time) *simClock { c := &simClock{}; c.set(t); return c }

// cpuTime is the process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// phase is what one pass over the meeting cost.
type phase struct {
	MeetingWall time.Duration `json:"meeting_wall"`
	MeetingCPU  time.Duration `json:"meeting_cpu"`
	EndWall     time.Duration `json:"end_wall"` // end call to minutes ready (baseline: to tracks stored)
	EndCPU      time.Duration `json:"end_cpu"`
	Packets     int64         `json:"packets"`
	Dropped     int64         `json:"dropped"` // recorder: late, duplicate, garbage, bad timestamp, overflow
}

// run measures the pipeline on one simulated meeting: optionally first
// with the recorder alone (the baseline), then with everything.
func run(ctx context.Context, o options, logger *slog.Logger) (*report, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	voices, err := loadVoices(o.fixtures)
	if err != nil {
		return nil, err
	}
	m := newMeeting(voices, o.speakers, o.duration, o.turn)
	if len(m.turns) == 0 {
		return nil, fmt.Errorf("-duration %v holds no whole turn of -turn %v", o.duration, o.turn)
	}
	dir := o.dataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "pipebench"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
	}
	rep := &report{Options: o.summary(), Meeting: m.summary(o)}
	if o.baseline {
		fmt.Fprintln(os.Stderr, "pipebench: baseline pass (recorder alone)")
		b, err := runBaseline(ctx, o, m, filepath.Join(dir, "baseline"), logger)
		if err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		rep.Baseline = &b
	}
	backend, err := startBackend(ctx, o.speed)
	if err != nil {
		return nil, err
	}
	defer backend.stop()
	fmt.Fprintln(os.Stderr, "pipebench: full pass (recorder, live pipeline, backend)")
	if err := runFull(ctx, o, m, filepath.Join(dir, "full"), backend, logger, rep); err != nil {
		return nil, err
	}
	rep.fill(o)
	return rep, nil
}

// env is one pass's store, blobs and clock.
type env struct {
	st      *store.Store
	blobs   blob.Store
	clock   *simClock
	meeting store.Meeting
	zero    time.Time
}

func openEnv(ctx context.Context, o options, m *meeting, dir string) (*env, error) {
	e := &env{clock: newSimClock(time.Now().Truncate(time.Millisecond))}
	var err error
	if e.st, err = store.Open(ctx, store.Config{PostgresURL: o.postgres, SQLitePath: filepath.Join(dir, "greffier.db"),
		Now: e.clock.Now}); err != nil {
		return nil, err
	}
	if e.blobs, err = blob.NewDisk(filepath.Join(dir, "blobs")); err != nil {
		e.st.Close()
		return nil, fmt.Errorf("open blob storage: %w", err)
	}
	if e.meeting, err = e.st.CreateMeeting(ctx, "pipebench", "en"); err != nil {
		e.st.Close()
		return nil, err
	}
	for s := range m.speakers {
		if e.zero, err = e.st.Join(ctx, e.meeting.ID, identity(s), fmt.Sprintf("Speaker %d", s+1)); err != nil {
			e.st.Close()
			return nil, err
		}
	}
	return e, nil
}

func identity(s int) string { return fmt.Sprintf("spk%02d", s+1) }

func runBaseline(ctx context.Context, o options, m *meeting, dir string, logger *slog.Logger) (phase, error) {
	var ph phase
	e, err := openEnv(ctx, o, m, dir)
	if err != nil {
		return ph, err
	}
	defer e.st.Close()
	rec, err := recorder.New(recorderConfig(o, dir, e.clock, nil), e.blobs, e.st, logger)
	if err != nil {
		return ph, err
	}
	runtime.GC()
	cpu0, wall0 := cpuTime(), time.Now()
	writers, err := drive(ctx, o, m, e, rec, &ph)
	if err != nil {
		return ph, err
	}
	cpu1, wall1 := cpuTime(), time.Now()
	if err := closeAll(ctx, writers); err != nil {
		return ph, err
	}
	ph.MeetingWall, ph.MeetingCPU = wall1.Sub(wall0), cpu1-cpu0
	ph.EndWall, ph.EndCPU = time.Since(wall1), cpuTime()-cpu1
	return ph, nil
}

func runFull(ctx context.Context, o options, m *meeting, dir string, backend *backendProc, logger *slog.Logger, rep *report) error {
	e, err := openEnv(ctx, o, m, dir)
	if err != nil {
		return err
	}
	defer e.st.Close()
	// Wired as cmd/greffier wires it: the OpenAI client behind a Guard
	// whose concurrency is the transcription workers'.
	openai, err := transcribe.NewOpenAI(transcribe.OpenAIConfig{BaseURL: backend.url + "/v1", Logger: logger})
	if err != nil {
		return err
	}
	tr := transcribe.NewGuard(openai, transcribe.GuardConfig{Name: "transcribe", Concurrency: o.slots, Logger: logger})
	p, err := jobs.New(ctx, jobs.Config{TranscribeWorkers: o.slots, PollInterval: o.poll},
		jobs.Deps{Store: e.st, Blobs: e.blobs, Transcriber: tr, Logger: logger})
	if err != nil {
		return err
	}
	if err := p.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := p.Stop(sctx); err != nil {
			logger.Error("stop the pipeline", "err", err)
		}
	}()
	rec, err := recorder.New(recorderConfig(o, dir, e.clock,
		func(t store.Track, _ time.Duration) recorder.Listener { return p.Listen(t) }),
		e.blobs, jobs.NewCatalog(p), logger)
	if err != nil {
		return err
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	var ph phase
	runtime.GC()
	cpu0, wall0 := cpuTime(), time.Now()
	writers, err := drive(ctx, o, m, e, rec, &ph)
	if err != nil {
		return err
	}
	cpu1, wall1 := cpuTime(), time.Now()
	// The backlog the end finds: segments closed but not yet transcribed.
	before, err := e.st.Progress(ctx, e.meeting.ID)
	if err != nil {
		return err
	}
	rep.BacklogAtEnd = before.Segments - before.SegmentsTranscribed - before.SegmentsFailed

	// The end of the meeting as cmd/greffier does it: the pipeline's
	// EndMeeting, then media (the SFU closes every track's writer, which
	// stores the recordings; the minutes do not wait for that).
	if _, err := p.EndMeeting(ctx, e.meeting.ID); err != nil {
		return fmt.Errorf("end meeting: %w", err)
	}
	rep.EndCall = time.Since(wall1)
	closed := make(chan error, 1)
	go func() { closed <- closeAll(ctx, writers) }()
	final, err := waitReady(ctx, e.st, e.meeting.ID, o.timeout)
	readyWall, readyCPU := time.Since(wall1), cpuTime()-cpu1
	if cerr := <-closed; cerr != nil {
		return cerr
	}
	rep.CloseTracks = time.Since(wall1)
	if err != nil {
		return err
	}
	ph.MeetingWall, ph.MeetingCPU = wall1.Sub(wall0), cpu1-cpu0
	ph.EndWall, ph.EndCPU = readyWall, readyCPU
	rep.Full = ph
	rep.State = string(final.State)

	segs, err := e.st.SpeechSegments(ctx, e.meeting.ID)
	if err != nil {
		return err
	}
	for _, s := range segs {
		rep.Segments++
		rep.SegmentAudio += time.Duration(s.EndMS-s.AudioStartMS) * time.Millisecond
		switch s.Status {
		case store.SegmentTranscribed:
			rep.Transcribed++
		case store.SegmentFailed:
			rep.Failed++
		}
		rep.Words += len(s.Words)
	}
	if rep.Backend, err = backend.stats(ctx); err != nil {
		return err
	}
	if o.rerun {
		if rep.Rerun, err = rerun(ctx, o, e.st, p, backend, e.meeting.ID); err != nil {
			return fmt.Errorf("re-run: %w", err)
		}
	}
	return nil
}

// rerun runs the batch path over the stored recordings (Pipeline.Rerun):
// every segment becomes transcription work at about the same time, which
// shows whether it spreads over every backend slot.
func rerun(ctx context.Context, o options, st *store.Store, p *jobs.Pipeline, backend *backendProc, meetingID string) (*rerunResult, error) {
	fmt.Fprintln(os.Stderr, "pipebench: re-run (batch path over the stored tracks)")
	runtime.GC()
	cpu0, wall0 := cpuTime(), time.Now()
	if _, err := p.Rerun(ctx, meetingID); err != nil {
		return nil, err
	}
	if _, err := waitReady(ctx, st, meetingID, o.timeout); err != nil {
		return nil, err
	}
	r := &rerunResult{Wall: time.Since(wall0), CPU: cpuTime() - cpu0}
	segs, err := st.SpeechSegments(ctx, meetingID)
	if err != nil {
		return nil, err
	}
	for _, s := range segs {
		r.Segments++
		if s.Status == store.SegmentTranscribed {
			r.Transcribed++
		}
		r.Words += len(s.Words)
	}
	if r.Backend, err = backend.stats(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// recorderConfig is the recorder's default configuration on the simulated
// clock. Its periodic work runs on real-time tickers, so at -pace P the
// intervals are divided by P: each checkpoint then covers the same meeting
// time (2 minutes of audio) and each flush the same second as in a real
// meeting. Left alone, one checkpoint would remux P times more audio, and
// one of them in flight when the meeting ends delays Close by as much.
func recorderConfig(o options, dir string, clock *simClock, listen func(store.Track, time.Duration) recorder.Listener) recorder.Config {
	cfg := recorder.Config{SpoolDir: filepath.Join(dir, "spool"), Now: clock.Now, Listen: listen}
	if o.pace > 0 {
		cfg.CheckpointInterval = time.Duration(float64(recorder.DefaultCheckpointInterval) / o.pace)
		cfg.FlushInterval = time.Duration(float64(recorder.DefaultFlushInterval) / o.pace)
	}
	return cfg
}

// drive sends the meeting's packets to one writer per speaker, moving the
// clock a tick per round. It keeps each writer's queue short (the
// recorder drops rather than block when its spool goroutine falls 256
// packets behind) and, with -pace, no faster than pace × real time.
// levelExtID is the audio-level header extension's id in the packets.
const levelExtID = 1

func drive(ctx context.Context, o options, m *meeting, e *env, rec *recorder.Recorder, ph *phase) ([]*recorder.Writer, error) {
	writers := make([]*recorder.Writer, m.speakers)
	for s := range writers {
		tr := recorder.Track{MeetingID: e.meeting.ID, Identity: identity(s), SSRC: uint32(1000 + s),
			PayloadType: 111, ClockZero: e.zero, FirstPacketAt: e.zero}
		if o.levels {
			tr.AudioLevelID = levelExtID
		}
		w, err := rec.Open(ctx, tr)
		if err != nil {
			closeAll(ctx, writers[:s]) //nolint:errcheck // already failing
			return nil, err
		}
		writers[s] = w
	}
	var (
		seq   = make([]uint16, m.speakers)
		sent  = make([]int64, m.speakers)
		pkt   = rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111}}
		ti    = -1
		start = time.Now()
	)
	const round = 50 // ticks between pacing checks: one second of meeting
	for t := range m.ticks {
		e.clock.set(e.zero.Add(time.Duration(t) * tick))
		for ti+1 < len(m.turns) && m.turns[ti+1].start <= t {
			ti++
		}
		for s, w := range writers {
			p := m.packet(s, t, ti, o.dtx)
			if p == nil {
				continue
			}
			pkt.SSRC, pkt.SequenceNumber, pkt.Timestamp, pkt.Payload = uint32(1000+s), seq[s], uint32(t*960), p
			if o.levels {
				if err := pkt.SetExtension(levelExtID, []byte{m.level(s, p)}); err != nil {
					return writers, err
				}
			}
			seq[s]++
			sent[s]++
			w.WriteRTP(&pkt)
		}
		if t%round != round-1 {
			continue
		}
		if err := keepUp(ctx, writers, sent); err != nil {
			return writers, err
		}
		if o.pace > 0 {
			ahead := time.Until(start.Add(time.Duration(float64(time.Duration(t+1)*tick) / o.pace)))
			if err := wait(ctx, ahead); err != nil {
				return writers, err
			}
		}
	}
	for s, w := range writers {
		st := w.Stats()
		ph.Packets += sent[s]
		ph.Dropped += st.Late + st.Duplicate + st.Garbage + st.BadTimestamp + st.Overflow
	}
	return writers, nil
}

// maxBehind is how many packets a writer may hold unwritten before the
// driver waits for it: well under the recorder's queue of 256.
const maxBehind = 100

// keepUp waits until every writer has written all but maxBehind of the
// packets it was sent.
func keepUp(ctx context.Context, writers []*recorder.Writer, sent []int64) error {
	deadline := time.Now().Add(time.Minute)
	for s, w := range writers {
		for sent[s]-w.Stats().Written > maxBehind {
			if time.Now().After(deadline) {
				return fmt.Errorf("writer of %s is %d packets behind after a minute", identity(s), sent[s]-w.Stats().Written)
			}
			if err := wait(ctx, time.Millisecond); err != nil {
				return err
			}
		}
	}
	return nil
}

func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// closeAll closes every writer at once, as the SFU closes a meeting's
// tracks when it ends.
func closeAll(ctx context.Context, writers []*recorder.Writer) error {
	errs := make([]error, len(writers))
	var wg sync.WaitGroup
	for i, w := range writers {
		wg.Go(func() { errs[i] = w.Close(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitReady polls the meeting until its minutes are ready (or it failed).
func waitReady(ctx context.Context, st *store.Store, meetingID string, timeout time.Duration) (store.Meeting, error) {
	deadline := time.Now().Add(timeout)
	for {
		m, err := st.Meeting(ctx, meetingID)
		if err != nil {
			return m, err
		}
		switch m.State {
		case store.MeetingReady, store.MeetingIncomplete:
			return m, nil
		case store.MeetingFailed:
			return m, fmt.Errorf("meeting failed: %s", m.Failure)
		}
		if time.Now().After(deadline) {
			return m, fmt.Errorf("minutes not ready %v after the end (state %s)", timeout, m.State)
		}
		if err := wait(ctx, 5*time.Millisecond); err != nil {
			return m, err
		}
	}
}
