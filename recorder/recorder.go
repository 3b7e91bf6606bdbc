// Package recorder turns each speaker's RTP packets into a WebM file (one
// Opus track, Duration and Cues) spooled on local disk, uploads it to blob
// storage and records the track in the catalog. Spools survive a crash:
// Recover finishes them at start-up. Long tracks are checkpointed to blob
// storage as they go (checkpoint.go), so losing the spool disk loses at
// most about a CheckpointInterval: Recover rebuilds such tracks from their
// chunks. Open refuses to start a track on a spool disk that is nearly
// full.
//
// Timeline: a track's first block sits on the meeting clock at its first
// packet's arrival (StartMS), fixed from then on so the Listener, the file
// and the catalog row agree. Later blocks are placed by their unwrapped
// RTP timestamps at the nominal rate, so silence and loss keep their
// length, until RTCP sender reports arrive (WriteSenderReport): from then
// on a block's target is the sender's wall time of its RTP timestamp (a
// least-squares fit of the reports) minus the track's wall start, which
// takes out the sender's clock drift and its first packet's delay, so
// tracks of one meeting align whatever their sound cards' clocks. Blocks
// are steered to the target by at most 2 % in continuous audio (0.4 ms a
// 20 ms packet, within the decoder's tolerance) and by up to a whole pause
// across DTX or loss; times stay strictly increasing (timeline.go).
//
// Loss: a stretch of packets that never arrived (or arrived after their
// place was written) longer than MaxConcealedLoss is stated as a gap of
// the track, at once to the catalog and in its final row, so the minutes
// never claim what was said in it; DTX silence skips no sequence number
// and is no loss, and a packet or two the decoder conceals is no gap.
//
// It must not import sfu (the SFU's Tap is adapted to Writer in cmd), nor
// know about jobs or transcription: it stops at a stored track row.
package recorder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/greffier/greffier/internal/backend"
	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/internal/store"
)

// Catalog is where track rows live; *store.Store implements it.
type Catalog interface {
	// CreateTrack records a track (State TrackRecording) before its first
	// byte is spooled. Creating an existing track is not an error.
	CreateTrack(ctx context.Context, t store.Track) error
	// FinishTrack records the final state: TrackStored, TrackRecovered or
	// TrackFailed, with size, checksum, duration and blob key.
	FinishTrack(ctx context.Context, t store.Track) error
	// RecordGap records, while a track records, that from some point on
	// it is not being recorded (FinishTrack later gives the final gaps).
	RecordGap(ctx context.Context, g store.TrackGap) error
	// FailTrack marks a track failed keeping its row's times; it wraps
	// store.ErrNotFound for a track the catalog never had.
	FailTrack(ctx context.Context, trackID, failure string) error
}

// Track describes a track segment to record.
type Track struct {
	MeetingID string
	Identity  string
	SSRC      uint32
	// ClockRate is the RTP clock. Default 48000 (Opus).
	ClockRate uint32
	// PayloadType is the negotiated Opus payload type; packets of any
	// other type are dropped. 0 takes the first valid packet's type.
	PayloadType uint8
	// Channels goes into the OpusHead. Default 2, as WebRTC negotiates
	// opus/48000/2 whatever the microphone.
	Channels uint8
	// AudioLevelID is the id the sender negotiated for the RFC 6464
	// audio-level header extension, 0 if none: the Listener then hears
	// each packet's level without decoding it.
	AudioLevelID uint8
	// ClockZero is the meeting clock's zero; FirstPacketAt the arrival of
	// the track's first packet. StartMS is their difference. If
	// FirstPacketAt is zero, the arrival of the first recorded packet is
	// used.
	ClockZero, FirstPacketAt time.Time
	// Transient: the track is heard by the Listener and not kept. It is
	// spooled (the writer's one path) but never checkpointed nor
	// uploaded; its spool goes when it closes, or when Recover finds it.
	Transient bool
}

// Recorder creates Writers and finishes the spools a crash left behind.
type Recorder struct {
	cfg     Config
	blobs   blob.Store
	catalog Catalog
	log     *slog.Logger

	// ctx ends with Close: it bounds the background retries.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	open map[string]*Writer // by track id: Recover leaves these alone
	// closedStats sums the Stats of the writers closed so far, so that
	// Stats counts every packet once closed tracks are forgotten.
	closedStats Stats
	pending     map[string]pendingOp
	gen         int
	retrying    bool
	closed      bool
}

// New returns a Recorder spooling under cfg.SpoolDir.
func New(cfg Config, blobs blob.Store, catalog Catalog, logger *slog.Logger) (*Recorder, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if blobs == nil || catalog == nil {
		return nil, errors.New("recorder: a blob store and a catalog are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.SpoolDir, 0o700); err != nil {
		return nil, fmt.Errorf("recorder: create spool dir: %w", err)
	}
	if err := checkSpace(cfg.SpoolDir, cfg.MinFreeBytes); err != nil {
		// Not fatal here: Recover must still be able to empty the spool.
		logger.Error("recorder: tracks will be refused", "err", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Recorder{cfg: cfg, blobs: blobs, catalog: catalog, log: logger, ctx: ctx, cancel: cancel,
		open: map[string]*Writer{}, pending: map[string]pendingOp{}}, nil
}

// ErrInvalidTrack is returned by Open for a Track that cannot be recorded.
var ErrInvalidTrack = errors.New("invalid track")

// validID reports whether s is safe as one path element: Greffier's ids are.
func validID(s string) bool {
	if s == "" || len(s) > 128 || s == "." || s == ".." {
		return false
	}
	for _, c := range s {
		ok := c == '-' || c == '_' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !ok {
			return false
		}
	}
	return true
}

func newTrackID() (string, error) {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("track id: %w", err)
	}
	return "trk_" + hex.EncodeToString(b[:]), nil
}

func (r *Recorder) paths(meetingID, trackID string) (spool, side string) {
	dir := filepath.Join(r.cfg.SpoolDir, meetingID)
	return filepath.Join(dir, trackID+".webm"), filepath.Join(dir, trackID+".json")
}

// Open starts recording a track: it picks its id, records it in the
// catalog and starts its spool. The Writer must be closed.
func (r *Recorder) Open(ctx context.Context, t Track) (*Writer, error) {
	if !validID(t.MeetingID) {
		return nil, fmt.Errorf("open track: meeting id %q: %w", t.MeetingID, ErrInvalidTrack)
	}
	if t.Identity == "" {
		return nil, fmt.Errorf("open track: identity is required: %w", ErrInvalidTrack)
	}
	if t.ClockRate == 0 {
		t.ClockRate = 48000
	}
	if t.Channels == 0 {
		t.Channels = 2
	}
	if t.Channels > 2 {
		return nil, fmt.Errorf("open track: %d channels; Opus mapping family 0 has 1 or 2: %w", t.Channels, ErrInvalidTrack)
	}
	if err := r.Check(ctx, t); err != nil {
		return nil, fmt.Errorf("open track: %w", err)
	}
	id, err := newTrackID()
	if err != nil {
		return nil, err
	}
	spoolPath, sidePath := r.paths(t.MeetingID, id)
	// Reserve the id before its sidecar exists, so a concurrent Recover
	// never takes this live track for a crashed one.
	r.mu.Lock()
	r.open[id] = nil
	r.mu.Unlock()
	opened := false
	defer func() {
		if !opened {
			r.forget(id)
		}
	}()
	if err := os.MkdirAll(filepath.Dir(spoolPath), 0o700); err != nil {
		return nil, fmt.Errorf("open track %s: %w", id, err)
	}
	sc := sidecar{
		TrackID: id, MeetingID: t.MeetingID, Identity: t.Identity, SSRC: t.SSRC, Channels: t.Channels,
		ClockZero: t.ClockZero, FirstPacketAt: t.FirstPacketAt, Transient: t.Transient,
	}
	if !t.FirstPacketAt.IsZero() {
		sc.StartMS = t.FirstPacketAt.Sub(t.ClockZero).Milliseconds()
	}
	// The sidecar comes first so that any spool Recover finds has one.
	key, err := r.spoolKey(ctx, t.MeetingID)
	if err != nil {
		return nil, fmt.Errorf("open track %s: %w", id, err)
	}
	if err := r.writeSidecar(sidePath, sc); err != nil {
		return nil, fmt.Errorf("open track %s: %w", id, err)
	}
	if err := r.catalog.CreateTrack(ctx, sc.row(store.TrackRecording)); err != nil {
		_ = os.Remove(sidePath)
		return nil, fmt.Errorf("open track %s: catalog: %w", id, err)
	}
	f, err := createSpool(spoolPath, os.O_EXCL, key)
	if err != nil {
		return nil, fmt.Errorf("open track %s: create spool: %w", id, err)
	}
	w := newWriter(r, sc, t.ClockRate, t.PayloadType, spoolPath, sidePath, newSpoolFile(f))
	w.seq.levelID = t.AudioLevelID
	w.bw, err = newWebMWriter(w.file, t.Channels)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("open track %s: %w", id, err)
	}
	r.mu.Lock()
	r.open[id] = w
	r.mu.Unlock()
	opened = true
	go w.run()
	if every := r.cfg.CheckpointInterval; every > 0 && !t.Transient {
		ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		w.ckptStop, w.ckptDone = cancel, make(chan struct{})
		go func() {
			defer close(w.ckptDone)
			newCheckpointer(w).run(ctx, every)
		}()
	}
	r.log.Info("recording track", "track", id, "meeting", t.MeetingID, "identity", t.Identity, "ssrc", t.SSRC)
	return w, nil
}

// Check reports whether a track of t could be recorded now: an error
// wrapping ErrDiskFull (a *DiskSpaceError) when the spool disk is nearly
// full. A refusal is recorded in the catalog as a failed track of
// t.Identity starting now, so the meeting's progress and minutes say who
// was not recorded and why. The SFU asks before it answers a publisher.
func (r *Recorder) Check(ctx context.Context, t Track) error {
	err := checkSpace(r.cfg.SpoolDir, r.cfg.MinFreeBytes)
	if err == nil {
		return nil
	}
	r.log.Error("track refused: not recorded", "meeting", t.MeetingID, "identity", t.Identity, "err", err)
	if !validID(t.MeetingID) || t.Identity == "" {
		return err
	}
	id, ierr := newTrackID()
	if ierr != nil {
		return errors.Join(err, ierr)
	}
	at := t.FirstPacketAt
	if at.IsZero() {
		at = r.cfg.Now()
	}
	row := store.Track{ID: id, MeetingID: t.MeetingID, Identity: t.Identity, SSRC: t.SSRC, State: store.TrackRecording}
	if !t.ClockZero.IsZero() {
		row.StartMS = max(at.Sub(t.ClockZero).Milliseconds(), 0)
	}
	reason := "not recorded: " + err.Error()
	op := func(ctx context.Context) error {
		if err := r.catalog.CreateTrack(ctx, row); err != nil {
			return fmt.Errorf("record refused track: %w", err)
		}
		failed := row
		failed.State, failed.Failure = store.TrackFailed, reason
		if err := r.catalog.FinishTrack(ctx, failed); err != nil {
			return fmt.Errorf("record refused track: %w", err)
		}
		return nil
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.FinishTimeout)
	defer cancel()
	if oerr := op(fctx); oerr != nil {
		r.log.Error("recording the refusal failed; retrying", "track", id, "err", oerr)
		r.later(id, op)
	}
	return err
}

func (r *Recorder) forget(id string) {
	r.mu.Lock()
	w := r.open[id]
	r.mu.Unlock()
	var st Stats
	if w != nil {
		st = w.Stats() // outside r.mu: a writer's lock is never taken under it
	}
	r.mu.Lock()
	if r.open[id] == w {
		delete(r.open, id)
		r.closedStats.Add(st)
	}
	r.mu.Unlock()
}

func (sc sidecar) row(state store.TrackState) store.Track {
	t := store.Track{
		ID: sc.TrackID, MeetingID: sc.MeetingID, Identity: sc.Identity, SSRC: sc.SSRC, State: state,
		StartMS: sc.StartMS, DurationMS: sc.DurationMS, GapMS: sc.GapMS,
	}
	for _, g := range sc.Gaps {
		t.Gaps = append(t.Gaps, sc.gap(g))
	}
	return t
}

// gap is g on the meeting clock.
func (sc sidecar) gap(g sidecarGap) store.TrackGap {
	return store.TrackGap{TrackID: sc.TrackID, MeetingID: sc.MeetingID, Identity: sc.Identity,
		StartMS: sc.StartMS + g.FromMS, EndMS: sc.StartMS + g.ToMS, Reason: g.Reason}
}

// store uploads a finalized spool, retrying with backoff until ctx ends,
// then records the final row and deletes the spool. On failure the spool
// stays for Recover and, when the upload itself failed, the row says so.
func (r *Recorder) store(ctx context.Context, sc sidecar, spoolPath, sidePath string) error {
	if sc.Transient {
		return r.discard(ctx, sc, spoolPath, sidePath)
	}
	key := layout.Track(sc.MeetingID, sc.TrackID)
	info, err := r.upload(ctx, key, spoolPath)
	if errors.Is(err, errCorrupt) {
		// A finished spool altered or damaged on disk since: keep what
		// precedes the damage, and state the rest lost with why.
		info, err = r.storeDamaged(ctx, &sc, key, spoolPath, sidePath, err)
	}
	state := store.TrackStored
	if sc.Recovered {
		state = store.TrackRecovered
	}
	row := sc.row(state)
	if err != nil {
		row.State, row.Failure = store.TrackFailed, fmt.Sprintf("upload to blob storage failed; the spool is kept for recovery: %v", err)
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.FinishTimeout)
		defer cancel()
		if ferr := r.catalog.FinishTrack(fctx, row); ferr != nil {
			err = errors.Join(err, fmt.Errorf("mark failed: %w", ferr))
		}
		return fmt.Errorf("store track %s: %w", sc.TrackID, err)
	}
	row.BlobKey, row.Size, row.SHA256 = key, info.Size, info.SHA256
	if err := r.catalog.FinishTrack(ctx, row); err != nil {
		return fmt.Errorf("store track %s: catalog: %w", sc.TrackID, err)
	}
	if err := r.dropCheckpoints(ctx, sc.MeetingID, sc.TrackID); err != nil {
		// The track is stored; keeping the spool lets Recover finish the
		// cleanup, so a lost disk cannot later revive the journal.
		r.log.Error("track stored but its checkpoints remain; Recover will retry", "track", sc.TrackID, "err", err)
		return nil
	}
	r.removeSpool(spoolPath, sidePath)
	return nil
}

// storeDamaged rebuilds a finished spool found damaged from the blocks
// before the damage (rebuild states the rest as a gap) and uploads that.
func (r *Recorder) storeDamaged(ctx context.Context, sc *sidecar, key, spoolPath, sidePath string, cause error) (blob.Info, error) {
	r.log.Error("finished spool damaged on disk; keeping what precedes the damage", "track", sc.TrackID, "err", cause)
	sc.Finalized = false
	blocks, _, err := r.rebuild(ctx, spoolPath, sc)
	if err == nil && blocks == 0 {
		err = cause
	}
	if err == nil {
		err = r.writeSidecar(sidePath, *sc)
	}
	if err != nil {
		return blob.Info{}, fmt.Errorf("rebuild damaged spool: %w", err)
	}
	return r.upload(ctx, key, spoolPath)
}

// discard records a transient track's final row, with no blob, and
// deletes its spool: its audio was for the Listener only.
func (r *Recorder) discard(ctx context.Context, sc sidecar, spoolPath, sidePath string) error {
	state := store.TrackStored
	if sc.Recovered {
		state = store.TrackRecovered
	}
	if err := r.catalog.FinishTrack(ctx, sc.row(state)); err != nil {
		return fmt.Errorf("finish transient track %s: catalog: %w", sc.TrackID, err)
	}
	r.removeSpool(spoolPath, sidePath)
	return nil
}

func (r *Recorder) removeSpool(spoolPath, sidePath string) {
	// The spool goes first: a sidecar without spool is harmless, the
	// reverse would be a spool Recover cannot name.
	for _, p := range []string{spoolPath, sidePath} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			r.log.Warn("remove spool", "path", p, "err", err)
		}
	}
	_ = os.Remove(filepath.Dir(spoolPath)) // only succeeds once the meeting's dir is empty
}

// upload puts the file under key, retrying with the shared backoff until
// ctx ends: a recording has no job to retry it, only its spool.
func (r *Recorder) upload(ctx context.Context, key, path string) (blob.Info, error) {
	var info blob.Info
	n, err := r.backoff().Retry(ctx, 0, func(ctx context.Context) (err error) {
		info, err = r.putOnce(ctx, key, path)
		return err
	}, func(err error) bool { return !errors.Is(err, errCorrupt) }, func(n int, wait time.Duration, err error) {
		r.log.Warn("track upload failed", "key", key, "attempt", n, "retry_in", wait, "err", err)
	})
	if err != nil {
		return blob.Info{}, fmt.Errorf("after %d attempts: %w", n, err)
	}
	return info, nil
}

// backoff is the wait between tries of an upload or of unfinished
// bookkeeping.
func (r *Recorder) backoff() backend.Backoff {
	return backend.Backoff{Base: r.cfg.RetryBackoff, Max: r.cfg.MaxRetryBackoff}
}

func (r *Recorder) putOnce(ctx context.Context, key, path string) (blob.Info, error) {
	sk, err := r.spoolKey(ctx, filepath.Base(filepath.Dir(path)))
	if err != nil {
		return blob.Info{}, err
	}
	f, err := openSpool(path, sk)
	if err != nil {
		return blob.Info{}, fmt.Errorf("open spool: %w", err)
	}
	defer f.Close()
	sec, err := f.section(0)
	if err != nil {
		return blob.Info{}, fmt.Errorf("stat spool: %w", err)
	}
	if sec.damage != nil {
		// Known before a byte is sent (opening the spool authenticates
		// it whole): no object is made of a damaged spool.
		return blob.Info{}, sec.damage
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.UploadTimeout)
	defer cancel()
	info, err := r.blobs.Put(ctx, key, sec, sec.Size())
	if err != nil {
		return blob.Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	if info.Size != sec.Size() {
		return blob.Info{}, fmt.Errorf("put %s: stored %d bytes of %d", key, info.Size, sec.Size())
	}
	return info, nil
}

// Recover finishes every spool left by a previous process: a complete
// WebM is uploaded as stored; a cut-off one is rebuilt from the blocks
// that reached the disk and uploaded as recovered. Then it rebuilds, from
// their checkpoint chunks, the tracks whose spool is gone (the disk was
// lost), stored as recovered with the known gap. Call it at start-up;
// tracks open in this process are left alone. It assumes it is the only
// recorder writing under its blob store's recordings/ prefix.
//
// Nothing in the spool stops a start: a sidecar that cannot be read is
// quarantined (moved with its spool under SpoolDir/quarantine, with a
// reason file) and its track marked failed; a track that cannot be
// finished now (storage or database down) is retried in the background.
// It returns an error only when the spool cannot be listed or ctx ends.
func (r *Recorder) Recover(ctx context.Context) error {
	sides, err := filepath.Glob(filepath.Join(r.cfg.SpoolDir, "*", "*.json"))
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	var errs []error
	for _, side := range sides {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("recover: %w", err))
			break
		}
		id := strings.TrimSuffix(filepath.Base(side), ".json")
		r.mu.Lock()
		_, busy := r.open[id]
		r.mu.Unlock()
		if busy {
			continue
		}
		if err := r.recoverOne(ctx, side); err != nil {
			var bad *badSidecarError
			if errors.As(err, &bad) {
				r.quarantine(ctx, side, bad)
				continue
			}
			r.log.Error("recover track; retrying in the background", "sidecar", side, "err", err)
			r.later(id, func(ctx context.Context) error { return r.recoverOne(ctx, side) })
		}
	}
	if ctx.Err() == nil {
		errs = append(errs, r.recoverJournals(ctx)...)
	}
	return errors.Join(errs...)
}

func (r *Recorder) recoverOne(ctx context.Context, sidePath string) error {
	sc, err := r.readSidecar(ctx, sidePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil // finished meanwhile (a retry)
	}
	if err != nil {
		return &badSidecarError{err}
	}
	spoolPath, _ := r.paths(sc.MeetingID, sc.TrackID)
	if filepath.Clean(strings.TrimSuffix(sidePath, ".json")+".webm") != filepath.Clean(spoolPath) {
		return &badSidecarError{fmt.Errorf("sidecar %s names another track (%s of %s)", sidePath, sc.TrackID, sc.MeetingID)}
	}
	// The process may have died before CreateTrack; it is idempotent.
	if err := r.catalog.CreateTrack(ctx, sc.row(store.TrackRecording)); err != nil {
		return fmt.Errorf("recover track %s: catalog: %w", sc.TrackID, err)
	}
	if sc.Transient {
		// Its Listener died with the process: what it had not yet
		// heard is lost, and the audio is not to be kept.
		row := sc.row(store.TrackFailed)
		row.Failure = "the server stopped while this track was transcribed live; its meeting keeps no audio, " +
			"so the spool was discarded: what was said after its last transcribed speech is missing"
		if err := r.catalog.FinishTrack(ctx, row); err != nil {
			return fmt.Errorf("recover transient track %s: catalog: %w", sc.TrackID, err)
		}
		r.removeSpool(spoolPath, sidePath)
		return nil
	}
	if sc.LostReason != "" && !sc.Finalized {
		// The spool stopped taking the track before it ended (a full
		// disk): store what it holds, the rest as a stated gap.
		return r.salvage(ctx, sc, spoolPath, sidePath)
	}
	if !sc.Finalized {
		blocks, damage, err := r.rebuild(ctx, spoolPath, &sc)
		if err != nil {
			return fmt.Errorf("recover track %s: %w", sc.TrackID, err)
		}
		// The spool holds everything its checkpoints do, unless it was
		// lost or damaged: then the checkpoints hold more.
		j, ok, jerr := r.readJournal(ctx, sc.MeetingID, sc.TrackID)
		if jerr != nil {
			r.log.Warn("recover: journal unreadable; using the spool alone", "track", sc.TrackID, "err", jerr)
		}
		if ok && len(j.Chunks) > 0 && j.Chunks[len(j.Chunks)-1].ToMS > sc.DurationMS {
			r.log.Warn("recover: checkpoints hold more than the spool; rebuilding from them", "track", sc.TrackID,
				"spool_ms", sc.DurationMS, "checkpoints_ms", j.Chunks[len(j.Chunks)-1].ToMS)
			r.removeSpool(spoolPath, sidePath)
			return r.recoverFromChunks(ctx, sc.MeetingID, sc.TrackID, nil)
		}
		if blocks == 0 {
			row := sc.row(store.TrackFailed)
			row.Failure = "the process stopped before any audio of this track reached the disk"
			if damage != nil {
				row.Failure = fmt.Sprintf("the track's spool was damaged before its first audio (%v); nothing of it could be kept", damage)
			}
			if err := r.catalog.FinishTrack(ctx, row); err != nil {
				return fmt.Errorf("recover track %s: catalog: %w", sc.TrackID, err)
			}
			r.removeSpool(spoolPath, sidePath)
			return nil
		}
		if err := r.writeSidecar(sidePath, sc); err != nil {
			return fmt.Errorf("recover track %s: %w", sc.TrackID, err)
		}
	}
	r.log.Info("recovering track", "track", sc.TrackID, "meeting", sc.MeetingID,
		"duration_ms", sc.DurationMS, "recovered", sc.Recovered)
	return r.store(ctx, sc, spoolPath, sidePath)
}

// rebuild rewrites a cut-off spool as a complete WebM from the blocks it
// holds and marks sc finalized and recovered. The new file replaces the
// old one by rename, so a crash here leaves one or the other. damage is
// what stopped the reading short of the spool's end (bytes altered on
// disk): the rest of the track is then a stated gap saying so.
func (r *Recorder) rebuild(ctx context.Context, spoolPath string, sc *sidecar) (blocks int, damage error, err error) {
	key, err := r.spoolKey(ctx, sc.MeetingID)
	if err != nil {
		return 0, nil, err
	}
	in, err := openSpool(spoolPath, key)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("open spool: %w", err)
	}
	defer in.Close()
	_, modTime, err := in.size()
	if err != nil {
		return 0, nil, fmt.Errorf("stat spool: %w", err)
	}
	whole, err := in.section(0)
	if err != nil {
		return 0, nil, fmt.Errorf("stat spool: %w", err)
	}
	tmp := spoolPath + ".rebuild"
	f, err := createSpool(tmp, os.O_TRUNC, key)
	if err != nil {
		return 0, nil, fmt.Errorf("create rebuilt spool: %w", err)
	}
	out := newSpoolFile(f)
	m, err := newRemuxer(out, sc.Channels)
	if err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		return 0, nil, err
	}
	scanErr := scanBlocks(whole, m.add)
	if scanErr != nil && !errors.Is(scanErr, errCorrupt) {
		_ = m.close()
		_ = f.Close()
		_ = os.Remove(tmp)
		return 0, nil, fmt.Errorf("read spool: %w", scanErr)
	}
	if scanErr != nil {
		r.log.Warn("spool damaged; keeping the blocks before the damage", "track", sc.TrackID, "blocks", m.blocks, "err", scanErr)
		damage = scanErr
	}
	blocks, endMS := m.blocks, m.endMS
	err = commitRebuilt(m, out, f, tmp, spoolPath)
	if err != nil {
		return 0, nil, fmt.Errorf("rebuild spool: %w", err)
	}
	sc.Finalized, sc.Recovered, sc.DurationMS = true, true, endMS
	// The last flush is the latest moment audio is known to have been
	// received; what came between the last spooled block and it (the
	// reorder window) is known lost. What came after it is unknowable: the
	// process may have died just after that flush or just before the next
	// one. The minutes must not claim what may be missing, so the stretch
	// up to the next flush is stated lost too (a silent participant's
	// second of silence, at worst).
	lastAudio := sc.FirstPacketAt.Add(time.Duration(endMS) * time.Millisecond)
	gap := modTime.Add(r.cfg.FlushInterval).Sub(lastAudio).Milliseconds()
	if sc.FirstPacketAt.IsZero() {
		gap = 0
	}
	if damage != nil && blocks > 0 {
		// What follows the damage was recorded but cannot be trusted:
		// the minutes state it lost, with why, rather than a silence.
		sc.Gaps = append(sc.Gaps, sidecarGap{FromMS: endMS, ToMS: endMS + max(gap, 1),
			Reason: fmt.Sprintf("the recording's spool was altered or damaged on disk; the audio from there on is not kept (%v)", damage)})
		return blocks, damage, nil
	}
	if gap > 0 {
		sc.GapMS = gap
	}
	return blocks, damage, nil
}

// commitRebuilt finishes a WebM remuxed into tmp (Duration written, file
// durably closed) and puts it in place of spoolPath by rename, so a crash
// leaves the old file or the new one. An empty remux, or any error, leaves
// no tmp behind.
func commitRebuilt(m *remuxer, out *spoolFile, f spoolIO, tmp, spoolPath string) error {
	err := m.close()
	if err == nil {
		err = out.err()
	}
	if err == nil && m.blocks > 0 {
		err = finishHeader(f, m.endMS)
	}
	if ferr := out.finish(); err == nil {
		err = ferr
	}
	if err == nil && m.blocks > 0 {
		err = os.Rename(tmp, spoolPath)
	}
	if err != nil || m.blocks == 0 {
		_ = os.Remove(tmp)
	}
	return err
}
