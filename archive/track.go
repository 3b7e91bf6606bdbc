package archive

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// Track is one recorded track segment: a WebM holding one Opus track, as
// the recorder writes it.
type Track struct {
	// Identity is the speaker key (the join token's identity); every
	// segment with the same Identity goes to the same output track.
	Identity string
	// Name is the speaker's display name. The output track takes the first
	// non-empty Name among its segments, in the order given; empty names
	// fall back to Identity.
	Name string
	// StartMS places the segment's time 0 on the meeting clock.
	StartMS int64
	// Open returns the segment's WebM. It is called at most once per call
	// of WriteMultitrack or Mixdown, when the meeting clock reaches the
	// segment, and the reader is closed as soon as it is used up.
	Open func(ctx context.Context) (io.ReadCloser, error)
}

// Stats describes one archive file.
type Stats struct {
	// Speakers is how many output tracks (WriteMultitrack) or voices
	// (Mixdown) the file holds.
	Speakers int
	// Segments is how many input segments were read.
	Segments int
	// Packets counts the Opus packets copied or decoded.
	Packets int64
	// Duration is where the last audio ends on the meeting clock.
	Duration time.Duration
	// Overlapped counts packets WriteMultitrack dropped because they
	// started before audio already written to the same speaker's track (two
	// segments of one speaker overlapping in time): one track cannot play
	// two streams at once.
	Overlapped int64
	// BadPackets counts packets Mixdown's decoder rejected; each became
	// silence of its length.
	BadPackets int64
	// Truncated counts segments whose file ended inside an element, as a
	// recording cut short by a crash does; everything before the cut is used.
	Truncated int
	// Bytes is how many bytes were written.
	Bytes int64
}

// ErrNoTracks is returned when there is nothing to archive.
var ErrNoTracks = errors.New("archive: no tracks")

// ErrNoOpusTrack is returned for an input holding no Opus audio track:
// the caller handed over something the recorder did not write.
var ErrNoOpusTrack = errors.New("archive: webm has no Opus audio track")

// validateTracks checks what the caller promised before any file is opened.
func validateTracks(tracks []Track) error {
	if len(tracks) == 0 {
		return ErrNoTracks
	}
	for i, t := range tracks {
		switch {
		case t.Identity == "":
			return fmt.Errorf("archive: track %d has no Identity; set the speaker key", i)
		case t.Open == nil:
			return fmt.Errorf("archive: track %d (%s) has no Open function", i, t.Identity)
		case t.StartMS < 0:
			return fmt.Errorf("archive: track %d (%s) starts at %d ms; StartMS must be >= 0 on the meeting clock", i, t.Identity, t.StartMS)
		}
	}
	return nil
}

// speaker is one output track: every segment of one Identity.
type speaker struct {
	identity string
	name     string
	segments []int // indexes into the caller's tracks, by StartMS
}

// groupSpeakers returns the speakers in order of first appearance, each
// with its segments sorted by start time.
func groupSpeakers(tracks []Track) []speaker {
	var out []speaker
	index := make(map[string]int)
	for i, t := range tracks {
		k, ok := index[t.Identity]
		if !ok {
			k = len(out)
			index[t.Identity] = k
			out = append(out, speaker{identity: t.Identity})
		}
		s := &out[k]
		if s.name == "" {
			s.name = t.Name
		}
		s.segments = append(s.segments, i)
	}
	for k := range out {
		s := &out[k]
		if s.name == "" {
			s.name = s.identity
		}
		sortByStart(s.segments, tracks)
	}
	return out
}

// sortByStart sorts segment indexes by StartMS, keeping the caller's order
// for equal starts so the output does not depend on the sort.
func sortByStart(idx []int, tracks []Track) {
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(tracks[a].StartMS, tracks[b].StartMS) })
}
