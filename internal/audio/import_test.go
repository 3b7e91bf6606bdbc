package audio

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestOggOpusRemuxedToWebMKeepsEveryPacketAtItsTime(t *testing.T) {
	t.Parallel()
	ogg, err := os.ReadFile("../../testdata/meeting/alice.opus")
	require.NoError(t, err)
	require.Equal(t, FormatOggOpus, Sniff(ogg))
	var out bytes.Buffer
	length, err := RemuxOggToWebM(&out, bytes.NewReader(ogg))
	require.NoError(t, err)
	require.Equal(t, FormatWebMOpus, Sniff(out.Bytes()))

	oggLen, err := OggOpusDuration(ogg)
	require.NoError(t, err)
	// The WebM's timeline keeps the pre-skip (its CodecDelay says so).
	require.InDelta(t, oggLen.Seconds()+float64(LibopusPreSkip)/GranuleRate, length.Seconds(), 0.03)
	webmLen, err := WebMOpusDuration(context.Background(), bytes.NewReader(out.Bytes()))
	require.NoError(t, err)
	require.InDelta(t, length.Seconds(), webmLen.Seconds(), 0.002)

	_, packets, err := OggOpusPackets(ogg)
	require.NoError(t, err)
	var got [][]byte
	_, err = ReadWebMPackets(context.Background(), bytes.NewReader(out.Bytes()), func(_ int64, p []byte) error {
		got = append(got, bytes.Clone(p))
		return nil
	})
	require.NoError(t, err)
	require.Len(t, got, len(packets))
	for i := range packets {
		require.Equal(t, packets[i].Data, got[i], "packet %d", i)
	}

	// The decoded audio is as long as the Ogg file's.
	var frames int
	_, err = DecodeWebM(context.Background(), bytes.NewReader(out.Bytes()), func([]int16) error { frames++; return nil })
	require.NoError(t, err)
	require.InDelta(t, oggLen.Seconds(), (time.Duration(frames) * 20 * time.Millisecond).Seconds(), 0.05)
}

func TestUnreadableImportsAreToldApart(t *testing.T) {
	t.Parallel()
	ogg, err := os.ReadFile("../../testdata/meeting/bob.opus")
	require.NoError(t, err)
	_, err = RemuxOggToWebM(&bytes.Buffer{}, bytes.NewReader(ogg[:len(ogg)/2]))
	require.ErrorIs(t, err, ErrNotOggOpus, "cut short")
	damaged := bytes.Clone(ogg)
	for i := 200; i < len(damaged); i += 97 {
		damaged[i] ^= 0x5a
	}
	_, err = RemuxOggToWebM(&bytes.Buffer{}, bytes.NewReader(damaged))
	require.ErrorIs(t, err, ErrNotOggOpus, "damaged pages fail their CRC")
	_, err = WebMOpusDuration(context.Background(), bytes.NewReader([]byte{0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x86}))
	require.Error(t, err)
	require.Equal(t, FormatWAV, Sniff([]byte("RIFF\x00\x00\x00\x00WAVEfmt ")))
	require.Equal(t, FormatFLAC, Sniff([]byte("fLaC\x00\x00\x00\x22")))
	require.Equal(t, FormatUnknown, Sniff([]byte("hello world!")))
}

func TestRemuxReportsADestinationThatFails(t *testing.T) {
	t.Parallel()
	ogg, err := os.ReadFile("../../testdata/meeting/alice.opus")
	require.NoError(t, err)
	_, err = RemuxOggToWebM(&failAfter{n: 5000}, bytes.NewReader(ogg))
	require.ErrorContains(t, err, "disk full")
}

type failAfter struct{ n int }

func (f *failAfter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}
