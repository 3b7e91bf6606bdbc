package audio

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/pion/opus"
	"github.com/stretchr/testify/require"
)

// TestSilenceSkipIsExact decodes tracks with muted stretches twice, once
// packet by packet with pion/opus and once through the track decoder that
// skips settled silence frames: the samples must be the same.
func TestSilenceSkipIsExact(t *testing.T) {
	alice := filepath.Join("..", "..", "testdata", "meeting", "alice.opus")
	aliceWebM := filepath.Join(t.TempDir(), "alice.webm")
	for name, data := range map[string][]byte{
		// Tone bursts between stretches of digital silence, as a
		// participant who mutes and unmutes.
		"bursts": ffmpegWebM(t, "aevalsrc=if(lt(mod(t\\,3)\\,1.1)\\,0.3*sin(2*PI*440*t)*sin(2*PI*3*t)\\,0):s=48000:d=12"),
		// The meeting fixture: tone speech with silent pauses.
		"fixture": runTool(t, "ffmpeg", []string{"-hide_banner", "-loglevel", "error", "-y", "-i", alice, "-c:a", "copy", aliceWebM}, aliceWebM),
	} {
		t.Run(name, func(t *testing.T) {
			tr := parseWebM(t, data)
			ref, err := opus.NewDecoderWithOutput(SampleRate, 1)
			require.NoError(t, err)
			d, err := newTrackDecoder(context.Background(), func([]int16) error { return nil })
			require.NoError(t, err)
			var buf [maxPacketSamples]int16
			flagged, skipped := 0, 0
			for i, p := range tr.packets {
				n, err := ref.DecodeToInt16(p, buf[:])
				require.NoError(t, err, "packet %d", i)
				if celtSilence(p) {
					flagged++
					if d.silent >= settleFrames {
						skipped++
					}
				}
				got, err := d.decode(p)
				require.NoError(t, err, "packet %d", i)
				require.Equal(t, buf[:n], got, "packet %d (%d bytes, silence flag %v)", i, len(p), celtSilence(p))
			}
			require.Zero(t, d.bad)
			require.Greater(t, skipped, len(tr.packets)/10, "silence frames flagged %d, skipped %d of %d packets", flagged, skipped, len(tr.packets))
			t.Logf("%d packets, %d flagged silent, %d skipped", len(tr.packets), flagged, skipped)
		})
	}
}

func TestCELTSilenceFlag(t *testing.T) {
	for _, c := range []struct {
		name string
		p    []byte
		want bool
	}{
		{"empty", nil, false},
		{"TOC only", []byte{0xf8}, false},
		{"SILK", []byte{0x08, 0xff, 0xfe}, false},
		{"two CELT frames", []byte{0xf9, 0xff, 0xfe}, false},
		{"CELT, top bits set", []byte{0xf8, 0xff, 0xfe}, true},
		{"CELT, first byte low", []byte{0xf8, 0x00, 0x00}, false},
	} {
		require.Equal(t, c.want, celtSilence(c.p), c.name)
	}
}
