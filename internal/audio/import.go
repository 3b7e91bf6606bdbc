package audio

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/at-wat/ebml-go/mkvcore"
	"github.com/at-wat/ebml-go/webm"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// Format is an audio file's container and codec, told by its content.
type Format string

const (
	FormatWebMOpus Format = "webm"
	FormatOggOpus  Format = "ogg"
	FormatWAV      Format = "wav"
	FormatFLAC     Format = "flac"
	FormatUnknown  Format = ""
)

// Sniff tells a file's format by its first bytes (12 are enough): the
// EBML magic, "OggS", "RIFF....WAVE" or "fLaC". It reads nothing further;
// whether the content is readable is for the readers to say.
func Sniff(head []byte) Format {
	switch {
	case len(head) >= 4 && bytes.Equal(head[:4], []byte{0x1a, 0x45, 0xdf, 0xa3}):
		return FormatWebMOpus
	case IsOgg(head):
		return FormatOggOpus
	case len(head) >= 12 && string(head[:4]) == "RIFF" && string(head[8:12]) == "WAVE":
		return FormatWAV
	case len(head) >= 4 && string(head[:4]) == "fLaC":
		return FormatFLAC
	}
	return FormatUnknown
}

// WebMOpusDuration reads a whole WebM Opus track, streaming (memory stays
// bounded), checks every packet's TOC, and returns the time of its end:
// the last packet's time plus its length. A file that is not WebM with an
// Opus track, holds a malformed packet or is cut short is an error.
func WebMOpusDuration(ctx context.Context, r io.Reader) (time.Duration, error) {
	var endMS int64
	var bad error
	packets := 0
	_, err := ReadWebMPackets(ctx, r, func(ms int64, p []byte) error {
		samples, err := CheckPacket(p)
		if err != nil {
			bad = fmt.Errorf("packet at %d ms: %w", ms, err)
			return bad
		}
		packets++
		endMS = max(endMS, ms+int64(samples)*1000/GranuleRate)
		return nil
	})
	switch {
	case bad != nil:
		return 0, bad
	case err != nil:
		return 0, err
	case packets == 0:
		return 0, errors.New("the WebM file holds no audio")
	}
	return time.Duration(endMS) * time.Millisecond, nil
}

// RemuxOggToWebM copies an Ogg Opus stream's packets, undecoded, into a
// one-track WebM of the kind the recorder writes (OpusHead as codec
// private data, pre-skip as CodecDelay, 1 ms block times), each packet at
// its place on the file's timeline: consecutive packets follow each other,
// and a gap the granule positions state stays a gap. It streams both ways
// (memory holds a page and the writer's queue, whatever the length; no
// cues: readers of these files read them whole) and returns the
// timeline's length. On an error, what was written to w is garbage.
func RemuxOggToWebM(w io.Writer, ogg io.Reader) (time.Duration, error) {
	// ebml-go reports write errors through handlers, possibly from its
	// own goroutine.
	var (
		mu   sync.Mutex
		errs error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		errs = errors.Join(errs, err)
	}
	sw := &stickyWriter{w: w}
	bw := bufio.NewWriter(sw)
	var ws []webm.BlockWriteCloser
	start := func(head oggreader.OggHeader) error {
		if head.Channels < 1 || head.Channels > 2 {
			return fmt.Errorf("%w: %d channels; only mono and stereo are read", ErrNotOggOpus, head.Channels)
		}
		info := &webm.Info{TimecodeScale: 1_000_000, MuxingApp: "greffier", WritingApp: "greffier"}
		var err error
		ws, err = webm.NewSimpleBlockWriter(plainWriter{bw}, []webm.TrackEntry{{
			Name: "audio", TrackNumber: 1, TrackUID: 1, CodecID: "A_OPUS",
			CodecPrivate: OpusHead(head.Channels, head.PreSkip),
			CodecDelay:   uint64(head.PreSkip) * 1_000_000_000 / GranuleRate,
			SeekPreRoll:  OpusSeekPreRoll,
			TrackType:    2,
			Audio:        &webm.Audio{SamplingFrequency: 48000, Channels: uint64(head.Channels)},
		}}, mkvcore.WithSegmentInfo(info), mkvcore.WithBlockInterceptor(nil),
			mkvcore.WithOnErrorHandler(fail), mkvcore.WithOnFatalHandler(fail))
		if err != nil {
			return fmt.Errorf("start webm: %w", err)
		}
		return nil
	}
	// pos is where the next packet starts, in samples at 48 kHz from the
	// stream's first sample (the pre-skip included, as in the WebM).
	var pos int64
	err := ReadOggOpusPackets(ogg, start, func(p OggPacket) error {
		if p.Granule >= 0 && p.Granule-int64(p.Samples) > pos {
			pos = p.Granule - int64(p.Samples) // a stated gap
		}
		// The writer queues the frame: it gets its own copy.
		if _, err := ws[0].Write(true, pos*1000/GranuleRate, bytes.Clone(p.Data)); err != nil {
			return fmt.Errorf("write webm: %w", err)
		}
		pos += int64(p.Samples)
		return nil
	})
	if ws != nil {
		if cerr := ws[0].Close(); cerr != nil && err == nil {
			err = fmt.Errorf("finish webm: %w", cerr)
		}
	}
	if err != nil {
		return 0, err
	}
	mu.Lock()
	defer mu.Unlock()
	if errs != nil {
		return 0, fmt.Errorf("write webm: %w", errs)
	}
	if err := bw.Flush(); err != nil {
		return 0, fmt.Errorf("write webm: %w", err)
	}
	if sw.err != nil {
		return 0, fmt.Errorf("write webm: %w", sw.err)
	}
	return time.Duration(pos) * time.Second / GranuleRate, nil
}

// stickyWriter keeps the first error of w and takes every later write
// without writing: ebml-go's writer stops reading its queue after an
// error it is given, and would leave the remux blocked for ever.
type stickyWriter struct {
	w   io.Writer
	err error
}

func (s *stickyWriter) Write(p []byte) (int, error) {
	if s.err == nil {
		_, s.err = s.w.Write(p)
	}
	return len(p), nil
}

// plainWriter hides any Seek of the destination, so ebml-go streams, and
// keeps ebml-go's Close from closing it.
type plainWriter struct{ io.Writer }

func (plainWriter) Close() error { return nil }
