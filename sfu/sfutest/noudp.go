package sfutest

import (
	"errors"
	"net"
	"strings"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
)

// errUDPBlocked is what a NoUDP client gets for any UDP socket.
var errUDPBlocked = errors.New("sfutest: UDP is blocked for this client")

// noUDPNet is the host's network with UDP refused: every socket the
// client's WebRTC stack opens (ICE, STUN, TURN) goes through it, so such a
// client can only use TCP, as one behind a firewall that drops UDP.
type noUDPNet struct{ *stdnet.Net }

func newNoUDPNet() (transport.Net, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	return noUDPNet{n}, nil
}

func isUDP(network string) bool { return strings.HasPrefix(network, "udp") }

func (n noUDPNet) ListenPacket(network, address string) (net.PacketConn, error) {
	if isUDP(network) {
		return nil, errUDPBlocked
	}
	return n.Net.ListenPacket(network, address)
}

func (n noUDPNet) ListenUDP(string, *net.UDPAddr) (transport.UDPConn, error) {
	return nil, errUDPBlocked
}

func (n noUDPNet) DialUDP(string, *net.UDPAddr, *net.UDPAddr) (transport.UDPConn, error) {
	return nil, errUDPBlocked
}

func (n noUDPNet) Dial(network, address string) (net.Conn, error) {
	if isUDP(network) {
		return nil, errUDPBlocked
	}
	return n.Net.Dial(network, address)
}
