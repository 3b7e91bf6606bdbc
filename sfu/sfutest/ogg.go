package sfutest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
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

// readOggOpus reads a whole Ogg Opus file (RFC 7845). pion's oggreader
// returns whole pages, but a page holds several packets and a packet may
// span pages, so the lacing is undone here.
func readOggOpus(path string) (*oggOpus, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open ogg: %w", err)
	}
	defer f.Close()
	r := bufio.NewReader(f)

	var out oggOpus
	var partial []byte
	headersSeen := 0
	var pos uint64 // granule at the end of the previous page's last packet
	var hdr [27]byte
	for page := 0; ; page++ {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) && page > 0 {
				break
			}
			return nil, fmt.Errorf("ogg page %d header: %w", page, err)
		}
		if !bytes.Equal(hdr[:4], []byte("OggS")) {
			return nil, fmt.Errorf("ogg page %d: bad capture pattern", page)
		}
		granule := binary.LittleEndian.Uint64(hdr[6:14])
		lacing := make([]byte, hdr[26])
		if _, err := io.ReadFull(r, lacing); err != nil {
			return nil, fmt.Errorf("ogg page %d lacing: %w", page, err)
		}
		var done [][]byte
		for _, l := range lacing {
			seg := make([]byte, l)
			if _, err := io.ReadFull(r, seg); err != nil {
				return nil, fmt.Errorf("ogg page %d data: %w", page, err)
			}
			partial = append(partial, seg...)
			if l < 255 {
				done = append(done, partial)
				partial = nil
			}
		}
		var audio []oggPacket
		for _, p := range done {
			switch {
			case headersSeen == 0:
				if len(p) < 19 || !bytes.HasPrefix(p, []byte("OpusHead")) {
					return nil, errors.New("ogg: first packet is not OpusHead; is this an Ogg Opus file?")
				}
				out.channels = int(p[9])
				out.preSkip = binary.LittleEndian.Uint16(p[10:12])
				headersSeen++
			case headersSeen == 1:
				headersSeen++ // OpusTags
			default:
				n, err := opusSamples(p)
				if err != nil {
					return nil, fmt.Errorf("ogg page %d: %w", page, err)
				}
				audio = append(audio, oggPacket{payload: p, samples: n})
			}
		}
		if len(audio) == 0 {
			continue
		}
		// The page's granule is the end of its last packet: walk back to
		// place each packet, so a gap in the file stays a gap. A granule
		// below the packets' sum trims the stream's end (or is -1, "no
		// packet ends here"): then the packets simply follow on.
		end := pos
		for _, p := range audio {
			end += uint64(p.samples)
		}
		if granule != ^uint64(0) && granule > end {
			end = granule
		}
		t := end
		for i := len(audio) - 1; i >= 0; i-- {
			t -= uint64(audio[i].samples)
			audio[i].ts = uint32(t)
		}
		pos = end
		out.packets = append(out.packets, audio...)
	}
	if len(out.packets) == 0 {
		return nil, errors.New("ogg: no audio packets")
	}
	base := out.packets[0].ts
	for i := range out.packets {
		out.packets[i].ts -= base
	}
	return &out, nil
}

// opusSamples is a packet's duration at 48 kHz, from its TOC (RFC 6716 3.1).
func opusSamples(p []byte) (uint32, error) {
	if len(p) == 0 {
		return 0, errors.New("empty opus packet")
	}
	cfg := p[0] >> 3
	var frame uint32
	switch {
	case cfg < 12: // SILK: 10, 20, 40, 60 ms
		frame = []uint32{480, 960, 1920, 2880}[cfg%4]
	case cfg < 16: // hybrid: 10, 20 ms
		frame = []uint32{480, 960}[cfg%2]
	default: // CELT: 2.5, 5, 10, 20 ms
		frame = []uint32{120, 240, 480, 960}[cfg%4]
	}
	var frames uint32
	switch p[0] & 3 {
	case 0:
		frames = 1
	case 1, 2:
		frames = 2
	default:
		if len(p) < 2 {
			return 0, errors.New("opus code 3 packet without frame count")
		}
		frames = uint32(p[1] & 0x3f)
	}
	return frame * frames, nil
}
