package audio

import (
	"errors"
	"fmt"
	"io"
	"math"
)

// The pieces below read EBML (the container format of WebM) as a pull
// parser: ebml-go's Unmarshal pushes a whole file's elements through hooks,
// but the archive merges many inputs by pulling a block at a time and the
// recorder resumes reading a growing spool where it stopped.

// EBML and Matroska element ids Greffier reads and writes (marker bits
// kept, as written).
const (
	IDEBML               = 0x1A45DFA3
	IDEBMLVersion        = 0x4286
	IDEBMLReadVersion    = 0x42F7
	IDEBMLMaxIDLength    = 0x42F2
	IDEBMLMaxSizeLength  = 0x42F3
	IDDocType            = 0x4282
	IDDocTypeVersion     = 0x4287
	IDDocTypeReadVersion = 0x4285
	IDVoid               = 0xEC

	IDSegment       = 0x18538067
	IDSeekHead      = 0x114D9B74
	IDSeek          = 0x4DBB
	IDSeekID        = 0x53AB
	IDSeekPosition  = 0x53AC
	IDInfo          = 0x1549A966
	IDTimecodeScale = 0x2AD7B1
	IDDuration      = 0x4489
	IDMuxingApp     = 0x4D80
	IDWritingApp    = 0x5741

	IDTracks       = 0x1654AE6B
	IDTrackEntry   = 0xAE
	IDTrackNumber  = 0xD7
	IDTrackUID     = 0x73C5
	IDTrackType    = 0x83
	IDFlagDefault  = 0x88
	IDName         = 0x536E
	IDLanguage     = 0x22B59C
	IDCodecID      = 0x86
	IDCodecPrivate = 0x63A2
	IDCodecDelay   = 0x56AA
	IDSeekPreRoll  = 0x56BB
	IDAudio        = 0xE1
	IDSampling     = 0xB5
	IDChannels     = 0x9F

	IDCluster        = 0x1F43B675
	IDTimecode       = 0xE7
	IDSimpleBlock    = 0xA3
	IDBlockGroup     = 0xA0
	IDBlock          = 0xA1
	IDDiscardPadding = 0x75A2

	IDCues               = 0x1C53BB6B
	IDCuePoint           = 0xBB
	IDCueTime            = 0xB3
	IDCueTrackPositions  = 0xB7
	IDCueTrack           = 0xF7
	IDCueClusterPosition = 0xF1

	IDTags        = 0x1254C367
	IDTag         = 0x7373
	IDTargets     = 0x63C0
	IDTagTrackUID = 0x63C5
	IDSimpleTag   = 0x67C8
	IDTagName     = 0x45A3
	IDTagString   = 0x4487
)

// UnknownSize is the data size of a master element written before its
// length was known (a live recording's Segment and Clusters).
const UnknownSize = -1

// ErrCorruptWebM says the input stops making sense as EBML.
var ErrCorruptWebM = errors.New("corrupt webm")

// ReadElementHeader reads an element id (marker bits kept) and data size
// (UnknownSize for the reserved all-ones value) from r, and how many bytes
// both took. io.EOF before the first byte is a clean end between
// elements; an end inside the header is io.ErrUnexpectedEOF.
func ReadElementHeader(r io.ByteReader) (id uint32, size int64, n int, err error) {
	b, err := r.ReadByte()
	if err != nil {
		return 0, 0, 0, err
	}
	l := 1
	for mask := byte(0x80); l <= 4 && b&mask == 0; mask >>= 1 {
		l++
	}
	if l > 4 {
		return 0, 0, 1, fmt.Errorf("element id starting %#x: %w", b, ErrCorruptWebM)
	}
	id = uint32(b)
	for i := 1; i < l; i++ {
		c, err := r.ReadByte()
		if err != nil {
			return 0, 0, i, UnexpectedEOF(err)
		}
		id = id<<8 | uint32(c)
	}
	b, err = r.ReadByte()
	if err != nil {
		return 0, 0, l, UnexpectedEOF(err)
	}
	sl := 1
	for mask := byte(0x80); sl <= 8 && b&mask == 0; mask >>= 1 {
		sl++
	}
	if sl > 8 {
		return 0, 0, l + 1, fmt.Errorf("size of element %#x: %w", id, ErrCorruptWebM)
	}
	v := uint64(b) & (0xFF >> sl)
	allOnes := v == uint64(0xFF>>sl)
	for i := 1; i < sl; i++ {
		c, err := r.ReadByte()
		if err != nil {
			return 0, 0, l + i, UnexpectedEOF(err)
		}
		v = v<<8 | uint64(c)
		allOnes = allOnes && c == 0xFF
	}
	if allOnes {
		return id, UnknownSize, l + sl, nil
	}
	if v > math.MaxInt64 {
		return 0, 0, l + sl, fmt.Errorf("size of element %#x: %w", id, ErrCorruptWebM)
	}
	return id, int64(v), l + sl, nil
}

// UnexpectedEOF turns io.EOF into io.ErrUnexpectedEOF: the input ended
// inside an element, not between two.
func UnexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ParseElementHeader is ReadElementHeader on the start of b.
func ParseElementHeader(b []byte) (id uint32, size int64, n int, err error) {
	return ReadElementHeader(&sliceReader{b: b})
}

// Children calls fn with each child element of a master element held in b.
func Children(b []byte, fn func(id uint32, data []byte) error) error {
	for len(b) > 0 {
		id, size, n, err := ParseElementHeader(b)
		if err != nil {
			return fmt.Errorf("child element: %w", ErrCorruptWebM)
		}
		if size < 0 || size > int64(len(b)-n) {
			return fmt.Errorf("child element %#x of size %d in %d bytes: %w", id, size, len(b)-n, ErrCorruptWebM)
		}
		if err := fn(id, b[n:n+int(size)]); err != nil {
			return err
		}
		b = b[n+int(size):]
	}
	return nil
}

type sliceReader struct {
	b   []byte
	off int
}

func (r *sliceReader) ReadByte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

// ReadUint decodes an EBML unsigned integer of up to 8 bytes.
func ReadUint(b []byte) (uint64, error) {
	if len(b) > 8 {
		return 0, fmt.Errorf("integer of %d bytes: %w", len(b), ErrCorruptWebM)
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

// ReadInt decodes an EBML signed integer of up to 8 bytes.
func ReadInt(b []byte) (int64, error) {
	if len(b) > 8 {
		return 0, fmt.Errorf("integer of %d bytes: %w", len(b), ErrCorruptWebM)
	}
	if len(b) == 0 {
		return 0, nil
	}
	v := int64(int8(b[0]))
	for _, c := range b[1:] {
		v = v<<8 | int64(c)
	}
	return v, nil
}

// ReadVint decodes a variable-size integer with its length marker removed,
// as a block header stores its track number.
func ReadVint(b []byte) (v uint64, n int, err error) {
	if len(b) == 0 {
		return 0, 0, ErrCorruptWebM
	}
	n = 1
	for mask := byte(0x80); n <= 8 && b[0]&mask == 0; mask >>= 1 {
		n++
	}
	if n > 8 || n > len(b) {
		return 0, 0, ErrCorruptWebM
	}
	v = uint64(b[0]) & (0xFF >> n)
	for _, c := range b[1:n] {
		v = v<<8 | uint64(c)
	}
	return v, n, nil
}
