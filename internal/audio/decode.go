package audio

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/at-wat/ebml-go"
	"github.com/pion/opus"
)

// SampleRate is the rate of all PCM in Greffier's speech path: mono, signed
// 16-bit, 16 kHz, which is what speech recognisers want and all a voice
// needs.
const SampleRate = 16000

// FrameSamples is the length of one frame handed out by DecodeWebM: 20 ms.
const FrameSamples = SampleRate / 50

// FrameDuration is the time one frame covers.
const FrameDuration = 20 * time.Millisecond

// ErrNoOpusTrack is returned by DecodeWebM for a file without an Opus audio
// track: the caller handed it something the recorder did not write.
var ErrNoOpusTrack = errors.New("webm has no Opus audio track")

const (
	// maxPacketSamples is 120 ms, the longest Opus packet, at SampleRate.
	maxPacketSamples = SampleRate * 120 / 1000
	// gapTolerance absorbs the rounding of block times to the 1 ms
	// TimecodeScale: smaller mismatches are not gaps, or every packet would
	// gain or lose a sliver of audio.
	gapTolerance = 2 * SampleRate / 1000
	// maxLeafSize bounds what one EBML element may make us allocate, so a
	// corrupt size field cannot ask for gigabytes.
	maxLeafSize = 16 << 20
	// readBufferSize batches the byte-sized reads ebml-go makes.
	readBufferSize = 64 << 10
)

// Stats describes one decoded track.
type Stats struct {
	// Duration is the length of the audio on the track's clock, gaps
	// included. The last frame handed out is padded with silence beyond it.
	Duration time.Duration
	// Packets counts the Opus packets read, bad ones included.
	Packets int
	// Gaps counts the stretches of silence inserted where the track had no
	// packets (DTX, loss, a late first packet).
	Gaps int
	// BadPackets counts packets the decoder rejected; each became silence
	// of its length and did not stop the decoding.
	BadPackets int
	// Truncated is set when the file ended inside an element, as it does
	// when a recording was cut short; everything before the cut is decoded.
	Truncated bool
}

// DecodeWebM streams a WebM Opus track as consecutive 20 ms frames
// (FrameSamples samples) of mono PCM at SampleRate. The frames are
// time-continuous: gaps between blocks (DTX, loss) become silence of the
// right length, and the first frame starts at the track's time 0, the Opus
// pre-skip (CodecDelay) removed. fn gets a frame it must not retain.
// Decoding stops at the first error from ctx or fn, which is returned
// wrapped. Memory stays bounded whatever the track's length.
func DecodeWebM(ctx context.Context, r io.Reader, fn func(frame []int16) error) (Stats, error) {
	d, err := newTrackDecoder(ctx, fn)
	if err != nil {
		return Stats{}, err
	}
	return d.read(r)
}

// ReadWebMPackets streams a WebM Opus track's packets, undecoded, with the
// time of each on the track's clock in milliseconds as written (the
// pre-skip not removed), as a recorder.Listener heard them. fn must not
// retain the packet. It returns the track's channel count.
func ReadWebMPackets(ctx context.Context, r io.Reader, fn func(ms int64, packet []byte) error) (channels int, err error) {
	d := &trackDecoder{ctx: ctx, onPacket: fn}
	_, err = d.read(r)
	return d.channels, err
}

func (d *trackDecoder) read(r io.Reader) (Stats, error) {
	// ebml-go reports no error from a hook; a failing hook parks its error
	// here and the reader returns it, which unwinds Unmarshal at once.
	sr := &stopReader{r: bufio.NewReaderSize(r, readBufferSize), err: &d.err}
	uerr := ebml.Unmarshal(sr, &d.doc,
		ebml.WithElementReadHooks(d.onElement),
		ebml.WithMaxLeafElementSize(maxLeafSize))
	switch {
	case d.err != nil:
		return d.stats(), d.err
	case uerr != nil && errors.Is(uerr, io.ErrUnexpectedEOF) && d.track != 0:
		d.truncated = true
	case uerr != nil:
		return d.stats(), fmt.Errorf("read webm: %w", uerr)
	case d.track == 0:
		return d.stats(), fmt.Errorf("read webm: %w", ErrNoOpusTrack)
	}
	if err := d.out.flush(); err != nil {
		return d.stats(), err
	}
	return d.stats(), nil
}

// stopReader returns the error a hook parked, once there is one.
type stopReader struct {
	r   io.Reader
	err *error
}

func (s *stopReader) Read(p []byte) (int, error) {
	if *s.err != nil {
		return 0, *s.err
	}
	return s.r.Read(p)
}

// webmDoc is what Unmarshal fills. Cluster and its blocks are single
// values, not slices: each new one overwrites the last, which is what keeps
// memory flat; the hooks see each block while it is there.
type webmDoc struct {
	EBML struct {
		DocType string `ebml:"EBMLDocType"`
	} `ebml:"EBML"`
	Segment struct {
		Info struct {
			TimecodeScale uint64 `ebml:"TimecodeScale"`
		} `ebml:"Info"`
		Tracks struct {
			TrackEntry []trackEntry `ebml:"TrackEntry"`
		} `ebml:"Tracks"`
		Cluster struct {
			Timecode    uint64     `ebml:"Timecode"`
			SimpleBlock ebml.Block `ebml:"SimpleBlock"`
			BlockGroup  struct {
				Block          ebml.Block `ebml:"Block"`
				DiscardPadding int64      `ebml:"DiscardPadding"`
			} `ebml:"BlockGroup"`
		} `ebml:"Cluster"`
	} `ebml:"Segment"`
}

type trackEntry struct {
	TrackNumber  uint64 `ebml:"TrackNumber"`
	TrackType    uint64 `ebml:"TrackType"`
	CodecID      string `ebml:"CodecID"`
	CodecPrivate []byte `ebml:"CodecPrivate"`
	CodecDelay   uint64 `ebml:"CodecDelay"`
}

// trackDecoder places each Opus packet of one track on the track's clock.
type trackDecoder struct {
	ctx     context.Context
	doc     webmDoc
	dec     opus.Decoder
	pcm     [maxPacketSamples]int16
	out     frameWriter
	err     error
	track   uint64 // the Opus track's number; 0 until Tracks is read
	scaleNS int64  // nanoseconds per timecode tick
	preSkip int64  // samples at SampleRate dropped from the decoder's start
	started bool
	// channels is the OpusHead's channel count.
	channels int
	// onPacket, when set, gets each packet undecoded instead.
	onPacket func(ms int64, p []byte) error
	// silent counts the CELT silence frames decoded in a row; once the
	// decoder has settled, more of them are zeros without decoding.
	silent    int
	packets   int
	gaps      int
	bad       int
	truncated bool
}

func newTrackDecoder(ctx context.Context, fn func([]int16) error) (*trackDecoder, error) {
	// Decoding straight to 16 kHz mono is exact in pion/opus: CELT zeroes
	// the bins above 8 kHz before its inverse MDCT and SILK uses the RFC
	// resampler, so no aliasing and no resampler of our own; stereo is
	// averaged in the decoder.
	dec, err := opus.NewDecoderWithOutput(SampleRate, 1)
	if err != nil {
		return nil, fmt.Errorf("new opus decoder: %w", err)
	}
	return &trackDecoder{ctx: ctx, dec: dec, out: frameWriter{fn: fn}}, nil
}

func (d *trackDecoder) stats() Stats {
	return Stats{
		Duration:   time.Duration(d.out.pos) * time.Second / SampleRate,
		Packets:    d.packets,
		Gaps:       d.gaps,
		BadPackets: d.bad,
		Truncated:  d.truncated,
	}
}

func (d *trackDecoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *trackDecoder) onElement(e *ebml.Element) {
	if d.err != nil {
		return
	}
	if err := d.ctx.Err(); err != nil {
		d.fail(fmt.Errorf("decode webm: %w", err))
		return
	}
	c := &d.doc.Segment.Cluster
	switch e.Type {
	case ebml.ElementEBML:
		if dt := d.doc.EBML.DocType; dt != "webm" && dt != "matroska" {
			d.fail(fmt.Errorf("read webm: doc type %q is neither webm nor matroska", dt))
		}
	case ebml.ElementTracks:
		d.fail(d.selectTrack())
	case ebml.ElementSimpleBlock:
		d.fail(d.block(&c.SimpleBlock, 0))
		c.SimpleBlock = ebml.Block{}
	case ebml.ElementBlockGroup:
		d.fail(d.block(&c.BlockGroup.Block, c.BlockGroup.DiscardPadding))
		c.BlockGroup.Block = ebml.Block{}
		c.BlockGroup.DiscardPadding = 0
	}
}

func (d *trackDecoder) selectTrack() error {
	d.scaleNS = int64(d.doc.Segment.Info.TimecodeScale)
	if d.scaleNS == 0 {
		d.scaleNS = 1_000_000 // Matroska's default when Info omits it
	}
	for _, t := range d.doc.Segment.Tracks.TrackEntry {
		if t.CodecID != "A_OPUS" {
			continue
		}
		delayNS := int64(t.CodecDelay)
		if p := t.CodecPrivate; len(p) >= 19 && string(p[:8]) == "OpusHead" {
			if p[18] != 0 {
				return fmt.Errorf("read webm: track %d uses Opus channel mapping family %d; only mono and stereo are supported",
					t.TrackNumber, p[18])
			}
			// Matroska makes CodecDelay authoritative; the OpusHead
			// pre-skip is the fallback for muxers that omit it.
			if delayNS == 0 {
				delayNS = int64(binary.LittleEndian.Uint16(p[10:12])) * 1e9 / 48000
			}
		}
		d.track = t.TrackNumber
		d.preSkip = nsToSamples(delayNS)
		d.channels = 2
		if p := t.CodecPrivate; len(p) >= 10 && string(p[:8]) == "OpusHead" && p[9] > 0 {
			d.channels = int(p[9])
		}
		return nil
	}
	return fmt.Errorf("read webm: %w", ErrNoOpusTrack)
}

func (d *trackDecoder) block(b *ebml.Block, discardNS int64) error {
	if d.track == 0 {
		return errors.New("read webm: block before the Tracks element")
	}
	if b.TrackNumber != d.track {
		return nil
	}
	c := &d.doc.Segment.Cluster
	if d.onPacket != nil {
		ns := (int64(c.Timecode) + int64(b.Timecode)) * d.scaleNS
		for _, p := range b.Data {
			if err := d.onPacket(ns/1e6, p); err != nil {
				return fmt.Errorf("decode webm: packet handler: %w", err)
			}
			// Laced packets follow each other without times of their own.
			if s48, err := PacketSamples48(p); err == nil {
				ns += int64(s48) * 1e9 / 48000
			}
		}
		return nil
	}
	at := nsToSamples((int64(c.Timecode) + int64(b.Timecode)) * d.scaleNS)
	for i, p := range b.Data {
		var discard int64
		if i == len(b.Data)-1 {
			discard = nsToSamples(discardNS)
		}
		// Laced packets follow each other without timestamps of their own.
		if err := d.packet(at-d.preSkip, i > 0, p, discard); err != nil {
			return err
		}
	}
	return nil
}

// packet decodes one Opus packet whose first sample sits at start (in
// samples on the output clock) and places it there: a hole before it
// becomes silence, an overlap with what was already written is cut from
// its head (that is how the pre-skip goes), and discard samples are cut
// from its tail (DiscardPadding). contiguous packets follow the last one
// whatever start says.
func (d *trackDecoder) packet(start int64, contiguous bool, p []byte, discard int64) error {
	if len(p) == 0 {
		return nil // an empty block carries no time; the next block's time fills the hole
	}
	d.packets++
	pcm, err := d.decode(p)
	if err != nil {
		return err
	}
	if discard > 0 {
		pcm = pcm[:len(pcm)-int(min(discard, int64(len(pcm))))]
	}
	if !contiguous {
		tol := int64(gapTolerance)
		if !d.started {
			tol = 0 // the first packet sets the origin exactly
		}
		diff := start - d.out.pos
		switch {
		case diff > tol:
			d.gaps++
			if err := d.out.silence(diff); err != nil {
				return err
			}
		case diff < -tol:
			pcm = pcm[min(-diff, int64(len(pcm))):]
		}
	}
	d.started = true
	return d.out.write(pcm)
}

// decode returns the packet's PCM, or silence of its length when the
// decoder rejects it (v0.1.0 has no loss concealment).
func (d *trackDecoder) decode(p []byte) ([]int16, error) {
	if celtSilence(p) {
		if d.silent >= settleFrames {
			n := frameSamples48[p[0]>>3] * SampleRate / 48000
			clear(d.pcm[:n])
			return d.pcm[:n], nil
		}
		d.silent++
	} else {
		d.silent = 0
	}
	n, err := d.dec.DecodeToInt16(p, d.pcm[:])
	if err == nil {
		return d.pcm[:n], nil
	}
	d.bad++
	d.silent = 0
	// The decoder's state after a rejected packet is unknown: start over.
	if ierr := d.dec.Init(SampleRate, 1); ierr != nil {
		return nil, fmt.Errorf("reset opus decoder: %w", ierr)
	}
	s48, terr := PacketSamples48(p)
	if terr != nil {
		return nil, nil // no length to honour; the next block's time fills the hole
	}
	n = s48 * SampleRate / 48000
	clear(d.pcm[:n])
	return d.pcm[:n], nil
}

// settleFrames is how many CELT silence frames in a row bring the decoder
// to rest: by then the overlap, the post-filter, the de-emphasis memory
// and the energy prediction hold nothing of the sound before, each further
// silence frame decodes to zeros and leaves the state as it found it. A
// muted participant's packets are then skipped, not decoded, with the
// same output sample for sample (TestSilenceSkipIsExact).
const settleFrames = 8

// nsToSamples converts nanoseconds to samples at SampleRate, rounding to
// the nearest sample.
func nsToSamples(ns int64) int64 {
	const den = int64(time.Second / SampleRate) // 62,500 ns per sample
	if ns < 0 {
		return -((-ns + den/2) / den)
	}
	return (ns + den/2) / den
}
