package diarize

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/greffier/greffier/internal/audio"
)

const (
	sampleRate      = audio.SampleRate
	frameSamples    = audio.FrameSamples
	frameMS         = 1000 * frameSamples / sampleRate
	framesPerSecond = sampleRate / frameSamples
)

// Defaults for VoiceDetectorConfig.
const (
	DefaultHangover     = 400 * time.Millisecond
	DefaultMinSpeech    = 150 * time.Millisecond
	DefaultPadding      = 150 * time.Millisecond
	DefaultMaxSegment   = 30 * time.Second
	DefaultCutSearch    = 5 * time.Second
	DefaultNoiseWindow  = 5 * time.Second
	DefaultMarginDB     = 10.0
	DefaultMinLevelDBFS = -50.0
	DefaultJoinPause    = 2 * time.Second
)

// VoiceDetectorConfig tunes voice activity. Durations are rounded up to whole
// 20 ms frames. The zero value means all defaults.
type VoiceDetectorConfig struct {
	// Hangover is how long silence must last for speech to be over;
	// shorter pauses stay inside one segment. Default 400 ms.
	Hangover time.Duration
	// MinSpeech drops voiced stretches shorter than this (clicks, a
	// cough). Default 150 ms.
	MinSpeech time.Duration
	// Padding is the audio kept before and after each voiced stretch,
	// clamped to the audio, so onsets and final consonants are not
	// clipped. At most Hangover. Default 150 ms.
	Padding time.Duration
	// MaxSegment is the most audio, padding included, one segment may
	// hold: longer speech is cut at the quietest frame in the last
	// CutSearch before the limit, and the rest continues as a new segment
	// starting exactly there. Default 30 s, the window of Whisper-style
	// models.
	MaxSegment time.Duration
	// CutSearch is how far before the MaxSegment limit the cut may fall.
	// At most MaxSegment/2. Default 5 s.
	CutSearch time.Duration
	// NoiseWindow is how far back the noise floor looks for the quietest
	// frames: a steady sound lasting longer becomes background. At least
	// 1 s. Default 5 s.
	NoiseWindow time.Duration
	// MarginDB is how far above the noise floor a frame must be to count
	// as voiced. Default 10 dB.
	MarginDB float64
	// MinLevelDBFS is a level below which no frame is voiced, whatever
	// the floor: a near-silent track has no speech. Default -50 dBFS.
	MinLevelDBFS float64
	// MinSegment, when set, keeps a segment holding less audio than this
	// open across pauses shorter than JoinPause: a transcription backend
	// then gets fewer, longer requests, each with more context. Default 0:
	// every pause of Hangover ends a segment.
	MinSegment time.Duration
	// JoinPause is the pause that ends a segment shorter than MinSegment.
	// At least Hangover. Default 2 s; unused without MinSegment.
	JoinPause time.Duration
}

// WithDefaults returns a copy with every zero field set to its default.
func (c VoiceDetectorConfig) WithDefaults() VoiceDetectorConfig {
	set := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	set(&c.Hangover, DefaultHangover)
	set(&c.MinSpeech, DefaultMinSpeech)
	set(&c.Padding, DefaultPadding)
	set(&c.MaxSegment, DefaultMaxSegment)
	set(&c.CutSearch, DefaultCutSearch)
	set(&c.NoiseWindow, DefaultNoiseWindow)
	set(&c.JoinPause, DefaultJoinPause)
	if c.MarginDB == 0 {
		c.MarginDB = DefaultMarginDB
	}
	if c.MinLevelDBFS == 0 {
		c.MinLevelDBFS = DefaultMinLevelDBFS
	}
	return c
}

// Validate reports what is wrong with a config after WithDefaults, naming
// the field. Call it at startup: NewVoiceDetector cannot return an error.
func (c VoiceDetectorConfig) Validate() error {
	c = c.WithDefaults()
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"Hangover", c.Hangover}, {"MinSpeech", c.MinSpeech}, {"Padding", c.Padding},
		{"MaxSegment", c.MaxSegment}, {"CutSearch", c.CutSearch}, {"NoiseWindow", c.NoiseWindow},
		{"MinSegment", c.MinSegment}, {"JoinPause", c.JoinPause},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("segmenter: %s is %v; set it to a positive duration or 0 for the default", d.name, d.v))
		}
	}
	if c.Padding > c.Hangover {
		errs = append(errs, fmt.Errorf("segmenter: Padding (%v) exceeds Hangover (%v); lower Padding", c.Padding, c.Hangover))
	}
	if c.MinSegment > 0 && c.JoinPause < c.Hangover {
		errs = append(errs, fmt.Errorf("segmenter: JoinPause (%v) is shorter than Hangover (%v)", c.JoinPause, c.Hangover))
	}
	if c.MinSegment > c.MaxSegment {
		errs = append(errs, fmt.Errorf("segmenter: MinSegment (%v) exceeds MaxSegment (%v)", c.MinSegment, c.MaxSegment))
	}
	if c.CutSearch > c.MaxSegment/2 {
		errs = append(errs, fmt.Errorf("segmenter: CutSearch (%v) exceeds half of MaxSegment (%v)", c.CutSearch, c.MaxSegment))
	}
	if min := c.CutSearch + c.Hangover + 2*c.Padding + time.Second; c.MaxSegment < min {
		errs = append(errs, fmt.Errorf("segmenter: MaxSegment (%v) must be at least %v for this CutSearch, Hangover and Padding", c.MaxSegment, min))
	}
	if c.NoiseWindow < time.Second {
		errs = append(errs, fmt.Errorf("segmenter: NoiseWindow (%v) must be at least 1s", c.NoiseWindow))
	}
	if c.MarginDB < 0 {
		errs = append(errs, fmt.Errorf("segmenter: MarginDB (%g) must be positive", c.MarginDB))
	}
	if c.MinLevelDBFS > 0 || c.MinLevelDBFS < silenceDB {
		errs = append(errs, fmt.Errorf("segmenter: MinLevelDBFS (%g) must be between %d and 0", c.MinLevelDBFS, silenceDB))
	}
	return errors.Join(errs...)
}

func frames(d time.Duration) int {
	const f = time.Duration(frameMS) * time.Millisecond
	return int((d + f - 1) / f)
}

// lookahead is how many frames the noise floor sees past the frame being
// decided. It matters at the start of a track: by the time the first frame
// is judged, a second of audio has shown what the background is, so steady
// noise is not taken for speech, nor speech from the first instant missed.
const lookahead = framesPerSecond

// VoiceDetector finds speech in one speaker's track: per 20 ms frame, a level
// above an adaptive noise floor counts as voiced; voiced stretches joined
// across pauses shorter than the hangover, long enough and padded, become
// segments. It is streaming: memory is bounded by MaxSegment, and nothing
// is allocated per frame except the audio of a segment that closes. A
// VoiceDetector is not safe for concurrent use.
type VoiceDetector struct {
	hang, join, minSpeech, padFrames, search int // in frames
	padSamples, maxSamples, minSamples       int64
	marginDB, minLevelDB                     float64
	windowFrames                             int

	meter levelMeter
	floor noiseFloor

	pend  [frameSamples]int16 // a partial frame waiting for the rest
	npend int

	n        int       // frames seen
	decided  int       // frames judged voiced or not; lags n by lookahead
	samples  int64     // samples seen
	buf      []int16   // audio of frames [bufAt, n), a window into bufMem
	levels   []float64 // level of each buffered frame (-Inf for digital silence), a window into levelMem
	bufMem   []int16   // made at the first PCM frame: levels alone need no audio
	levelMem []float64
	// maxFrames is the longest the buffer gets.
	maxFrames int
	bufAt     int // frame index of buf[0]

	active     bool
	start      int   // first voiced frame of the open stretch
	last       int   // last voiced frame of the open stretch
	audioStart int64 // sample where the open stretch's audio starts
	continued  bool  // the open stretch continues one cut at MaxSegment
}

// NewVoiceDetector returns a VoiceDetector for cfg completed with WithDefaults. A
// config that Validate rejects is replaced by the defaults entirely.
func NewVoiceDetector(cfg VoiceDetectorConfig) *VoiceDetector {
	if cfg.Validate() != nil {
		cfg = VoiceDetectorConfig{}
	}
	cfg = cfg.WithDefaults()
	s := &VoiceDetector{
		hang:         frames(cfg.Hangover),
		join:         frames(cfg.Hangover),
		minSpeech:    frames(cfg.MinSpeech),
		padFrames:    frames(cfg.Padding),
		search:       frames(cfg.CutSearch),
		padSamples:   int64(cfg.Padding * sampleRate / time.Second),
		maxSamples:   int64(cfg.MaxSegment * sampleRate / time.Second),
		minSamples:   int64(cfg.MinSegment * sampleRate / time.Second),
		marginDB:     cfg.MarginDB,
		minLevelDB:   cfg.MinLevelDBFS,
		windowFrames: frames(cfg.NoiseWindow),
	}
	if cfg.MinSegment > 0 {
		s.join = frames(cfg.JoinPause)
	}
	// The longest the buffer gets: a stretch at the limit, the longest
	// pause that may follow it inside the segment, and the lookahead.
	s.maxFrames = frames(cfg.MaxSegment) + s.join + s.padFrames + lookahead + 2
	// Levels start with room for a few seconds and grow (appendWindow)
	// only while a stretch of speech holds them: a silent participant's
	// detector stays small.
	s.levelMem = make([]float64, min(s.maxFrames, 4*lookahead))
	s.buf, s.levels = s.bufMem[:0], s.levelMem[:0]
	s.reset()
	return s
}

func (s *VoiceDetector) reset() {
	s.meter = levelMeter{}
	s.floor = newNoiseFloor(s.windowFrames, s.minLevelDB-s.marginDB)
	s.npend, s.n, s.decided, s.samples, s.bufAt = 0, 0, 0, 0, 0
	s.buf, s.levels = s.bufMem[:0], s.levelMem[:0]
	s.active, s.continued = false, false
}

// Write feeds the next PCM (16 kHz mono), normally one 20 ms frame; any
// length works, split into frames internally. It returns the segments that
// closed, usually none. Decisions lag the audio by a second (lookahead).
func (s *VoiceDetector) Write(pcm []int16) []Speech {
	var out []Speech
	if s.npend == 0 && len(pcm) == frameSamples {
		return s.frame(out, pcm)
	}
	for len(pcm) > 0 {
		k := copy(s.pend[s.npend:], pcm)
		pcm = pcm[k:]
		s.npend += k
		if s.npend == frameSamples {
			s.npend = 0
			out = s.frame(out, s.pend[:])
		}
	}
	return out
}

// Flush ends the audio: it judges the frames still in the lookahead,
// closes the open stretch, if any, and returns what closed. The VoiceDetector
// then starts afresh, for another track.
func (s *VoiceDetector) Flush() []Speech {
	var out []Speech
	if s.npend > 0 {
		out = s.frame(out, s.pend[:s.npend])
	}
	for s.decided < s.n {
		out = appendSpeech(out, s.decide())
	}
	if s.active {
		out = appendSpeech(out, s.close())
	}
	s.reset()
	return out
}

func appendSpeech(out []Speech, sp *Speech) []Speech {
	if sp == nil {
		return out
	}
	return append(out, *sp)
}

// WriteLevel feeds the next 20 ms frame known only by its level in dBFS,
// as a sender's RFC 6464 audio level gives it (-127 dBov and below, or
// -Inf, is silence): voice activity without the audio. Segments found
// this way carry no PCM, only the times of the audio they cover. A
// VoiceDetector is fed either by Write or by WriteLevel, not both.
func (s *VoiceDetector) WriteLevel(db float64) []Speech {
	zero := db <= -127
	if zero {
		db = math.Inf(-1)
	}
	return s.push(nil, db, zero, nil, frameSamples)
}

// frame takes one frame (short only at the very end), and judges the frame
// that has now had its lookahead.
func (s *VoiceDetector) frame(out []Speech, f []int16) []Speech {
	db, zero := s.meter.level(f)
	return s.push(out, db, zero, f, len(f))
}

// push adds one frame of n samples at level db (its audio f, if known).
func (s *VoiceDetector) push(out []Speech, db float64, zero bool, f []int16, n int) []Speech {
	if zero {
		// Gaps in a recording are digital silence: they say the background
		// is quiet, but no quieter than the floor that puts the threshold
		// at MinLevelDBFS, or any noise after a gap would become speech.
		db = math.Inf(-1)
		s.floor.push(s.minLevelDB - s.marginDB)
	} else {
		s.floor.push(db)
	}
	s.n++
	s.samples += int64(n)
	if f != nil {
		if s.bufMem == nil {
			// A second of 16 kHz audio per second of segment: fed levels
			// alone (WriteLevel), a detector never holds it.
			s.bufMem = make([]int16, s.maxFrames*frameSamples)
			s.buf = s.bufMem[:0]
		}
		s.buf = appendWindow(&s.bufMem, s.buf, lookahead*frameSamples, f...)
	}
	s.levels = appendWindow(&s.levelMem, s.levels, lookahead, db)
	if s.n-s.decided > lookahead {
		out = appendSpeech(out, s.decide())
	}
	return out
}

// decide judges the next frame and moves the stretch state along.
func (s *VoiceDetector) decide() *Speech {
	i := s.decided
	s.decided++
	db := s.levels[i-s.bufAt]
	voiced := db > max(s.floor.value()+s.marginDB, s.minLevelDB)

	switch {
	case !s.active && voiced:
		s.active, s.continued = true, false
		s.start, s.last = i, i
		s.audioStart = max(0, int64(i)*frameSamples-s.padSamples)
		return s.maybeCut(i)
	case !s.active:
		s.keepPadding(i)
		return nil
	case voiced:
		s.last = i
		return s.maybeCut(i)
	case i-s.last >= s.join || i-s.last >= s.hang && s.long():
		sp := s.close()
		s.active = false
		s.keepPadding(i)
		return sp
	}
	return nil
}

// long reports whether the open stretch holds MinSegment of audio, so a
// pause of Hangover may end it.
func (s *VoiceDetector) long() bool {
	return int64(s.last+1)*frameSamples-s.audioStart >= s.minSamples
}

// keepPadding forgets buffered frames before what the next onset after
// frame i may need as leading padding.
func (s *VoiceDetector) keepPadding(i int) {
	if extra := i + 1 - s.padFrames - s.bufAt; extra > 0 {
		s.dropFrames(extra)
	}
}

// maybeCut cuts the open stretch when it no longer fits in MaxSegment with
// its trailing padding: at the quietest frame within CutSearch before the
// limit. The first part ends there without trailing padding and the rest
// starts there without leading padding, so no audio is lost or doubled.
func (s *VoiceDetector) maybeCut(i int) *Speech {
	if int64(i+1)*frameSamples+s.padSamples-s.audioStart <= s.maxSamples {
		return nil
	}
	hi := min(i, int((s.audioStart+s.maxSamples)/frameSamples))
	lo := max(s.start+1, hi-s.search)
	cut := hi
	for f := hi; f >= lo; f-- {
		if s.levels[f-s.bufAt] < s.levels[cut-s.bufAt] {
			cut = f
		}
	}
	sp := s.emit(s.start, cut, int64(cut)*frameSamples)
	s.dropFrames(cut - s.bufAt)
	s.start, s.continued = cut, true
	s.audioStart = int64(cut) * frameSamples
	return sp
}

// close ends the open stretch at its last voiced frame, with trailing
// padding as far as the audio goes, and drops it if it is too short to be
// speech.
func (s *VoiceDetector) close() *Speech {
	voicedEnd := s.last + 1
	if !s.continued && voicedEnd-s.start < s.minSpeech {
		return nil
	}
	return s.emit(s.start, voicedEnd, int64(voicedEnd)*frameSamples+s.padSamples)
}

// emit copies the open stretch's audio up to sample audioEnd (or the end
// of the audio) into a segment for the voiced frames [start, end).
func (s *VoiceDetector) emit(start, end int, audioEnd int64) *Speech {
	audioEnd = min(audioEnd, s.samples)
	sp := &Speech{
		StartMS:      int64(start * frameMS),
		EndMS:        min(int64(end*frameMS), s.samples*1000/sampleRate),
		AudioStartMS: s.audioStart * 1000 / sampleRate,
		AudioEndMS:   audioEnd * 1000 / sampleRate,
	}
	if len(s.buf) > 0 {
		base := int64(s.bufAt) * frameSamples
		sp.PCM = append([]int16(nil), s.buf[s.audioStart-base:min(audioEnd-base, int64(len(s.buf)))]...)
	}
	return sp
}

// HeldFromMS is the earliest time (ms from the first frame written) whose
// audio a segment still to come may start with: a caller that keeps the
// audio itself, feeding levels alone (WriteLevel), may forget what lies
// before it.
func (s *VoiceDetector) HeldFromMS() int64 { return int64(s.bufAt) * frameMS }

// dropFrames forgets the k oldest buffered frames.
func (s *VoiceDetector) dropFrames(k int) {
	k = min(k, len(s.levels))
	s.buf = s.buf[min(k*frameSamples, len(s.buf)):]
	s.levels = s.levels[k:]
	s.bufAt += k
}

// appendWindow appends to window, a view into *mem that dropFrames moves
// forward. The view goes back to the start of mem only once it has moved
// further than its own length and slack (or reached the end): forgetting a
// frame must not cost a copy of the whole lookahead, as it would at every
// frame of silence, and a silent track must not touch all of mem either.
func appendWindow[T any](mem *[]T, window []T, slack int, add ...T) []T {
	moved := len(*mem) - cap(window)
	if cap(window)-len(window) < len(add) || moved > max(len(window), slack) {
		if len(window)+len(add) > len(*mem) {
			*mem = make([]T, 2*(len(window)+len(add)))
		}
		window = (*mem)[:copy(*mem, window)]
	}
	return append(window, add...)
}
