package recorder

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pion/rtp"

	"github.com/greffier/greffier/internal/store"
)

// ErrNoAudio is returned by Close for a track that received no usable
// packet; the track is recorded as failed with that reason and no blob.
var ErrNoAudio = errors.New("track received no audio")

// Listener hears a track's audio while it is recorded: the pipeline's live
// path finds speech in it before the meeting ends. It gets exactly the
// blocks written to the WebM, at the times written, so what it finds
// matches a later decode of the file.
type Listener interface {
	// Block is one Opus packet at ms on the track's clock, with the RFC
	// 6464 audio level its sender measured (0 loudest to 127 silence, -dBov),
	// or -1 when the packet carried none. It is called from the track's
	// writer goroutine: it must be quick, must not block on the network,
	// and must not retain opus.
	Block(ms int64, opus []byte, level int)
	// Close says the track ended; complete is false when writing failed
	// and the file may hold less than the Listener heard.
	Close(complete bool)
}

// Writer records one track. WriteRTP may be called from one goroutine (the
// SFU's read loop) while Close is called from another.
type Writer struct {
	r         *Recorder
	sc        sidecar
	spoolPath string
	sidePath  string

	mu  sync.Mutex // guards seq, sr, tl, timing and closed; held briefly, never across I/O
	seq *sequencer
	sr  srClock
	// srResyncs is seq's Resyncs count the fit in sr belongs to: a sender
	// restart starts a new RTP timeline, and the fit with it.
	srResyncs int64
	tl        timeline
	// wallStart is the track's start on our wall clock (ClockZero +
	// StartMS), unix ns, once the first block is placed.
	wallStart int64
	closed    bool
	timing    Timing // final, once timed
	timed     bool

	wake chan struct{} // cap 1: packets are queued
	stop chan struct{} // closed by Close: drain and finish
	done chan struct{} // closed when run has finalized the WebM

	// Owned by run.
	file *spoolFile
	bw   *webmWriter
	// frames holds the payloads of the batch being written, copied out of
	// the queue under mu (the one copy a packet gets on its way to the
	// spool); reused from batch to batch.
	frames  []byte
	batch   []frameRef
	zeroTS  int64
	hasZero bool
	endMS   int64
	blocks  int64
	runErr  error // set before done is closed
	live    Listener
	failed  bool // the spool failed and it has been reported
	// concealTicks is Config.MaxConcealedLoss in clock ticks: audio lost
	// in the network beyond it is a stated gap (sc.Gaps).
	concealTicks int64

	// The checkpointer's goroutine, when checkpoints are on.
	ckptStop context.CancelFunc
	ckptDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

type frameRef struct {
	ms       int64
	from, to int // in Writer.frames
	level    int16
}

func newWriter(r *Recorder, sc sidecar, clockRate uint32, pt uint8, spoolPath, sidePath string, file *spoolFile) *Writer {
	slack := int64(r.cfg.TimestampSlack) * int64(clockRate) / int64(time.Second)
	return &Writer{
		r: r, sc: sc, spoolPath: spoolPath, sidePath: sidePath,
		seq:          newSequencer(clockRate, pt, slack),
		tl:           timeline{rate: int64(clockRate)},
		wake:         make(chan struct{}, 1),
		stop:         make(chan struct{}),
		done:         make(chan struct{}),
		file:         file,
		batch:        make([]frameRef, 0, 8), // grows only if a backlog ever builds up
		concealTicks: int64(r.cfg.MaxConcealedLoss) * int64(clockRate) / int64(time.Second),
	}
}

// ID is the track's id, as stored in the catalog.
func (w *Writer) ID() string { return w.sc.TrackID }

// WriteRTP records one packet. It never blocks on disk and does not keep p
// or p.Payload; packets after Close are ignored. Reordered packets within
// a small window are put back in order; duplicates, packets too late for
// the window, malformed payloads and impossible timestamps are dropped and
// counted in Stats.
func (w *Writer) WriteRTP(p *rtp.Packet) {
	now := w.r.cfg.Now().UnixNano()
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.seq.push(p, now)
	if w.seq.stats.Resyncs != w.srResyncs {
		w.sr, w.srResyncs = srClock{}, w.seq.stats.Resyncs
	}
	backlog := w.seq.qLen >= wakeAt
	w.mu.Unlock()
	if backlog {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// drainEvery is how often the spool goroutine writes the packets queued
// since it last ran. Waking it for every packet (and ebml-go's goroutine
// after it) was a goroutine hand-off per packet, the largest part of the
// recorder's cost; five packets at a time cost one. It delays the
// Listener (live segments, captions) by at most this much, and changes
// nothing of what a crash loses: that is what the last flush left on
// disk, as before.
const drainEvery = 100 * time.Millisecond

// wakeAt is the backlog that wakes the spool goroutine before its tick:
// a burst after a network freeze is written before it fills the queue.
const wakeAt = queueSize / 4

// Free is how many in-order packets WriteRTP can take now without dropping
// one for a full queue (sfu.BoundedTap): the SFU paces the packets it held
// while the track opened by it. A closed Writer ignores packets: room for
// all.
func (w *Writer) Free() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return queueSize
	}
	return queueSize - w.seq.qLen
}

// Stats returns what the Writer has done with its packets so far.
func (w *Writer) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seq.stats
}

// run moves queued packets into the WebM every drainEvery (sooner when a
// backlog builds up), flushes the spool every FlushInterval, makes it
// durable on the checkpoint cadence, and finalizes the WebM once Close
// asks.
func (w *Writer) run() {
	defer close(w.done)
	every := w.r.cfg.FlushInterval
	syncEvery := w.r.cfg.CheckpointInterval
	if syncEvery <= 0 { // checkpoints off: the cadence they would have
		syncEvery = DefaultCheckpointInterval
	}
	tick := time.NewTicker(min(drainEvery, every))
	defer tick.Stop()
	flushed := time.Now()
	synced := flushed
	for {
		select {
		case <-w.wake:
			w.drain()
		case now := <-tick.C:
			w.drain()
			if now.Sub(flushed) < every {
				continue
			}
			flushed = now
			var err error
			if now.Sub(synced) >= syncEvery {
				synced = now
				err = w.file.sync()
			} else {
				err = w.file.flush()
			}
			if err != nil && !w.failed {
				w.spoolFailed(err)
			}
		case <-w.stop:
			w.drain()
			w.runErr = w.finalize()
			if w.live != nil {
				w.live.Close(w.runErr == nil)
			}
			return
		}
	}
}

// drain writes every queued packet to the WebM. The queue is copied out
// under the lock and written after it, so WriteRTP never waits for
// ebml-go.
func (w *Writer) drain() {
	w.batch, w.frames = w.batch[:0], w.frames[:0]
	placed := false
	gaps := len(w.sc.Gaps)
	w.mu.Lock()
	for {
		s, ok := w.seq.pop()
		if !ok {
			break
		}
		if !w.hasZero {
			w.zeroTS, w.hasZero = s.ts, true
			if w.sc.FirstPacketAt.IsZero() {
				// Block 0 sits zeroTS ticks from the first packet's arrival.
				first := w.seq.firstArrival + s.ts*int64(time.Second)/w.seq.rate
				w.sc.FirstPacketAt = time.Unix(0, first)
				w.sc.StartMS = w.sc.FirstPacketAt.Sub(w.sc.ClockZero).Milliseconds()
				placed = true
			}
			w.wallStart = w.sc.FirstPacketAt.UnixNano()
			if !w.sc.ClockZero.IsZero() {
				w.wallStart = w.sc.ClockZero.UnixNano() + w.sc.StartMS*int64(time.Millisecond)
			}
		}
		target, ok := w.targetLocked(s.ts)
		prevEnd := w.endMS
		ms := w.tl.place(s.ts, s.samples, target, ok)
		if s.lost > w.concealTicks && ms > prevEnd {
			// Too long for the decoder to hide: what was said in it is
			// not in the recording. (Rare: allocating here is fine.)
			reason := fmt.Sprintf("packets lost in the network (%d ms of audio never arrived)", s.lost*1000/w.seq.rate)
			if s.dropped > 0 {
				reason = fmt.Sprintf("packets lost (%d ms of audio, %d ms of it dropped because the recorder fell behind the network)",
					s.lost*1000/w.seq.rate, s.dropped*1000/w.seq.rate)
			}
			w.sc.Gaps = append(w.sc.Gaps, sidecarGap{FromMS: prevEnd, ToMS: ms, Reason: reason})
		}
		w.endMS = w.tl.endMS()
		from := len(w.frames)
		w.frames = append(w.frames, s.buf...)
		w.batch = append(w.batch, frameRef{ms: ms, from: from, to: len(w.frames), level: s.level})
	}
	w.mu.Unlock()
	if placed || (len(w.sc.Gaps) > gaps && !w.failed) {
		// Recover must know where the track starts, and which stretches
		// of it were lost.
		if err := w.r.writeSidecar(w.sidePath, w.sc); err != nil {
			w.r.log.Error("record track start or gaps", "track", w.sc.TrackID, "err", err)
		}
	}
	for _, g := range w.sc.Gaps[gaps:] {
		w.r.log.Warn("audio lost: stated as a gap of the track", "track", w.sc.TrackID,
			"meeting", w.sc.MeetingID, "from_ms", g.FromMS, "to_ms", g.ToMS, "reason", g.Reason)
		w.recordGap(w.sc.gap(g))
	}
	if w.live == nil && w.hasZero && w.r.cfg.Listen != nil {
		w.live = w.r.cfg.Listen(w.sc.row(store.TrackRecording), opusCodecDelay)
	}
	for _, f := range w.batch {
		data := w.frames[f.from:f.to]
		if w.live != nil {
			w.live.Block(f.ms, data, int(f.level))
		}
		// Into the spool's buffer: a write error is kept by the spool
		// file and reported at the next flush.
		_ = w.bw.block(f.ms, data)
		w.blocks++
	}
}

// spoolFailed reports, once, that the spool can no longer be written:
// loudly in the log and at once in the catalog, as a gap open from about
// now, rather than when the track ends hours later. The track stays
// recording (packets still flow; the Listener hears them) until Close
// salvages what reached the disk and states the rest as a gap.
func (w *Writer) spoolFailed(err error) {
	w.failed = true
	reason := spoolFailure(err, w.r.cfg.SpoolDir)
	w.r.log.Error("recording track failed: spool not writable", "track", w.sc.TrackID,
		"meeting", w.sc.MeetingID, "reason", reason)
	w.mu.Lock()
	at := w.sc.StartMS + w.endMS
	w.mu.Unlock()
	// The database may be on the full disk too: Close states the gap again.
	w.recordGap(store.TrackGap{TrackID: w.sc.TrackID, MeetingID: w.sc.MeetingID, Identity: w.sc.Identity,
		StartMS: at, EndMS: at, Reason: reason})
}

// recordGap tells the catalog at once of a stretch of the track that is
// not recorded, so the meeting's progress shows it while the meeting goes
// on. Failing is only logged: the track's final row states every gap.
func (w *Writer) recordGap(g store.TrackGap) {
	// The spool goroutine has no caller's context; FinishTimeout bounds
	// the wait while packets queue (and overflow) behind it.
	ctx, cancel := context.WithTimeout(context.Background(), w.r.cfg.FinishTimeout)
	defer cancel()
	if err := w.r.catalog.RecordGap(ctx, g); err != nil {
		w.r.log.Error("record recording gap", "track", w.sc.TrackID, "err", err)
	}
}

// finalize writes the WebM's Cues, sets Duration to the end of the last
// block and closes the file durably.
func (w *Writer) finalize() error {
	err := w.file.flush()
	if err == nil {
		err = w.bw.close()
	}
	if err == nil {
		err = w.file.err()
	}
	if err == nil && w.blocks > 0 {
		err = finishHeader(w.file.f, w.endMS)
	}
	if ferr := w.file.finish(); err == nil {
		err = ferr
	}
	return err
}

// Close finishes the track: it writes what the reorder window still holds,
// finalizes the WebM, uploads it (retrying until ctx ends), records the
// final row and deletes the spool. If the upload fails the row is marked
// failed and the spool stays for Recover. Calling Close again returns the
// first result.
func (w *Writer) Close(ctx context.Context) error {
	w.closeOnce.Do(func() { w.closeErr = w.close(ctx) })
	return w.closeErr
}

func (w *Writer) close(ctx context.Context) error {
	defer w.r.forget(w.sc.TrackID)
	w.mu.Lock()
	w.closed = true
	w.seq.releaseAll()
	stats := w.seq.stats
	w.mu.Unlock()
	if w.ckptStop != nil {
		// An upload in flight is abandoned: the whole file follows.
		w.ckptStop()
		<-w.ckptDone
	}
	close(w.stop)
	<-w.done // local disk only: bounded, and the file must not be left half-written

	w.mu.Lock()
	if tail := w.seq.droppedBefore; tail > w.concealTicks && !w.failed {
		// Dropped after the last packet the spool took: no later packet
		// carries the loss, so it is stated here, at the track's end.
		ms := tail * 1000 / w.seq.rate
		w.sc.Gaps = append(w.sc.Gaps, sidecarGap{FromMS: w.endMS, ToMS: w.endMS + ms,
			Reason: fmt.Sprintf("packets dropped because the recorder fell behind the network (%d ms of audio)", ms)})
	}
	w.timing, w.timed = w.timingLocked(), true
	w.sc.StartMS, w.sc.DriftPPM = w.timing.StartMS, w.timing.DriftPPM
	timing := w.timing
	w.mu.Unlock()

	stats.Written = w.blocks
	log := w.r.log.With("track", w.sc.TrackID, "meeting", w.sc.MeetingID)
	log.Info("track closed", "blocks", w.blocks, "duration_ms", w.endMS, "late", stats.Late,
		"duplicate", stats.Duplicate, "garbage", stats.Garbage, "bad_timestamp", stats.BadTimestamp,
		"overflow", stats.Overflow, "resyncs", stats.Resyncs, "lost", stats.Lost, "loss_gaps", len(w.sc.Gaps))
	if timing.SenderReports > 0 {
		log.Info("track clock", "start_ms", timing.StartMS, "sender_skew", timing.SenderSkew,
			"from_sender_reports", timing.FromSenderReports, "sender_reports", timing.SenderReports,
			"report_span", timing.ReportSpan, "drift_ppm", timing.DriftPPM, "correction_ms", timing.CorrectionMS)
		if !timing.FromSenderReports {
			// Routine where Greffier trusts no sender's wall clock (its
			// default): the rate is what matters.
			log.Debug("sender's wall clock disagrees with ours; only its clock rate corrects the track",
				"skew", timing.SenderSkew, "limit", w.r.cfg.SenderClockSkew)
		}
	}

	if w.runErr != nil {
		// The spool stopped taking the track: what reached it is stored
		// now and the rest stated as a gap; if that cannot be done yet
		// (storage or the database on the full disk), it is retried until
		// it can, so the meeting moves on without a restart.
		w.sc.LostReason, w.sc.HeardMS = spoolFailure(w.runErr, w.r.cfg.SpoolDir), w.endMS
		if err := w.r.writeSidecar(w.sidePath, w.sc); err != nil {
			w.r.log.Warn("cannot note the lost stretch beside the spool (a restart would forget it)",
				"track", w.sc.TrackID, "err", err)
		}
		sc := w.sc
		op := func(ctx context.Context) error {
			// Once the disk has room again, a restart must remember.
			_ = w.r.writeSidecar(w.sidePath, sc)
			return w.r.salvage(ctx, sc, w.spoolPath, w.sidePath)
		}
		err := fmt.Errorf("close track %s: %w", w.sc.TrackID, w.runErr)
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.r.cfg.FinishTimeout)
		defer cancel()
		if serr := w.r.salvage(fctx, sc, w.spoolPath, w.sidePath); serr != nil {
			w.r.log.Error("salvaging track failed; retrying", "track", w.sc.TrackID, "err", serr)
			w.r.later(w.sc.TrackID, op)
			err = errors.Join(err, serr)
		}
		return err
	}
	if w.blocks == 0 {
		row := w.sc.row(store.TrackFailed)
		row.Failure = "no audio was received for this track"
		if err := w.r.catalog.FinishTrack(ctx, row); err != nil {
			w.r.later(row.ID, func(ctx context.Context) error {
				if err := w.r.catalog.FinishTrack(ctx, row); err != nil {
					return err
				}
				w.r.removeSpool(w.spoolPath, w.sidePath)
				return nil
			})
			return fmt.Errorf("close track %s: catalog: %w", w.sc.TrackID, err)
		}
		w.r.removeSpool(w.spoolPath, w.sidePath)
		return fmt.Errorf("close track %s: %w", w.sc.TrackID, ErrNoAudio)
	}
	w.sc.Finalized, w.sc.DurationMS = true, w.endMS
	if err := w.r.writeSidecar(w.sidePath, w.sc); err != nil {
		// The spool is whole; only a crash before it is stored would need
		// the note, and Recover rebuilds an unfinalized spool anyway.
		w.r.log.Warn("cannot mark the spool finalized; storing it anyway", "track", w.sc.TrackID, "err", err)
	}
	sc := w.sc
	if err := w.r.store(ctx, sc, w.spoolPath, w.sidePath); err != nil {
		w.r.later(sc.TrackID, func(ctx context.Context) error { return w.r.store(ctx, sc, w.spoolPath, w.sidePath) })
		return err
	}
	return nil
}
