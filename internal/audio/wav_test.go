package audio

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestWAVRoundTrip(t *testing.T) {
	t.Parallel()
	samples := make([]int16, 5000)
	for i := range samples {
		samples[i] = int16(30000 * math.Sin(float64(i)/7))
	}
	samples[0], samples[1] = math.MinInt16, math.MaxInt16
	for _, n := range []int{0, 1, len(samples)} {
		var buf bytes.Buffer
		require.NoError(t, WriteWAV(&buf, samples[:n]))
		require.Equal(t, 44+2*n, buf.Len())
		got, rate, err := ReadWAV(&buf)
		require.NoError(t, err)
		require.Equal(t, SampleRate, rate)
		require.Equal(t, samples[:n], append([]int16{}, got...)[:n:n])
	}
}

// Other tools must read what we write, and we must read what they write
// (ffmpeg adds a LIST chunk before the data).
func TestWAVInteroperatesWithFFmpeg(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	samples := make([]int16, SampleRate/2)
	for i := range samples {
		samples[i] = int16(8000 * math.Sin(2*math.Pi*440*float64(i)/SampleRate))
	}
	ours := filepath.Join(dir, "ours.wav")
	var buf bytes.Buffer
	require.NoError(t, WriteWAV(&buf, samples))
	require.NoError(t, os.WriteFile(ours, buf.Bytes(), 0o600))

	raw := filepath.Join(dir, "ours.raw")
	runTool(t, "ffmpeg", []string{"-hide_banner", "-loglevel", "error", "-y", "-i", ours, "-f", "s16le", "-c:a", "pcm_s16le", raw}, "")
	rawBytes, err := os.ReadFile(raw)
	require.NoError(t, err)
	fromRaw := make([]int16, len(rawBytes)/2)
	require.NoError(t, binary.Read(bytes.NewReader(rawBytes), binary.LittleEndian, fromRaw))
	require.Equal(t, samples, fromRaw)

	theirs := filepath.Join(dir, "theirs.wav")
	runTool(t, "ffmpeg", []string{"-hide_banner", "-loglevel", "error", "-y", "-f", "s16le", "-ar", "22050", "-ac", "1",
		"-i", raw, "-metadata", "title=x", "-c:a", "pcm_s16le", theirs}, "")
	f, err := os.Open(theirs)
	require.NoError(t, err)
	defer f.Close()
	got, rate, err := ReadWAV(f)
	require.NoError(t, err)
	require.Equal(t, 22050, rate)
	require.Equal(t, samples, got)
}

func TestReadWAVRejects(t *testing.T) {
	t.Parallel()
	var good bytes.Buffer
	require.NoError(t, WriteWAV(&good, make([]int16, 100)))
	patch := func(off int, v uint16) []byte {
		b := bytes.Clone(good.Bytes())
		binary.LittleEndian.PutUint16(b[off:], v)
		return b
	}
	cases := []struct {
		name string
		data []byte
		msg  string
	}{
		{"empty", nil, "header"},
		{"not riff", append([]byte("RIFX"), good.Bytes()[4:]...), "signature"},
		{"float", patch(20, 3), "format tag 3"},
		{"stereo", patch(22, 2), "2 channels"},
		{"24 bit", patch(34, 24), "24 bits"},
		{"truncated data", good.Bytes()[:good.Len()-10], "truncated"},
		{"no data chunk", good.Bytes()[:36], "no data chunk"},
		{"odd data size", func() []byte { b := bytes.Clone(good.Bytes()); b[40] = 199; return b }(), "whole 16-bit samples"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := ReadWAV(bytes.NewReader(tc.data))
			require.ErrorIs(t, err, ErrNotWAV)
			require.ErrorContains(t, err, tc.msg)
		})
	}
}

func TestWAVDuration(t *testing.T) {
	t.Parallel()
	// 16 kHz mono PCM16 header with 1.5 s of data declared and present.
	hdr := []byte("RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x80\x3e\x00\x00\x00\x7d\x00\x00\x02\x00\x10\x00data\x00\xee\x00\x00")
	b := append(hdr, make([]byte, 48000)...)
	d, err := WAVDuration(b)
	require.NoError(t, err)
	require.Equal(t, 1500*time.Millisecond, d)
	_, err = WAVDuration([]byte("OggS"))
	require.Error(t, err)
}

func TestEncodeWAVRoundTrip(t *testing.T) {
	t.Parallel()
	pcm := []int16{0, 1, -1, 32767, -32768, 1234}
	b := EncodeWAV(pcm, 16000)
	require.Len(t, b, WAVHeaderLen+2*len(pcm))
	got, rate, err := DecodeWAV(b)
	require.NoError(t, err)
	require.Equal(t, 16000, rate)
	require.Equal(t, pcm, got)
	// The strict reader reads it too, and WriteWAV writes the same bytes.
	got, rate, err = ReadWAV(bytes.NewReader(b))
	require.NoError(t, err)
	require.Equal(t, 16000, rate)
	require.Equal(t, pcm, got)
	var w bytes.Buffer
	require.NoError(t, WriteWAV(&w, pcm))
	require.Equal(t, b, w.Bytes())

	// A streaming writer's unknown data size: what is there is read.
	binary.LittleEndian.PutUint32(b[40:], 0xFFFFFFFF)
	got, _, err = DecodeWAV(b)
	require.NoError(t, err)
	require.Equal(t, pcm, got)
}

func TestDecodeWAVRefuses(t *testing.T) {
	t.Parallel()
	for name, b := range map[string][]byte{
		"empty":    nil,
		"not RIFF": []byte("OggS........................................"),
		"no data":  EncodeWAV(nil, 16000)[:36],
		"8 bits": func() []byte {
			b := EncodeWAV([]int16{1}, 16000)
			binary.LittleEndian.PutUint16(b[34:], 8)
			return b
		}(),
	} {
		_, _, err := DecodeWAV(b)
		require.Error(t, err, name)
	}
}
