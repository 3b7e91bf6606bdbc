//go:build linux

package sfu

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sysConn is what sendmmsg needs to know of the socket.
type sysConn struct {
	inet6 bool // AF_INET6 (dual stack); IPv4 peers get mapped addresses
}

// sysBatch is a batch in sendmmsg's terms, built in place so that a flush
// allocates nothing.
type sysBatch struct {
	hdrs  [maxBatch]unix.Mmsghdr
	iovs  [maxBatch]unix.Iovec
	names [maxBatch]unix.RawSockaddrInet6 // large enough for either family
	// One sendmmsg call's arguments and result. do is the bound method
	// value, made once per batch: RawConn.Write takes a func, and a fresh
	// closure per flush would allocate.
	off, end, sent int
	errno          unix.Errno
	do             func(fd uintptr) bool
}

func (s *mediaSock) initSys() error {
	var serr error
	err := s.raw.Control(func(fd uintptr) {
		var sa unix.Sockaddr
		sa, serr = unix.Getsockname(int(fd))
		_, s.sys.inet6 = sa.(*unix.SockaddrInet6)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("sfu: inspect media socket: %w", err)
	}
	return nil
}

// send writes b's datagrams with as few sendmmsg calls as the kernel
// allows. A datagram the kernel refuses is skipped, and the rest sent.
func (s *mediaSock) send(b *sendBatch) error {
	sb := &b.sys
	if sb.do == nil {
		sb.do = sb.sendmmsg
	}
	for i := range b.n {
		buf := b.bufs[i]
		sb.iovs[i].Base = unsafe.SliceData(buf)
		sb.iovs[i].SetLen(len(buf))
		h := &sb.hdrs[i].Hdr
		h.Iov = &sb.iovs[i]
		h.SetIovlen(1)
		h.Name = (*byte)(unsafe.Pointer(&sb.names[i]))
		h.Namelen = s.sys.putAddr(&sb.names[i], b.addrs[i])
	}
	var first error
	sb.off, sb.end = 0, b.n
	for sb.off < sb.end {
		// Write waits for socket space when the kernel says EAGAIN, and
		// obeys the write deadline pion's mux sets to abort at close.
		if err := s.raw.Write(sb.do); err != nil {
			return fmt.Errorf("sendmmsg: %w", err)
		}
		if sb.errno != 0 {
			if first == nil {
				first = os.NewSyscallError("sendmmsg", sb.errno)
			}
			sb.off++ // the datagram at off was refused
			continue
		}
		sb.off += sb.sent
	}
	return first
}

// sendmmsg is one system call; it reports false to be called again once
// the socket has room.
func (sb *sysBatch) sendmmsg(fd uintptr) bool {
	for {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&sb.hdrs[sb.off])),
			uintptr(sb.end-sb.off), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		sb.sent, sb.errno = int(r), e
		return true
	}
}

// putAddr writes ap into sa in the socket's family and returns its
// length, 0 when the socket cannot reach ap (the kernel then refuses
// that one datagram).
func (s sysConn) putAddr(sa *unix.RawSockaddrInet6, ap netip.AddrPort) uint32 {
	a, port := ap.Addr(), ap.Port()
	if !s.inet6 {
		a = a.Unmap()
		if !a.Is4() {
			return 0
		}
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.As4()}
		putPort(&sa4.Port, port)
		return unix.SizeofSockaddrInet4
	}
	*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
	putPort(&sa.Port, port)
	return unix.SizeofSockaddrInet6
}

// putPort stores port in network byte order.
func putPort(dst *uint16, port uint16) {
	p := (*[2]byte)(unsafe.Pointer(dst))
	p[0], p[1] = byte(port>>8), byte(port)
}

// listenMedia binds n UDP sockets to addr with SO_REUSEPORT: the kernel
// spreads peers over them by address, each peer staying on one. The
// first socket picks the port when addr's is 0; the others take it.
//
// SO_REUSEPORT would also let another process of the same user join the
// group and silently take a share of the peers, so a given port is first
// bound plainly: that fails if anyone holds it, as without SO_REUSEPORT.
func listenMedia(ctx context.Context, addr string, n int) ([]*net.UDPConn, error) {
	if ua, err := net.ResolveUDPAddr("udp", addr); err == nil && ua.Port != 0 {
		var plain net.ListenConfig
		probe, err := plain.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return nil, err
		}
		_ = probe.Close()
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	var conns []*net.UDPConn
	fail := func(err error) ([]*net.UDPConn, error) {
		for _, c := range conns {
			_ = c.Close()
		}
		return nil, err
	}
	for i := range max(n, 1) {
		if i == 1 {
			addr = conns[0].LocalAddr().String()
		}
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return fail(err)
		}
		uc, ok := pc.(*net.UDPConn)
		if !ok {
			_ = pc.Close()
			return fail(fmt.Errorf("media socket is a %T, not UDP", pc))
		}
		conns = append(conns, uc)
	}
	return conns, nil
}
