package archive

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/at-wat/ebml-go"

	"github.com/greffier/greffier/internal/audio"
)

const (
	// readBufferSize batches reads from storage; it is most of a segment
	// reader's memory, so it stays small (hundreds may be open at once).
	readBufferSize = 16 << 10
	// maxElementSize bounds any element read whole (a block, the Tracks),
	// so a corrupt size field cannot make us allocate gigabytes.
	maxElementSize = 16 << 20
	// defaultSeekPreRoll is the Matroska Opus mapping's 80 ms, used when an
	// input does not say.
	defaultSeekPreRoll = audio.OpusSeekPreRoll
)

// opusTrack is the header of an input's Opus track.
type opusTrack struct {
	number       uint64
	codecPrivate []byte
	codecDelayNS int64
	seekPreRoll  int64
	channels     uint64
}

// block is one Opus block of an input, valid until the next call of next.
type block struct {
	timeNS int64 // on the segment's own clock
	flags  byte  // the block header's flags (lacing bits among them)
	raw    []byte
	hdrLen int // raw[hdrLen:] is the frame data (lace header included)
	// discardNS is the DiscardPadding of a BlockGroup: nanoseconds to cut
	// from the end of the block's audio.
	discardNS int64
}

func (b *block) data() []byte { return b.raw[b.hdrLen:] }

func (b *block) laced() bool { return b.flags&0x06 != 0 }

// packets appends the block's Opus packets to dst: one unless laced.
func (b *block) packets(dst [][]byte) ([][]byte, error) {
	if !b.laced() {
		return append(dst, b.data()), nil
	}
	// Laced Opus is rare (neither the recorder nor ffmpeg writes it): the
	// library's allocating parser is good enough for it.
	eb, err := ebml.UnmarshalBlock(bytes.NewReader(b.raw), int64(len(b.raw)))
	if err != nil {
		return dst, fmt.Errorf("laced block: %w", err)
	}
	return append(dst, eb.Data...), nil
}

// samples48 is the length of the block's audio at 48 kHz, DiscardPadding
// removed.
func (b *block) samples48() int64 {
	var n int64
	if !b.laced() {
		n = int64(opusSamples(b.data()))
	} else if ps, err := b.packets(nil); err == nil {
		for _, p := range ps {
			n += int64(opusSamples(p))
		}
	}
	return max(0, n-b.discardNS*48/1_000_000)
}

// segmentReader pulls the Opus blocks of one input WebM in file order,
// holding one block at a time. It reads the element structure itself
// instead of through ebml.Unmarshal, whose hooks push blocks at us: a k-way
// merge needs to pull from many inputs in turn.
type segmentReader struct {
	rc        io.ReadCloser
	br        *bufio.Reader
	scaleNS   int64 // nanoseconds per timecode tick
	track     opusTrack
	cluster   int64 // the current cluster's timecode, -1 before one is read
	buf       []byte
	blk       block
	truncated bool
	done      bool
}

// openSegment opens t and reads its header up to the Tracks element.
func openSegment(ctx context.Context, t Track) (*segmentReader, error) {
	rc, err := t.Open(ctx)
	if err != nil {
		return nil, fmt.Errorf("open track of %s at %d ms: %w", t.Identity, t.StartMS, err)
	}
	r := &segmentReader{rc: rc, br: bufio.NewReaderSize(rc, readBufferSize), scaleNS: 1_000_000, cluster: -1}
	if err := r.readHeader(); err != nil {
		_ = rc.Close()
		return nil, fmt.Errorf("read track of %s at %d ms: %w", t.Identity, t.StartMS, err)
	}
	return r, nil
}

func (r *segmentReader) close() error {
	if r.rc == nil {
		return nil
	}
	err := r.rc.Close()
	// Drop the buffers too: a used-up reader stays referenced until the
	// whole file is written.
	r.rc, r.br, r.buf, r.blk = nil, nil, nil, block{}
	return err
}

// readHeader reads elements until the Opus track is known.
func (r *segmentReader) readHeader() error {
	sawEBML := false
	for r.track.number == 0 {
		id, size, _, err := audio.ReadElementHeader(r.br)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return ErrNoOpusTrack
			}
			return err
		}
		switch id {
		case audio.IDSegment:
			if !sawEBML {
				return fmt.Errorf("segment before the EBML header: %w", errCorrupt)
			}
			continue // descend
		case audio.IDCluster, audio.IDSimpleBlock, audio.IDBlockGroup:
			return fmt.Errorf("cluster before the Tracks element: %w", errCorrupt)
		case audio.IDEBML, audio.IDInfo, audio.IDTracks:
		default:
			if err := r.skip(id, size); err != nil {
				return err
			}
			continue
		}
		b, err := r.readElement(id, size)
		if err != nil {
			return unexpectedAsNoTrack(err)
		}
		switch id {
		case audio.IDEBML:
			sawEBML = true
			if err := checkDocType(b); err != nil {
				return err
			}
		case audio.IDInfo:
			if err := r.parseInfo(b); err != nil {
				return err
			}
		case audio.IDTracks:
			if err := r.parseTracks(b); err != nil {
				return err
			}
		}
	}
	return nil
}

func unexpectedAsNoTrack(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrNoOpusTrack
	}
	return err
}

// next advances to the next block of the Opus track. It returns false at
// the end of the input; a file cut off mid-element ends there too, with
// truncated set.
func (r *segmentReader) next() (bool, error) {
	for !r.done {
		id, size, _, err := audio.ReadElementHeader(r.br)
		if err != nil {
			return r.end(err)
		}
		switch id {
		case audio.IDSegment, audio.IDCluster: // descend: their children follow
			if id == audio.IDCluster {
				r.cluster = -1
			}
			continue
		case audio.IDTimecode, audio.IDSimpleBlock, audio.IDBlockGroup:
		default:
			if err := r.skip(id, size); err != nil {
				return r.end(err)
			}
			continue
		}
		b, err := r.readElement(id, size)
		if err != nil {
			return r.end(err)
		}
		switch id {
		case audio.IDTimecode:
			v, err := audio.ReadUint(b)
			if err != nil || v > 1<<53 {
				return false, fmt.Errorf("cluster timecode: %w", errCorrupt)
			}
			r.cluster = int64(v)
		case audio.IDSimpleBlock:
			ok, err := r.setBlock(b, 0)
			if ok || err != nil {
				return ok, err
			}
		case audio.IDBlockGroup:
			ok, err := r.blockGroup(b)
			if ok || err != nil {
				return ok, err
			}
		}
	}
	return false, nil
}

// end turns a read error into the end of the input.
func (r *segmentReader) end(err error) (bool, error) {
	r.done = true
	switch {
	case errors.Is(err, io.EOF):
		return false, nil
	case errors.Is(err, io.ErrUnexpectedEOF):
		r.truncated = true
		return false, nil
	}
	return false, err
}

func (r *segmentReader) blockGroup(b []byte) (bool, error) {
	var raw []byte
	var discard int64
	err := audio.Children(b, func(id uint32, data []byte) error {
		switch id {
		case audio.IDBlock:
			raw = data
		case audio.IDDiscardPadding:
			v, err := audio.ReadInt(data)
			if err != nil {
				return err
			}
			discard = max(0, v)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("block group: %w", err)
	}
	if raw == nil {
		return false, nil
	}
	return r.setBlock(raw, discard)
}

// setBlock makes raw the current block if it belongs to the Opus track.
func (r *segmentReader) setBlock(raw []byte, discardNS int64) (bool, error) {
	num, n, err := audio.ReadVint(raw)
	if err != nil || len(raw) < n+3 {
		return false, fmt.Errorf("block header: %w", errCorrupt)
	}
	if num != r.track.number {
		return false, nil
	}
	if r.cluster < 0 {
		return false, fmt.Errorf("block outside a cluster with a timecode: %w", errCorrupt)
	}
	rel := int64(int16(binary.BigEndian.Uint16(raw[n:])))
	r.blk = block{
		timeNS:    (r.cluster + rel) * r.scaleNS,
		flags:     raw[n+2],
		raw:       raw,
		hdrLen:    n + 3,
		discardNS: discardNS,
	}
	return true, nil
}

// readElement reads an element's data into the reused buffer.
func (r *segmentReader) readElement(id uint32, size int64) ([]byte, error) {
	if size < 0 || size > maxElementSize {
		return nil, fmt.Errorf("element %#x of size %d: %w", id, size, errCorrupt)
	}
	if cap(r.buf) < int(size) {
		r.buf = make([]byte, size)
	}
	r.buf = r.buf[:size]
	if _, err := io.ReadFull(r.br, r.buf); err != nil {
		return nil, audio.UnexpectedEOF(err)
	}
	return r.buf, nil
}

func (r *segmentReader) skip(id uint32, size int64) error {
	if size < 0 {
		return fmt.Errorf("element %#x of unknown size: %w", id, errCorrupt)
	}
	if _, err := r.br.Discard(int(min(size, 1<<62))); err != nil {
		return audio.UnexpectedEOF(err)
	}
	return nil
}

func checkDocType(b []byte) error {
	docType := "matroska" // the EBML default
	err := audio.Children(b, func(id uint32, data []byte) error {
		if id == audio.IDDocType {
			docType = string(data)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ebml header: %w", err)
	}
	if docType != "webm" && docType != "matroska" {
		return fmt.Errorf("doc type %q is neither webm nor matroska: %w", docType, errCorrupt)
	}
	return nil
}

func (r *segmentReader) parseInfo(b []byte) error {
	return audio.Children(b, func(id uint32, data []byte) error {
		if id != audio.IDTimecodeScale {
			return nil
		}
		v, err := audio.ReadUint(data)
		if err != nil || v == 0 || v > 1_000_000_000 {
			return fmt.Errorf("timecode scale %d: %w", v, errCorrupt)
		}
		r.scaleNS = int64(v)
		return nil
	})
}

func (r *segmentReader) parseTracks(b []byte) error {
	err := audio.Children(b, func(id uint32, data []byte) error {
		if id != audio.IDTrackEntry || r.track.number != 0 {
			return nil
		}
		t, isOpus, err := parseTrackEntry(data)
		if err != nil {
			return err
		}
		if isOpus {
			r.track = t
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("tracks: %w", err)
	}
	if r.track.number == 0 {
		return ErrNoOpusTrack
	}
	return nil
}

func parseTrackEntry(b []byte) (opusTrack, bool, error) {
	t := opusTrack{seekPreRoll: defaultSeekPreRoll, channels: 1}
	var codec string
	var trackType uint64
	err := audio.Children(b, func(id uint32, data []byte) error {
		var err error
		var v uint64
		switch id {
		case audio.IDTrackNumber:
			t.number, err = audio.ReadUint(data)
		case audio.IDTrackType:
			trackType, err = audio.ReadUint(data)
		case audio.IDCodecID:
			codec = string(data)
		case audio.IDCodecPrivate:
			t.codecPrivate = bytes.Clone(data)
		case audio.IDCodecDelay:
			v, err = audio.ReadUint(data)
			t.codecDelayNS = int64(min(v, 1_000_000_000))
		case audio.IDSeekPreRoll:
			v, err = audio.ReadUint(data)
			t.seekPreRoll = int64(min(v, 1_000_000_000))
		case audio.IDAudio:
			err = audio.Children(data, func(id uint32, data []byte) error {
				if id != audio.IDChannels {
					return nil
				}
				c, err := audio.ReadUint(data)
				if err == nil && c >= 1 && c <= 2 {
					t.channels = c
				}
				return err
			})
		}
		return err
	})
	if err != nil {
		return t, false, fmt.Errorf("track entry: %w", err)
	}
	isOpus := codec == "A_OPUS" && t.number != 0 && (trackType == 0 || trackType == 2)
	if isOpus && t.codecDelayNS == 0 && len(t.codecPrivate) >= 19 && string(t.codecPrivate[:8]) == "OpusHead" {
		// Matroska makes CodecDelay authoritative; the OpusHead pre-skip
		// is the fallback for muxers that omit it.
		t.codecDelayNS = int64(binary.LittleEndian.Uint16(t.codecPrivate[10:12])) * 1_000_000_000 / 48000
	}
	if isOpus && len(t.codecPrivate) >= 19 && t.codecPrivate[18] != 0 {
		return t, false, fmt.Errorf("opus track %d uses channel mapping family %d; only mono and stereo are supported",
			t.number, t.codecPrivate[18])
	}
	return t, isOpus, nil
}
