package diarize

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// signal builds synthetic 16 kHz PCM: a background with tones laid on it.
type signal struct {
	pcm []int16
	rng *rand.Rand
}

func newSignal(totalMS int) *signal {
	return &signal{pcm: make([]int16, totalMS*sampleRate/1000), rng: rand.New(rand.NewPCG(1, 2))}
}

func at(ms int) int { return ms * sampleRate / 1000 }

// noise adds white noise at an RMS level in dBFS over [fromMS, toMS).
func (s *signal) noise(fromMS, toMS int, dbfs float64) *signal {
	amp := 32768 * math.Pow(10, dbfs/20) * math.Sqrt(3) // uniform: RMS = amp/√3
	for i := at(fromMS); i < at(toMS); i++ {
		s.add(i, amp*(2*s.rng.Float64()-1))
	}
	return s
}

// tone adds a sine at an RMS level in dBFS over [fromMS, toMS).
func (s *signal) tone(fromMS, toMS int, hz, dbfs float64) *signal {
	amp := 32768 * math.Pow(10, dbfs/20) * math.Sqrt2
	for i := at(fromMS); i < at(toMS); i++ {
		s.add(i, amp*math.Sin(2*math.Pi*hz*float64(i)/sampleRate))
	}
	return s
}

// syllables adds speech-like bursts: onMS of tone then offMS at -25 dB,
// repeated over [fromMS, toMS). The dips are shorter than the hangover.
func (s *signal) syllables(fromMS, toMS, onMS, offMS int, dbfs float64) *signal {
	for t := fromMS; t < toMS; t += onMS + offMS {
		s.tone(t, min(t+onMS, toMS), 180+float64(t%7)*20, dbfs)
		s.tone(min(t+onMS, toMS), min(t+onMS+offMS, toMS), 180, dbfs-25)
	}
	return s
}

func (s *signal) add(i int, v float64) {
	s.pcm[i] = int16(max(-32768, min(32767, float64(s.pcm[i])+v)))
}

// segment feeds pcm in chunks of the given size and flushes.
func detect(t *testing.T, cfg VoiceDetectorConfig, pcm []int16, chunk int) []Speech {
	t.Helper()
	s := NewVoiceDetector(cfg)
	var out []Speech
	for len(pcm) > 0 {
		n := min(chunk, len(pcm))
		out = append(out, s.Write(pcm[:n])...)
		pcm = pcm[n:]
	}
	return append(out, s.Flush()...)
}

// requireAudioMatches checks that every segment's PCM is the source audio
// at AudioStartMS, and that its padding is what the config says.
func requireAudioMatches(t *testing.T, src []int16, segs []Speech, pad time.Duration) {
	t.Helper()
	totalMS := int64(len(src)) * 1000 / sampleRate
	for _, sp := range segs {
		require.Equal(t, max(0, sp.StartMS-pad.Milliseconds()), sp.AudioStartMS, "leading padding of %+v", sp.StartMS)
		require.Equal(t, min(totalMS, sp.EndMS+pad.Milliseconds()), sp.AudioEndMS, "trailing padding of %d", sp.StartMS)
		off := at(int(sp.AudioStartMS))
		require.True(t, slices.Equal(src[off:off+len(sp.PCM)], sp.PCM), "audio of segment at %d ms is not the source", sp.StartMS)
	}
}

type span struct{ startMS, endMS int64 }

func requireSpans(t *testing.T, want []span, got []Speech, tolMS int64) {
	t.Helper()
	gotSpans := make([]span, len(got))
	for i, sp := range got {
		gotSpans[i] = span{sp.StartMS, sp.EndMS}
	}
	require.Len(t, got, len(want), "segments %v", gotSpans)
	for i := range want {
		require.InDelta(t, want[i].startMS, got[i].StartMS, float64(tolMS), "start of %d: %v", i, gotSpans)
		require.InDelta(t, want[i].endMS, got[i].EndMS, float64(tolMS), "end of %d: %v", i, gotSpans)
	}
}

func TestVoiceDetectorFindsTonesInSilenceAndNoise(t *testing.T) {
	t.Parallel()
	tones := []span{{1000, 2500}, {4000, 4600}, {6020, 9000}}
	cases := []struct {
		name    string
		noiseDB float64 // 0: digital silence
		toneDB  float64
	}{
		{"digital silence", 0, -30},
		{"quiet room", -65, -30},
		{"noisy room", -42, -22},
		{"noise above the absolute minimum", -45, -30},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sig := newSignal(10_000)
			if tc.noiseDB != 0 {
				sig.noise(0, 10_000, tc.noiseDB)
			}
			for _, tn := range tones {
				sig.tone(int(tn.startMS), int(tn.endMS), 440, tc.toneDB)
			}
			segs := detect(t, VoiceDetectorConfig{}, sig.pcm, frameSamples)
			requireSpans(t, tones, segs, 40)
			requireAudioMatches(t, sig.pcm, segs, DefaultPadding)
		})
	}
}

func TestVoiceDetectorHangoverMergesShortPauses(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		pauseMS int
		want    []span
	}{
		{"300 ms pause is inside speech", 300, []span{{1000, 2800}}},
		{"600 ms pause ends speech", 600, []span{{1000, 2000}, {2600, 3100}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sig := newSignal(5000).noise(0, 5000, -60)
			sig.tone(1000, 2000, 300, -25)
			sig.tone(2000+tc.pauseMS, 2500+tc.pauseMS, 300, -25)
			segs := detect(t, VoiceDetectorConfig{}, sig.pcm, frameSamples)
			requireSpans(t, tc.want, segs, 40)
			requireAudioMatches(t, sig.pcm, segs, DefaultPadding)
		})
	}
}

func TestVoiceDetectorDropsBlipsShorterThanMinSpeech(t *testing.T) {
	t.Parallel()
	sig := newSignal(4000).noise(0, 4000, -60)
	sig.tone(1000, 1060, 1000, -20) // a click
	sig.tone(2500, 2740, 1000, -20) // a short word
	segs := detect(t, VoiceDetectorConfig{}, sig.pcm, frameSamples)
	requireSpans(t, []span{{2500, 2740}}, segs, 40)

	segs = detect(t, VoiceDetectorConfig{MinSpeech: 300 * time.Millisecond}, sig.pcm, frameSamples)
	require.Empty(t, segs)
}

func TestVoiceDetectorCutsLongSpeechUnderMaxSegment(t *testing.T) {
	t.Parallel()
	const totalMS = 75_000
	sig := newSignal(totalMS).noise(0, totalMS, -60)
	sig.syllables(2000, 72_000, 220, 80, -25)
	// One near-silent 60 ms stretch (shorter than the hangover) in the
	// window before the first limit: the cut must land in it.
	clear(sig.pcm[at(27_020):at(27_080)])
	sig.noise(27_020, 27_080, -70)

	segs := detect(t, VoiceDetectorConfig{}, sig.pcm, frameSamples)
	require.GreaterOrEqual(t, len(segs), 3)
	require.InDelta(t, 27_020, segs[0].EndMS, 60, "first cut at %d ms", segs[0].EndMS)
	for i, sp := range segs {
		require.LessOrEqual(t, len(sp.PCM), at(30_000), "segment %d holds %d ms", i, sp.AudioEndMS-sp.AudioStartMS)
		if i > 0 {
			// Cut pieces join exactly: nothing lost, nothing twice.
			require.Equal(t, segs[i-1].EndMS, sp.StartMS)
			require.Equal(t, segs[i-1].AudioEndMS, sp.AudioStartMS)
		}
	}
	require.InDelta(t, 2000, segs[0].StartMS, 40)
	require.Equal(t, int64(2000-150), segs[0].AudioStartMS)
	last := segs[len(segs)-1]
	require.InDelta(t, 72_000, last.EndMS, 120) // the last syllable may end in a dip
	require.Equal(t, last.EndMS+150, last.AudioEndMS)

	var joined []int16
	for _, sp := range segs {
		joined = append(joined, sp.PCM...)
	}
	require.True(t, slices.Equal(sig.pcm[at(1850):at(int(last.AudioEndMS))], joined), "joined segments differ from the source")
}

func TestVoiceDetectorFlushClosesOpenSpeech(t *testing.T) {
	t.Parallel()
	sig := newSignal(3000).noise(0, 3000, -60).tone(500, 3000, 500, -25)
	s := NewVoiceDetector(VoiceDetectorConfig{})
	for i := 0; i < len(sig.pcm); i += frameSamples {
		require.Empty(t, s.Write(sig.pcm[i:i+frameSamples]), "closed at frame %d", i/frameSamples)
	}
	segs := s.Flush()
	requireSpans(t, []span{{500, 3000}}, segs, 40)
	require.Equal(t, int64(3000), segs[0].AudioEndMS, "padding clamped at the end")
	requireAudioMatches(t, sig.pcm, segs, DefaultPadding)

	// Flush leaves the VoiceDetector ready for the next track.
	require.Empty(t, s.Flush())
	for i := 0; i < len(sig.pcm); i += frameSamples {
		s.Write(sig.pcm[i : i+frameSamples])
	}
	require.Len(t, s.Flush(), 1)
}

// Speech from the first instant of a track is found from that instant:
// the lookahead has seen its pauses before the first frame is judged.
func TestVoiceDetectorSpeechAtTrackStart(t *testing.T) {
	t.Parallel()
	sig := newSignal(4000).noise(0, 4000, -60).syllables(0, 2500, 220, 80, -25)
	segs := detect(t, VoiceDetectorConfig{}, sig.pcm, frameSamples)
	requireSpans(t, []span{{0, 2500}}, segs, 40)
	require.Zero(t, segs[0].AudioStartMS, "padding clamped at the start")
	requireAudioMatches(t, sig.pcm, segs, DefaultPadding)
}

func TestVoiceDetectorChunkingDoesNotMatter(t *testing.T) {
	t.Parallel()
	sig := newSignal(6000).noise(0, 6000, -55)
	sig.tone(700, 2100, 250, -25).tone(3000, 5990, 600, -25)
	want := detect(t, VoiceDetectorConfig{}, sig.pcm, frameSamples)
	require.Len(t, want, 2)
	for _, chunk := range []int{1, 99, 320 * 3, 7919} {
		require.Equal(t, want, detect(t, VoiceDetectorConfig{}, sig.pcm, chunk), "chunk %d", chunk)
	}
	// A partial last frame still counts, up to the end of the audio.
	short := sig.pcm[:len(sig.pcm)-100]
	got := detect(t, VoiceDetectorConfig{}, short, frameSamples)
	require.Len(t, got, 2)
	require.True(t, slices.Equal(short[at(int(got[1].AudioStartMS)):], got[1].PCM))
}

func TestVoiceDetectorConfig(t *testing.T) {
	t.Parallel()
	d := VoiceDetectorConfig{}.WithDefaults()
	require.Equal(t, DefaultHangover, d.Hangover)
	require.Equal(t, DefaultMaxSegment, d.MaxSegment)
	require.Equal(t, DefaultMinLevelDBFS, d.MinLevelDBFS)
	require.NoError(t, VoiceDetectorConfig{}.Validate())
	require.Equal(t, 2*time.Second, VoiceDetectorConfig{Hangover: 2 * time.Second}.WithDefaults().Hangover)

	cases := []struct {
		cfg  VoiceDetectorConfig
		want string
	}{
		{VoiceDetectorConfig{Hangover: -time.Second}, "Hangover is -1s"},
		{VoiceDetectorConfig{Padding: time.Second}, "Padding (1s) exceeds Hangover"},
		{VoiceDetectorConfig{MaxSegment: 5 * time.Second}, "CutSearch (5s) exceeds half of MaxSegment"},
		{VoiceDetectorConfig{MaxSegment: 2 * time.Second, CutSearch: time.Second}, "MaxSegment (2s) must be at least"},
		{VoiceDetectorConfig{NoiseWindow: time.Millisecond}, "NoiseWindow"},
		{VoiceDetectorConfig{MinLevelDBFS: 3}, "MinLevelDBFS"},
	}
	for _, tc := range cases {
		require.ErrorContains(t, tc.cfg.Validate(), tc.want)
	}

	// An invalid config falls back to the defaults rather than misbehave.
	sig := newSignal(3000).noise(0, 3000, -60).tone(1000, 1100, 440, -20)
	require.Equal(t,
		detect(t, VoiceDetectorConfig{}, sig.pcm, frameSamples),
		detect(t, VoiceDetectorConfig{MinSpeech: 50 * time.Millisecond, Padding: time.Hour}, sig.pcm, frameSamples))
	require.Len(t, detect(t, VoiceDetectorConfig{MinSpeech: 50 * time.Millisecond}, sig.pcm, frameSamples), 1)
}

// Per-frame work allocates nothing; only a closing segment's audio does.
// Not parallel: AllocsPerRun counts the whole process's allocations.
func TestVoiceDetectorWriteDoesNotAllocate(t *testing.T) {
	sig := newSignal(60_000).noise(0, 60_000, -50).syllables(1000, 59_000, 220, 80, -25)
	s := NewVoiceDetector(VoiceDetectorConfig{})
	i := 0
	allocs := testing.AllocsPerRun(2000, func() {
		s.Write(sig.pcm[i : i+frameSamples])
		i += frameSamples
	})
	require.Zero(t, allocs)
}

func BenchmarkVoiceDetectorWrite(b *testing.B) {
	for name, sig := range map[string]*signal{
		"speech":  newSignal(120_000).noise(0, 120_000, -50).syllables(1000, 119_000, 220, 80, -25),
		"noise":   newSignal(120_000).noise(0, 120_000, -50),
		"silence": newSignal(120_000), // a muted participant
	} {
		b.Run(name, func(b *testing.B) {
			s := NewVoiceDetector(VoiceDetectorConfig{})
			nframes := len(sig.pcm) / frameSamples
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				s.Write(sig.pcm[i*frameSamples : (i+1)*frameSamples])
				if i++; i == nframes {
					s.Flush()
					i = 0
				}
			}
			b.ReportMetric(20e6*float64(b.N)/float64(b.Elapsed().Nanoseconds()), "x_realtime")
		})
	}
}

func TestVoiceDetectorJoinsShortSegmentsUpToMinSegment(t *testing.T) {
	t.Parallel()
	// Utterances of 2 s with pauses of 1 s (longer than the hangover),
	// a pause of 3 s (longer than JoinPause), then more utterances.
	sig := newSignal(40_000).noise(0, 40_000, -65)
	for _, u := range []int{1000, 4000, 7000, 10_000, 13_000, 19_000, 22_000} {
		sig.tone(u, u+2000, 440, -25)
	}
	cfg := VoiceDetectorConfig{MinSegment: 8 * time.Second, JoinPause: 2 * time.Second}

	// Without MinSegment every 1 s pause ends a segment.
	requireSpans(t, []span{{1000, 3000}, {4000, 6000}, {7000, 9000}, {10_000, 12_000}, {13_000, 15_000}, {19_000, 21_000}, {22_000, 24_000}},
		detect(t, VoiceDetectorConfig{}, sig.pcm, frameSamples), 60)

	// With it, pauses shorter than JoinPause are kept inside until the
	// segment holds 8 s; the 3 s pause always ends one.
	segs := detect(t, cfg, sig.pcm, frameSamples)
	requireSpans(t, []span{{1000, 9000}, {10_000, 15_000}, {19_000, 24_000}}, segs, 60)
	requireAudioMatches(t, sig.pcm, segs, DefaultPadding)

	require.ErrorContains(t, VoiceDetectorConfig{MinSegment: time.Minute}.Validate(), "MinSegment")
	require.ErrorContains(t, VoiceDetectorConfig{MinSegment: time.Second, JoinPause: 100 * time.Millisecond}.Validate(), "JoinPause")
}
