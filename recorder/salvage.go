package recorder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/internal/store"
)

// salvage stores what of a track reached its spool before the spool
// stopped taking it (sc.LostReason says why; sc.HeardMS is how long the
// track was heard), as a recovered track whose lost end is a stated gap.
// The WebM is rebuilt in memory, not on the spool disk, which may still be
// full. Nothing of the track on disk: the track is failed, all of it
// missing. It is idempotent, so a retry after a failed upload or catalog
// write (the database may sit on the full disk) starts again.
func (r *Recorder) salvage(ctx context.Context, sc sidecar, spoolPath, sidePath string) error {
	if sc.Transient {
		return r.discard(ctx, sc, spoolPath, sidePath) // nothing of it is kept anyway
	}
	var mem memFile
	m, err := newRemuxer(&mem, sc.Channels)
	if err != nil {
		return fmt.Errorf("salvage track %s: %w", sc.TrackID, err)
	}
	sk, err := r.spoolKey(ctx, sc.MeetingID)
	if err != nil {
		_ = m.close()
		return fmt.Errorf("salvage track %s: %w", sc.TrackID, err)
	}
	in, err := openSpool(spoolPath, sk)
	var whole io.Reader
	if err == nil {
		if whole, err = in.section(0); err != nil {
			_ = in.Close()
		}
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		_ = m.close()
		return fmt.Errorf("salvage track %s: open spool: %w", sc.TrackID, err)
	default:
		serr := scanBlocks(whole, m.add)
		_ = in.Close()
		if serr != nil && !errors.Is(serr, errCorrupt) {
			_ = m.close()
			return fmt.Errorf("salvage track %s: read spool: %w", sc.TrackID, serr)
		}
	}
	err = m.close()
	if err == nil && m.blocks > 0 {
		err = finishHeader(&mem, m.endMS)
	}
	if err != nil {
		return fmt.Errorf("salvage track %s: rebuild: %w", sc.TrackID, err)
	}
	heard := max(sc.HeardMS, m.endMS)
	reason := sc.LostReason
	if reason == "" {
		reason = "the recording stopped early"
	}
	if m.blocks == 0 {
		row := sc.row(store.TrackFailed)
		row.DurationMS, row.Failure = heard, reason
		if err := r.catalog.FinishTrack(ctx, row); err != nil {
			return fmt.Errorf("salvage track %s: catalog: %w", sc.TrackID, err)
		}
		r.removeSpool(spoolPath, sidePath)
		return nil
	}
	key := layout.Track(sc.MeetingID, sc.TrackID)
	pctx, cancel := context.WithTimeout(ctx, r.cfg.UploadTimeout)
	info, err := r.blobs.Put(pctx, key, bytes.NewReader(mem.b), int64(len(mem.b)))
	cancel()
	if err != nil {
		return fmt.Errorf("salvage track %s: put %s: %w", sc.TrackID, key, err)
	}
	row := sc.row(store.TrackRecovered)
	row.DurationMS, row.GapMS = m.endMS, 0
	row.BlobKey, row.Size, row.SHA256 = key, info.Size, info.SHA256
	// Gaps from before the spool stopped stand; later ones lie inside
	// the lost end.
	row.Gaps = row.Gaps[:0]
	for _, g := range sc.Gaps {
		if g.FromMS < m.endMS {
			row.Gaps = append(row.Gaps, sc.gap(g))
		}
	}
	if heard > m.endMS {
		row.Gaps = append(row.Gaps, store.TrackGap{StartMS: sc.StartMS + m.endMS, EndMS: sc.StartMS + heard, Reason: reason})
	}
	if err := r.catalog.FinishTrack(ctx, row); err != nil {
		return fmt.Errorf("salvage track %s: catalog: %w", sc.TrackID, err)
	}
	if err := r.dropCheckpoints(ctx, sc.MeetingID, sc.TrackID); err != nil {
		r.log.Error("track salvaged but its checkpoints remain; Recover will retry", "track", sc.TrackID, "err", err)
		return nil
	}
	r.removeSpool(spoolPath, sidePath)
	return nil
}
