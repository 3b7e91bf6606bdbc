package audio

// The reader below takes Ogg Opus files (RFC 7845) as the speech backends
// and the test tools need them: their length, from the granule positions;
// their packets, placed by the granule positions; and their audio, decoded
// by pion/opus to mono PCM at a chosen rate with pre-skip, output gain and
// end trimming honoured. It handles one logical stream, mono or stereo
// (stereo is mixed down), packets of any length spread over pages in any
// way (pion's oggwriter puts one packet on a page, opusenc about a second
// of them).

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/pion/opus"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// GranuleRate is the rate of granule positions and pre-skip: 48 kHz,
// whatever the rate decoded to.
const GranuleRate = 48000

const (
	pageHeaderLen = 27
	headerTypeCon = 0x01 // the page's first packet continues the previous page's last
)

// ErrNotOggOpus starts every error about the data itself: not Ogg, not
// Opus, more than one stream, damaged or cut short.
var ErrNotOggOpus = errors.New("not a readable Ogg Opus file")

// IsOgg reports whether b starts as an Ogg stream does ("OggS"). It says
// nothing about what the stream holds.
func IsOgg(b []byte) bool { return len(b) >= 4 && string(b[:4]) == "OggS" }

// OggOpusDuration reads a whole file's length from its granule positions,
// without decoding: the last page's granule position, less the first
// sample's and the pre-skip, at GranuleRate.
func OggOpusDuration(b []byte) (time.Duration, error) {
	var s oggStream
	n, err := s.pages(b, func([]byte) error { return nil })
	if err == nil {
		err = s.complete(b, n)
	}
	if err != nil {
		return 0, err
	}
	samples := max(0, s.lastGranule-s.first-int64(s.head.PreSkip))
	return time.Duration(samples * int64(time.Second) / GranuleRate), nil
}

// OggPacket is one audio packet of an Ogg Opus file.
type OggPacket struct {
	Data    []byte
	Samples int // its length at GranuleRate, from its TOC
	// Granule is the granule position of the page this packet is the
	// last to end on (where it ends, RFC 7845 section 4), or -1 when
	// another packet ends after it on the same page: tools that place
	// packets on a timeline keep the gaps the granule positions state.
	Granule int64
}

// OggOpusPackets returns a whole file's OpusHead and audio packets, in
// order, for tools that re-mux or replay them.
func OggOpusPackets(b []byte) (oggreader.OggHeader, []OggPacket, error) {
	var (
		s       oggStream
		packets []OggPacket
		onPage  int // packets before the current page
	)
	s.pageDone = func(granule int64) {
		if len(packets) > onPage {
			packets[len(packets)-1].Granule = granule
		}
		onPage = len(packets)
	}
	n, err := s.pages(b, func(p []byte) error {
		samples, _ := PacketSamples48(p) // the stream checked it
		packets = append(packets, OggPacket{Data: bytes.Clone(p), Samples: samples, Granule: -1})
		return nil
	})
	if err == nil {
		err = s.complete(b, n)
	}
	if err != nil {
		return oggreader.OggHeader{}, nil, err
	}
	return s.head, packets, nil
}

// DecodeOggOpus decodes a whole file to mono samples in [-1, 1] at rate,
// one of 8000, 12000, 16000, 24000 or 48000 Hz.
func DecodeOggOpus(b []byte, rate int) ([]float32, error) {
	d, err := NewOggOpusDecoder(rate)
	if err != nil {
		return nil, err
	}
	pcm, err := d.Decode(nil, b)
	if err == nil {
		err = d.s.complete(b, len(b)-len(d.pending))
	}
	if err != nil {
		return nil, err
	}
	return pcm, nil
}

// DecodeOggOpusInt16 is DecodeOggOpus to 16-bit samples.
func DecodeOggOpusInt16(b []byte, rate int) ([]int16, error) {
	pcm, err := DecodeOggOpus(b, rate)
	if err != nil {
		return nil, err
	}
	out := make([]int16, len(pcm))
	for i, v := range pcm {
		out[i] = int16(max(-32768, min(32767, math.Round(float64(v)*32768))))
	}
	return out, nil
}

// OggOpusDecoder decodes one Ogg Opus stream given in pieces of any size, as a
// live stream arrives. It is not safe for concurrent use.
type OggOpusDecoder struct {
	rate    int
	s       oggStream
	dec     opus.Decoder
	pending []byte    // the start of a page not yet complete
	buf     []float32 // one packet's audio
	started bool
	gain    float32
	skip    int64 // samples of pre-skip still to drop, at rate
	out     int64 // samples decoded, pre-skip included, less any trimmed, at rate
}

// NewOggOpusDecoder returns a decoder to mono at rate, one of 8000,
// 12000, 16000, 24000 or 48000 Hz.
func NewOggOpusDecoder(rate int) (*OggOpusDecoder, error) {
	dec, err := opus.NewDecoderWithOutput(rate, 1)
	if err != nil {
		return nil, fmt.Errorf("ogg opus: decoder at %d Hz: %w", rate, err)
	}
	return &OggOpusDecoder{rate: rate, dec: dec, buf: make([]float32, rate*MaxPacketSamples48/GranuleRate)}, nil
}

// Decode appends to dst the audio of every page that data completes,
// keeping an incomplete last page for the next call.
func (d *OggOpusDecoder) Decode(dst []float32, data []byte) ([]float32, error) {
	b := data
	if len(d.pending) > 0 {
		d.pending = append(d.pending, data...)
		b = d.pending
	}
	from := len(dst)
	n, err := d.s.pages(b, func(packet []byte) error {
		var err error
		dst, err = d.packet(dst, packet)
		return err
	})
	if err != nil {
		return dst, err
	}
	// End trimming: the last page's granule position may end the stream
	// before its last packet does (RFC 7845 4.4).
	if end := d.s.end() * int64(d.rate) / GranuleRate; d.out > end {
		cut := min(d.out-end, int64(len(dst)-from))
		dst = dst[:int64(len(dst))-cut]
		d.out = end
	}
	d.pending = append(d.pending[:0], b[n:]...)
	return dst, nil
}

// packet decodes one audio packet, drops what is left of the pre-skip and
// applies the output gain.
func (d *OggOpusDecoder) packet(dst []float32, packet []byte) ([]float32, error) {
	if !d.started {
		d.started = true
		d.skip = int64(d.s.head.PreSkip) * int64(d.rate) / GranuleRate
		d.gain = float32(math.Pow(10, float64(int16(d.s.head.OutputGain))/(20*256))) // Q7.8 dB
	}
	n, err := d.dec.DecodeToFloat32(packet, d.buf)
	if err != nil {
		return dst, fmt.Errorf("%w: audio packet %d: %w", ErrNotOggOpus, d.s.packets-3, err)
	}
	d.out += int64(n)
	drop := min(d.skip, int64(n))
	d.skip -= drop
	for _, v := range d.buf[drop:n] {
		dst = append(dst, max(-1, min(1, v*d.gain)))
	}
	return dst, nil
}

// oggStream follows one logical stream's pages and packets: its headers, the
// packets' lengths and the granule positions.
type oggStream struct {
	pageCount int
	serial    uint32
	head      oggreader.OggHeader
	packets   int    // packets completed, headers included
	partial   []byte // a packet continued on the next page
	// pageDone, when set, hears each page's granule position (-1 for
	// none) once its packets went to audio.
	pageDone func(granule int64)
	// decoded is the audio in the packets so far, first is the granule
	// position of the first sample (-1 until a page says), lastGranule
	// the last page's (-1 until a page gives one), all at GranuleRate.
	decoded, first, lastGranule int64
}

// end is where the audio stops, pre-skip included, at GranuleRate, as far
// as the last page with a granule position says: at most what was decoded.
func (s *oggStream) end() int64 {
	if s.lastGranule < 0 || s.first < 0 {
		return s.decoded
	}
	return min(s.decoded, s.lastGranule-s.first)
}

// pages reads the complete pages at the start of b, calls audio for each
// audio packet they complete, and returns how many bytes they took.
func (s *oggStream) pages(b []byte, audio func([]byte) error) (int, error) {
	if s.pageCount == 0 {
		s.first, s.lastGranule = -1, -1
	}
	r := bytes.NewReader(b)
	pr, err := oggreader.NewWithOptions(r)
	if err != nil {
		return 0, fmt.Errorf("ogg opus: %w", err)
	}
	for {
		at := len(b) - r.Len()
		if len(b)-at < pageHeaderLen {
			if len(b)-at >= 4 && !IsOgg(b[at:]) {
				return at, fmt.Errorf("%w: no page at byte %d", ErrNotOggOpus, at)
			}
			return at, nil
		}
		if !IsOgg(b[at:]) || b[at+4] != 0 {
			return at, fmt.Errorf("%w: no page at byte %d", ErrNotOggOpus, at)
		}
		// oggreader checks the page (lengths, CRC) but keeps its segment
		// table, which says where packets end: read it from the page itself.
		payload, h, err := pr.ParseNextPage()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return at, nil // the page is not all there yet
		}
		if err != nil {
			return at, fmt.Errorf("%w: page %d at byte %d: %w", ErrNotOggOpus, s.pageCount, at, err)
		}
		lacing := b[at+pageHeaderLen : at+pageHeaderLen+int(b[at+26])]
		if err := s.page(b[at+5], h, lacing, payload, audio); err != nil {
			return at, err
		}
	}
}

// page takes one page: its packets, then its granule position.
func (s *oggStream) page(headerType byte, h *oggreader.OggPageHeader, lacing, payload []byte, audio func([]byte) error) error {
	switch {
	case s.pageCount == 0:
		s.serial = h.Serial
	case h.Serial != s.serial:
		return fmt.Errorf("%w: page %d is of stream %d, the first of %d: only one logical stream is read", ErrNotOggOpus, s.pageCount, h.Serial, s.serial)
	}
	s.pageCount++
	if continued := headerType&headerTypeCon != 0; continued != (len(s.partial) > 0) {
		return fmt.Errorf("%w: page %d does not continue packets as the previous page says (continued: %v)", ErrNotOggOpus, s.pageCount-1, continued)
	}
	// Packets end at the first lacing value under 255; one that ends the
	// page at 255 continues on the next page.
	pos := 0
	for i := 0; i < len(lacing); {
		j, size := i, 0
		for j < len(lacing) && lacing[j] == 255 {
			size += 255
			j++
		}
		if j == len(lacing) { // continues on the next page
			s.partial = append(s.partial, payload[pos:pos+size]...)
			pos += size
			break
		}
		size += int(lacing[j])
		packet := payload[pos : pos+size]
		if len(s.partial) > 0 { // audio uses it before partial is reused
			packet = append(s.partial, packet...)
			s.partial = s.partial[:0]
		}
		pos += size
		i = j + 1
		if err := s.packet(packet, audio); err != nil {
			return err
		}
	}
	// A page on which no packet ends has no position (-1).
	if g := int64(h.GranulePosition); g >= 0 && s.packets > 2 {
		if s.first < 0 {
			// The first page to give a position places the stream's start:
			// a stream cut from a longer one starts past 0 (RFC 7845 4.5).
			s.first = max(0, g-s.decoded)
		}
		s.lastGranule = g
	}
	if s.pageDone != nil {
		s.pageDone(int64(h.GranulePosition))
	}
	return nil
}

// packet takes one complete packet: the two headers, then audio.
func (s *oggStream) packet(p []byte, audio func([]byte) error) error {
	s.packets++
	switch s.packets {
	case 1:
		if !bytes.HasPrefix(p, []byte("OpusHead")) {
			return fmt.Errorf("%w: the first packet is not an OpusHead (it starts with %.8q)", ErrNotOggOpus, p)
		}
		h, err := oggreader.ParseOpusHead(p)
		if err != nil {
			return fmt.Errorf("%w: OpusHead: %w", ErrNotOggOpus, err)
		}
		if h.Version>>4 != 0 {
			return fmt.Errorf("%w: OpusHead version %d", ErrNotOggOpus, h.Version)
		}
		if h.Channels < 1 || h.Channels > 2 || (h.ChannelMap != 0 && h.StreamCount != 1) {
			return fmt.Errorf("%w: %d channels in %d streams (mapping family %d); want mono or stereo", ErrNotOggOpus, h.Channels, h.StreamCount, h.ChannelMap)
		}
		s.head = *h
		return nil
	case 2:
		if !bytes.HasPrefix(p, []byte("OpusTags")) {
			return fmt.Errorf("%w: the second packet is not OpusTags (it starts with %.8q)", ErrNotOggOpus, p)
		}
		return nil
	}
	n, err := PacketSamples48(p)
	if err != nil {
		return fmt.Errorf("%w: audio packet %d: %w", ErrNotOggOpus, s.packets-3, err)
	}
	s.decoded += int64(n)
	return audio(p)
}

// complete checks that a whole file was read: n of its bytes made pages,
// and they held audio.
func (s *oggStream) complete(b []byte, n int) error {
	switch {
	case n < len(b):
		return fmt.Errorf("%w: cut short: %d bytes after the last complete page", ErrNotOggOpus, len(b)-n)
	case s.packets < 2:
		return fmt.Errorf("%w: no Opus headers", ErrNotOggOpus)
	case len(s.partial) > 0:
		return fmt.Errorf("%w: cut short inside a packet", ErrNotOggOpus)
	}
	return nil
}

// oggChunk is how much of a stream ReadOggOpusPackets reads at a time. A
// page is at most 65,307 bytes, so two chunks always hold one.
const oggChunk = 64 << 10

// ReadOggOpusPackets reads an Ogg Opus stream from r to its end, streaming:
// memory holds one page and its packets, whatever the file's length. It
// calls head once, before the first audio packet, with the OpusHead, then
// packet for each audio packet in order, each page's packets once the page
// is complete (so their Granule is known). packet's Data is valid only
// during the call. A stream that is not Ogg Opus, is damaged or cut short
// is an error wrapping ErrNotOggOpus; an error of head or packet stops
// the read and is returned as it is.
func ReadOggOpusPackets(r io.Reader, head func(oggreader.OggHeader) error, packet func(OggPacket) error) error {
	var (
		s       oggStream
		page    []OggPacket // the packets of the page being read
		data    []byte      // their bytes
		headed  bool
		stopErr error
		buf     = make([]byte, oggChunk)
		pending []byte
	)
	s.pageDone = func(granule int64) {
		if stopErr != nil {
			return
		}
		if len(page) > 0 {
			page[len(page)-1].Granule = granule
		}
		off := 0
		for _, p := range page {
			n := len(p.Data)
			p.Data = data[off : off+n]
			off += n
			if err := packet(p); err != nil {
				stopErr = err
				return
			}
		}
		page, data = page[:0], data[:0]
	}
	audioPacket := func(p []byte) error {
		if stopErr != nil {
			return stopErr
		}
		if !headed {
			headed = true
			if err := head(s.head); err != nil {
				stopErr = err
				return err
			}
		}
		samples, _ := PacketSamples48(p) // the stream checked it
		// Data is set from data once the page is complete: data may grow.
		page = append(page, OggPacket{Data: p[:len(p):len(p)], Samples: samples, Granule: -1})
		data = append(data, p...)
		return nil
	}
	eof := false
	for !eof {
		n, err := io.ReadFull(r, buf)
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			eof = true
		case err != nil:
			return fmt.Errorf("ogg opus: read: %w", err)
		}
		pending = append(pending, buf[:n]...)
		used, err := s.pages(pending, audioPacket)
		if stopErr != nil {
			return stopErr
		}
		if err != nil {
			return err
		}
		pending = append(pending[:0], pending[used:]...)
	}
	if err := s.complete(pending, 0); err != nil {
		return err
	}
	if !headed {
		return fmt.Errorf("%w: no audio packets", ErrNotOggOpus)
	}
	return nil
}
