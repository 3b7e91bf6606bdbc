package transcribetest

import (
	"bytes"
	"fmt"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"

	"github.com/greffier/greffier/internal/audio"
)

// GreffierPreSkip is the pre-skip pion's oggwriter writes, and so every
// Ogg Opus file Greffier makes: 80 ms at 48 kHz.
const GreffierPreSkip = 3840

// CutOggOpus copies the Opus packets of src, an Ogg Opus file, that play
// from about from to about to, into a new file written as Greffier writes
// them: pion's oggwriter, one packet a page, pre-skip GreffierPreSkip,
// 48 kHz. Nothing is decoded or encoded. The first packet copied is the
// first whose audio, once the new pre-skip is dropped, plays at or after
// from (within a packet of it, or later when src's own pre-skip is
// shorter and from is near its start): start is where that is on src's
// timeline, so a time t in src is t-start in the cut. Use to=0 for the end
// of src.
func CutOggOpus(src []byte, from, to time.Duration) (cut []byte, start time.Duration, err error) {
	head, packets, err := audio.OggOpusPackets(src)
	if err != nil {
		return nil, 0, fmt.Errorf("cut Ogg Opus: %w", err)
	}
	at := func(d time.Duration) int64 { // a playback time as a position in src's decoded samples
		return int64(d)*audio.GranuleRate/int64(time.Second) + int64(head.PreSkip)
	}
	var buf bytes.Buffer
	w, err := oggwriter.NewWith(&buf, audio.GranuleRate, uint16(head.Channels))
	if err != nil {
		return nil, 0, fmt.Errorf("cut Ogg Opus: %w", err)
	}
	var pos, first int64 = 0, -1
	for i, p := range packets {
		n := p.Samples
		if to > 0 && pos >= at(to) {
			break
		}
		if first < 0 && pos+GreffierPreSkip >= at(from) {
			first = pos
		}
		if first >= 0 {
			if err := w.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111}, Payload: p.Data}); err != nil {
				return nil, 0, fmt.Errorf("cut Ogg Opus: packet %d: %w", i, err)
			}
		}
		pos += int64(n)
	}
	if first < 0 {
		return nil, 0, fmt.Errorf("cut Ogg Opus: nothing plays from %v in %v of audio", from, time.Duration((pos-int64(head.PreSkip))*int64(time.Second)/audio.GranuleRate))
	}
	if err := w.Close(); err != nil {
		return nil, 0, fmt.Errorf("cut Ogg Opus: %w", err)
	}
	start = time.Duration((first + GreffierPreSkip - int64(head.PreSkip)) * int64(time.Second) / audio.GranuleRate)
	return buf.Bytes(), start, nil
}
