package sfu

import "sync/atomic"

// Stats are the SFU's packet counters since New, for monitoring and the
// load benchmark.
type Stats struct {
	// PacketsReceived counts RTP packets read from publishers, dropped
	// ones included.
	PacketsReceived uint64
	// PacketsForwarded counts packets written to listeners' slots.
	PacketsForwarded uint64
	// DroppedTooLarge, DroppedRate and DroppedMalformed count packets
	// dropped for exceeding Config.MaxPacketSize or Config.MaxPacketRate,
	// or for not parsing as RTP. Dropped packets reach neither the Tap nor
	// listeners.
	DroppedTooLarge  uint64
	DroppedRate      uint64
	DroppedMalformed uint64
	// DroppedSRTP counts packets that failed SRTP authentication or its
	// replay check, came on an SSRC none of the offer's several audio
	// sections announced, or on another SSRC than the track's while that
	// one is live.
	DroppedSRTP uint64
	// PionSRTPSessions counts sessions whose SRTP keys the SFU could not
	// derive from their DTLS handshake (an unexpected handshake, or a pion
	// that changed how it shows one): their RTP goes through pion's own,
	// slower, SRTP path. With the pion this module requires and browsers'
	// offers it stays 0.
	PionSRTPSessions uint64
}

// counters are Stats being counted. Each publisher's reader adds to them
// once per packet: one cache line shared by a few cores is cheap next to
// the SRTP work around it.
type counters struct {
	received, forwarded, tooLarge, rate, malformed, srtp, pionSRTP atomic.Uint64
}

// Stats returns the counters so far.
func (s *SFU) Stats() Stats {
	c := &s.stats
	return Stats{
		PacketsReceived:  c.received.Load(),
		PacketsForwarded: c.forwarded.Load(),
		DroppedTooLarge:  c.tooLarge.Load(),
		DroppedRate:      c.rate.Load(),
		DroppedMalformed: c.malformed.Load(),
		DroppedSRTP:      c.srtp.Load(),
		PionSRTPSessions: c.pionSRTP.Load(),
	}
}

// Occupancy is who is connected now.
type Occupancy struct {
	// Meetings with anyone connected or joining.
	Meetings int
	// Publishers and Listeners are WHIP and WHEP sessions.
	Publishers, Listeners int
}

// Occupancy counts the rooms and sessions now, for metrics: it takes the
// SFU's lock, so call it at a scrape's pace.
func (s *SFU) Occupancy() Occupancy {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := Occupancy{Meetings: len(s.rooms)}
	for _, ss := range s.sessions {
		if ss.kind == kindPublish {
			o.Publishers++
		} else {
			o.Listeners++
		}
	}
	return o
}
