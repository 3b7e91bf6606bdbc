package archive

import (
	"encoding/binary"
	"math"

	"github.com/greffier/greffier/internal/audio"
)

// errCorrupt says the input stops making sense as EBML: the toolbox's
// error, so reading and muxing say it alike.
var errCorrupt = audio.ErrCorruptWebM

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
	b = append(b, audio.IDVoid)
	b = appendSizeN(b, uint64(n-9), 8)
	for range n - 9 {
		b = append(b, 0)
	}
	return b
}
