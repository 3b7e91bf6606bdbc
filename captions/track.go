package captions

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/greffier/greffier/transcribe"
)

// Track describes one speaker's track being captioned.
type Track struct {
	MeetingID, Speaker, Name string
	// StartMS is where the track's first sample sits on the meeting clock.
	StartMS int64
	// ClockZero is the meeting clock's zero, for wall-clock times.
	ClockZero time.Time
}

// frameQueue bounds the audio waiting for the backend: 10 s of 20 ms
// frames. Past it frames are dropped (captions skip, the recording does
// not), so a slow backend never holds up the recorder.
const frameQueue = 500

// Captioner runs one streaming session per captioned track.
type Captioner struct {
	hub      *Hub
	streamer Streamer
	log      *slog.Logger
}

// NewCaptioner captions tracks with streamer, publishing to hub.
func NewCaptioner(hub *Hub, streamer Streamer, logger *slog.Logger) *Captioner {
	return &Captioner{hub: hub, streamer: streamer, log: logger}
}

// Open starts captioning a track. Frame and Close are called from one
// goroutine (the recorder's writer for that track) and never block on the
// network.
func (c *Captioner) Open(t Track) *TrackCaptions {
	tc := &TrackCaptions{c: c, t: t, frames: make(chan frame, frameQueue), done: make(chan struct{})}
	go tc.run()
	return tc
}

// TrackCaptions is one track's captioning.
type TrackCaptions struct {
	c       *Captioner
	t       Track
	frames  chan frame
	done    chan struct{}
	posMS   int64 // track time of the next frame, on the caller's goroutine
	dropped int
	once    sync.Once
}

type frame struct {
	atMS int64
	pcm  []int16
}

// Frame hands one 20 ms frame of 16 kHz audio (the caller's buffer, not
// retained) at the track's next position.
func (tc *TrackCaptions) Frame(pcm []int16) {
	at := tc.posMS
	tc.posMS += int64(len(pcm)) * 1000 / 16000
	if !tc.c.hub.Enabled(tc.t.MeetingID) {
		return
	}
	select {
	case tc.frames <- frame{atMS: at, pcm: append([]int16(nil), pcm...)}:
	default:
		tc.dropped++
	}
}

// Close ends the track's captioning after the backend has said its last
// words, or after a short bound.
func (tc *TrackCaptions) Close() {
	tc.once.Do(func() { close(tc.frames) })
	select {
	case <-tc.done:
	case <-time.After(10 * time.Second):
		tc.c.log.Warn("captions: backend slow to finish", "meeting", tc.t.MeetingID, "speaker", tc.t.Speaker)
	}
}

// run sends frames to a session while captions are on. A session starts
// at the first frame after a pause in the flow (captions turned on) and
// ends when the flow stops for long (turned off) or the track ends.
func (tc *TrackCaptions) run() {
	defer close(tc.done)
	// Sessions live under this context, cancelled when the track ends.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		st     Stream
		nextMS int64
	)
	finish := func() {
		if st == nil {
			return
		}
		cctx, c := context.WithTimeout(ctx, 10*time.Second)
		defer c()
		if err := st.Close(cctx); err != nil {
			tc.c.log.Warn("captions: session ended badly", "meeting", tc.t.MeetingID, "speaker", tc.t.Speaker, "err", err)
		}
		st = nil
	}
	defer finish()
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	for {
		idle.Reset(2 * time.Second)
		select {
		case f, ok := <-tc.frames:
			if !ok {
				return
			}
			if st != nil && f.atMS != nextMS {
				finish() // a hole (captions were off): the session's clock would lie
			}
			if st == nil {
				base := f.atMS
				s, err := tc.c.streamer.Stream(ctx, func(w transcribe.Word, final bool) { tc.word(base, w, final) })
				if err != nil {
					tc.c.log.Warn("captions: no session", "meeting", tc.t.MeetingID, "speaker", tc.t.Speaker, "err", err)
					continue
				}
				st = s
			}
			if err := st.Write(f.pcm); err != nil {
				tc.c.log.Warn("captions: session failed", "meeting", tc.t.MeetingID, "speaker", tc.t.Speaker, "err", err)
				finish()
				continue
			}
			nextMS = f.atMS + int64(len(f.pcm))*1000/16000
		case <-idle.C:
			finish()
		}
	}
}

// word publishes one recognised word on the meeting clock.
func (tc *TrackCaptions) word(sessionStartMS int64, w transcribe.Word, final bool) {
	start := tc.t.StartMS + sessionStartMS + w.Start.Milliseconds()
	c := Caption{MeetingID: tc.t.MeetingID, Speaker: tc.t.Speaker, Name: tc.t.Name, Text: w.Text, Final: final,
		StartMS: start, At: tc.t.ClockZero.Add(time.Duration(start) * time.Millisecond)}
	if final {
		c.EndMS = tc.t.StartMS + sessionStartMS + w.End.Milliseconds()
	}
	tc.c.hub.publish(c)
}
