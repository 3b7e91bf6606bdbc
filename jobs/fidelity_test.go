package jobs

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/diarize"
	"github.com/greffier/greffier/internal/audio"
	"github.com/greffier/greffier/internal/speechtest"
)

// A read meeting for measuring fidelity: two speakers (espeak-ng voices)
// each reading lines with pauses between them as people leave them: a
// breath, a pause inside a turn, a turn of the other speaker, a long
// silence, and short answers alone between silences.

// readLine is one line a speaker reads, and the silence after it.
type readLine struct {
	text  string
	pause float64 // seconds
}

// readSpeaker is one speaker's part: an espeak-ng voice and lines.
type readSpeaker struct {
	identity, voice string
	lines           []readLine
}

var readMeeting = []readSpeaker{
	{"alice", "en-us", []readLine{
		{"Good morning everyone, thank you for joining the council meeting today.", 0.3},
		{"We have three items on the agenda, starting with the budget for next year.", 1.2},
		{"The library needs a new roof before the winter comes.", 0.6},
		{"Yes.", 4.0},
		{"I think we should ask the builders for a second estimate.", 1.8},
		{"The first one seemed very high to me.", 0.25},
		{"Let us vote on it at the next meeting.", 6.0},
		{"Right.", 2.5},
		{"The second item is the school bus timetable, which parents asked us to change.", 0.9},
		{"Children wait too long in the cold in the morning.", 1.5},
		{"The bus company agreed to start fifteen minutes earlier from March.", 3.5},
		{"Finally the summer festival will take place in the park again.", 0.4},
		{"We need volunteers for the stands and for cleaning up afterwards.", 1.1},
		{"Please write your name on the list at the door.", 0.7},
		{"Thank you all, the meeting is closed.", 0},
	}},
	{"bob", "en-gb+m3", []readLine{
		{"Thank you, I have the figures for the budget here.", 2.2},
		{"The roof would cost about forty thousand pounds.", 0.5},
		{"That is more than we planned, so we would take it from the reserve.", 5.0},
		{"OK.", 1.6},
		{"I agree with a second estimate, it costs us nothing to ask.", 0.35},
		{"My neighbour is a builder, he could give us a fair price.", 4.5},
		{"What about the buses on Saturday?", 1.0},
		{"Some families work at the weekend and need them too.", 2.8},
		{"Sure.", 3.0},
		{"I can help with the festival on Sunday afternoon.", 0.8},
		{"My daughter will bring her friends to paint the signs.", 1.3},
		{"See you all next month.", 0},
	}},
}

// frameOf is the samples of one 20 ms frame at 16 kHz.
const frameOf = 320

// voicedFloor is the level above which a 20 ms frame of a fixture counts
// as voiced when measuring coverage: 10 dB below the lowest level the
// voice detector ever takes for speech (diarize.DefaultMinLevelDBFS), so
// the quiet onsets and tails of words count too.
const voicedFloor = -60.0

// readTrack is one speaker's track: its 16 kHz PCM on the track's clock,
// the voice alone (clean) and as a microphone hears it in a room (pcm: a
// steady noise floor under it), and where each line is.
type readTrack struct {
	identity   string
	pcm, clean []int16
	lines      []readLine
	spans      [][2]int // sample range of each line's speech
}

// roomNoise is the microphone's noise floor under the fixtures' speech,
// RMS in dBFS: a quiet room. The voice detector must find speech above it,
// so the quiet starts and ends of words (between the floor and 10 dB
// above it) are what padding must keep.
const roomNoise = -58.0

// speakLines makes a speaker's track with espeak-ng: each line trimmed of
// espeak-ng's own silence, then followed by its pause, after a second of
// silence. Without espeak-ng the test fails with how to install it.
func speakLines(tb testing.TB, sp readSpeaker, lines int) readTrack {
	tb.Helper()
	tr := readTrack{identity: sp.identity, clean: make([]int16, audio.SampleRate)}
	for _, l := range sp.lines[:min(lines, len(sp.lines))] {
		pcm, err := speechtest.Espeak(context.Background(), sp.voice, l.text, 160, audio.SampleRate)
		require.NoError(tb, err, "espeak-ng makes the speech fixtures: run scripts/test.sh, which installs it")
		// espeak-ng's own silence (digital zero) goes; its quiet edges stay.
		from, to := 0, len(pcm)
		for from < to && pcm[from] == 0 {
			from++
		}
		for to > from && pcm[to-1] == 0 {
			to--
		}
		pcm = fadeEdges(pcm[from:to])
		tr.spans = append(tr.spans, [2]int{len(tr.clean), len(tr.clean) + len(pcm)})
		tr.clean = append(tr.clean, pcm...)
		tr.clean = append(tr.clean, make([]int16, int(l.pause*audio.SampleRate))...)
		tr.lines = append(tr.lines, l)
	}
	tr.clean = append(tr.clean, make([]int16, audio.SampleRate)...)
	// The same noise for every run: a fixture, not a dice roll.
	rng := rand.New(rand.NewPCG(1, uint64(len(sp.identity))))
	amp := 32768 * math.Pow(10, roomNoise/20) * math.Sqrt(3) // uniform noise of that RMS
	tr.pcm = make([]int16, len(tr.clean))
	for i, v := range tr.clean {
		tr.pcm[i] = int16(max(-32768, min(32767, float64(v)+amp*(2*rng.Float64()-1))))
	}
	return tr
}

// Fades at the edges of each line: espeak-ng starts and stops a line at
// full voice, where a person breathes in and trails off. The fades take
// a line's first and last frames down to the room's noise, which is what
// a voice detector's padding is for.
const (
	fadeIn  = 120 * audio.SampleRate / 1000
	fadeOut = 200 * audio.SampleRate / 1000
)

// fadeEdges shapes pcm's edges in place with exponential fades, 40 dB
// over fadeIn and fadeOut, and returns it.
func fadeEdges(pcm []int16) []int16 {
	gain := func(i, n int) float64 { return math.Pow(10, -2*float64(n-i)/float64(n)) }
	for i := 0; i < fadeIn && i < len(pcm); i++ {
		pcm[i] = int16(float64(pcm[i]) * gain(i, fadeIn))
	}
	for i := 0; i < fadeOut && i < len(pcm); i++ {
		j := len(pcm) - 1 - i
		pcm[j] = int16(float64(pcm[j]) * gain(i, fadeOut))
	}
	return pcm
}

// opusPackets encodes pcm as a browser would send it (Opus, 20 ms packets,
// 32 kbit/s) into a WebM as the recorder stores it, and returns its
// packets.
func opusPackets(tb testing.TB, pcm []int16) []audio.TimedPacket {
	tb.Helper()
	dir := tb.TempDir()
	wav, webm := filepath.Join(dir, "in.wav"), filepath.Join(dir, "out.webm")
	require.NoError(tb, os.WriteFile(wav, audio.EncodeWAV(pcm, audio.SampleRate), 0o600))
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", wav, "-ar", "48000", "-c:a", "libopus", "-b:a", "32k",
		"-frame_duration", "20", "-application", "voip", webm).CombinedOutput()
	require.NoError(tb, err, "ffmpeg (libopus): %s", out)
	f, err := os.Open(webm)
	require.NoError(tb, err)
	defer f.Close()
	var ps []audio.TimedPacket
	_, err = audio.ReadWebMPackets(context.Background(), f, func(ms int64, p []byte) error {
		ps = append(ps, audio.TimedPacket{MS: ms, Data: append([]byte(nil), p...)})
		return nil
	})
	require.NoError(tb, err)
	return ps
}

// senderLevels are the RFC 6464 levels a browser would send with ps.
func senderLevels(tb testing.TB, ps []audio.TimedPacket) []int {
	tb.Helper()
	l, err := audio.NewPacketLeveler()
	require.NoError(tb, err)
	levels := make([]int, len(ps))
	for i, p := range ps {
		levels[i], err = l.Level(p.Data)
		require.NoError(tb, err)
	}
	return levels
}

// cutWith cuts ps into segments with voice activity cfg, as the live path
// does (levels) or the batch path (nil: measured from the packets).
func cutWith(tb testing.TB, cfg diarize.VoiceDetectorConfig, ps []audio.TimedPacket, levels []int) []cut {
	tb.Helper()
	c := newCutter(cfg, 1)
	var out []cut
	for i, p := range ps {
		level := -1
		if levels != nil {
			level = levels[i]
		}
		cuts, err := c.packet(p.MS, p.Data, level)
		require.NoError(tb, err)
		out = append(out, cuts...)
	}
	cuts, err := c.flush()
	require.NoError(tb, err)
	return append(out, cuts...)
}

// voicedFrames lists the 20 ms frames of pcm louder than voicedFloor.
func voicedFrames(pcm []int16) []int {
	// pcm is the voice alone: its frames of digital silence count as -Inf.
	var out []int
	for f := 0; (f+1)*frameOf <= len(pcm); f++ {
		if -float64(audio.Level(pcm[f*frameOf:(f+1)*frameOf])) > voicedFloor {
			out = append(out, f)
		}
	}
	return out
}

// coverage is the share of pcm's voiced frames whose whole 20 ms lies in
// the audio sent for some segment, and the frames outside.
func coverage(pcm []int16, cuts []cut) (float64, []int) {
	voiced := voicedFrames(pcm)
	var missed []int
	for _, f := range voiced {
		from, to := int64(f*20), int64(f*20+20)
		in := false
		for _, c := range cuts {
			if c.speech.AudioStartMS <= from && to <= c.speech.AudioEndMS {
				in = true
				break
			}
		}
		if !in {
			missed = append(missed, f)
		}
	}
	if len(voiced) == 0 {
		return 1, nil
	}
	return 1 - float64(len(missed))/float64(len(voiced)), missed
}

// TestSegmentsCoverEveryVoicedFrameOfReadSpeech: on read speech (two
// espeak-ng voices, pauses from a breath to six seconds, one-word answers
// alone between silences), the segments sent for a speaker hold at least
// 99.5% of their voiced 20 ms frames, quiet onsets and tails of words
// (faded into a room's noise) included, whether the live path cuts by the sender's levels or the batch
// path by levels it measures; and no segment is longer than MaxSegment.
func TestSegmentsCoverEveryVoicedFrameOfReadSpeech(t *testing.T) {
	t.Parallel()
	cfg := Config{}.VoiceActivity()
	for _, sp := range readMeeting {
		t.Run(sp.identity, func(t *testing.T) {
			t.Parallel()
			tr := speakLines(t, sp, len(sp.lines))
			ps := opusPackets(t, tr.pcm)
			// The fixture's fades put voiced frames where only padding
			// reaches them: a detector padding one frame (and merging no
			// lines, so every line has its edges) misses some.
			scant := diarize.VoiceDetectorConfig{Padding: 20 * time.Millisecond}
			if cov, _ := coverage(tr.clean, cutWith(t, scant, ps, senderLevels(t, ps))); cov >= 0.995 {
				t.Fatalf("with 20 ms of padding coverage is %.2f%%: the fixture no longer tests padding", 100*cov)
			}
			for _, path := range []struct {
				name   string
				levels []int
			}{{"sender levels", senderLevels(t, ps)}, {"measured levels", nil}} {
				cuts := cutWith(t, cfg, ps, path.levels)
				require.NotEmpty(t, cuts)
				cov, missed := coverage(tr.clean, cuts)
				t.Logf("%s, %s: %d segments, coverage %.2f%%, %d voiced frames outside", sp.identity, path.name, len(cuts), 100*cov, len(missed))
				require.GreaterOrEqual(t, cov, 0.995, "%s: frames outside every segment: %v", path.name, missed)
				for _, c := range cuts {
					require.LessOrEqual(t, c.speech.AudioEndMS-c.speech.AudioStartMS, cfg.WithDefaults().MaxSegment.Milliseconds()+frameMS)
				}
				// Every line's speech starts and ends inside one segment:
				// no cut inside a word.
				for i, span := range tr.spans {
					from, to := int64(span[0]*1000/audio.SampleRate), int64(span[1]*1000/audio.SampleRate)
					whole := false
					for _, c := range cuts {
						if c.speech.AudioStartMS <= from+frameMS && to-frameMS <= c.speech.AudioEndMS {
							whole = true
						}
					}
					require.True(t, whole, "%s: line %d (%q, %d-%d ms) is split", path.name, i, strings.Fields(tr.lines[i].text)[0], from, to)
				}
			}
		})
	}
}

// longReader reads on and on, one sentence straight after the other:
// between them only the fades of their edges (320 ms, under the 400 ms
// that may end a segment), as someone who does not stop for breath.
// Nothing but MaxSegment ends her segments.
var longReader = readSpeaker{"carol", "en-us+f3", []readLine{
	{"The committee met on Tuesday to review the plans for the new library", 0},
	{"Members asked how long the building work would take", 0},
	{"The architect said the roof alone needs three months", 0},
	{"Then the walls must dry before anyone paints them", 0},
	{"The books will stay in the school hall until the summer", 0},
	{"Parents offered to carry the boxes on a Saturday morning", 0},
	{"The mayor thanked them and promised a party in the garden", 0},
	{"Nobody objected to the cost of the new heating system", 0},
	{"The old one broke twice last winter and the readers were cold", 0},
	{"A grant from the region will pay for half of it", 0},
	{"The other half comes from the reserve the council kept for repairs", 0},
	{"Work should start in April if the weather allows it", 0},
	{"The library will open again in the autumn with longer hours", 0},
	{"Children will have their own room with a reading corner", 0},
	{"The committee will meet again next month to see how it goes", 0},
}}

// TestLongSpeechIsCutBetweenSentencesNeverInsideAWord: a speaker reading
// for longer than MaxSegment with nothing but breaths between sentences is
// cut where MaxSegment requires, on both paths, and every cut falls
// between sentences (outside each one's first to last voiced frame): no
// sentence, and so no word, is split; no piece is longer than MaxSegment,
// and coverage stays >= 99.5%.
func TestLongSpeechIsCutBetweenSentencesNeverInsideAWord(t *testing.T) {
	t.Parallel()
	cfg := Config{}.VoiceActivity()
	tr := speakLines(t, longReader, len(longReader.lines))
	require.Greater(t, len(tr.pcm)*1000/audio.SampleRate, int(cfg.WithDefaults().MaxSegment.Milliseconds()+10_000),
		"the fixture must be long enough to need cutting")
	ps := opusPackets(t, tr.pcm)
	// Where each sentence is heard: from its first voiced 20 ms frame to
	// the end of its last (its faded edges hold frames too quiet to hear).
	var voiced [][2]int64
	frames := voicedFrames(tr.clean)
	for _, span := range tr.spans {
		v := [2]int64{-1, -1}
		for _, f := range frames {
			if f*frameOf >= span[0] && (f+1)*frameOf <= span[1] {
				if v[0] < 0 {
					v[0] = int64(f * 20)
				}
				v[1] = int64(f*20 + 20)
			}
		}
		require.GreaterOrEqual(t, v[0], int64(0), "a sentence with no voiced frame")
		voiced = append(voiced, v)
	}
	// inside says where a cut at ms splits a sentence, if it does.
	inside := func(ms int64) (int, bool) {
		for j, v := range voiced {
			if v[0] < ms && ms < v[1] {
				return j, true
			}
		}
		return 0, false
	}
	// A detector that cuts at the limit, without looking for a pause,
	// splits a sentence here: the fixture tests where cuts fall.
	blind := cfg
	blind.CutSearch = 20 * time.Millisecond
	split := false
	for i, c := range cutWith(t, blind, ps, nil) {
		if _, in := inside(c.speech.StartMS); i > 0 && in {
			split = true
		}
	}
	require.True(t, split, "cutting at the limit splits no sentence: the fixture no longer tests where cuts fall")

	for _, path := range []struct {
		name   string
		levels []int
	}{{"sender levels", senderLevels(t, ps)}, {"measured levels", nil}} {
		cuts := cutWith(t, cfg, ps, path.levels)
		var joins int
		for i := 1; i < len(cuts); i++ {
			prev, c := cuts[i-1].speech, cuts[i].speech
			if prev.AudioEndMS < c.AudioStartMS-frameMS {
				continue // a pause ended the segment: not a cut
			}
			joins++
			j, in := inside(c.StartMS)
			require.False(t, in, "%s: cut at %d ms inside sentence %d (voiced %v ms)", path.name, c.StartMS, j, voiced[j])
		}
		require.Positive(t, joins, "%s: MaxSegment cut the speech (%d segments from %d ms to %d ms)", path.name,
			len(cuts), cuts[0].speech.AudioStartMS, cuts[len(cuts)-1].speech.AudioEndMS)
		for _, c := range cuts {
			require.LessOrEqual(t, c.speech.AudioEndMS-c.speech.AudioStartMS, cfg.WithDefaults().MaxSegment.Milliseconds()+frameMS)
		}
		cov, missed := coverage(tr.clean, cuts)
		var lengths []int64
		for _, c := range cuts {
			lengths = append(lengths, c.speech.AudioEndMS-c.speech.AudioStartMS)
		}
		t.Logf("%s: segments of %v ms, %d cuts by MaxSegment, coverage %.2f%%", path.name, lengths, joins, 100*cov)
		require.GreaterOrEqual(t, cov, 0.995, "%s: frames outside every segment: %v", path.name, missed)
	}
}

// TestShortStretchesOfReadSpeechAreMergedUpToTheConfiguredLength: a
// speaker's stretches of speech less than 2 s apart are sent as one
// segment until it holds MergeSegment of audio (20 s by default, 10 s when
// set so), and then the next pause of 400 ms ends it. On the read meeting
// as read (pauses from 0.25 s to 6 s) and read again with a 1 s pause
// after every line (so that merging runs into its length): a segment
// that a pause under 2 s ended holds at least MergeSegment, and no more
// than that and the line it was in; without merging, each pause of 400 ms
// ends one, and the backend gets many more, shorter segments.
func TestShortStretchesOfReadSpeechAreMergedUpToTheConfiguredLength(t *testing.T) {
	t.Parallel()
	for _, sp := range readMeeting {
		steady := readSpeaker{identity: sp.identity, voice: sp.voice}
		for _, l := range sp.lines {
			steady.lines = append(steady.lines, readLine{l.text, 1})
		}
		for _, fx := range []struct {
			name string
			sp   readSpeaker
		}{{"as read", sp}, {"1 s pauses", steady}} {
			t.Run(sp.identity+" "+fx.name, func(t *testing.T) {
				t.Parallel()
				tr := speakLines(t, fx.sp, len(fx.sp.lines))
				var longest int64
				for _, span := range tr.spans {
					longest = max(longest, int64((span[1]-span[0])*1000/audio.SampleRate))
				}
				ps := opusPackets(t, tr.pcm)
				levels := senderLevels(t, ps)
				counts := map[time.Duration]int{}
				full := 0 // segments that a short pause ended, once long enough
				for _, merge := range []time.Duration{-1, 10 * time.Second, 0} {
					cfg := Config{MergeSegment: merge}
					want := cfg.WithDefaults().MergeSegment.Milliseconds()
					cuts := cutWith(t, cfg.VoiceActivity(), ps, levels)
					counts[merge] = len(cuts)
					short := 0 // pauses under 2 s between segments
					for i := 0; i+1 < len(cuts); i++ {
						prev, next := cuts[i].speech, cuts[i+1].speech
						pause := next.StartMS - prev.EndMS
						held := prev.EndMS - prev.AudioStartMS
						require.GreaterOrEqual(t, pause, int64(400), "a pause of 400 ms at least ends a segment")
						if pause >= mergePause.Milliseconds()-frameMS {
							continue
						}
						short++
						if merge < 0 {
							continue
						}
						full++
						require.GreaterOrEqual(t, held, want, "merge %d ms: a segment ended by a pause of %d ms holds only %d ms", want, pause, held)
						require.LessOrEqual(t, held, want+longest+2*frameMS, "merge %d ms: a segment goes on past its length and a line", want)
					}
					if merge < 0 {
						require.Positive(t, short, "unmerged, no pause under 2 s: the fixture tests no merging")
					}
					for _, c := range cuts {
						require.LessOrEqual(t, c.speech.AudioEndMS-c.speech.AudioStartMS, cfg.WithDefaults().MaxSegment.Milliseconds()+frameMS)
					}
				}
				if fx.name == "1 s pauses" {
					require.Positive(t, full, "no merged segment reached its length: the fixture tests no bound")
				}
				t.Logf("segments unmerged %d, merged up to 10 s %d, up to 20 s %d; %d ended by a short pause once full",
					counts[-1], counts[10*time.Second], counts[0], full)
				require.Greater(t, counts[-1], counts[10*time.Second], "merging sends fewer segments")
				require.GreaterOrEqual(t, counts[10*time.Second], counts[0], "a longer merge, no more segments")
			})
		}
	}
}
