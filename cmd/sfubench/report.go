package main

import (
	"encoding/json"
	"fmt"
	"io"
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
	ForwardedPerCoreSec float64 `json:"forwarded_per_core_second"`
	Dropped             uint64  `json:"dropped"`
	PionSRTPSessions    uint64  `json:"pion_srtp_sessions"`
	SentPerSecond       float64 `json:"sent_per_second"`
	UDPBufferDrops      uint64  `json:"udp_rcvbuf_drops_machine_wide"`

	HeapPerParticipantKiB float64 `json:"heap_per_participant_kib"`
	RSSPerParticipantKiB  float64 `json:"rss_per_participant_kib"`
	GoroutinesPerConn     float64 `json:"server_goroutines_per_connection"`

	TapPackets       uint64 `json:"tap_packets"`
	TapSenderReports uint64 `json:"tap_sender_reports"`
	TapTracks        uint64 `json:"tap_tracks"`

	Clients *clientResult `json:"clients"`
}

func (r *report) fill(empty, connected, start, stop sample) {
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
}

func (r *report) print(w io.Writer, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	c := r.Clients
	_, err := fmt.Fprintf(w, `participants           %d (each publishing and listening on %d slots), payload %d B, GOMAXPROCS %d
window                 %.1f s
server CPU             %.2f s = %.2f cores
sent by publishers     %.0f packets/s
received               %.0f packets/s
forwarded              %.0f packets/s
CPU per forwarded      %.2f µs (all server work ÷ forwarded packets)
forwarded per core     %.0f packets/s
dropped by the SFU     %d (limits, malformed, failing SRTP)
pion's SRTP path       %d sessions (without keys of their own: slower)
UDP buffer overflows   %d (machine-wide, in the window)
loss                   %d packets in all, worst listener %d, duplicates %d (expected %d per listener, got min %d, avg %.1f)
latency client→client  p50 %.2f ms, p99 %.2f ms, max %.2f ms
memory per participant heap %.1f KiB, RSS %.1f KiB (base RSS %.1f MiB)
server goroutines      %.1f per connection
tap                    %d tracks, %d packets, %d sender reports
clients                %.2f s CPU in the window, connected in %.1f s
`, r.Participants, r.Slots, r.PayloadBytes, r.GOMAXPROCS,
		r.WindowSeconds, r.ServerCPUSeconds, r.ServerCores, r.SentPerSecond, r.ReceivedPerSecond, r.ForwardedPerSecond,
		r.CPUPerForwardedUS, r.ForwardedPerCoreSec, r.Dropped, r.PionSRTPSessions, r.UDPBufferDrops,
		c.Lost, c.LostMaxListener, c.Duplicates, c.ExpectedPerListener, c.ReceivedMin, c.ReceivedAvg,
		float64(c.LatencyP50us)/1000, float64(c.LatencyP99us)/1000, float64(c.LatencyMaxus)/1000,
		r.HeapPerParticipantKiB, r.RSSPerParticipantKiB, float64(r.BaseRSS)/(1<<20), r.GoroutinesPerConn,
		r.TapTracks, r.TapPackets, r.TapSenderReports, c.ClientCPU, c.ConnectSeconds)
	return err
}
