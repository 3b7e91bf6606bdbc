package archive

import (
	"bufio"
	"fmt"
	"io"
	"math/bits"

	"github.com/mewkiz/flac"
	"github.com/mewkiz/flac/frame"
	"github.com/mewkiz/flac/meta"
)

const (
	// flacBlockSize is the samples per FLAC frame: libFLAC's default for
	// 48 kHz, about 85 ms.
	flacBlockSize = 4096
	// flacMaxPartOrder splits a frame's residuals into up to 16 Rice
	// partitions, each with its own parameter.
	flacMaxPartOrder  = 4
	flacBitsPerSample = 16
)

// flacSink encodes mono 16-bit PCM at mixRate as FLAC, one block at a
// time. It picks each block's predictor itself (constant for silence, else
// the best fixed polynomial by residual size, with a Rice parameter per
// partition estimated from the mean residual, as libFLAC does) instead of
// the library's analysis, which tries every parameter on every residual
// and would dominate the mixdown's time.
type flacSink struct {
	enc   *flac.Encoder
	out   *seekBuffer
	block [flacBlockSize]int32
	n     int
	res   [flacBlockSize]int32
	fr    frame.Frame
	sub   frame.Subframe
	subs  [1]*frame.Subframe
	rice  frame.RiceSubframe
	parts [1 << flacMaxPartOrder]frame.RicePartition
}

func newFLACSink(w io.Writer) (*flacSink, error) {
	s := &flacSink{out: newSeekBuffer(w)}
	info := &meta.StreamInfo{
		BlockSizeMin:  flacBlockSize,
		BlockSizeMax:  flacBlockSize,
		SampleRate:    mixRate,
		NChannels:     1,
		BitsPerSample: flacBitsPerSample,
		// NSamples and MD5sum stay 0 ("unknown") unless w can seek: then
		// the encoder fills them in when it closes.
	}
	var dst io.Writer = s.out
	if !s.out.seekable() {
		dst = s.out.plain()
	}
	enc, err := flac.NewEncoder(dst, info)
	if err != nil {
		return nil, fmt.Errorf("start flac: %w", err)
	}
	enc.EnablePredictionAnalysis(false)
	s.enc = enc
	s.subs[0] = &s.sub
	s.fr.Subframes = s.subs[:]
	return s, nil
}

// write adds samples to the stream.
func (s *flacSink) write(samples []int16) error {
	for len(samples) > 0 {
		k := min(len(samples), flacBlockSize-s.n)
		for i, v := range samples[:k] {
			s.block[s.n+i] = int32(v)
		}
		s.n += k
		samples = samples[k:]
		if s.n == flacBlockSize {
			if err := s.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// silence adds n zero samples.
func (s *flacSink) silence(n int64) error {
	for n > 0 {
		k := int(min(n, int64(flacBlockSize-s.n)))
		clear(s.block[s.n : s.n+k])
		s.n += k
		n -= int64(k)
		if s.n == flacBlockSize {
			if err := s.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// flush encodes the buffered samples as one frame.
func (s *flacSink) flush() error {
	if s.n == 0 {
		return nil
	}
	x := s.block[:s.n]
	s.n = 0
	s.fr.Header = frame.Header{
		HasFixedBlockSize: true,
		BlockSize:         uint16(len(x)),
		SampleRate:        mixRate,
		Channels:          frame.ChannelsMono,
		BitsPerSample:     flacBitsPerSample,
	}
	s.sub = frame.Subframe{Samples: x, NSamples: len(x)}
	s.predict(x)
	if err := s.enc.WriteFrame(&s.fr); err != nil {
		return fmt.Errorf("encode flac frame: %w", err)
	}
	return nil
}

// predict chooses the subframe's coding.
func (s *flacSink) predict(x []int32) {
	sub := &s.sub
	constant := true
	for _, v := range x[1:] {
		if v != x[0] {
			constant = false
			break
		}
	}
	if constant {
		sub.Pred = frame.PredConstant
		return
	}
	if len(x) <= 4 {
		sub.Pred = frame.PredVerbatim
		return
	}
	// Sum of |residual| for each fixed order over the same samples: the
	// smallest sum codes shortest.
	var sums [5]uint64
	for i := 4; i < len(x); i++ {
		e0 := int64(x[i])
		e1 := e0 - int64(x[i-1])
		e2 := e1 - (int64(x[i-1]) - int64(x[i-2]))
		e3 := e2 - (int64(x[i-1]) - 2*int64(x[i-2]) + int64(x[i-3]))
		e4 := e3 - (int64(x[i-1]) - 3*int64(x[i-2]) + 3*int64(x[i-3]) - int64(x[i-4]))
		sums[0] += abs64(e0)
		sums[1] += abs64(e1)
		sums[2] += abs64(e2)
		sums[3] += abs64(e3)
		sums[4] += abs64(e4)
	}
	order := 0
	for o := 1; o < len(sums); o++ {
		if sums[o] < sums[order] {
			order = o
		}
	}
	res := s.res[:len(x)]
	for i := order; i < len(x); i++ {
		var p int64
		switch order {
		case 1:
			p = int64(x[i-1])
		case 2:
			p = 2*int64(x[i-1]) - int64(x[i-2])
		case 3:
			p = 3*int64(x[i-1]) - 3*int64(x[i-2]) + int64(x[i-3])
		case 4:
			p = 4*int64(x[i-1]) - 6*int64(x[i-2]) + 4*int64(x[i-3]) - int64(x[i-4])
		}
		res[i] = int32(int64(x[i]) - p)
	}
	// The largest partition order that divides the block evenly and
	// leaves the first partition longer than the warm-up.
	partOrder := 0
	for p := flacMaxPartOrder; p > 0; p-- {
		if len(x)%(1<<p) == 0 && len(x)>>p > order {
			partOrder = p
			break
		}
	}
	nparts := 1 << partOrder
	per := len(x) / nparts
	method := frame.ResidualCodingMethodRice1
	for p := range nparts {
		from, to := p*per, (p+1)*per
		if p == 0 {
			from = order
		}
		var sum uint64
		for _, r := range res[from:to] {
			sum += uint64(zigzag(r))
		}
		k := uint(0)
		if mean := sum / uint64(to-from); mean > 0 {
			k = uint(bits.Len64(mean) - 1)
		}
		if k > 14 {
			// Rice1's 4-bit parameter tops out at 14 (15 escapes).
			method = frame.ResidualCodingMethodRice2
		}
		s.parts[p] = frame.RicePartition{Param: min(k, 30)}
	}
	s.rice = frame.RiceSubframe{PartOrder: partOrder, Partitions: s.parts[:nparts]}
	sub.Pred = frame.PredFixed
	sub.Order = order
	sub.ResidualCodingMethod = method
	sub.RiceSubframe = &s.rice
}

// close encodes the last, short frame and finishes the stream; the
// encoder fills in the sample count and MD5 if the writer can seek.
func (s *flacSink) close() error {
	if err := s.flush(); err != nil {
		return err
	}
	if err := s.enc.Close(); err != nil {
		return fmt.Errorf("finish flac: %w", err)
	}
	return s.out.finish()
}

func abs64(v int64) uint64 {
	if v < 0 {
		return uint64(-v)
	}
	return uint64(v)
}

func zigzag(v int32) uint32 { return uint32(v<<1) ^ uint32(v>>31) }

// seekBuffer buffers writes to w and, when w can seek, seeks too (flushing
// first). It is not an io.Closer on purpose: the FLAC encoder closes
// whatever it writes to that is one, and w belongs to the caller.
type seekBuffer struct {
	w    io.Writer
	ws   io.WriteSeeker // nil when w cannot seek
	bw   *bufio.Writer
	pos  int64
	size int64
}

func newSeekBuffer(w io.Writer) *seekBuffer {
	b := &seekBuffer{w: w, bw: bufio.NewWriterSize(w, writeBufferSize)}
	if ws, ok := w.(io.WriteSeeker); ok {
		// Only a writer at offset 0 can have the header patched: the
		// encoder seeks to absolute offsets.
		if off, err := ws.Seek(0, io.SeekCurrent); err == nil && off == 0 {
			b.ws = ws
		}
	}
	return b
}

func (b *seekBuffer) seekable() bool { return b.ws != nil }

// plain hides Seek from the encoder.
func (b *seekBuffer) plain() io.Writer { return struct{ io.Writer }{b} }

func (b *seekBuffer) Write(p []byte) (int, error) {
	n, err := b.bw.Write(p)
	b.pos += int64(n)
	b.size = max(b.size, b.pos)
	return n, err
}

func (b *seekBuffer) Seek(off int64, whence int) (int64, error) {
	if err := b.bw.Flush(); err != nil {
		return 0, err
	}
	pos, err := b.ws.Seek(off, whence)
	if err != nil {
		return 0, err
	}
	b.pos = pos
	return pos, nil
}

// finish flushes and leaves a seekable writer at the end of the stream.
func (b *seekBuffer) finish() error {
	if err := b.bw.Flush(); err != nil {
		return fmt.Errorf("write flac: %w", err)
	}
	if b.ws != nil && b.pos != b.size {
		if _, err := b.ws.Seek(b.size, io.SeekStart); err != nil {
			return fmt.Errorf("seek to the end of the flac: %w", err)
		}
		b.pos = b.size
	}
	return nil
}
