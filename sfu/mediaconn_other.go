//go:build !linux

package sfu

import (
	"context"
	"fmt"
	"net"
)

// sysConn and sysBatch are empty where there is no sendmmsg.
type (
	sysConn  struct{}
	sysBatch struct{}
)

func (s *mediaSock) initSys() error { return nil }

// send writes b's datagrams one call each.
func (s *mediaSock) send(b *sendBatch) error {
	var first error
	for i := range b.n {
		if _, err := s.WriteToUDPAddrPort(b.bufs[i], b.addrs[i]); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// listenMedia binds one UDP socket to addr: elsewhere than on Linux,
// SO_REUSEPORT does not spread UDP peers over sockets.
func listenMedia(ctx context.Context, addr string, _ int) ([]*net.UDPConn, error) {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return nil, err
	}
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		_ = pc.Close()
		return nil, fmt.Errorf("media socket is a %T, not UDP", pc)
	}
	return []*net.UDPConn{uc}, nil
}
