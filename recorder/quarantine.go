package recorder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/greffier/greffier/internal/store"
)

// QuarantineDir is where, under SpoolDir, Recover moves the spools it
// cannot read: <meeting>/<track>.json and .webm as found, plus
// <track>.reason.txt saying why.
const QuarantineDir = "quarantine"

// badSidecarError is a sidecar Recover cannot make sense of.
type badSidecarError struct{ err error }

func (e *badSidecarError) Error() string { return "damaged spool sidecar: " + e.err.Error() }
func (e *badSidecarError) Unwrap() error { return e.err }

// quarantine moves a damaged sidecar and its spool out of Recover's way,
// says why beside them and in the log, and marks the track failed so the
// meeting's progress and minutes say it was lost. The names still tell
// the meeting (the directory) and the track (the file).
func (r *Recorder) quarantine(ctx context.Context, sidePath string, cause error) {
	meetingID := filepath.Base(filepath.Dir(sidePath))
	trackID := strings.TrimSuffix(filepath.Base(sidePath), ".json")
	dir := filepath.Join(r.cfg.SpoolDir, QuarantineDir, meetingID)
	log := r.log.With("meeting", meetingID, "track", trackID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		log.Error("cannot quarantine a damaged spool; it stays where it is", "sidecar", sidePath, "cause", cause, "err", err)
		return
	}
	reason := fmt.Sprintf("%s: %v\nThe recorder could not read the notes it keeps beside this track's spool, "+
		"so it could not finish the track. What was spooled is kept here as found (%s.webm, if any); "+
		"an operator may inspect it. The track is marked failed.\n", time.Now().UTC().Format(time.RFC3339), cause, trackID)
	if err := os.WriteFile(filepath.Join(dir, trackID+".reason.txt"), []byte(reason), 0o600); err != nil {
		log.Warn("cannot write the quarantine reason", "err", err)
	}
	base := strings.TrimSuffix(sidePath, ".json")
	for _, ext := range []string{".webm", ".json"} { // the spool first, as removeSpool does
		if err := os.Rename(base+ext, filepath.Join(dir, trackID+ext)); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Error("cannot quarantine a damaged spool file", "path", base+ext, "err", err)
		}
	}
	_ = os.Remove(filepath.Dir(sidePath)) // only succeeds once the meeting's dir is empty
	log.Error("recover: damaged spool quarantined; the track is marked failed", "cause", cause, "moved_to", dir)

	failure := fmt.Sprintf("the recording could not be finished: its spool's sidecar was damaged (%v); "+
		"what was spooled is kept in %s for an operator", cause, dir)
	op := func(ctx context.Context) error {
		err := r.catalog.FailTrack(ctx, trackID, failure)
		if errors.Is(err, store.ErrNotFound) {
			// The sidecar is written before the catalog hears of a track
			// and the spool after: no row, no audio.
			log.Warn("recover: the quarantined track was never in the catalog; nothing of it was recorded")
			return nil
		}
		return err
	}
	if err := op(ctx); err != nil {
		log.Error("recover: cannot mark the quarantined track failed; retrying", "err", err)
		r.later(trackID, op)
	}
}
