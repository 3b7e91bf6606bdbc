package transcribe

import (
	"bytes"
	"fmt"

	"github.com/tinylib/msgp/msgp"
)

// kyutaiKind is the "type" tag of a frame from a Kyutai server.
type kyutaiKind int

const (
	kyutaiOther kyutaiKind = iota // a type this client does not use
	kyutaiReady
	kyutaiWord
	kyutaiEndWord
	kyutaiStep
	kyutaiMarker
	kyutaiError
)

// kyutaiMsg is one decoded server frame. Only the fields of its kind are
// set; decoding a Step, the frame that comes every 80 ms, allocates nothing.
type kyutaiMsg struct {
	kind     kyutaiKind
	text     string  // Word
	time     float64 // Word's start_time, EndWord's stop_time
	stepIdx  int64
	buffered int64 // Step's buffered_pcm: samples queued on the server
	markerID int64
	message  string // Error
}

// decodeKyutai reads one MessagePack map frame into m. Keys may come in
// any order (rmp_serde writes them in declaration order, other servers
// need not); unknown keys, such as Step's "prs", are skipped.
func decodeKyutai(b []byte, m *kyutaiMsg) error {
	*m = kyutaiMsg{}
	n, b, err := msgp.ReadMapHeaderBytes(b)
	if err != nil {
		return fmt.Errorf("frame is not a MessagePack map: %w", err)
	}
	var text, message []byte
	for range n {
		var key []byte
		key, b, err = msgp.ReadMapKeyZC(b)
		if err != nil {
			return fmt.Errorf("frame key: %w", err)
		}
		switch string(key) { // compiled to a comparison without allocating
		case "type":
			var v []byte
			if v, b, err = msgp.ReadStringZC(b); err == nil {
				m.kind = kyutaiKindOf(v)
			}
		case "text":
			text, b, err = msgp.ReadStringZC(b)
		case "message":
			message, b, err = msgp.ReadStringZC(b)
		case "start_time", "stop_time":
			m.time, b, err = readNumber(b)
		case "step_idx":
			var f float64
			f, b, err = readNumber(b)
			m.stepIdx = int64(f)
		case "buffered_pcm":
			var f float64
			f, b, err = readNumber(b)
			m.buffered = int64(f)
		case "id":
			var f float64
			f, b, err = readNumber(b)
			m.markerID = int64(f)
		default:
			b, err = msgp.Skip(b)
		}
		if err != nil {
			return fmt.Errorf("frame field %q: %w", key, err)
		}
	}
	switch m.kind {
	case kyutaiWord:
		m.text = string(text)
	case kyutaiError:
		m.message = string(message)
	}
	return nil
}

func kyutaiKindOf(v []byte) kyutaiKind {
	switch {
	case bytes.Equal(v, []byte("Step")):
		return kyutaiStep
	case bytes.Equal(v, []byte("Word")):
		return kyutaiWord
	case bytes.Equal(v, []byte("EndWord")):
		return kyutaiEndWord
	case bytes.Equal(v, []byte("Marker")):
		return kyutaiMarker
	case bytes.Equal(v, []byte("Ready")):
		return kyutaiReady
	case bytes.Equal(v, []byte("Error")):
		return kyutaiError
	}
	return kyutaiOther
}

// readNumber reads any MessagePack number as a float64: rmp_serde writes
// f64 for times and unsigned integers for counters, but a server in
// another language may pick other widths.
func readNumber(b []byte) (float64, []byte, error) {
	switch msgp.NextType(b) {
	case msgp.Float64Type, msgp.Float32Type:
		return msgp.ReadFloat64Bytes(b)
	case msgp.IntType:
		i, o, err := msgp.ReadInt64Bytes(b)
		return float64(i), o, err
	case msgp.UintType:
		u, o, err := msgp.ReadUint64Bytes(b)
		return float64(u), o, err
	}
	return 0, b, fmt.Errorf("want a number, got MessagePack %v", msgp.NextType(b))
}

// appendKyutaiAudio appends an Audio frame carrying pcm (24 kHz, [-1,1]).
// Samples go as float32, half the size of Python's float64 and what the
// server decodes them to anyway.
func appendKyutaiAudio(dst []byte, pcm []float32) []byte {
	dst = msgp.AppendMapHeader(dst, 2)
	dst = msgp.AppendString(dst, "type")
	dst = msgp.AppendString(dst, "Audio")
	dst = msgp.AppendString(dst, "pcm")
	dst = msgp.AppendArrayHeader(dst, uint32(len(pcm)))
	for _, v := range pcm {
		dst = msgp.AppendFloat32(dst, v)
	}
	return dst
}

// appendKyutaiMarker appends a Marker frame.
func appendKyutaiMarker(dst []byte, id int64) []byte {
	dst = msgp.AppendMapHeader(dst, 2)
	dst = msgp.AppendString(dst, "type")
	dst = msgp.AppendString(dst, "Marker")
	dst = msgp.AppendString(dst, "id")
	return msgp.AppendInt64(dst, id)
}
