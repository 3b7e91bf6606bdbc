package recorder

import (
	"io/fs"
	"path/filepath"
)

// RecorderStats is what the Recorder is doing, for metrics.
type RecorderStats struct {
	// Tracks is the number of tracks being recorded now.
	Tracks int
	// Packets sums every track's Stats since New, closed tracks included.
	Packets Stats
	// Queued is the packets received and not yet written to the spool,
	// over every open track: how far the spool writers are behind.
	Queued int
	// SpoolBytes is the size of the files in the spool: tracks being
	// recorded and those waiting to be stored.
	SpoolBytes int64
}

// Stats returns the Recorder's counters; it walks the spool directory for
// SpoolBytes, so call it at a scrape's pace, not per packet.
func (r *Recorder) Stats() RecorderStats {
	// r.mu, then each writer's: forget removes a writer and adds its
	// counts in one step under r.mu, so no packet is counted twice.
	r.mu.Lock()
	s := RecorderStats{Packets: r.closedStats}
	for _, w := range r.open {
		if w == nil {
			continue // being opened: Open reserves its id first
		}
		s.Tracks++
		w.mu.Lock()
		s.Packets.Add(w.seq.stats)
		s.Queued += w.seq.qLen
		w.mu.Unlock()
	}
	r.mu.Unlock()
	_ = filepath.WalkDir(r.cfg.SpoolDir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil // a file removed while walking: not there any more
		}
		if info, err := d.Info(); err == nil {
			s.SpoolBytes += info.Size()
		}
		return nil
	})
	return s
}

// Add counts o in s, as summing several tracks' stats does.
func (s *Stats) Add(o Stats) {
	s.Written += o.Written
	s.Late += o.Late
	s.Duplicate += o.Duplicate
	s.Garbage += o.Garbage
	s.BadTimestamp += o.BadTimestamp
	s.Overflow += o.Overflow
	s.Resyncs += o.Resyncs
	s.Lost += o.Lost
}
