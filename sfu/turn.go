package sfu

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/pion/turn/v5"
)

// turnServer is the embedded TURN server and what clients are told of it.
type turnServer struct {
	srv    *turn.Server
	secret string
	urls   []string // turn: and turns: URLs, UDP first
}

// startTURN starts the embedded TURN server: it relays between clients
// that can only reach it (by UDP, TCP or TLS) and the media port.
func (s *SFU) startTURN(ctx context.Context, mediaIP net.IP) (*turnServer, error) {
	c := s.cfg.TURN
	relayIP := relayIPFor(c.RelayIP, s.cfg.PublicIPs, mediaIP)
	if relayIP == nil {
		return nil, errors.New("sfu: TURN: no address to relay on: set TURN.RelayIP")
	}
	host := c.Host
	if host == "" {
		host = relayIP.String()
	}
	secret := c.Secret
	if secret == "" {
		var b [32]byte
		_, _ = rand.Read(b[:])
		secret = hex.EncodeToString(b[:])
	}
	// Relays listen on every interface: RelayIP may be a public address
	// this host only reaches through a 1:1 NAT.
	var gen turn.RelayAddressGenerator = &turn.RelayAddressGeneratorStatic{RelayAddress: relayIP, Address: "0.0.0.0"}
	if c.RelayMinPort != 0 {
		gen = &turn.RelayAddressGeneratorPortRange{RelayAddress: relayIP, Address: "0.0.0.0",
			MinPort: uint16(c.RelayMinPort), MaxPort: uint16(c.RelayMaxPort)}
	}
	allowed := s.relayPeers(relayIP)
	t := &turnServer{secret: secret}
	cfg := turn.ServerConfig{
		Realm:         c.Realm,
		AuthHandler:   turn.LongTermTURNRESTAuthHandler(secret, s.pionLogs.NewLogger("turn")),
		LoggerFactory: s.pionLogs,
	}
	var closers []func() error
	closeAll := func() {
		for _, f := range closers {
			_ = f()
		}
	}
	var lc net.ListenConfig
	if c.UDPAddr != "-" {
		pc, err := lc.ListenPacket(ctx, "udp4", c.UDPAddr)
		if err != nil {
			return nil, fmt.Errorf("sfu: TURN UDP %s: %w", c.UDPAddr, err)
		}
		closers = append(closers, pc.Close)
		cfg.PacketConnConfigs = append(cfg.PacketConnConfigs, turn.PacketConnConfig{PacketConn: pc, RelayAddressGenerator: gen, PermissionHandler: allowed})
		t.urls = append(t.urls, turnURL("turn", host, pc.LocalAddr(), "udp"))
	}
	if c.TCPAddr != "-" {
		ln, err := lc.Listen(ctx, "tcp4", c.TCPAddr)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("sfu: TURN TCP %s: %w", c.TCPAddr, err)
		}
		closers = append(closers, ln.Close)
		cfg.ListenerConfigs = append(cfg.ListenerConfigs, turn.ListenerConfig{Listener: ln, RelayAddressGenerator: gen, PermissionHandler: allowed})
		t.urls = append(t.urls, turnURL("turn", host, ln.Addr(), "tcp"))
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("sfu: TURN TLS certificate: %w", err)
		}
		ln, err := lc.Listen(ctx, "tcp4", c.TLSAddr)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("sfu: TURN TLS %s: %w", c.TLSAddr, err)
		}
		tln := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		closers = append(closers, tln.Close)
		cfg.ListenerConfigs = append(cfg.ListenerConfigs, turn.ListenerConfig{Listener: tln, RelayAddressGenerator: gen, PermissionHandler: allowed})
		t.urls = append(t.urls, turnURL("turns", host, ln.Addr(), "tcp"))
	}
	srv, err := turn.NewServer(cfg)
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("sfu: TURN server: %w", err)
	}
	t.srv = srv
	return t, nil
}

// relayPeers lets relays reach this host only (its interfaces' addresses,
// PublicIPs, the relay address): the server is there to reach Greffier's
// media port, not to be an open relay into the network around it.
func (s *SFU) relayPeers(relayIP net.IP) turn.PermissionHandler {
	var own []net.IP
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				own = append(own, n.IP)
			}
		}
	}
	for _, p := range s.cfg.PublicIPs {
		own = append(own, net.ParseIP(p))
	}
	own = append(own, relayIP)
	return func(_ net.Addr, peer net.IP) bool {
		return slices.ContainsFunc(own, peer.Equal)
	}
}

func turnURL(scheme, host string, addr net.Addr, transport string) string {
	_, port, _ := net.SplitHostPort(addr.String())
	return scheme + ":" + net.JoinHostPort(host, port) + "?transport=" + transport
}

// relayIPFor picks the address relays are opened on and given out as.
func relayIPFor(configured string, public []string, mediaIP net.IP) net.IP {
	if configured != "" {
		return net.ParseIP(configured)
	}
	if len(public) > 0 {
		return net.ParseIP(public[0])
	}
	if mediaIP != nil && !mediaIP.IsUnspecified() {
		return mediaIP
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP
		}
	}
	return nil
}

// TURNAddrs are the embedded TURN server's URLs, none when it is off.
func (s *SFU) TURNAddrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.turn == nil {
		return nil
	}
	return append([]string(nil), s.turn.urls...)
}
