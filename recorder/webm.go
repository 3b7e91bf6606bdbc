package recorder

import (
	"fmt"
	"math"

	"github.com/greffier/greffier/internal/audio"
)

// webmWriter writes a one-track Opus WebM block by block, in the calling
// goroutine: EBML header, a Segment of unknown size (a crash leaves a file
// whose every whole block can be read back), SeekHead, Info with a
// Duration to patch (finishHeader), Tracks, space reserved for Cues, then
// Clusters of unknown size, each starting with its Timecode, of
// SimpleBlocks. close writes the Cues into the reserved space.
//
// Each block is built in one reused buffer and handed to out in one Write
// (the spool's buffered file, or memory), so writing a block allocates
// nothing and needs no goroutine: ebml-go, which wrote these files before,
// marshalled every block by reflection on a goroutine of its own (a
// hand-off and 19 allocations per packet).
//
// Times are milliseconds; the first block is written at 0 and the others
// relative to it, so a chunk cut out of a track starts at 0 (as ebml-go
// did it). Blocks must come in non-decreasing time.
type webmWriter struct {
	out webmSink
	buf []byte
	off int64 // bytes handed to out so far

	segData int64 // offset of the Segment's data: positions count from it
	cuesAt  int64 // offset of the space reserved for Cues

	first   int64 // time of the first block; -1 before it
	cluster int64 // current cluster's timecode (rebased); -1 before the first
	last    int64
	cues    []webmCue
}

// webmCue indexes one cluster: its time and position in the Segment.
type webmCue struct{ ms, pos int64 }

// clusterSpan is the longest a cluster may run: block times are int16
// milliseconds relative to it.
const clusterSpan = math.MaxInt16

// unknownSize is the 8-byte vint that says "size unknown".
const unknownSize = 1<<56 - 1

// newWebMWriter writes the header of a one-track Opus WebM to out.
func newWebMWriter(out webmSink, channels uint8) (*webmWriter, error) {
	w := &webmWriter{out: out, first: -1, cluster: -1, last: -1}
	b := audio.AppendWebMHeader(nil)
	b = audio.AppendID(b, audio.IDSegment)
	b = audio.AppendSizeN(b, unknownSize, 8)
	w.segData = int64(len(b))

	var info []byte
	info = audio.AppendUint(info, audio.IDTimecodeScale, 1_000_000) // 1 ms
	info = audio.AppendString(info, audio.IDMuxingApp, "greffier")
	info = audio.AppendString(info, audio.IDWritingApp, "greffier")
	info = audio.AppendFloat(info, audio.IDDuration, 0) // finishHeader writes it
	info = audio.AppendMaster(nil, audio.IDInfo, info)

	var entry []byte
	entry = audio.AppendString(entry, audio.IDName, "audio")
	entry = audio.AppendUint(entry, audio.IDTrackNumber, 1)
	entry = audio.AppendUint(entry, audio.IDTrackUID, 1)
	entry = audio.AppendString(entry, audio.IDCodecID, "A_OPUS")
	entry = audio.AppendBytes(entry, audio.IDCodecPrivate, audio.OpusHead(channels, audio.LibopusPreSkip))
	entry = audio.AppendUint(entry, audio.IDCodecDelay, uint64(opusCodecDelay))
	entry = audio.AppendUint(entry, audio.IDSeekPreRoll, uint64(audio.OpusSeekPreRoll))
	entry = audio.AppendUint(entry, audio.IDTrackType, 2) // audio
	var a []byte
	a = audio.AppendFloat(a, audio.IDSampling, 48000)
	a = audio.AppendUint(a, audio.IDChannels, uint64(channels))
	entry = audio.AppendMaster(entry, audio.IDAudio, a)
	tracks := audio.AppendMaster(nil, audio.IDTracks, audio.AppendMaster(nil, audio.IDTrackEntry, entry))

	// The SeekHead's length depends on the positions it holds, which
	// depend on its length: two rounds settle it.
	var seek []byte
	for range 2 {
		infoAt := int64(len(seek))
		tracksAt := infoAt + int64(len(info))
		cuesAt := tracksAt + int64(len(tracks))
		seek = seek[:0]
		var s []byte
		for _, e := range [...]struct {
			id  uint32
			pos int64
		}{{audio.IDInfo, infoAt}, {audio.IDTracks, tracksAt}, {audio.IDCues, cuesAt}} {
			var one []byte
			one = audio.AppendBytes(one, audio.IDSeekID, audio.AppendID(nil, e.id))
			one = audio.AppendUint(one, audio.IDSeekPosition, uint64(e.pos))
			s = audio.AppendMaster(s, audio.IDSeek, one)
		}
		seek = audio.AppendMaster(seek, audio.IDSeekHead, s)
	}
	b = append(b, seek...)
	b = append(b, info...)
	b = append(b, tracks...)
	w.cuesAt = int64(len(b))
	b = audio.AppendVoid(b, cuesReserve)
	if err := w.write(b); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *webmWriter) write(b []byte) error {
	n, err := w.out.Write(b)
	w.off += int64(n)
	if err != nil {
		return fmt.Errorf("write webm: %w", err)
	}
	return nil
}

// block writes one Opus frame at ms.
func (w *webmWriter) block(ms int64, frame []byte) error {
	if ms < w.last {
		return fmt.Errorf("block at %d ms after %d ms: %w", ms, w.last, errCorrupt)
	}
	if w.first < 0 {
		w.first = ms
	}
	w.last = ms
	t := ms - w.first
	b := w.buf[:0]
	if w.cluster < 0 || t-w.cluster > clusterSpan {
		w.cluster = t
		w.cues = append(w.cues, webmCue{ms: t, pos: w.off - w.segData})
		b = audio.AppendID(b, audio.IDCluster)
		b = audio.AppendSizeN(b, unknownSize, 8)
		b = audio.AppendUint(b, audio.IDTimecode, uint64(t))
	}
	// A SimpleBlock: track 1, time relative to the cluster, keyframe, no
	// lacing, then the frame.
	b = audio.AppendID(b, audio.IDSimpleBlock)
	b = audio.AppendSize(b, uint64(4+len(frame)))
	rel := t - w.cluster
	b = append(b, 0x81, byte(rel>>8), byte(rel), 0x80)
	b = append(b, frame...)
	w.buf = b
	return w.write(b)
}

// close writes the Cues into the space reserved for them (every other cue
// dropped until they fit, as ebml-go did). Duration is finishHeader's.
func (w *webmWriter) close() error {
	if len(w.cues) == 0 {
		return nil
	}
	cues := w.cues
	for {
		var body []byte
		for _, c := range cues {
			var pos []byte
			pos = audio.AppendUint(pos, audio.IDCueTrack, 1)
			pos = audio.AppendUint(pos, audio.IDCueClusterPosition, uint64(c.pos))
			var pt []byte
			pt = audio.AppendUint(pt, audio.IDCueTime, uint64(c.ms))
			pt = audio.AppendMaster(pt, audio.IDCueTrackPositions, pos)
			body = audio.AppendMaster(body, audio.IDCuePoint, pt)
		}
		b := audio.AppendMaster(nil, audio.IDCues, body)
		if rest := cuesReserve - len(b); rest == 0 || rest >= 9 {
			if rest > 0 {
				b = audio.AppendVoid(b, rest)
			}
			if _, err := w.out.WriteAt(b, w.cuesAt); err != nil {
				return fmt.Errorf("write webm cues: %w", err)
			}
			return nil
		}
		if len(cues) == 1 {
			return nil // no room for even one: the Void stays
		}
		thin := cues[:0:0]
		for i := 0; i < len(cues); i += 2 {
			thin = append(thin, cues[i])
		}
		cues = thin
	}
}
