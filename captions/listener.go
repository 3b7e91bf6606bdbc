package captions

import (
	"log/slog"
	"time"

	"github.com/greffier/greffier/internal/audio"
)

// Listener captions one track from the Opus packets the recorder writes
// (it is a recorder.Listener): it decodes them to 16 kHz frames for the
// track's streaming session. Block and Close are called from the
// recorder's writer goroutine for that track; neither waits on the network
// but Close, which waits (bounded) for the backend's last words.
type Listener struct {
	tc  *TrackCaptions // nil once decoding failed: captions stop, the recording does not
	dec *audio.PacketDecoder
	t   Track
	log *slog.Logger
}

// Listen starts captioning a track whose Opus pre-skip is codecDelay.
func (c *Captioner) Listen(t Track, codecDelay time.Duration) *Listener {
	l := &Listener{tc: c.Open(t), t: t, log: c.log}
	dec, err := audio.NewPacketDecoder(codecDelay, func(frame []int16) error {
		l.tc.Frame(frame)
		return nil
	})
	if err != nil {
		l.stop("live audio unavailable", err)
		return l
	}
	l.dec = dec
	return l
}

// Block takes one Opus packet at ms on the track's clock; the level is not
// needed, every packet is heard.
func (l *Listener) Block(ms int64, opus []byte, _ int) {
	if l.tc == nil {
		return
	}
	if err := l.dec.Decode(time.Duration(ms)*time.Millisecond, opus); err != nil {
		l.stop("live audio stops", err)
	}
}

// Close hands the last, partial frame over and ends the track's
// captioning.
func (l *Listener) Close(bool) {
	if l.tc == nil {
		return
	}
	_ = l.dec.Flush()
	l.tc.Close()
	l.tc = nil
}

func (l *Listener) stop(why string, err error) {
	l.log.Warn(why, "meeting", l.t.MeetingID, "speaker", l.t.Speaker, "err", err)
	l.tc.Close()
	l.tc = nil
}
