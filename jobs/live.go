package jobs

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/greffier/greffier/diarize"
	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/internal/store"
)

// liveQueue bounds the speech segments waiting to be stored in one live
// worker's queue: past it, a track falls back to the batch path rather
// than hold up the recorder.
const liveQueue = 256

// Listen returns the live path for one track being recorded (a
// recorder.Listener): its packets are cut into speech segments as they
// arrive, by the audio levels their sender measured, and each segment is
// stored and queued for transcription while the meeting goes on. Nothing
// is decoded for that (only packets without a level, to measure them).
// When the track ends whole, speech detection is already done; otherwise
// the batch path (detect_speech on the stored file) does it.
func (p *Pipeline) Listen(t store.Track) *LiveTrack {
	lane := p.live[(p.lanes.Add(1)-1)%uint64(len(p.live))]
	return &LiveTrack{p: p, t: t, cut: newCutter(p.cfg.VoiceActivity(), 1), lane: lane}
}

// LiveTrack is one track's live path. Block and Close are called from the
// recorder's writer goroutine for that track.
type LiveTrack struct {
	p       *Pipeline
	t       store.Track
	cut     *cutter
	pending sync.WaitGroup
	// lane is the live worker's queue that stores this track's segments,
	// in order.
	lane chan<- liveSpeech

	mu  sync.Mutex
	err error // first failure: the batch path takes over
}

func (lt *LiveTrack) fail(err error) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if lt.err == nil {
		lt.err = err
		lt.p.log.Warn("live speech detection falls back to the batch path", "track", lt.t.ID, "err", err)
	}
}

func (lt *LiveTrack) failed() bool {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	return lt.err != nil
}

// Block takes one packet with its RFC 6464 level (-1 if none).
func (lt *LiveTrack) Block(ms int64, opus []byte, level int) {
	if lt.failed() {
		return
	}
	cuts, err := lt.cut.packet(ms, opus, level)
	if err != nil {
		lt.fail(fmt.Errorf("find speech: %w", err))
		return
	}
	lt.emit(cuts)
}

// Close flushes the last speech, waits until every segment of the track is
// stored, and marks the track's speech detected when nothing was missed.
func (lt *LiveTrack) Close(complete bool) {
	if !lt.failed() {
		cuts, err := lt.cut.flush()
		if err != nil {
			lt.fail(fmt.Errorf("find speech: %w", err))
		}
		lt.emit(cuts)
	}
	lt.pending.Wait()
	if !complete {
		lt.fail(errors.New("the recording could not be written whole"))
	}
	if lt.failed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Once the meeting has ended this may be all the minutes waited for:
	// they need not wait for the track's upload, which goes on after.
	err := lt.p.store.InTx(ctx, func(tx *sql.Tx, q store.Queries) error {
		if err := q.MarkSpeechDetected(ctx, lt.t.ID, ""); err != nil {
			return err
		}
		return lt.p.maybeAssemble(ctx, tx, q, lt.t.MeetingID)
	})
	if err != nil {
		lt.p.log.Error("mark live speech detection done", "track", lt.t.ID, "err", err)
	}
}

// emit hands closed segments to the pipeline's live workers.
func (lt *LiveTrack) emit(cuts []cut) {
	for _, c := range cuts {
		lt.pending.Add(1)
		select {
		case lt.lane <- liveSpeech{track: lt, cut: c}:
		default:
			lt.pending.Done()
			lt.fail(errors.New("too many speech segments waiting to be stored"))
			return
		}
	}
}

type liveSpeech struct {
	track *LiveTrack
	cut   cut
}

// runLive stores the live speech segments of lane, in order, until ctx
// ends.
func (p *Pipeline) runLive(ctx context.Context, lane <-chan liveSpeech) {
	for {
		select {
		case <-ctx.Done():
			return
		case ls := <-lane:
			if !ls.track.failed() {
				if err := p.storeLiveSpeech(ctx, ls.track.t, ls.cut); err != nil {
					ls.track.fail(err)
				}
			}
			ls.track.pending.Done()
		}
	}
}

// storeLiveSpeech stores one segment's audio and row, and queues its
// transcription, exactly as the batch path would.
func (p *Pipeline) storeLiveSpeech(ctx context.Context, t store.Track, c cut) error {
	s := speechSegment(t, c.speech)
	controls, err := p.store.Controls(ctx, t.MeetingID)
	if err != nil {
		return err
	}
	if untranscribed(controls, s) {
		return nil
	}
	if _, err := p.blobs.Put(ctx, s.AudioKey, bytes.NewReader(c.ogg), int64(len(c.ogg))); err != nil {
		return fmt.Errorf("store speech audio %s: %w", s.AudioKey, err)
	}
	return p.store.InTx(ctx, func(tx *sql.Tx, q store.Queries) error {
		if err := p.recordSegments(ctx, q, []store.SpeechSegment{s}); err != nil {
			return err
		}
		return p.maybeAssemble(ctx, tx, q, t.MeetingID)
	})
}

// speechSegment places a segment found on track t on the meeting clock.
func speechSegment(t store.Track, sp diarize.Speech) store.SpeechSegment {
	s := store.SpeechSegment{
		MeetingID: t.MeetingID, TrackID: t.ID, Identity: t.Identity,
		StartMS: t.StartMS + sp.StartMS, EndMS: t.StartMS + sp.EndMS, AudioStartMS: t.StartMS + sp.AudioStartMS,
	}
	s.AudioKey = layout.SpeechAudio(t.MeetingID, t.ID, s.StartMS)
	return s
}

// recordSegments upserts segments, but those the host did not want
// transcribed (untranscribed). Their transcription is enqueued by
// maybeAssemble once their turn has come.
func (p *Pipeline) recordSegments(ctx context.Context, q store.Queries, segs []store.SpeechSegment) error {
	if len(segs) == 0 {
		return nil
	}
	// Read in the transaction: a switch set since the segments were cut
	// is seen.
	controls, err := q.Controls(ctx, segs[0].MeetingID)
	if err != nil {
		return err
	}
	for _, s := range segs {
		if untranscribed(controls, s) {
			continue
		}
		if err := q.UpsertSpeechSegment(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// untranscribed reports whether segment s lies wholly within a stretch
// the host had transcription off: it is neither stored nor sent to the
// speech backend (the minutes state the stretch). A segment across the
// stretch's edge is transcribed whole.
func untranscribed(controls store.ControlLog, s store.SpeechSegment) bool {
	// A stretch still off runs to the end of time: the meeting goes on.
	for _, iv := range controls.Off(store.ControlTranscription, "", math.MaxInt64/2) {
		if iv.StartMS <= s.StartMS && s.EndMS <= iv.EndMS {
			return true
		}
	}
	return false
}
