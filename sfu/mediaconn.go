package sfu

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
)

// maxBatch is how many datagrams one send system call carries at most. A
// speaker's packet fans out to up to MaxParticipants listeners in one
// burst; 64 keeps a batch's buffers small and the burst in few calls.
const maxBatch = 64

// mediaConn is the one media socket under pion's ICE UDP mux, with
// outgoing datagrams batched into one sendmmsg call where the platform has
// it. A forwarded packet costs one system call when written alone, and the
// call was the largest single cost of forwarding (docs/benchmarks.md); a
// publisher's reader corks the socket while it fans a packet out to every
// listener, so the whole fan-out leaves in a few calls.
//
// Writes made while nobody corks are sent at once. Writes made while some
// reader corks wait at most until the next uncork (any reader's: a cork
// lasts one packet's fan-out) or until the batch is full.
//
// It implements pion's ice.AddrPortReaderWriter, which the mux prefers to
// ReadFrom and WriteTo: both paths run allocation-free.
type mediaConn struct {
	*net.UDPConn
	raw  syscall.RawConn
	sys  sysConn // platform part: the socket's family
	log  *slog.Logger
	errs atomic.Uint64 // datagrams the kernel refused
	// take, if set, is offered every datagram read first; those it takes
	// never reach the mux (see media.go).
	take func(b []byte, from netip.AddrPort) bool

	sendMu sync.Mutex // held while a batch is sent; see flushUnlock
	mu     sync.Mutex
	corks  int
	cur    *sendBatch
	spare  []*sendBatch
	closed bool
}

// sendBatch is datagrams waiting for one send call. A batch is filled
// under mediaConn.mu and sent outside it, so writers queue into the next
// batch while one is sent.
type sendBatch struct {
	n     int
	bufs  [maxBatch][]byte // grown to the largest datagram, then reused
	addrs [maxBatch]netip.AddrPort
	sys   sysBatch
}

func newMediaConn(conn *net.UDPConn, logger *slog.Logger) (*mediaConn, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	c := &mediaConn{UDPConn: conn, raw: raw, log: logger, cur: &sendBatch{}}
	if err := c.initSys(); err != nil {
		return nil, err
	}
	return c, nil
}

// cork holds back uncorked-path flushes until uncork; nil-safe so tests
// can drive tracks without a socket.
func (c *mediaConn) cork() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.corks++
	c.mu.Unlock()
}

// uncork ends a cork and sends what is queued, whoever queued it: a cork
// never delays a datagram longer than one fan-out.
func (c *mediaConn) uncork() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.corks--
	if c.cur.n == 0 {
		c.mu.Unlock()
		return
	}
	_ = c.flushUnlock()
}

// swap takes the current batch for sending and installs an empty one.
// Called with c.mu held.
func (c *mediaConn) swap() *sendBatch {
	b := c.cur
	if n := len(c.spare); n > 0 {
		c.cur = c.spare[n-1]
		c.spare = c.spare[:n-1]
	} else {
		// One batch per concurrent flush: as many as goroutines sending
		// at once, a handful, allocated once.
		c.cur = &sendBatch{}
	}
	return b
}

// flushUnlock sends the current batch and returns it to the spares; it is
// called with c.mu held and releases it. Batches leave in the order they
// were taken (sendMu is taken before c.mu is released), so one writer's
// datagrams never overtake each other. It returns the error of the first
// datagram the kernel refused.
func (c *mediaConn) flushUnlock() error {
	b := c.swap()
	c.sendMu.Lock()
	c.mu.Unlock()
	err := c.send(b)
	c.sendMu.Unlock()
	if err != nil {
		n := c.errs.Add(1)
		if n&(n-1) == 0 && !errors.Is(err, net.ErrClosed) { // the 1st, 2nd, 4th, 8th...
			c.log.Warn("sending media datagrams", "failures", n, "err", err)
		}
	}
	b.n = 0
	c.mu.Lock()
	c.spare = append(c.spare, b)
	c.mu.Unlock()
	return err
}

// WriteToAddrPort queues b for addr. It reports a send error only when it
// sent b alone; errors of batched datagrams are counted and logged (UDP
// gives no delivery guarantee either way).
func (c *mediaConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	if addr.Addr().Zone() != "" {
		// A scoped IPv6 address needs an interface lookup: rare enough
		// to take the standard library's path.
		return c.WriteToUDPAddrPort(b, addr)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	cur := c.cur
	i := cur.n
	cur.bufs[i] = append(cur.bufs[i][:0], b...)
	cur.addrs[i] = addr
	cur.n++
	if c.corks > 0 && cur.n < maxBatch {
		c.mu.Unlock()
		return len(b), nil
	}
	if err := c.flushUnlock(); err != nil && i == 0 {
		return 0, err
	}
	return len(b), nil
}

// WriteTo is WriteToAddrPort for callers that have a net.Addr.
func (c *mediaConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, &net.OpError{Op: "write", Net: "udp", Addr: addr, Err: errors.New("not a UDP address")}
	}
	return c.WriteToAddrPort(b, ua.AddrPort())
}

// ReadFromAddrPort reads the next datagram that take does not take.
func (c *mediaConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		n, from, err := c.ReadFromUDPAddrPort(b)
		if err != nil || c.take == nil || !c.take(b[:n], from) {
			return n, from, err
		}
	}
}

// Close sends what is queued and closes the socket.
func (c *mediaConn) Close() error {
	c.mu.Lock()
	pending := !c.closed && c.cur.n > 0
	c.closed = true
	if pending {
		_ = c.flushUnlock()
	} else {
		c.mu.Unlock()
	}
	return c.UDPConn.Close()
}

// sendErrors is how many datagrams the kernel refused, for tests.
func (c *mediaConn) sendErrors() uint64 { return c.errs.Load() }
