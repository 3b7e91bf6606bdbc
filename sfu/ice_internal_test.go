package sfu

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTrickledCandidatesAreTakenForRTPOnly: rtcp-mux is mandatory, so a
// trickled component 2 candidate is ignored; component 0, which
// @eyevinn/whip-web-client 1.1.7 sends for RTP, is taken as component 1.
func TestTrickledCandidatesAreTakenForRTPOnly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"candidate:842163049 1 udp 1677729535 192.0.2.7 46154 typ srflx raddr 10.0.0.2 rport 46154",
			"candidate:842163049 1 udp 1677729535 192.0.2.7 46154 typ srflx raddr 10.0.0.2 rport 46154", true},
		{"candidate:842163049 0 udp 1677729535 192.0.2.7 46154 typ srflx",
			"candidate:842163049 1 udp 1677729535 192.0.2.7 46154 typ srflx", true},
		{"842163049 0 tcp 1518280447 192.0.2.7 9 typ host tcptype active",
			"candidate:842163049 1 tcp 1518280447 192.0.2.7 9 typ host tcptype active", true},
		{"candidate:842163049 2 udp 1677729534 192.0.2.7 46155 typ srflx", "", false},
	} {
		got, ok := trickledRTPCandidate(tc.in)
		require.Equal(t, tc.ok, ok, tc.in)
		if ok {
			require.Equal(t, tc.want, got, tc.in)
		}
	}
	require.True(t, rtpComponent("candidate:1 1 udp 1 192.0.2.7 1 typ host"))
	require.False(t, rtpComponent("candidate:1 2 udp 1 192.0.2.7 1 typ host"))
}
