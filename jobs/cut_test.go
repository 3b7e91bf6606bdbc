package jobs

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/audio"
)

// fixturePackets returns a fixture's packets as the recorder stores them.
func fixturePackets(t *testing.T, identity string) []audio.TimedPacket {
	t.Helper()
	f, err := os.Open(fixtureWebM(t, identity))
	require.NoError(t, err)
	defer f.Close()
	var ps []audio.TimedPacket
	_, err = audio.ReadWebMPackets(context.Background(), f, func(ms int64, p []byte) error {
		ps = append(ps, audio.TimedPacket{MS: ms, Data: append([]byte(nil), p...)})
		return nil
	})
	require.NoError(t, err)
	return ps
}

func cutAll(t *testing.T, ps []audio.TimedPacket, levels []int) []cut {
	t.Helper()
	c := newCutter(Config{}.VoiceActivity(), 1)
	var out []cut
	for i, p := range ps {
		cuts, err := c.packet(p.MS, p.Data, levels[i])
		require.NoError(t, err)
		out = append(out, cuts...)
	}
	cuts, err := c.flush()
	require.NoError(t, err)
	return append(out, cuts...)
}

// TestCutterFindsTheFixtureSentences cuts Alice's fixture (two sentences,
// 1.0-2.5 s and 5.5-6.6 s) three ways: with the levels a sender measured,
// measuring them itself, and with DTX (no packets while she is silent).
// Each finds the same two segments, and each segment's Ogg Opus file
// decodes to audio that starts at the segment's AudioStartMS.
func TestCutterFindsTheFixtureSentences(t *testing.T) {
	t.Parallel()
	ps := fixturePackets(t, "alice")
	sender := make([]int, len(ps))
	measure := make([]int, len(ps))
	l, err := audio.NewPacketLeveler()
	require.NoError(t, err)
	var dtx []audio.TimedPacket
	var dtxLevels []int
	for i, p := range ps {
		sender[i], err = l.Level(p.Data)
		require.NoError(t, err)
		measure[i] = -1
		if sender[i] < audio.SilenceLevel {
			dtx, dtxLevels = append(dtx, p), append(dtxLevels, sender[i])
		}
	}
	require.Less(t, len(dtx), len(ps)*2/3, "the fixture is mostly silence")

	want := cutAll(t, ps, sender)
	require.Len(t, want, 2)
	for i, u := range [][2]int64{{1000, 2500}, {5500, 6600}} {
		sp := want[i].speech
		require.InDelta(t, u[0], sp.StartMS, 60, "segment %d start", i)
		require.InDelta(t, u[1], sp.EndMS, 60, "segment %d end", i)
		require.Nil(t, sp.PCM)

		// The audio: ffmpeg decodes it; the voice starts StartMS -
		// AudioStartMS into it, and it lasts the segment's audio.
		path := filepath.Join(t.TempDir(), "seg.ogg")
		require.NoError(t, os.WriteFile(path, want[i].ogg, 0o644))
		raw, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-f", "s16le", "-ac", "1", "-ar", "16000", "-").Output()
		require.NoError(t, err)
		pcm := make([]int16, len(raw)/2)
		for j := range pcm {
			pcm[j] = int16(raw[2*j]) | int16(raw[2*j+1])<<8
		}
		require.InDelta(t, sp.AudioEndMS-sp.AudioStartMS, int64(len(pcm))/16, 20, "segment %d length", i)
		onset := -1
		for j := 0; j+320 <= len(pcm); j += 160 {
			if audio.Level(pcm[j:j+320]) < 40 {
				onset = j / 16
				break
			}
		}
		require.InDelta(t, sp.StartMS-sp.AudioStartMS, onset, 40, "segment %d: voice at %d ms into its audio", i, onset)
	}

	got := cutAll(t, ps, measure)
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, want[i].speech, got[i].speech)
		// The same packets (the files differ only in their random serial).
		require.Equal(t, len(want[i].ogg), len(got[i].ogg), "segment %d audio", i)
	}
	got = cutAll(t, dtx, dtxLevels)
	require.Len(t, got, len(want))
	for i := range want {
		w, g := want[i].speech, got[i].speech
		require.Equal(t, [3]int64{w.StartMS, w.EndMS, w.AudioStartMS}, [3]int64{g.StartMS, g.EndMS, g.AudioStartMS}, "with DTX")
		// The stream stops with the last packet: no trailing padding past it.
		require.LessOrEqual(t, g.AudioEndMS, w.AudioEndMS)
		require.GreaterOrEqual(t, g.AudioEndMS, g.EndMS)
	}
}

// TestCutterKeepsWhatOpenSegmentsNeed: after minutes of silence, 27.9 s of
// speech in 20 ms packets and in 10 ms packets each come out whole (every
// packet from the segment's audio start on), and the ring stays the size
// of what a segment may need, not of the track: a second or two while
// nobody speaks.
func TestCutterKeepsWhatOpenSegmentsNeed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		packet  []byte // a CELT silence frame of the duration: valid Opus, levels given apart
		ms      int64
		maxRing int
		minRing int
	}{
		{"20 ms packets", []byte{0xf8, 0xff, 0xfe}, 20, 2048, 128},
		{"10 ms packets", []byte{0xf0, 0xff, 0xfe}, 10, 4096, 256},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCutter(Config{}.VoiceActivity(), 1)
			var cuts []cut
			feed := func(from, to int64, level int) {
				for ms := from; ms < to; ms += tc.ms {
					got, err := c.packet(ms, tc.packet, level)
					require.NoError(t, err)
					cuts = append(cuts, got...)
				}
			}
			feed(0, 300_000, audio.SilenceLevel)
			// Minutes of silence keep what a segment about to start
			// needs: the detector's lookahead, padding, pre-skip.
			require.LessOrEqual(t, len(c.ring), tc.minRing, "a silent track's ring")
			require.Less(t, int64(c.n)*tc.ms, int64(2000))
			// Syllables: 200 ms loud, 100 ms softer, as speech rises
			// and falls (a steady level would become background).
			for ms := int64(300_000); ms < 327_900; ms += 300 {
				feed(ms, ms+200, 25)
				feed(ms+200, ms+300, 45)
			}
			feed(327_900, 335_000, audio.SilenceLevel)
			require.LessOrEqual(t, len(c.ring), 2*tc.minRing, "the ring shrinks back once the segment is out")
			got, err := c.flush()
			require.NoError(t, err)
			cuts = append(cuts, got...)
			spans := make([][2]int64, len(cuts))
			for i, cu := range cuts {
				spans[i] = [2]int64{cu.speech.StartMS, cu.speech.EndMS}
			}
			require.Len(t, spans, 1)
			sp := cuts[0].speech
			require.InDelta(t, 300_000, sp.StartMS, 20)
			// The last syllable's end: next to the silence that follows, its
			// softer part is far above the floor too.
			require.InDelta(t, 327_900, sp.EndMS, 30)
			first := sp.AudioStartMS - audio.OggPreSkip.Milliseconds()
			require.InDelta(t, 300_000-150-80, first, 20, "padding and pre-skip, on the packets' grid")
			require.Zero(t, first%tc.ms)
			require.Equal(t, first, c.scratch[0].MS)
			require.Equal(t, int((sp.AudioEndMS-first+tc.ms-1)/tc.ms), len(c.scratch), "every packet of the segment's audio")
			require.LessOrEqual(t, len(c.ring), tc.maxRing)
		})
	}
}

// BenchmarkCutterMemory reports what the live path holds per recorded
// track (its cutter: packet ring, voice detector), after a minute of
// 20 ms packets with their senders' levels: silence, as most
// participants of a large meeting send, and the same minute with 25 s of
// speech still open at its end (the ring then holds the open segment).
func BenchmarkCutterMemory(b *testing.B) {
	packet := make([]byte, 60)
	packet[0] = 0xf8 // CELT 20 ms
	for _, tc := range []struct {
		name  string
		level func(ms int64) int
	}{
		{"silent", func(int64) int { return audio.SilenceLevel }},
		{"speaking", func(ms int64) int {
			if ms < 35_000 || ms%300 >= 200 {
				return 45
			}
			return 25
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			const tracks = 200
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				cs := make([]*cutter, tracks)
				for i := range cs {
					cs[i] = newCutter(Config{}.VoiceActivity(), 1)
					for ms := int64(0); ms < 60_000; ms += 20 {
						if _, err := cs[i].packet(ms, packet, tc.level(ms)); err != nil {
							b.Fatal(err)
						}
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/tracks, "heap-bytes/track")
				runtime.KeepAlive(cs)
			}
		})
	}
}

// TestLivePathAllocatesNothing proves that the live path's work per packet
// (LiveTrack.Block: the packet kept in the ring, its RFC 6464 level judged
// by the voice detector, the ring's oldest packets forgotten) allocates
// nothing once a track's buffers have grown, for a silent participant and
// for one in the middle of a segment: only a segment that closes (its Ogg
// file) and the ring's rare growth do. It also checks that a packet with
// a level is never decoded (no leveler is made). Not parallel:
// AllocsPerRun counts every goroutine's allocations.
func TestLivePathAllocatesNothing(t *testing.T) {
	packet := make([]byte, 60)
	packet[0] = 0xf8 // CELT 20 ms
	for _, tc := range []struct {
		name         string
		warm, silent int64 // ms of warm-up, the first silent ones of it
		level        int
	}{
		// Silence, as most participants of a large meeting send.
		{"silent", 10_000, 10_000, audio.SilenceLevel},
		// Speaking: 5 s of silence, then syllables (200 ms loud, 100 ms
		// softer) that the measured packets continue, short of
		// MaxSegment (30 s), so no segment closes while they are counted.
		{"speaking", 10_000, 5_000, 25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// No Pipeline: Block only reaches it when a segment closes,
			// which the test makes sure never happens.
			lt := &LiveTrack{cut: newCutter(Config{}.VoiceActivity(), 1)}
			var ms int64
			step := func() {
				level := tc.level
				switch {
				case ms < tc.silent:
					level = audio.SilenceLevel
				case level != audio.SilenceLevel && ms%300 >= 200:
					level = 45
				}
				lt.Block(ms, packet, level)
				ms += 20
			}
			for ms < tc.warm {
				step()
			}
			require.Zero(t, testing.AllocsPerRun(500, step)) // 10 s more
			require.False(t, lt.failed())
			require.Nil(t, lt.cut.leveler, "a packet that carries its level is not decoded")
			if tc.level != audio.SilenceLevel {
				// The segment is open: the ring holds its packets.
				require.Greater(t, lt.cut.n, int((ms-tc.silent)/20)-10)
			}
		})
	}
}
