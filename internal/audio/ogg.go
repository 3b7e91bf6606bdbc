package audio

import (
	"fmt"
	"io"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"
)

// TimedPacket is an Opus packet at its time on a track's clock.
type TimedPacket struct {
	MS   int64
	Data []byte
}

// OggPreSkip is how long after its first packet's start the audio of an
// Ogg Opus file from WriteOggOpus begins: pion's oggwriter writes a pre-skip
// of 3,840 samples (RFC 7845's recommendation), time for a decoder starting
// mid-stream to settle before the audio counts.
const OggPreSkip = 80 * time.Millisecond

// silenceFrame is a 20 ms CELT frame with its silence flag set.
var silenceFrame = []byte{0xf8, 0xff, 0xfe}

// WriteOggOpus writes packets, in time order, as an Ogg Opus file of the
// given channel count that starts at startMS (its audio at startMS +
// OggPreSkip). Ogg Opus has no holes (its time is its packets' durations
// end to end), so a hole before or between packets (DTX, loss) becomes
// 20 ms silence frames and every packet keeps its time from the start.
func WriteOggOpus(w io.Writer, channels int, startMS int64, packets []TimedPacket) error {
	ow, err := oggwriter.NewWith(w, 48000, uint16(max(1, channels)))
	if err != nil {
		return fmt.Errorf("ogg opus: %w", err)
	}
	write := func(data []byte) error {
		if err := ow.WriteRTP(&rtp.Packet{Payload: data}); err != nil {
			return fmt.Errorf("ogg opus: %w", err)
		}
		return nil
	}
	next := startMS // where the previous packet ended, in ms
	for _, p := range packets {
		for ; p.MS-next >= 20; next += 20 {
			if err := write(silenceFrame); err != nil {
				return err
			}
		}
		s48, err := PacketSamples48(p.Data)
		if err != nil {
			return fmt.Errorf("ogg opus: packet at %d ms: %w", p.MS, err)
		}
		if err := write(p.Data); err != nil {
			return err
		}
		next = max(next, p.MS) + int64(s48)/48
	}
	if err := ow.Close(); err != nil {
		return fmt.Errorf("ogg opus: %w", err)
	}
	return nil
}
