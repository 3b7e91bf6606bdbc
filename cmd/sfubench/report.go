package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"
)

// clientResult is what the clients' process measured, as it sends it.
type clientResult struct {
	Listeners int `json:"listeners"`
	// ExpectedPerListener is slots × window ÷ 20 ms.
	ExpectedPerListener int     `json:"expected_per_listener"`
	ReceivedMin         int     `json:"received_min"`
	ReceivedAvg         float64 `json:"received_avg"`
	// Lost counts sequence-number gaps inside each slot's stream in the
	// window, summed over listeners; LostMaxListener is the worst one.
	Lost            int     `json:"lost"`
	LostMaxListener int     `json:"lost_max_listener"`
	Duplicates      int     `json:"duplicates"`
	Sent            int     `json:"sent"`
	LatencyP50us    int64   `json:"latency_p50_us"`
	LatencyP99us    int64   `json:"latency_p99_us"`
	LatencyMaxus    int64   `json:"latency_max_us"`
	ClientCPU       float64 `json:"client_cpu_seconds"`
	ConnectSeconds  float64 `json:"connect_seconds"`
}

// report is the benchmark's answer.
type report struct {
	// Tap is "count" (the SFU alone) or "record" (the full server).
	Tap          string `json:"tap"`
	Database     string `json:"database,omitempty"`
	Participants int    `json:"participants"`
	Slots        int    `json:"slots"`
	PayloadBytes int    `json:"payload_bytes"`
	GOMAXPROCS   int    `json:"gomaxprocs"`
	NumCPU       int    `json:"num_cpu"`
	BaseRSS      uint64 `json:"base_rss_bytes"`

	WindowSeconds       float64 `json:"window_seconds"`
	ServerCPUSeconds    float64 `json:"server_cpu_seconds"`
	ServerCores         float64 `json:"server_cores"`
	ReceivedPerSecond   float64 `json:"received_per_second"`
	ForwardedPerSecond  float64 `json:"forwarded_per_second"`
	CPUPerForwardedUS   float64 `json:"cpu_us_per_forwarded"`
	CPUPerReceivedUS    float64 `json:"cpu_us_per_received"`
	ForwardedPerCoreSec float64 `json:"forwarded_per_core_second"`
	Dropped             uint64  `json:"dropped"`
	PionSRTPSessions    uint64  `json:"pion_srtp_sessions"`
	SentPerSecond       float64 `json:"sent_per_second"`
	UDPBufferDrops      uint64  `json:"udp_rcvbuf_drops_machine_wide"`

	HeapPerParticipantKiB float64 `json:"heap_per_participant_kib"`
	RSSPerParticipantKiB  float64 `json:"rss_per_participant_kib"`
	GoroutinesPerConn     float64 `json:"server_goroutines_per_connection"`
	// HeapAfterPerParticipantKiB is the live heap once the window is over
	// (every buffer at its fullest), per participant.
	HeapAfterPerParticipantKiB float64 `json:"heap_after_per_participant_kib"`
	GoroutinesAfter            int     `json:"server_goroutines_after"`

	TapPackets       uint64 `json:"tap_packets"`
	TapSenderReports uint64 `json:"tap_sender_reports"`
	TapTracks        uint64 `json:"tap_tracks"`
	// With the recorder: the packets written to the spools, those it
	// dropped (late, duplicate, malformed, overflow) and the sequence
	// numbers it never got, once every track was closed.
	RecordedPackets int64 `json:"recorded_packets,omitempty"`
	RecorderDropped int64 `json:"recorder_dropped"`
	RecorderLost    int64 `json:"recorder_lost"`
	// Of those dropped: too late for the reorder window, and refused by a
	// full queue (the spool goroutine fell behind).
	RecorderLate     int64 `json:"recorder_late"`
	RecorderOverflow int64 `json:"recorder_overflow"`

	// Stages is the window's CPU profile split by stage.
	Stages []stageShare `json:"stages,omitempty"`

	Clients *clientResult `json:"clients"`
}

func (r *report) fill(empty, connected, start, stop, end sample) {
	wall := stop.at.Sub(start.at)
	cpu := stop.cpu - start.cpu
	fwd := float64(stop.stats.PacketsForwarded - start.stats.PacketsForwarded)
	r.WindowSeconds = wall.Seconds()
	r.ServerCPUSeconds = cpu.Seconds()
	r.ServerCores = cpu.Seconds() / wall.Seconds()
	r.ReceivedPerSecond = float64(stop.stats.PacketsReceived-start.stats.PacketsReceived) / wall.Seconds()
	r.ForwardedPerSecond = fwd / wall.Seconds()
	if fwd > 0 {
		r.CPUPerForwardedUS = float64(cpu/time.Microsecond) / fwd
	}
	if rx := float64(stop.stats.PacketsReceived - start.stats.PacketsReceived); rx > 0 {
		r.CPUPerReceivedUS = float64(cpu/time.Microsecond) / rx
	}
	if cpu > 0 {
		r.ForwardedPerCoreSec = fwd / cpu.Seconds()
	}
	r.Dropped = stop.stats.DroppedTooLarge + stop.stats.DroppedRate + stop.stats.DroppedMalformed + stop.stats.DroppedSRTP
	r.PionSRTPSessions = stop.stats.PionSRTPSessions
	r.UDPBufferDrops = stop.udpDrops - start.udpDrops
	if r.Clients != nil {
		r.SentPerSecond = float64(r.Clients.Sent) / wall.Seconds()
	}
	n := float64(r.Participants)
	r.HeapPerParticipantKiB = (float64(connected.heap) - float64(empty.heap)) / n / 1024
	r.RSSPerParticipantKiB = (float64(connected.rss) - float64(empty.rss)) / n / 1024
	r.GoroutinesPerConn = float64(connected.goroutine-empty.goroutine) / (2 * n)
	r.HeapAfterPerParticipantKiB = (float64(end.heap) - float64(empty.heap)) / n / 1024
	r.GoroutinesAfter = end.goroutine
}

// setStages keeps the profile's split, largest first, each stage also
// as server CPU per received packet.
func (r *report) setStages(shares map[string]float64) {
	r.Stages = r.Stages[:0]
	for _, st := range append(stages, stage{name: "other"}) {
		if v, ok := shares[st.name]; ok {
			r.Stages = append(r.Stages, stageShare{Stage: st.name, Share: v, PerRxUS: v * r.CPUPerReceivedUS})
		}
	}
	slices.SortStableFunc(r.Stages, func(a, b stageShare) int { return cmp.Compare(b.Share, a.Share) })
}

func (r *report) print(w io.Writer, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	c := r.Clients
	_, err := fmt.Fprintf(w, `tap                    %s %s
participants           %d (each publishing and listening on %d slots), payload %d B, GOMAXPROCS %d
window                 %.1f s
server CPU             %.2f s = %.2f cores
sent by publishers     %.0f packets/s
received               %.0f packets/s
forwarded              %.0f packets/s
CPU per forwarded      %.2f µs (all server work ÷ forwarded packets)
CPU per received       %.2f µs (all server work ÷ received packets)
forwarded per core     %.0f packets/s
dropped by the SFU     %d (limits, malformed, failing SRTP)
pion's SRTP path       %d sessions (without keys of their own: slower)
UDP buffer overflows   %d (machine-wide, in the window)
loss                   %d packets in all, worst listener %d, duplicates %d (expected %d per listener, got min %d, avg %.1f)
latency client→client  p50 %.2f ms, p99 %.2f ms, max %.2f ms
memory per participant heap %.1f KiB, RSS %.1f KiB (base RSS %.1f MiB)
server goroutines      %.1f per connection (%d in all after the window)
heap after the window  %.1f KiB per participant
tap                    %d tracks, %d packets, %d sender reports
recorder               %d packets written, %d dropped (%d late, %d queue full), %d never received (after every track closed)
clients                %.2f s CPU in the window, connected in %.1f s
`, r.Tap, r.Database, r.Participants, r.Slots, r.PayloadBytes, r.GOMAXPROCS,
		r.WindowSeconds, r.ServerCPUSeconds, r.ServerCores, r.SentPerSecond, r.ReceivedPerSecond, r.ForwardedPerSecond,
		r.CPUPerForwardedUS, r.CPUPerReceivedUS, r.ForwardedPerCoreSec, r.Dropped, r.PionSRTPSessions, r.UDPBufferDrops,
		c.Lost, c.LostMaxListener, c.Duplicates, c.ExpectedPerListener, c.ReceivedMin, c.ReceivedAvg,
		float64(c.LatencyP50us)/1000, float64(c.LatencyP99us)/1000, float64(c.LatencyMaxus)/1000,
		r.HeapPerParticipantKiB, r.RSSPerParticipantKiB, float64(r.BaseRSS)/(1<<20), r.GoroutinesPerConn, r.GoroutinesAfter,
		r.HeapAfterPerParticipantKiB, r.TapTracks, r.TapPackets, r.TapSenderReports,
		r.RecordedPackets, r.RecorderDropped, r.RecorderLate, r.RecorderOverflow, r.RecorderLost, c.ClientCPU, c.ConnectSeconds)
	if err != nil {
		return err
	}
	for _, st := range r.Stages {
		if _, err := fmt.Fprintf(w, "  %-46s %5.1f%%  %6.2f µs per received packet\n", st.Stage, 100*st.Share, st.PerRxUS); err != nil {
			return err
		}
	}
	return nil
}
