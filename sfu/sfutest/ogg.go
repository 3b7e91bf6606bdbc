package sfutest

import (
	"errors"
	"fmt"
	"os"

	"github.com/greffier/greffier/internal/audio"
)

// oggPacket is one Opus packet of an Ogg Opus file, placed on the 48 kHz
// timeline by the file's granule positions.
type oggPacket struct {
	payload []byte
	ts      uint32 // samples since the first audio packet
	samples uint32
}

type oggOpus struct {
	channels int
	preSkip  uint16
	packets  []oggPacket
}

// readOggOpus reads a whole Ogg Opus file (RFC 7845) and places its
// packets by the file's granule positions, so a gap in the file stays a
// gap.
func readOggOpus(path string) (*oggOpus, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("open ogg: %w", err)
	}
	head, packets, err := audio.OggOpusPackets(b)
	if err != nil {
		return nil, fmt.Errorf("read ogg %s: %w", path, err)
	}
	if len(packets) == 0 {
		return nil, errors.New("ogg: no audio packets")
	}
	out := oggOpus{channels: int(head.Channels), preSkip: head.PreSkip, packets: make([]oggPacket, len(packets))}
	// A granule position is the end of the last packet of its page: walk
	// back from it to place the packets since the previous one. A granule
	// below the packets' sum trims the stream's end: then the packets
	// simply follow on, as they do after the last position.
	var pos int64 // the end of the packets placed so far
	from := 0     // the first packet not placed yet
	for i, p := range packets {
		out.packets[i] = oggPacket{payload: p.Data, samples: uint32(p.Samples)}
		if p.Granule < 0 && i < len(packets)-1 {
			continue
		}
		end := pos
		for _, q := range packets[from : i+1] {
			end += int64(q.Samples)
		}
		end = max(end, p.Granule)
		t := end
		for j := i; j >= from; j-- {
			t -= int64(packets[j].Samples)
			out.packets[j].ts = uint32(t)
		}
		pos, from = end, i+1
	}
	base := out.packets[0].ts
	for i := range out.packets {
		out.packets[i].ts -= base
	}
	return &out, nil
}
