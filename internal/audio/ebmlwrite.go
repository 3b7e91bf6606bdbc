package audio

import (
	"encoding/binary"
	"math"
)

// The writers below append EBML to a byte slice: the archive's muxer and
// the recorder's spool build each element in memory and write it in one go.

// AppendID appends an element id (its marker bits are part of the value).
func AppendID(b []byte, id uint32) []byte {
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

// AppendSize appends a data size in the shortest vint that holds it.
func AppendSize(b []byte, n uint64) []byte {
	l := 1
	for l < 8 && n >= (1<<(7*l))-1 { // all ones is reserved for "unknown"
		l++
	}
	return AppendSizeN(b, n, l)
}

// AppendSizeN appends a data size as a vint of exactly l bytes, so it can
// be overwritten in place later.
func AppendSizeN(b []byte, n uint64, l int) []byte {
	v := n | 1<<(7*l)
	for i := l - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

// AppendVint appends a block header's track number.
func AppendVint(b []byte, n uint64) []byte { return AppendSize(b, n) }

func AppendMaster(b []byte, id uint32, data []byte) []byte {
	b = AppendID(b, id)
	b = AppendSize(b, uint64(len(data)))
	return append(b, data...)
}

func AppendUint(b []byte, id uint32, v uint64) []byte {
	n := 1
	for n < 8 && v>>(8*n) != 0 {
		n++
	}
	b = AppendID(b, id)
	b = AppendSize(b, uint64(n))
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

func AppendInt(b []byte, id uint32, v int64) []byte {
	n := 1
	for n < 8 && (v < -(1<<(8*n-1)) || v >= 1<<(8*n-1)) {
		n++
	}
	b = AppendID(b, id)
	b = AppendSize(b, uint64(n))
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

func AppendFloat(b []byte, id uint32, v float64) []byte {
	b = AppendID(b, id)
	b = AppendSize(b, 8)
	return binary.BigEndian.AppendUint64(b, math.Float64bits(v))
}

func AppendString(b []byte, id uint32, s string) []byte {
	b = AppendID(b, id)
	b = AppendSize(b, uint64(len(s)))
	return append(b, s...)
}

func AppendBytes(b []byte, id uint32, v []byte) []byte {
	b = AppendID(b, id)
	b = AppendSize(b, uint64(len(v)))
	return append(b, v...)
}

// AppendVoid appends a Void element of exactly n bytes (n >= 9), which is
// how space reserved in the header is filled.
func AppendVoid(b []byte, n int) []byte {
	b = append(b, IDVoid)
	b = AppendSizeN(b, uint64(n-9), 8)
	for range n - 9 {
		b = append(b, 0)
	}
	return b
}

// SizeLen is how many bytes AppendSize uses for n.
func SizeLen(n uint64) int {
	l := 1
	for l < 8 && n >= (1<<(7*l))-1 {
		l++
	}
	return l
}

// AppendWebMHeader appends the EBML header of a WebM file (DocType webm,
// version 4), which comes before its Segment.
func AppendWebMHeader(b []byte) []byte {
	var hdr []byte
	hdr = AppendUint(hdr, IDEBMLVersion, 1)
	hdr = AppendUint(hdr, IDEBMLReadVersion, 1)
	hdr = AppendUint(hdr, IDEBMLMaxIDLength, 4)
	hdr = AppendUint(hdr, IDEBMLMaxSizeLength, 8)
	hdr = AppendString(hdr, IDDocType, "webm")
	hdr = AppendUint(hdr, IDDocTypeVersion, 4)
	hdr = AppendUint(hdr, IDDocTypeReadVersion, 2)
	return AppendMaster(b, IDEBML, hdr)
}
