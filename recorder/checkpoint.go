package recorder

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/internal/store"
)

// Checkpoints: while a track is recorded, a goroutine of its own reads
// the stretch of the spool written since the previous checkpoint (the
// spool is flushed every FlushInterval, so it is on disk already) and
// uploads it as chunk n, a small standalone WebM whose first block is at
// 0, then rewrites the track's journal (layout.RecordingJournal) listing
// every confirmed chunk and the track time its first block stands for.
// The journal is the commit: a chunk it does not list does not exist for
// Recover, and a failed upload is retried at the next checkpoint with a
// longer stretch under the same key. Reading the spool back, rather than
// copying blocks as they are written, keeps the packet path and the spool
// goroutine unaware of checkpoints and costs no memory between them.
//
// When the track is stored whole, its journal and then its chunks are
// deleted. When the spool disk is lost, Recover finds the journal and
// concatenates the listed chunks' blocks, at their track times, into one
// WebM stored as the recovered track.

// journal is a checkpointed track's record in blob storage.
type journal struct {
	Track  sidecar    `json:"track"`
	Chunks []chunkRef `json:"chunks"`
	// CheckpointedAt is when the last chunk was cut (arrival clock): the
	// track was still being recorded then.
	CheckpointedAt time.Time `json:"checkpointed_at"`
}

// chunkRef is one confirmed chunk.
type chunkRef struct {
	N int `json:"n"`
	// FromMS is the track time of the chunk's first block, which the
	// chunk itself places at 0; ToMS is the end of its last block.
	FromMS int64  `json:"from_ms"`
	ToMS   int64  `json:"to_ms"`
	Blocks int    `json:"blocks"`
	SHA256 string `json:"sha256"`
}

// checkpointer uploads one track's chunks. Only its own goroutine uses it.
type checkpointer struct {
	w       *Writer
	scan    blockScanner
	spool   *spoolReader // opened for reading at the first checkpoint
	journal journal
	broken  bool // the spool stopped making sense: no further checkpoints
}

func newCheckpointer(w *Writer) *checkpointer {
	return &checkpointer{w: w, scan: *newBlockScanner()}
}

// run checkpoints every interval until ctx ends.
func (c *checkpointer) run(ctx context.Context, every time.Duration) {
	defer c.close()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := c.runOnce(ctx); err != nil && ctx.Err() == nil {
				c.w.r.log.Warn("checkpoint failed; the next one retries with a longer stretch",
					"track", c.w.sc.TrackID, "chunk", len(c.journal.Chunks), "err", err)
			}
		}
	}
}

func (c *checkpointer) close() {
	if c.spool != nil {
		_ = c.spool.Close()
	}
}

// runOnce uploads the blocks spooled since the last checkpoint as the
// next chunk and commits it in the journal. It reports whether a chunk
// was made; with nothing new on disk it does nothing.
func (c *checkpointer) runOnce(ctx context.Context) (bool, error) {
	if c.broken {
		return false, nil
	}
	if c.spool == nil {
		k, err := c.w.r.spoolKey(ctx, c.w.sc.MeetingID)
		if err != nil {
			return false, fmt.Errorf("open spool for checkpoint: %w", err)
		}
		f, err := openSpool(c.w.spoolPath, k)
		if err != nil {
			return false, fmt.Errorf("open spool for checkpoint: %w", err)
		}
		c.spool = f
	}
	size, _, err := c.spool.size()
	if err != nil {
		return false, fmt.Errorf("stat spool for checkpoint: %w", err)
	}
	next := c.scan
	if size <= next.off {
		return false, nil
	}
	out := &memFile{}
	m, err := newRemuxer(out, c.w.sc.Channels)
	if err != nil {
		return false, err
	}
	// A checkpoint of a long stretch (after failed uploads) must not hold
	// up Close: it stops between blocks once ctx ends, and the stretch is
	// read again by the next checkpoint, since c.scan only moves on success.
	scanErr := next.scan(c.spool.span(next.off, size), func(ms int64, frame []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return m.add(ms, frame)
	})
	closeErr := m.close()
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("checkpoint abandoned: %w", err)
	}
	if scanErr != nil {
		// The spool goroutine only writes WebM blocks of valid
		// Opus: this spool is damaged, and reading on would be guessing.
		c.broken = true
		c.w.r.log.Error("spool unreadable; checkpoints stop here", "track", c.w.sc.TrackID, "err", scanErr)
		return false, fmt.Errorf("read spool for checkpoint: %w", scanErr)
	}
	if closeErr != nil {
		return false, fmt.Errorf("build chunk: %w", closeErr)
	}
	if m.blocks == 0 {
		return false, nil
	}
	if err := finishHeader(out, m.endMS-m.first); err != nil {
		return false, fmt.Errorf("build chunk: %w", err)
	}
	sc, _ := c.w.snapshot()
	n := len(c.journal.Chunks)
	ref := chunkRef{N: n, FromMS: m.first, ToMS: m.endMS, Blocks: m.blocks}
	info, err := c.w.r.putBytes(ctx, layout.TrackChunk(sc.MeetingID, sc.TrackID, n), out.b)
	if err != nil {
		return false, err
	}
	ref.SHA256 = info.SHA256
	j := journal{Track: sc, Chunks: append(c.journal.Chunks[:n:n], ref), CheckpointedAt: c.w.r.cfg.Now()}
	b, err := json.Marshal(j)
	if err != nil {
		return false, fmt.Errorf("encode journal: %w", err)
	}
	if _, err := c.w.r.putBytes(ctx, layout.RecordingJournal(sc.MeetingID, sc.TrackID), b); err != nil {
		return false, err
	}
	c.journal, c.scan = j, next
	return true, nil
}

// putBytes stores b under key in one attempt bounded by UploadTimeout.
func (r *Recorder) putBytes(ctx context.Context, key string, b []byte) (blob.Info, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.UploadTimeout)
	defer cancel()
	info, err := r.blobs.Put(ctx, key, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return blob.Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	return info, nil
}

// readJournal returns a track's journal, or false if it has none.
func (r *Recorder) readJournal(ctx context.Context, meetingID, trackID string) (journal, bool, error) {
	var j journal
	key := layout.RecordingJournal(meetingID, trackID)
	rc, err := r.blobs.Get(ctx, key)
	if errors.Is(err, blob.ErrNotFound) {
		return j, false, nil
	}
	if err != nil {
		return j, false, fmt.Errorf("read journal %s: %w", key, err)
	}
	defer rc.Close()
	if err := json.NewDecoder(rc).Decode(&j); err != nil {
		return j, false, fmt.Errorf("decode journal %s: %w", key, err)
	}
	if j.Track.MeetingID != meetingID || j.Track.TrackID != trackID || j.Track.Identity == "" {
		return j, false, fmt.Errorf("journal %s names another track", key)
	}
	return j, true, nil
}

// dropCheckpoints deletes a stored track's journal, then its chunks. It
// fails only if the journal stays: chunks without a journal are garbage
// that no recovery will ever read.
func (r *Recorder) dropCheckpoints(ctx context.Context, meetingID, trackID string) error {
	if err := r.blobs.Delete(ctx, layout.RecordingJournal(meetingID, trackID)); err != nil {
		return fmt.Errorf("delete journal: %w", err)
	}
	chunks, err := r.blobs.List(ctx, layout.TrackChunks(meetingID, trackID))
	if err != nil {
		r.log.Warn("list chunks to delete", "track", trackID, "err", err)
		return nil
	}
	for _, c := range chunks {
		if err := r.blobs.Delete(ctx, c.Key); err != nil {
			r.log.Warn("delete chunk", "key", c.Key, "err", err)
		}
	}
	return nil
}

// recoverJournals rebuilds, from their chunks, the tracks whose journal
// remains but whose spool is gone: the disk holding it was lost. Tracks
// open in this process, and those with a sidecar (Recover's spool pass
// owns them), are left alone.
func (r *Recorder) recoverJournals(ctx context.Context) []error {
	infos, err := r.blobs.List(ctx, layout.RecordingJournals)
	if err != nil {
		// Not fatal: storage being down must not stop Greffier from
		// starting; the journals stay for the next Recover.
		r.log.Error("recover: cannot list checkpointed tracks; any whose spool disk was lost wait for the next start",
			"err", err)
		return nil
	}
	var errs []error
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return append(errs, fmt.Errorf("recover: %w", err))
		}
		rest, ok := strings.CutSuffix(strings.TrimPrefix(info.Key, layout.RecordingJournals), ".json")
		meetingID, trackID, ok2 := strings.Cut(rest, "/")
		if !ok || !ok2 || !validID(meetingID) || !validID(trackID) {
			r.log.Warn("recover: not a journal", "key", info.Key)
			continue
		}
		r.mu.Lock()
		_, busy := r.open[trackID]
		r.mu.Unlock()
		if busy {
			continue
		}
		// Checked after busy: a closing track is forgotten only once its
		// spool and journal are gone.
		if _, side := r.paths(meetingID, trackID); fileExists(side) {
			continue
		}
		if err := r.recoverFromChunks(ctx, meetingID, trackID, nil); err != nil {
			r.log.Error("recover track from checkpoints", "track", trackID, "err", err)
			errs = append(errs, err)
		}
	}
	return errs
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// LostRecorder says why and since when a track recorded by another
// process cannot be had from its spool: that process's node was lost.
type LostRecorder struct {
	// At is when it was last known alive (its last heartbeat).
	At time.Time
	// Reason is what the minutes say of the stretch lost, such as
	// "media node node_x lost at 09:30:02Z".
	Reason string
}

// RecoverLost rebuilds from its checkpoints a track that another process
// was recording when it was lost, on this process's spool, and stores it
// as recovered: what came after its last checkpoint, until lost.At, is
// recorded as a gap with lost.Reason. A track with no checkpoint is marked
// failed with the reason. A track stored meanwhile is left alone.
func (r *Recorder) RecoverLost(ctx context.Context, t store.Track, lost LostRecorder) error {
	if !validID(t.MeetingID) || !validID(t.ID) {
		return fmt.Errorf("recover lost track %q of %q: not an id", t.ID, t.MeetingID)
	}
	r.mu.Lock()
	_, busy := r.open[t.ID]
	r.mu.Unlock()
	if busy {
		return nil // recorded here: not lost
	}
	_, ok, err := r.readJournal(ctx, t.MeetingID, t.ID)
	if err != nil {
		return err
	}
	if !ok {
		if _, err := r.blobs.Stat(ctx, layout.Track(t.MeetingID, t.ID)); err == nil {
			return nil // stored whole: its process finished it
		}
		return r.catalog.FailTrack(ctx, t.ID, lost.Reason+", before the first checkpoint of this recording")
	}
	return r.recoverFromChunks(ctx, t.MeetingID, t.ID, &lost)
}

// recoverFromChunks rebuilds a track from its journal's chunks into a new
// local spool and stores it as recovered. The rebuilt file is renamed into
// place before its sidecar is written, so a crash here leaves either
// nothing (the journal is read again next time) or a finalized spool.
// With lost, the track was another process's, lost at lost.At.
func (r *Recorder) recoverFromChunks(ctx context.Context, meetingID, trackID string, lost *LostRecorder) error {
	j, ok, err := r.readJournal(ctx, meetingID, trackID)
	if err != nil || !ok {
		return err // no journal: the track was stored meanwhile
	}
	sc := j.Track
	if err := r.catalog.CreateTrack(ctx, sc.row(store.TrackRecording)); err != nil {
		return fmt.Errorf("recover track %s: catalog: %w", trackID, err)
	}
	spoolPath, sidePath := r.paths(meetingID, trackID)
	if info, err := r.blobs.Stat(ctx, layout.Track(meetingID, trackID)); err == nil {
		// The whole track reached storage before the disk was lost; only
		// its last bookkeeping did not. Never replace it with less.
		return r.finishFromObject(ctx, sc, info)
	}
	if err := os.MkdirAll(filepath.Dir(spoolPath), 0o700); err != nil {
		return fmt.Errorf("recover track %s: %w", trackID, err)
	}
	tmp := spoolPath + ".rebuild"
	key, err := r.spoolKey(ctx, meetingID)
	if err != nil {
		return fmt.Errorf("recover track %s: %w", trackID, err)
	}
	f, err := createSpool(tmp, os.O_TRUNC, key)
	if err != nil {
		return fmt.Errorf("recover track %s: create spool: %w", trackID, err)
	}
	out := newSpoolFile(f)
	m, err := newRemuxer(out, sc.Channels)
	if err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("recover track %s: %w", trackID, err)
	}
	for _, c := range j.Chunks {
		if err := r.appendChunk(ctx, m, meetingID, trackID, c); err != nil {
			// Later chunks keep their times: the lost stretch stays a gap.
			r.log.Error("recover: chunk lost; its stretch stays silent", "track", trackID, "chunk", c.N, "err", err)
		}
	}
	blocks, endMS := m.blocks, m.endMS
	err = commitRebuilt(m, out, f, tmp, spoolPath)
	if err != nil {
		return fmt.Errorf("recover track %s from checkpoints: %w", trackID, err)
	}
	if blocks == 0 {
		row := sc.row(store.TrackFailed)
		row.Failure = "the spool disk was lost and none of this track's checkpoints could be read"
		if err := r.catalog.FinishTrack(ctx, row); err != nil {
			return fmt.Errorf("recover track %s: catalog: %w", trackID, err)
		}
		return r.dropCheckpoints(ctx, meetingID, trackID)
	}
	sc.Finalized, sc.Recovered, sc.DurationMS = true, true, endMS
	// Known lost: from the end of the checkpointed audio to the last
	// checkpoint, when the track was still being recorded. What came
	// after that checkpoint (at most CheckpointInterval) left no trace.
	sc.GapMS = 0
	if !sc.FirstPacketAt.IsZero() {
		lastAudio := sc.FirstPacketAt.Add(time.Duration(endMS) * time.Millisecond)
		sc.GapMS = max(0, j.CheckpointedAt.Sub(lastAudio).Milliseconds())
		if lost != nil {
			// Known lost: everything from the checkpointed audio to the
			// node's last sign of life, said with its reason.
			sc.GapMS = 0
			if to := lost.At.Sub(sc.FirstPacketAt).Milliseconds(); to > endMS {
				sc.Gaps = append(sc.Gaps, sidecarGap{FromMS: endMS, ToMS: to, Reason: lost.Reason})
			}
		}
	}
	if err := r.writeSidecar(sidePath, sc); err != nil {
		return fmt.Errorf("recover track %s: %w", trackID, err)
	}
	r.log.Info("recovering track from checkpoints", "track", trackID, "meeting", meetingID,
		"chunks", len(j.Chunks), "duration_ms", endMS, "gap_ms", sc.GapMS)
	return r.store(ctx, sc, spoolPath, sidePath)
}

// appendChunk adds one chunk's blocks, at their track times, to m.
func (r *Recorder) appendChunk(ctx context.Context, m *remuxer, meetingID, trackID string, c chunkRef) error {
	rc, err := r.blobs.Get(ctx, layout.TrackChunk(meetingID, trackID, c.N))
	if err != nil {
		return fmt.Errorf("get chunk: %w", err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc) // a chunk is a few minutes of one voice
	if err != nil {
		return fmt.Errorf("read chunk: %w", err)
	}
	// Check the whole chunk before adding any of it, so a damaged one
	// adds nothing rather than a prefix with a tail missing inside.
	var times []int64
	err = scanBlocks(bytes.NewReader(data), func(ms int64, frame []byte) error {
		times = append(times, ms)
		return nil
	})
	if err == nil && (len(times) != c.Blocks || len(times) == 0 || times[0] != 0) {
		err = fmt.Errorf("chunk holds %d blocks, journal says %d: %w", len(times), c.Blocks, errCorrupt)
	}
	if err != nil {
		return err
	}
	return scanBlocks(bytes.NewReader(data), func(ms int64, frame []byte) error {
		return m.add(c.FromMS+ms, frame)
	})
}

// finishFromObject records a track whose whole file is in storage though
// its spool and sidecar were lost before the catalog heard of it.
func (r *Recorder) finishFromObject(ctx context.Context, sc sidecar, info blob.Info) error {
	dur, err := r.objectDuration(ctx, info.Key)
	if err != nil {
		return fmt.Errorf("recover track %s: %w", sc.TrackID, err)
	}
	row := sc.row(store.TrackStored)
	row.DurationMS, row.BlobKey, row.Size, row.SHA256 = dur, info.Key, info.Size, info.SHA256
	if err := r.catalog.FinishTrack(ctx, row); err != nil {
		return fmt.Errorf("recover track %s: catalog: %w", sc.TrackID, err)
	}
	return r.dropCheckpoints(ctx, sc.MeetingID, sc.TrackID)
}

// objectDuration reads the Duration from a stored track's header.
func (r *Recorder) objectDuration(ctx context.Context, key string) (int64, error) {
	rc, err := r.blobs.Get(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	head := make([]byte, 4096)
	n, err := io.ReadFull(rc, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return 0, fmt.Errorf("read %s: %w", key, err)
	}
	pos, err := findDuration(head[:n])
	if err != nil {
		return 0, err
	}
	return int64(math.Float64frombits(binary.BigEndian.Uint64(head[pos : pos+8]))), nil
}
