package audio_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/audio"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

// aliceFile is testdata/meeting/alice.opus: 9 s of tone speech, mono,
// opusenc's pre-skip of 312, fifty 20 ms packets a page, the last page
// trimming its last packet.
const aliceFile = "../../testdata/meeting/alice.opus"

func alice(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(aliceFile)
	require.NoError(t, err)
	return b
}

// packetData is the audio packets of an Ogg Opus file.
func packetData(t *testing.T, b []byte) [][]byte {
	t.Helper()
	_, packets, err := audio.OggOpusPackets(b)
	require.NoError(t, err)
	out := make([][]byte, len(packets))
	for i, p := range packets {
		out[i] = p.Data
	}
	return out
}

// TestPacketsKeepTheirPlace checks the granule position each page gives
// its last packet: where it ends, so that a tool replaying the file keeps
// the gaps the file states.
func TestPacketsKeepTheirPlace(t *testing.T) {
	t.Parallel()
	head, packets, err := audio.OggOpusPackets(alice(t))
	require.NoError(t, err)
	require.Equal(t, uint16(312), head.PreSkip)
	require.Len(t, packets, 451)
	var sum int64
	ends := 0
	for i, p := range packets {
		n, err := audio.PacketSamples48(p.Data)
		require.NoError(t, err)
		require.Equal(t, n, p.Samples)
		sum += int64(n)
		switch {
		case i == len(packets)-1: // the last page trims its last packet
			require.Positive(t, p.Granule)
			require.Less(t, p.Granule, sum)
			require.Greater(t, p.Granule, sum-int64(n))
			ends++
		case (i+1)%50 == 0: // opusenc puts fifty packets on a page
			require.Equal(t, sum, p.Granule, "packet %d", i)
			ends++
		default:
			require.Equal(t, int64(-1), p.Granule, "packet %d", i)
		}
	}
	require.Equal(t, 10, ends)

	// A gap between pages (a granule past the packets' end) is told as is.
	o := &ogg{serial: 1}
	o.headers(312, 0)
	o.page(0, 2*960, packets[0].Data, packets[1].Data)
	o.page(0, 10*960, packets[2].Data)
	_, got, err := audio.OggOpusPackets(o.buf.Bytes())
	require.NoError(t, err)
	require.Equal(t, []int64{-1, 2 * 960, 10 * 960}, []int64{got[0].Granule, got[1].Granule, got[2].Granule})
}

// opusdec decodes path with the reference decoder, as 16-bit mono at rate.
func opusdec(t *testing.T, path string, rate int) []int16 {
	t.Helper()
	bin, err := exec.LookPath("opusdec")
	require.NoError(t, err, "install opus-tools (apt-get install opus-tools)")
	out := filepath.Join(t.TempDir(), "ref.wav")
	msg, err := exec.CommandContext(t.Context(), bin, "--quiet", "--rate", strconv.Itoa(rate), path, out).CombinedOutput()
	require.NoError(t, err, string(msg))
	raw, err := os.ReadFile(out)
	require.NoError(t, err)
	pcm, got, err := audio.DecodeWAV(raw)
	require.NoError(t, err)
	require.Equal(t, rate, got)
	return pcm
}

func TestDecodeMatchesTheReferenceDecoder(t *testing.T) {
	t.Parallel()
	b := alice(t)
	d, err := audio.OggOpusDuration(b)
	require.NoError(t, err)
	require.Equal(t, 9*time.Second, d, "432312 granules less 312 of pre-skip")
	for _, rate := range []int{16000, 24000, 48000} {
		pcm, err := audio.DecodeOggOpusInt16(b, rate)
		require.NoError(t, err)
		ref := opusdec(t, aliceFile, rate)
		require.Len(t, pcm, 9*rate, "end trimmed to the last granule position")
		require.Len(t, ref, len(pcm))
		var worst, peak int
		for i := range pcm {
			worst = max(worst, abs(int(pcm[i])-int(ref[i])))
			peak = max(peak, abs(int(ref[i])))
		}
		// Same samples, same place: pre-skip and trimming as opusdec does.
		require.Greater(t, peak, 8000, "%d Hz: the tones are there", rate)
		require.Less(t, worst, 64, "%d Hz: largest difference from opusdec", rate)
	}
}

func TestDecodeInPieces(t *testing.T) {
	t.Parallel()
	b := alice(t)
	whole, err := audio.DecodeOggOpus(b, 24000)
	require.NoError(t, err)
	for _, piece := range []int{1, 27, 1000, 4096} {
		d, err := audio.NewOggOpusDecoder(24000)
		require.NoError(t, err)
		var got []float32
		for from := 0; from < len(b); from += piece {
			got, err = d.Decode(got, b[from:min(from+piece, len(b))])
			require.NoError(t, err)
		}
		require.Equal(t, whole, got, "pieces of %d bytes", piece)
	}
}

func TestNewDecoderRates(t *testing.T) {
	t.Parallel()
	for _, rate := range []int{8000, 12000, 16000, 24000, 48000} {
		_, err := audio.NewOggOpusDecoder(rate)
		require.NoError(t, err, rate)
	}
	_, err := audio.NewOggOpusDecoder(44100)
	require.Error(t, err)
}

// The streams below are built page by page from alice's packets: 20 ms
// each, so n packets hold n*960 samples at 48 kHz.

func TestGranulePositions(t *testing.T) {
	t.Parallel()
	packets := packetData(t, alice(t))
	require.Len(t, packets, 451)
	p := packets[50:150] // 2 s of audio, alice's first words in it

	for name, tc := range map[string]struct {
		build func(t *testing.T, o *ogg)
		// samples: the audio's length at 48 kHz, pre-skip excluded.
		samples int
	}{
		"one packet a page, as pion's oggwriter writes": {
			build: func(t *testing.T, o *ogg) {
				o.headers(3840, 0)
				for i := range p {
					o.page(0, int64(960*(i+1)), p[i])
				}
			},
			samples: 100*960 - 3840,
		},
		"holes filled with CELT silence frames, as Greffier's cutter does": {
			build: func(t *testing.T, o *ogg) {
				o.headers(3840, 0)
				for i := range p {
					packet := p[i]
					if i%7 == 3 {
						packet = []byte{0xf8, 0xff, 0xfe}
					}
					o.page(0, int64(960*(i+1)), packet)
				}
			},
			samples: 100*960 - 3840,
		},
		"a stream cut from a longer one starts past 0": {
			build: func(t *testing.T, o *ogg) {
				o.headers(312, 0)
				o.page(0, 1_000_000+50*960, p[:50]...)
				o.page(0, 1_000_000+100*960, p[50:]...)
			},
			samples: 100*960 - 312,
		},
		"the last page trims the last packet": {
			build: func(t *testing.T, o *ogg) {
				o.headers(312, 0)
				o.page(0, 50*960, p[:50]...)
				o.page(4, 100*960-700, p[50:]...)
			},
			samples: 100*960 - 700 - 312,
		},
		"a packet across two pages, and no granule on the first": {
			build: func(t *testing.T, o *ogg) {
				o.headers(312, 0)
				o.page(0, 40*960, p[:40]...)
				o.split(padded(t, p[40], 600), p[41:]...)
			},
			samples: 100*960 - 312,
		},
		"tags across pages": {
			build: func(t *testing.T, o *ogg) {
				o.page(2, 0, opusHead(1, 312, 0))
				o.split(append([]byte("OpusTags\x00\x00\x00\x00\x00\x00\x00\x00"), make([]byte, 70000)...))
				o.page(0, 100*960, p...)
			},
			samples: 100*960 - 312,
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			o := &ogg{serial: 7}
			tc.build(t, o)
			d, err := audio.OggOpusDuration(o.buf.Bytes())
			require.NoError(t, err)
			require.Equal(t, time.Duration(tc.samples)*time.Second/48000, d)
			for _, rate := range []int{16000, 48000} {
				pcm, err := audio.DecodeOggOpus(o.buf.Bytes(), rate)
				require.NoError(t, err)
				require.Len(t, pcm, tc.samples*rate/48000, "%d Hz", rate)
			}
		})
	}
}

// TestPreSkipAndGain checks where the audio starts and how loud it is:
// the pre-skip is dropped at every rate, and the output gain applied.
func TestPreSkipAndGain(t *testing.T) {
	t.Parallel()
	packets := packetData(t, alice(t))
	p := packets[:150] // alice's "alpha" starts at 1.0 s
	decode := func(preSkip int, gain int16) []float32 {
		o := &ogg{serial: 1}
		o.headers(preSkip, gain)
		o.page(0, 150*960, p...)
		pcm, err := audio.DecodeOggOpus(o.buf.Bytes(), 24000)
		require.NoError(t, err)
		return pcm
	}
	onset := func(pcm []float32, level float32) int {
		for i, v := range pcm {
			if v > level || v < -level {
				return i
			}
		}
		return -1
	}
	plain := decode(312, 0)
	at := onset(plain, 0.05)
	require.InDelta(t, 24000, at, 240, "alpha at 1 s, within 10 ms")
	skipped := decode(312+3*4800, 0) // 300 ms more
	require.Equal(t, at-3*2400, onset(skipped, 0.05))
	require.Equal(t, plain[3*2400:], skipped)

	quiet := decode(312, -6*256) // -6 dB in Q7.8
	var peak, quietPeak float64
	for i := range plain {
		peak = max(peak, math.Abs(float64(plain[i])))
		quietPeak = max(quietPeak, math.Abs(float64(quiet[i])))
	}
	require.InDelta(t, math.Pow(10, -6.0/20), quietPeak/peak, 0.01)
}

// TestStereoIsMixedDown decodes a stereo file with the tone in the left
// channel only: the mono mix holds it at half the level.
func TestStereoIsMixedDown(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("opusenc")
	require.NoError(t, err, "install opus-tools (apt-get install opus-tools)")
	words := transcribetest.Layout(500*time.Millisecond, "alpha", "kilo")
	mono, err := transcribetest.Synthesize(words, 48000)
	require.NoError(t, err)
	mono = append(mono, make([]int16, 48000/2)...)
	raw := make([]byte, 4*len(mono))
	for i, v := range mono {
		binary.LittleEndian.PutUint16(raw[4*i:], uint16(v)) // left; right stays silent
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "stereo.raw"), filepath.Join(dir, "stereo.opus")
	require.NoError(t, os.WriteFile(in, raw, 0o600))
	msg, err := exec.CommandContext(t.Context(), bin, "--quiet", "--raw", "--raw-chan", "2", "--raw-rate", "48000", "--bitrate", "96", in, out).CombinedOutput()
	require.NoError(t, err, string(msg))
	b, err := os.ReadFile(out)
	require.NoError(t, err)

	pcm, err := audio.DecodeOggOpusInt16(b, 16000)
	require.NoError(t, err)
	require.Len(t, pcm, len(mono)/3)
	det, err := transcribetest.NewDetector(16000)
	require.NoError(t, err)
	heard := det.Detect(pcm)
	require.Len(t, heard, 2)
	for i, w := range heard {
		require.Equal(t, words[i].Text, w.Text)
		require.InDelta(t, words[i].Start, w.Start, float64(20*time.Millisecond))
	}
	var peak int
	for _, v := range pcm {
		peak = max(peak, abs(int(v)))
	}
	require.InDelta(t, 0.3*32767/2, peak, 0.3*32767/8, "half the left channel's level")
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	b := alice(t)
	packets := packetData(t, b)
	for name, data := range map[string][]byte{
		"garbage after OggS": append([]byte("OggS"), bytes.Repeat([]byte{0}, 200)...),
		"damaged page":       flip(b, 2000),
		"cut short":          b[:len(b)-100],
		"not a page":         append(bytes.Clone(b[:len(b)-3]), []byte("xyzOggS")...),
		"not Opus": func() []byte {
			o := &ogg{serial: 1}
			o.page(2, 0, []byte("OpusHeaX\x01\x01\x00\x00\x80\xbb\x00\x00\x00\x00\x00"))
			return o.buf.Bytes()
		}(),
		"two streams": func() []byte {
			o := &ogg{serial: 1}
			o.headers(312, 0)
			o.page(0, 960, packets[0])
			o.serial = 2
			o.page(0, 2*960, packets[1])
			return o.buf.Bytes()
		}(),
		"six channels": func() []byte {
			o := &ogg{serial: 1}
			o.page(2, 0, append(opusHead(6, 312, 0)[:18], 1, 4, 2, 0, 4, 1, 2, 3, 5))
			return o.buf.Bytes()
		}(),
		"empty packet": func() []byte {
			o := &ogg{serial: 1}
			o.headers(312, 0)
			o.page(0, 960, []byte{})
			return o.buf.Bytes()
		}(),
	} {
		_, err := audio.DecodeOggOpus(data, 16000)
		require.ErrorIs(t, err, audio.ErrNotOggOpus, name)
		_, err = audio.OggOpusDuration(data)
		require.ErrorIs(t, err, audio.ErrNotOggOpus, name)
		t.Logf("%s: %v", name, err)
	}
	require.True(t, audio.IsOgg(b))
	require.False(t, audio.IsOgg([]byte("RIFF....WAVE")))
}

// ogg writes Ogg pages by hand, so that tests can lay packets out as no
// writer at hand does.
type ogg struct {
	buf    bytes.Buffer
	serial uint32
	seq    uint32
}

func opusHead(channels byte, preSkip int, gain int16) []byte {
	h := []byte("OpusHead\x01")
	h = append(h, channels)
	h = binary.LittleEndian.AppendUint16(h, uint16(preSkip))
	h = binary.LittleEndian.AppendUint32(h, 48000)
	h = binary.LittleEndian.AppendUint16(h, uint16(gain))
	return append(h, 0)
}

func (o *ogg) headers(preSkip int, gain int16) {
	o.page(2, 0, opusHead(1, preSkip, gain))
	o.page(0, 0, []byte("OpusTags\x04\x00\x00\x00test\x00\x00\x00\x00"))
}

// page writes complete packets on one page.
func (o *ogg) page(flags byte, granule int64, packets ...[]byte) {
	var lacing, payload []byte
	for _, p := range packets {
		n := len(p)
		for ; n >= 255; n -= 255 {
			lacing = append(lacing, 255)
		}
		lacing = append(lacing, byte(n))
		payload = append(payload, p...)
	}
	o.raw(flags, granule, lacing, payload)
}

// split writes p across two pages, the first without a granule position,
// then rest after it on the second.
func (o *ogg) split(p []byte, rest ...[]byte) {
	half := len(p) / 2 / 255 * 255
	o.raw(0, -1, bytes.Repeat([]byte{255}, half/255), p[:half])
	var lacing []byte
	n := len(p) - half
	for ; n >= 255; n -= 255 {
		lacing = append(lacing, 255)
	}
	lacing = append(lacing, byte(n))
	payload := bytes.Clone(p[half:])
	granule := int64(-1)
	if len(rest) > 0 {
		granule = 100 * 960
	}
	for _, r := range rest {
		lacing = append(lacing, byte(len(r))) // audio packets are under 255 bytes
		payload = append(payload, r...)
	}
	o.raw(1, granule, lacing, payload)
}

func (o *ogg) raw(flags byte, granule int64, lacing, payload []byte) {
	h := []byte("OggS\x00")
	h = append(h, flags)
	h = binary.LittleEndian.AppendUint64(h, uint64(granule))
	h = binary.LittleEndian.AppendUint32(h, o.serial)
	h = binary.LittleEndian.AppendUint32(h, o.seq)
	h = append(h, 0, 0, 0, 0, byte(len(lacing)))
	page := append(append(h, lacing...), payload...)
	binary.LittleEndian.PutUint32(page[22:], crc(page))
	o.buf.Write(page)
	o.seq++
}

// crc is Ogg's CRC-32: polynomial 0x04c11db7, unreflected, no final xor.
func crc(b []byte) uint32 {
	var c uint32
	for _, v := range b {
		c ^= uint32(v) << 24
		for range 8 {
			if c&0x80000000 != 0 {
				c = c<<1 ^ 0x04c11db7
			} else {
				c <<= 1
			}
		}
	}
	return c
}

// padded makes a one-frame packet n bytes longer, as code 3 packets with
// padding are (RFC 6716 3.2.5), so that it needs more than one page.
func padded(t *testing.T, p []byte, n int) []byte {
	t.Helper()
	require.Zero(t, p[0]&3, "a code 0 packet")
	out := []byte{p[0] | 3, 0x40 | 1} // padding, one frame
	for pad := n; ; pad -= 254 {
		if pad < 255 {
			out = append(out, byte(pad))
			break
		}
		out = append(out, 255)
	}
	out = append(out, p[1:]...)
	return append(out, make([]byte, n)...)
}

func flip(b []byte, at int) []byte {
	out := bytes.Clone(b)
	out[at] ^= 0x55
	return out
}

func abs(v int) int { return max(v, -v) }
