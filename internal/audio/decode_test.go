package audio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"testing"
	"time"

	"github.com/at-wat/ebml-go/webm"
	"github.com/stretchr/testify/require"
)

func TestDecodeWebMTone(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		freq   float64
		pan    string  // ffmpeg pan filter making the channels
		gainDB float64 // expected level of the mono mix against the source
		args   []string
	}{
		{"stereo 440 Hz", 440, "stereo|c0=c0|c1=c0", 0, []string{"-b:a", "32k"}},
		{"stereo, right channel silent", 440, "stereo|c0=c0|c1=0*c0", -6, []string{"-b:a", "64k"}},
		{"mono 1 kHz", 1000, "mono|c0=c0", 0, []string{"-b:a", "24k"}},
		{"stereo 3 kHz 64k", 3000, "stereo|c0=c0|c1=c0", 0, []string{"-b:a", "64k"}},
		{"mono 300 Hz SILK voip 10k", 300, "mono|c0=c0", 0, []string{"-b:a", "10k", "-application", "voip"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			data := ffmpegWebM(t, fmt.Sprintf("sine=f=%g:d=2,pan=%s", tc.freq, tc.pan), tc.args...)
			pcm, st := decodeAll(t, data)

			// ffmpeg trims the end with DiscardPadding and the start with
			// CodecDelay: what comes out is exactly the 2 s that went in.
			require.InDelta(t, 2*time.Second, st.Duration, float64(5*time.Millisecond), "duration %v", st.Duration)
			require.Equal(t, (int(st.Duration*SampleRate/time.Second)+FrameSamples-1)/FrameSamples*FrameSamples, len(pcm))
			require.Zero(t, st.BadPackets)
			require.Zero(t, st.Gaps)
			require.Equal(t, 101, st.Packets) // 2 s + pre-skip in 20 ms packets

			steady := pcm[ms(100):ms(1900)]
			require.InDelta(t, tc.freq, zeroCrossingHz(steady), tc.freq*0.01)
			// ffmpeg's sine has amplitude 1/8: RMS 0.088 of full scale.
			want := 32768.0 / 8 / math.Sqrt2
			require.InDelta(t, tc.gainDB, 20*math.Log10(rms(steady)/want), 1.5, "level off by more than 2 dB")
			tone := goertzel(steady, tc.freq)
			for _, other := range []float64{tc.freq / 2, tc.freq * 1.5, tc.freq * 2} {
				require.Greater(t, tone, 1000*goertzel(steady, other), "energy at %g Hz", other)
			}
		})
	}
}

// A tone above 8 kHz must not fold back into the speech band when 48 kHz
// Opus is brought down to 16 kHz.
func TestDecodeWebMNoAliasing(t *testing.T) {
	t.Parallel()
	high, _ := decodeAll(t, ffmpegWebM(t, "sine=f=11000:d=1", "-b:a", "96k"))
	ref, _ := decodeAll(t, ffmpegWebM(t, "sine=f=1000:d=1", "-b:a", "96k"))
	attenuation := 20 * math.Log10(rms(ref[ms(100):ms(900)])/max(rms(high[ms(100):ms(900)]), 1))
	require.Greater(t, attenuation, 40.0, "11 kHz only %.1f dB down", attenuation)
	// The alias would sit at 16 - 11 = 5 kHz.
	require.Less(t, goertzel(high[ms(100):ms(900)], 5000), goertzel(ref[ms(100):ms(900)], 1000)/1e5)
}

// The tone starts 500 ms into the file: with the pre-skip dropped it starts
// 500 ms into the decoded audio, not 6.5 ms later.
func TestDecodeWebMPreSkipAlignsStart(t *testing.T) {
	t.Parallel()
	data := ffmpegWebM(t, "sine=f=440:d=1", "-af", "adelay=500,apad=pad_dur=0.5", "-b:a", "64k")
	pcm, _ := decodeAll(t, data)
	onset := -1
	for i, x := range pcm {
		if math.Abs(float64(x)) > 32768/8/4 {
			onset = i
			break
		}
	}
	require.InDelta(t, ms(500), onset, float64(ms(3)), "onset at %.1f ms", float64(onset)*1000/SampleRate)
}

func TestDecodeWebMGapsBecomeSilence(t *testing.T) {
	t.Parallel()
	src := parseWebM(t, ffmpegWebM(t, "sine=f=440:d=4", "-b:a", "32k"))
	delay := time.Duration(src.entry.CodecDelay)
	require.Equal(t, 6500*time.Microsecond, delay, "ffmpeg's usual pre-skip")

	// gap describes a stretch with no blocks, on the block clock.
	type gap struct{ fromMS, toMS int64 }
	cases := []struct {
		name    string
		times   func(i int) int64 // block time of packet i, or -1 to drop it
		gaps    []gap
		last    int64  // block time of the last packet
		cluster uint64 // when set, one cluster at this time, block times relative to it
	}{
		{
			name: "one lost packet",
			times: func(i int) int64 {
				if i == 30 {
					return -1
				}
				return int64(i) * 20
			},
			gaps: []gap{{600, 620}},
			last: 99 * 20,
		},
		{
			name: "DTX pause and a long pause",
			times: func(i int) int64 {
				switch {
				case i < 25:
					return int64(i) * 20
				case i < 50:
					return 1000 + int64(i-25)*20
				default:
					return 4000 + int64(i-50)*20
				}
			},
			gaps: []gap{{500, 1000}, {1500, 4000}},
			last: 4000 + 49*20,
		},
		{
			name:    "late first packet",
			times:   func(i int) int64 { return int64(i) * 20 },
			cluster: 300,
			gaps:    []gap{{-1000, 300}},
			last:    300 + 99*20,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var packets [][]byte
			var times []int64
			for i := range 100 {
				if tm := tc.times(i); tm >= 0 {
					packets = append(packets, src.packets[i])
					times = append(times, tm)
				}
			}
			data := buildWebM(t, src.entry, retime(packets, times))
			if tc.cluster > 0 {
				data = marshalWebM(t, src.entry, tc.cluster, retime(packets, times))
			}
			pcm, st := decodeAll(t, data)

			wantEnd := time.Duration(tc.last+20)*time.Millisecond - delay
			require.Equal(t, wantEnd, st.Duration)
			require.Equal(t, len(tc.gaps), st.Gaps)
			require.Equal(t, len(packets), st.Packets)

			// Every inserted stretch is exact zeros where the gap was,
			// shifted by the pre-skip like all audio; and the only one.
			runs := silentRuns(pcm[:ms(wantEnd.Milliseconds())], ms(10))
			require.Len(t, runs, len(tc.gaps), "silent runs %v", runs)
			for i, g := range tc.gaps {
				from := max(0, ms(g.fromMS)-ms(delay.Milliseconds()))
				to := ms(g.toMS) - int(delay*SampleRate/time.Second)
				require.InDelta(t, from, runs[i][0], float64(ms(20)), "gap %d starts at sample %d", i, runs[i][0])
				require.InDelta(t, to, runs[i][1], float64(ms(20)), "gap %d ends at sample %d", i, runs[i][1])
			}
			// Around the gaps the tone carries on at its pitch.
			require.InDelta(t, 440, zeroCrossingHz(pcm[ms(tc.last-400):ms(tc.last)]), 5)
		})
	}
}

func TestDecodeWebMBadPacketBecomesSilence(t *testing.T) {
	t.Parallel()
	src := parseWebM(t, ffmpegWebM(t, "sine=f=440:d=1", "-b:a", "32k"))
	packets := append([][]byte(nil), src.packets[:40]...)
	// Same TOC byte, so the same 20 ms; but longer than any Opus frame may
	// be, which the decoder must reject.
	packets[20] = append([]byte{packets[20][0]}, bytes.Repeat([]byte{0x55}, 1300)...)
	times := make([]int64, len(packets))
	for i := range times {
		times[i] = int64(i) * 20
	}
	pcm, st := decodeAll(t, buildWebM(t, src.entry, retime(packets, times)))
	require.Equal(t, 1, st.BadPackets)
	require.Zero(t, st.Gaps)
	require.Equal(t, 800*time.Millisecond-6500*time.Microsecond, st.Duration)
	runs := silentRuns(pcm[:ms(780)], ms(10))
	require.Len(t, runs, 1)
	require.InDelta(t, ms(400-6), runs[0][0], float64(ms(3)))
	require.InDelta(t, ms(420-6), runs[0][1], float64(ms(3)))
}

func TestDecodeWebMTruncatedFileDecodesWhatIsThere(t *testing.T) {
	t.Parallel()
	src := parseWebM(t, ffmpegWebM(t, "sine=f=440:d=2", "-b:a", "32k"))
	times := make([]int64, len(src.packets))
	for i := range times {
		times[i] = int64(i) * 20
	}
	data := buildWebM(t, src.entry, retime(src.packets, times))
	_, full := decodeAll(t, data)
	cut, st := decodeAll(t, data[:len(data)/2+7])
	require.True(t, st.Truncated)
	require.False(t, full.Truncated)
	require.Greater(t, st.Duration, 700*time.Millisecond)
	require.Less(t, st.Duration, full.Duration)
	require.InDelta(t, 440, zeroCrossingHz(cut[ms(100):ms(600)]), 5)
}

func TestDecodeWebMErrors(t *testing.T) {
	t.Parallel()
	tone := ffmpegWebM(t, "sine=f=440:d=1", "-b:a", "32k")
	src := parseWebM(t, tone)
	vp8 := src.entry
	vp8.CodecID = "V_VP8"
	vp8.TrackType = 1
	noOpus := buildWebM(t, vp8, []testBlock{{0, []byte{1, 2, 3}}})

	var wav bytes.Buffer
	require.NoError(t, WriteWAV(&wav, make([]int16, 100)))

	errStop := errors.New("enough")
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	cases := []struct {
		name  string
		ctx   context.Context
		data  []byte
		fn    func([]int16) error
		is    error
		frags []string
	}{
		{name: "no opus track", data: noOpus, is: ErrNoOpusTrack},
		{name: "a WAV", data: wav.Bytes(), frags: []string{"read webm"}},
		{name: "empty", data: nil, is: ErrNoOpusTrack},
		{name: "handler error", data: tone, fn: func([]int16) error { return errStop }, is: errStop},
		{name: "canceled", ctx: canceled, data: tone, is: context.Canceled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			fn := tc.fn
			if fn == nil {
				fn = func([]int16) error { return nil }
			}
			_, err := DecodeWebM(ctx, bytes.NewReader(tc.data), fn)
			require.Error(t, err)
			if tc.is != nil {
				require.ErrorIs(t, err, tc.is)
			}
			for _, f := range tc.frags {
				require.ErrorContains(t, err, f)
			}
		})
	}
}

// Frames come out while the file is still being written: the decoder
// streams and never needs the whole track.
func TestDecodeWebMStreams(t *testing.T) {
	t.Parallel()
	src := parseWebM(t, ffmpegWebM(t, "sine=f=440:d=1", "-b:a", "32k"))
	const blocks = 5000 // 100 s
	pr, pw := io.Pipe()
	written := make(chan int, 1)
	go func() {
		ws, err := webm.NewSimpleBlockWriter(pw, []webm.TrackEntry{src.entry})
		if err != nil {
			_ = pw.CloseWithError(err)
			return
		}
		for i := range blocks {
			select {
			case written <- i:
			default:
				<-written
				written <- i
			}
			if _, err := ws[0].Write(true, int64(i)*20, src.packets[i%len(src.packets)]); err != nil {
				_ = pw.CloseWithError(err)
				return
			}
		}
		_ = ws[0].Close()
	}()
	sawEarly := false
	frames := 0
	st, err := DecodeWebM(context.Background(), pr, func([]int16) error {
		frames++
		if frames == 50 {
			sawEarly = <-written < blocks/2
		}
		return nil
	})
	require.NoError(t, err)
	require.True(t, sawEarly, "first second decoded only after half the file was written")
	require.Equal(t, blocks, st.Packets)
	require.Equal(t, 100*time.Second-6500*time.Microsecond, st.Duration)
}
