package archive

import (
	"context"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/pion/opus"
)

const (
	// mixRate is the mixdown's sample rate: Opus's own 48 kHz, so the mix
	// keeps every band the speakers were recorded with.
	mixRate = 48000
	// mixFrame is the 20 ms the mix advances by.
	mixFrame = mixRate / 50
	// gapTolerance48 absorbs the rounding of block times to 1 ms: smaller
	// mismatches between where a packet should start and where the last
	// one ended are neither gaps nor overlaps.
	gapTolerance48 = 2 * mixRate / 1000
	// laneBufSize holds what a lane decodes ahead of the mix: less than a
	// frame left over plus one packet of up to 120 ms.
	laneBufSize = mixFrame + maxPacketSamples48
	// limiterKnee is where the soft limiter starts to bend the sum (-6
	// dBFS). Below it the mix is the plain sum of the voices, so a lone
	// speaker comes out exactly as decoded; above it the sum is squeezed
	// smoothly (tanh) toward full scale instead of clipping.
	limiterKnee = 0.5
)

// Mixdown writes one mono FLAC (16-bit, 48 kHz) of every speaker mixed on
// the meeting clock: sample 0 is meeting time 0, and each segment's audio
// sits at StartMS plus its own time, gaps (DTX, loss) silent. The Opus
// packets are decoded once (pion/opus) and summed; FLAC is lossless, so
// there is no second lossy encode. Voices are summed at unity gain through
// a soft limiter above -6 dBFS (limiterKnee), so overlapping speech does
// not clip and a lone voice is untouched.
//
// It streams in 20 ms frames: segments are opened when the meeting clock
// reaches their StartMS and closed when used up, so memory depends on how
// many overlap, not on the meeting's length. If w is an io.WriteSeeker at
// offset 0, the FLAC header gets the sample count and MD5 at the end (w is
// then left at the end); otherwise they stay "unknown", which decoders
// accept. w is not closed.
func Mixdown(ctx context.Context, w io.Writer, tracks []Track) (Stats, error) {
	return MixdownTo(ctx, w, tracks, 0)
}

// MixdownTo is Mixdown whose file lasts at least length: silence fills the
// end, after the last audio, up to length. Given one speaker's segments and
// the meeting's length, it gives that speaker's audio on the meeting's
// timing: sample 0 at meeting time 0, silences and absences as silence,
// as long as the meeting, so it lines up sample for sample with the other
// speakers' files and the mix. Audio past length is kept, never cut.
func MixdownTo(ctx context.Context, w io.Writer, tracks []Track, length time.Duration) (Stats, error) {
	if err := validateTracks(tracks); err != nil {
		return Stats{}, err
	}
	if length < 0 {
		return Stats{}, fmt.Errorf("mixdown: length %s is negative", length)
	}
	sink, err := newFLACSink(w)
	if err != nil {
		return Stats{}, fmt.Errorf("mixdown: %w", err)
	}
	mx := &mixer{ctx: ctx, tracks: tracks, sink: sink}
	defer mx.closeAll()
	if err := mx.run(); err != nil {
		return mx.stats(), fmt.Errorf("mixdown: %w", err)
	}
	if until := int64(length) * mixRate / int64(time.Second); mx.written < until {
		if err := sink.silence(until - mx.written); err != nil {
			return mx.stats(), fmt.Errorf("mixdown: %w", err)
		}
		mx.written, mx.padded = until, until
	}
	if err := sink.close(); err != nil {
		return mx.stats(), fmt.Errorf("mixdown: %w", err)
	}
	return mx.stats(), nil
}

// mixer is one run of Mixdown.
type mixer struct {
	ctx     context.Context
	tracks  []Track
	sink    *flacSink
	active  []*lane
	acc     [mixFrame]float32
	out     [mixFrame]int16
	written int64 // samples handed to the sink
	maxEnd  int64 // end of the last real sample of any lane
	padded  int64 // where the silence after the last audio ends, if any
	st      Stats
}

func (mx *mixer) stats() Stats {
	st := mx.st
	st.Duration = time.Duration(max(mx.maxEnd, mx.padded)) * time.Second / mixRate
	st.Bytes = mx.sink.out.size
	return st
}

func (mx *mixer) run() error {
	pending := make([]int, len(mx.tracks))
	for i := range pending {
		pending[i] = i
	}
	sortByStart(pending, mx.tracks)
	speakers := make(map[string]struct{})
	for _, t := range mx.tracks {
		speakers[t.Identity] = struct{}{}
	}
	mx.st.Speakers = len(speakers)

	for a := int64(0); ; a += mixFrame {
		if err := mx.ctx.Err(); err != nil {
			return err
		}
		b := a + mixFrame
		// A segment cannot sound before its StartMS.
		for len(pending) > 0 && mx.tracks[pending[0]].StartMS*mixRate/1000 < b {
			l, err := mx.open(pending[0])
			if err != nil {
				return err
			}
			pending = pending[1:]
			mx.active = append(mx.active, l)
		}
		if len(mx.active) == 0 {
			if len(pending) == 0 {
				break
			}
			// Nobody is on: jump to the frame where the next segment starts.
			next := mx.tracks[pending[0]].StartMS * mixRate / 1000 / mixFrame * mixFrame
			a = max(a, next-mixFrame) // the loop adds mixFrame
			continue
		}
		if err := mx.frame(a, b); err != nil {
			return err
		}
	}
	return nil
}

// frame mixes [a, b) and hands it to the sink.
func (mx *mixer) frame(a, b int64) error {
	clear(mx.acc[:])
	live := mx.active[:0]
	for _, l := range mx.active {
		if err := l.fill(b, &mx.st); err != nil {
			return mx.inputErr(l, err)
		}
		l.mix(a, b, &mx.acc)
		mx.maxEnd = max(mx.maxEnd, l.end)
		if l.exhausted && l.n == 0 {
			mx.done(l)
			continue
		}
		live = append(live, l)
	}
	clear(mx.active[len(live):])
	mx.active = live

	// Everything before a that the sink has not had is silence (a jump
	// over a stretch nobody spoke in).
	if mx.written < a {
		if err := mx.sink.silence(a - mx.written); err != nil {
			return err
		}
		mx.written = a
	}
	n := int64(mixFrame)
	if len(mx.active) == 0 {
		// The last frame of a stretch: stop where the audio does, unless
		// more segments start later (the silence is written then).
		n = min(n, max(0, mx.maxEnd-a))
	}
	for i, v := range mx.acc[:n] {
		mx.out[i] = toInt16(limit(v))
	}
	if err := mx.sink.write(mx.out[:n]); err != nil {
		return err
	}
	mx.written = a + n
	return nil
}

func (mx *mixer) open(seg int) (*lane, error) {
	r, err := openSegment(mx.ctx, mx.tracks[seg])
	if err != nil {
		return nil, err
	}
	mx.st.Segments++
	dec, err := opus.NewDecoderWithOutput(mixRate, 1)
	if err != nil {
		_ = r.close()
		return nil, fmt.Errorf("new opus decoder: %w", err)
	}
	t := mx.tracks[seg]
	return &lane{
		r:       r,
		seg:     seg,
		dec:     dec,
		origin:  t.StartMS * mixRate / 1000,
		end:     t.StartMS * mixRate / 1000,
		preSkip: roundDiv(r.track.codecDelayNS*mixRate, 1_000_000_000),
	}, nil
}

func (mx *mixer) inputErr(l *lane, err error) error {
	t := mx.tracks[l.seg]
	return fmt.Errorf("read track of %s at %d ms: %w", t.Identity, t.StartMS, err)
}

func (mx *mixer) done(l *lane) {
	if l.r.truncated {
		mx.st.Truncated++
	}
	// A reader's Close reports nothing about data already read.
	_ = l.r.close()
}

func (mx *mixer) closeAll() {
	for _, l := range mx.active {
		_ = l.r.close()
	}
}

// lane is one segment being decoded onto the meeting clock, a little
// ahead of the mix.
type lane struct {
	r       *segmentReader
	seg     int
	dec     opus.Decoder
	origin  int64 // the segment's time 0, in samples on the meeting clock
	preSkip int64 // CodecDelay in samples: the decoder's warm-up

	// buf[:n] holds decoded audio for [end-n, end) on the meeting clock.
	buf     [laneBufSize]float32
	n       int
	end     int64
	started bool

	pcm       [maxPacketSamples48]float32
	packets   [][]byte // the current block's packets; packets[next:] not yet decoded
	next      int
	at        int64 // where packets[next] starts, if not contiguous
	follows   bool  // packets[next] follows the last packet whatever at says
	discard   int64 // samples cut from the block's last packet
	exhausted bool
}

// fill decodes packets until the lane's audio reaches b or its next packet
// starts at or after b.
func (l *lane) fill(b int64, st *Stats) error {
	for l.end < b {
		if l.next == len(l.packets) {
			ok, err := l.loadBlock()
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
		}
		start := l.at
		if l.follows {
			start = l.end
		}
		if start >= b {
			return nil // a gap: the packet is for a later frame
		}
		p := l.packets[l.next]
		l.next++
		l.follows = true // laced packets follow each other
		pcm, err := l.decode(p, st)
		if err != nil {
			return err
		}
		if l.next == len(l.packets) && l.discard > 0 {
			pcm = pcm[:len(pcm)-int(min(l.discard, int64(len(pcm))))]
		}
		l.place(start, pcm)
	}
	return nil
}

func (l *lane) loadBlock() (bool, error) {
	ok, err := l.r.next()
	if err != nil || !ok {
		l.exhausted = true
		return false, err
	}
	blk := &l.r.blk
	l.packets, err = blk.packets(l.packets[:0])
	l.next = 0
	if err != nil {
		return false, err
	}
	l.at = l.origin + roundDiv(blk.timeNS*mixRate, 1_000_000_000) - l.preSkip
	l.follows = false
	l.discard = roundDiv(blk.discardNS*mixRate, 1_000_000_000)
	return true, nil
}

// decode returns a packet's PCM, or silence of its length when the decoder
// rejects it (pion/opus v0.1.0 has no loss concealment).
func (l *lane) decode(p []byte, st *Stats) ([]float32, error) {
	if len(p) == 0 {
		return nil, nil // an empty block carries no time
	}
	st.Packets++
	n, err := l.dec.DecodeToFloat32(p, l.pcm[:])
	if err == nil {
		return l.pcm[:n], nil
	}
	st.BadPackets++
	// The decoder's state after a rejected packet is unknown: start over.
	if ierr := l.dec.Init(mixRate, 1); ierr != nil {
		return nil, fmt.Errorf("reset opus decoder: %w", ierr)
	}
	n = opusSamples(p)
	clear(l.pcm[:n])
	return l.pcm[:n], nil
}

// place puts pcm at start on the meeting clock: a hole before it is
// silence, an overlap with what the lane already holds is cut from its
// head (that is also how the pre-skip and anything before the segment's
// StartMS go).
func (l *lane) place(start int64, pcm []float32) {
	tol := int64(gapTolerance48)
	if !l.started {
		tol = 0 // the first packet sets the origin exactly
	}
	l.started = true
	diff := start - l.end
	switch {
	case diff > tol && l.n == 0:
		l.end = start
	case diff > tol:
		// Buffered audio is within this frame and start before its end,
		// so the hole is shorter than a frame and fits.
		clear(l.buf[l.n : l.n+int(diff)])
		l.n += int(diff)
		l.end += diff
	case diff < -tol:
		pcm = pcm[min(-diff, int64(len(pcm))):]
	}
	copy(l.buf[l.n:], pcm)
	l.n += len(pcm)
	l.end += int64(len(pcm))
}

// mix adds the lane's audio in [a, b) to acc and drops what is before b.
func (l *lane) mix(a, b int64, acc *[mixFrame]float32) {
	from := l.end - int64(l.n) // meeting time of buf[0]
	lo, hi := max(a, from), min(b, l.end)
	if lo < hi {
		src := l.buf[lo-from : hi-from]
		dst := acc[lo-a : hi-a]
		for i, v := range src {
			dst[i] += v
		}
	}
	if l.end <= b {
		l.n = 0
		return
	}
	if k := b - from; k > 0 {
		copy(l.buf[:], l.buf[k:l.n])
		l.n -= int(k)
	}
}

// limit is the soft limiter: identity up to limiterKnee, then a tanh
// curve that meets it with the same slope and approaches full scale.
func limit(x float32) float32 {
	ax := math.Abs(float64(x))
	if ax <= limiterKnee {
		return x
	}
	const room = 1 - limiterKnee
	y := limiterKnee + room*math.Tanh((ax-limiterKnee)/room)
	return float32(math.Copysign(y, float64(x)))
}

func toInt16(x float32) int16 {
	v := math.Round(float64(x) * 32767)
	return int16(max(-32768, min(32767, v)))
}
