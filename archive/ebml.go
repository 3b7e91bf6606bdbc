package archive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// EBML and Matroska element ids used here (marker bits kept, as written).
const (
	idEBML               = 0x1A45DFA3
	idEBMLVersion        = 0x4286
	idEBMLReadVersion    = 0x42F7
	idEBMLMaxIDLength    = 0x42F2
	idEBMLMaxSizeLength  = 0x42F3
	idDocType            = 0x4282
	idDocTypeVersion     = 0x4287
	idDocTypeReadVersion = 0x4285
	idVoid               = 0xEC

	idSegment       = 0x18538067
	idSeekHead      = 0x114D9B74
	idSeek          = 0x4DBB
	idSeekID        = 0x53AB
	idSeekPosition  = 0x53AC
	idInfo          = 0x1549A966
	idTimecodeScale = 0x2AD7B1
	idDuration      = 0x4489
	idMuxingApp     = 0x4D80
	idWritingApp    = 0x5741

	idTracks       = 0x1654AE6B
	idTrackEntry   = 0xAE
	idTrackNumber  = 0xD7
	idTrackUID     = 0x73C5
	idTrackType    = 0x83
	idFlagDefault  = 0x88
	idName         = 0x536E
	idLanguage     = 0x22B59C
	idCodecID      = 0x86
	idCodecPrivate = 0x63A2
	idCodecDelay   = 0x56AA
	idSeekPreRoll  = 0x56BB
	idAudio        = 0xE1
	idSampling     = 0xB5
	idChannels     = 0x9F

	idCluster        = 0x1F43B675
	idTimecode       = 0xE7
	idSimpleBlock    = 0xA3
	idBlockGroup     = 0xA0
	idBlock          = 0xA1
	idDiscardPadding = 0x75A2

	idCues               = 0x1C53BB6B
	idCuePoint           = 0xBB
	idCueTime            = 0xB3
	idCueTrackPositions  = 0xB7
	idCueTrack           = 0xF7
	idCueClusterPosition = 0xF1

	idTags        = 0x1254C367
	idTag         = 0x7373
	idTargets     = 0x63C0
	idTagTrackUID = 0x63C5
	idSimpleTag   = 0x67C8
	idTagName     = 0x45A3
	idTagString   = 0x4487
)

// unknownSize is the data size of a master element written before its
// length was known (a live recording's Segment and Clusters).
const unknownSize = -1

// errCorrupt says the input stops making sense as EBML.
var errCorrupt = errors.New("corrupt webm")

// readHeader reads an element id and data size (unknownSize for the
// reserved all-ones value) from r.
func readHeader(r io.ByteReader) (id uint32, size int64, err error) {
	b, err := r.ReadByte()
	if err != nil {
		return 0, 0, err // io.EOF here is a clean end between elements
	}
	l := 1
	for mask := byte(0x80); l <= 4 && b&mask == 0; mask >>= 1 {
		l++
	}
	if l > 4 {
		return 0, 0, fmt.Errorf("element id starting %#x: %w", b, errCorrupt)
	}
	id = uint32(b)
	for i := 1; i < l; i++ {
		c, err := r.ReadByte()
		if err != nil {
			return 0, 0, unexpected(err)
		}
		id = id<<8 | uint32(c)
	}
	b, err = r.ReadByte()
	if err != nil {
		return 0, 0, unexpected(err)
	}
	sl := 1
	for mask := byte(0x80); sl <= 8 && b&mask == 0; mask >>= 1 {
		sl++
	}
	if sl > 8 {
		return 0, 0, fmt.Errorf("size of element %#x: %w", id, errCorrupt)
	}
	v := uint64(b) & (0xFF >> sl)
	allOnes := v == uint64(0xFF>>sl)
	for i := 1; i < sl; i++ {
		c, err := r.ReadByte()
		if err != nil {
			return 0, 0, unexpected(err)
		}
		v = v<<8 | uint64(c)
		allOnes = allOnes && c == 0xFF
	}
	if allOnes {
		return id, unknownSize, nil
	}
	if v > math.MaxInt64 {
		return 0, 0, fmt.Errorf("size of element %#x: %w", id, errCorrupt)
	}
	return id, int64(v), nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// children calls fn with each child element of a master element held in b.
func children(b []byte, fn func(id uint32, data []byte) error) error {
	for len(b) > 0 {
		r := byteReader{b: b}
		id, size, err := readHeader(&r)
		if err != nil {
			return fmt.Errorf("child element: %w", errCorrupt)
		}
		if size < 0 || size > int64(len(b)-r.off) {
			return fmt.Errorf("child element %#x of size %d in %d bytes: %w", id, size, len(b)-r.off, errCorrupt)
		}
		if err := fn(id, b[r.off:r.off+int(size)]); err != nil {
			return err
		}
		b = b[r.off+int(size):]
	}
	return nil
}

type byteReader struct {
	b   []byte
	off int
}

func (r *byteReader) ReadByte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

// readUint decodes an EBML unsigned integer of up to 8 bytes.
func readUint(b []byte) (uint64, error) {
	if len(b) > 8 {
		return 0, fmt.Errorf("integer of %d bytes: %w", len(b), errCorrupt)
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

// readInt decodes an EBML signed integer of up to 8 bytes.
func readInt(b []byte) (int64, error) {
	if len(b) > 8 {
		return 0, fmt.Errorf("integer of %d bytes: %w", len(b), errCorrupt)
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

// readVint decodes a variable-size integer with its length marker removed,
// as a block header stores its track number.
func readVint(b []byte) (v uint64, n int, err error) {
	if len(b) == 0 {
		return 0, 0, errCorrupt
	}
	n = 1
	for mask := byte(0x80); n <= 8 && b[0]&mask == 0; mask >>= 1 {
		n++
	}
	if n > 8 || n > len(b) {
		return 0, 0, errCorrupt
	}
	v = uint64(b[0]) & (0xFF >> n)
	for _, c := range b[1:n] {
		v = v<<8 | uint64(c)
	}
	return v, n, nil
}

// The writers below append EBML to a byte slice: the muxer builds each
// element in memory (a cluster at most) and writes it in one go.

// appendID appends an element id (its marker bits are part of the value).
func appendID(b []byte, id uint32) []byte {
	switch {
	case id >= 1<<24:
		return append(b, byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	case id >= 1<<16:
		return append(b, byte(id>>16), byte(id>>8), byte(id))
	case id >= 1<<8:
		return append(b, byte(id>>8), byte(id))
	}
	return append(b, byte(id))
}

// appendSize appends a data size in the shortest vint that holds it.
func appendSize(b []byte, n uint64) []byte {
	l := 1
	for l < 8 && n >= (1<<(7*l))-1 { // all ones is reserved for "unknown"
		l++
	}
	return appendSizeN(b, n, l)
}

// appendSizeN appends a data size as a vint of exactly l bytes, so it can
// be overwritten in place later.
func appendSizeN(b []byte, n uint64, l int) []byte {
	v := n | 1<<(7*l)
	for i := l - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

// appendVint appends a block header's track number.
func appendVint(b []byte, n uint64) []byte { return appendSize(b, n) }

func appendMaster(b []byte, id uint32, data []byte) []byte {
	b = appendID(b, id)
	b = appendSize(b, uint64(len(data)))
	return append(b, data...)
}

func appendUint(b []byte, id uint32, v uint64) []byte {
	n := 1
	for n < 8 && v>>(8*n) != 0 {
		n++
	}
	b = appendID(b, id)
	b = appendSize(b, uint64(n))
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

func appendInt(b []byte, id uint32, v int64) []byte {
	n := 1
	for n < 8 && (v < -(1<<(8*n-1)) || v >= 1<<(8*n-1)) {
		n++
	}
	b = appendID(b, id)
	b = appendSize(b, uint64(n))
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

func appendFloat(b []byte, id uint32, v float64) []byte {
	b = appendID(b, id)
	b = appendSize(b, 8)
	return binary.BigEndian.AppendUint64(b, math.Float64bits(v))
}

func appendString(b []byte, id uint32, s string) []byte {
	b = appendID(b, id)
	b = appendSize(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, id uint32, v []byte) []byte {
	b = appendID(b, id)
	b = appendSize(b, uint64(len(v)))
	return append(b, v...)
}

// appendVoid appends a Void element of exactly n bytes (n >= 9), which is
// how space reserved in the header is filled.
func appendVoid(b []byte, n int) []byte {
	b = append(b, idVoid)
	b = appendSizeN(b, uint64(n-9), 8)
	for range n - 9 {
		b = append(b, 0)
	}
	return b
}
