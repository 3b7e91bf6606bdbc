package meeting

import (
	"context"

	"github.com/greffier/greffier/recorder"
	"github.com/greffier/greffier/sfu"
)

// Tap records every track the SFU receives (sfu.Tap): the SFU knows no
// recorder and the recorder no SFU; their meeting is here.
type Tap struct{ rec *recorder.Recorder }

// NewTap records the SFU's tracks with rec.
func NewTap(rec *recorder.Recorder) Tap { return Tap{rec: rec} }

// OpenTrack starts recording a published track.
func (t Tap) OpenTrack(ctx context.Context, info sfu.TrackInfo) (sfu.TrackTap, error) {
	return t.rec.Open(ctx, recorder.Track{MeetingID: info.MeetingID, Identity: info.Identity, SSRC: info.SSRC,
		ClockRate: info.ClockRate, AudioLevelID: info.AudioLevelID, ClockZero: info.ClockZero, FirstPacketAt: info.FirstPacketAt})
}

// CanRecord refuses a publisher the recorder could not record (its spool
// disk is nearly full); the recorder lists them as not recorded.
func (t Tap) CanRecord(ctx context.Context, info sfu.TrackInfo) error {
	return t.rec.Check(ctx, recorder.Track{MeetingID: info.MeetingID, Identity: info.Identity,
		ClockZero: info.ClockZero, FirstPacketAt: info.FirstPacketAt})
}
