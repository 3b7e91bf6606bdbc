package livekit

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	protologger "github.com/livekit/protocol/logger"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// closeTimeout bounds how long a track's recording may take to be stored
// once the track ended.
const closeTimeout = 2 * time.Minute

// senderReport is one RTCP sender report, handed from the SDK's RTCP
// goroutine to the track's reader.
type senderReport struct {
	ntp     time.Time
	rtpTime uint32
}

// reader copies one subscribed track's RTP into its TrackTap, from one
// goroutine with one buffer and one packet reused (the tap must not retain
// them), so reading allocates nothing per packet.
type reader struct {
	room     *room
	track    *webrtc.TrackRemote
	identity string
	name     string
	started  time.Time
	// report is the last sender report not yet handed to the tap.
	report atomic.Pointer[senderReport]
}

// rtcp keeps the sender reports of the track's SSRC for the reader.
func (rd *reader) rtcp(p rtcp.Packet) {
	sr, ok := p.(*rtcp.SenderReport)
	if !ok || sr.SSRC != uint32(rd.track.SSRC()) {
		return
	}
	rd.report.Store(&senderReport{ntp: ntpTime(sr.NTPTime), rtpTime: sr.RTPTime})
}

// ntpTime converts a 64-bit NTP timestamp to a time.
func ntpTime(ntp uint64) time.Time {
	const ntpToUnix = 2208988800
	secs := int64(ntp>>32) - ntpToUnix
	frac := int64(ntp & 0xffffffff)
	return time.Unix(secs, frac*1e9>>32)
}

func (rd *reader) run() {
	r := rd.room
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		delete(r.reading, rd)
		r.mu.Unlock()
	}()
	log := r.src.log.With("meeting", r.meetingID, "room", r.name, "identity", rd.identity)
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	var tap TrackTap
	var reports SenderReportTap
	for {
		n, _, err := rd.track.Read(buf)
		if err != nil {
			break
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			continue
		}
		if tap == nil {
			if tap, err = rd.open(pkt.SSRC, pkt.PayloadType); err != nil {
				log.Error("could not record a LiveKit participant's track", "err", err)
				// Read on, so that the SDK's buffers do not fill, and
				// record nothing: the meeting's participant has no track.
				for {
					if _, _, err := rd.track.Read(buf); err != nil {
						return
					}
				}
			}
			reports, _ = tap.(SenderReportTap)
			r.src.tracks.Add(1)
			defer r.src.tracks.Add(-1)
		}
		if reports != nil {
			if sr := rd.report.Swap(nil); sr != nil {
				reports.WriteSenderReport(sr.ntp, sr.rtpTime)
			}
		}
		tap.WriteRTP(&pkt)
	}
	if tap == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if err := tap.Close(ctx); err != nil {
		log.Error("could not store a LiveKit participant's track", "err", err)
	}
}

// open joins the participant to the meeting and opens the track's
// recording, at its first packet.
func (rd *reader) open(ssrc uint32, pt uint8) (TrackTap, error) {
	r := rd.room
	arrived := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	zero, err := r.src.meetings.Join(ctx, r.meetingID, rd.identity, rd.name)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.names[rd.identity] = rd.name
	r.mu.Unlock()
	rate := rd.track.Codec().ClockRate
	if rate == 0 {
		return nil, errors.New("the track's codec has no clock rate")
	}
	return r.src.tap.OpenTrack(ctx, Track{MeetingID: r.meetingID, Identity: rd.identity, DisplayName: rd.name,
		SSRC: ssrc, ClockRate: rate, PayloadType: pt, ClockZero: zero, FirstPacketAt: arrived})
}

// sdkLogger hands the SDK's logs to ours.
func sdkLogger(l *slog.Logger) protologger.Logger {
	return protologger.LogRLogger(logr.FromSlogHandler(l.Handler()))
}
