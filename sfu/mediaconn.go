package sfu

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxBatch is how many datagrams one send system call carries at most. A
// speaker's packet fans out to up to MaxParticipants listeners in one
// burst; 64 keeps a batch's buffers small and the burst in few calls.
const maxBatch = 64

// readSize is the largest datagram read, as in pion's ICE mux.
const readSize = 8192

// toPionQueue is how many datagrams may wait for pion's ICE mux: STUN,
// DTLS and RTCP, a few per connection and second.
const toPionQueue = 1024

// mediaConn is the SFU's media port: one or more UDP sockets bound to the
// same address (SO_REUSEPORT on Linux, one per core), each read by its
// own goroutine. The kernel keeps each peer on one socket, so each peer's
// packets are read in order, by one goroutine, while different peers'
// are read in parallel. What the media path takes (take) is handled on
// that goroutine, and its copies leave through that socket's sender in
// sendmmsg batches. Everything else is queued for pion's ICE UDP mux,
// which reads it through ReadFromAddrPort; pion's own writes leave at
// once through the first socket (they share its address and port).
//
// It is a net.PacketConn and pion's ice.AddrPortReaderWriter, which the
// mux prefers to ReadFrom and WriteTo.
type mediaConn struct {
	socks []*mediaSock
	log   *slog.Logger
	errs  atomic.Uint64 // datagrams the kernel refused
	// take, set before run, is offered every datagram read first; those it
	// takes never reach pion (see media.go).
	take func(b []byte, from netip.AddrPort, out *sender) bool

	toPion chan datagram
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

// mediaSock is one of the port's sockets.
type mediaSock struct {
	*net.UDPConn
	raw syscall.RawConn
	sys sysConn // platform part: the socket's family
}

// datagram is one read for pion.
type datagram struct {
	b    []byte
	from netip.AddrPort
}

func newMediaConn(conns []*net.UDPConn, logger *slog.Logger) (*mediaConn, error) {
	c := &mediaConn{log: logger, toPion: make(chan datagram, toPionQueue), done: make(chan struct{})}
	for _, uc := range conns {
		raw, err := uc.SyscallConn()
		if err != nil {
			return nil, err
		}
		s := &mediaSock{UDPConn: uc, raw: raw}
		if err := s.initSys(); err != nil {
			return nil, err
		}
		c.socks = append(c.socks, s)
	}
	if len(c.socks) == 0 {
		return nil, errors.New("sfu: no media socket")
	}
	return c, nil
}

// run starts one reader per socket; Close stops them.
func (c *mediaConn) run() {
	for _, s := range c.socks {
		c.wg.Go(func() { c.read(s, c.newSender(s)) })
	}
}

// read reads s until it closes: the media path's packets are handled
// here, the rest goes to pion.
func (c *mediaConn) read(s *mediaSock, out *sender) {
	buf := make([]byte, readSize)
	for {
		n, from, err := s.ReadFromUDPAddrPort(buf)
		if err != nil {
			select {
			case <-c.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A UDP read fails for one datagram (e.g. truncation on some
			// systems), never for good while the socket is open.
			c.log.Debug("reading the media socket", "err", err)
			continue
		}
		if c.take != nil && c.take(buf[:n], from, out) {
			continue
		}
		select {
		case c.toPion <- datagram{b: append([]byte(nil), buf[:n]...), from: from}:
		case <-c.done:
			return
		}
	}
}

// ReadFromAddrPort gives pion the next datagram the media path did not
// take.
func (c *mediaConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	select {
	case d := <-c.toPion:
		return copy(b, d.b), d.from, nil
	case <-c.done:
		return 0, netip.AddrPort{}, net.ErrClosed
	}
}

// ReadFrom is ReadFromAddrPort for callers that want a net.Addr.
func (c *mediaConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromAddrPort(b)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

// WriteToAddrPort sends pion's datagram at once.
func (c *mediaConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	return c.socks[0].WriteToUDPAddrPort(b, addr)
}

// WriteTo is WriteToAddrPort for callers that have a net.Addr.
func (c *mediaConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	return c.socks[0].WriteTo(b, addr)
}

// LocalAddr is the media port's address.
func (c *mediaConn) LocalAddr() net.Addr { return c.socks[0].LocalAddr() }

// SetWriteDeadline applies to every socket: pion's mux sets one to abort
// its writes when it closes.
func (c *mediaConn) SetWriteDeadline(t time.Time) error {
	var errs []error
	for _, s := range c.socks {
		errs = append(errs, s.SetWriteDeadline(t))
	}
	return errors.Join(errs...)
}

// errNoReadDeadline: reads are the readers' business, pion's mux sets no
// read deadline.
var errNoReadDeadline = errors.New("sfu: the media port takes no read deadline")

func (c *mediaConn) SetReadDeadline(time.Time) error { return errNoReadDeadline }
func (c *mediaConn) SetDeadline(time.Time) error     { return errNoReadDeadline }

// Close closes every socket and waits for the readers. It is idempotent.
func (c *mediaConn) Close() error {
	var err error
	c.once.Do(func() {
		close(c.done)
		var errs []error
		for _, s := range c.socks {
			errs = append(errs, s.Close())
		}
		c.wg.Wait()
		err = errors.Join(errs...)
	})
	return err
}

// sendErrors is how many datagrams the kernel refused, for tests.
func (c *mediaConn) sendErrors() uint64 { return c.errs.Load() }

// sender batches one reader's outgoing datagrams into sendmmsg calls on
// its socket: a speaker's packet fans out to every listener, and the
// system call was the largest single cost of forwarding
// (docs/benchmarks.md). The reader corks it for a fan-out; the copies
// leave at the uncork, or as a batch fills. Only its reader uses it, so it
// takes no lock; it is nil-safe so that tests can drive tracks without a
// socket.
type sender struct {
	sock  *mediaSock
	c     *mediaConn
	corks int
	batch sendBatch
}

// sendBatch is datagrams waiting for one send call.
type sendBatch struct {
	n     int
	bufs  [maxBatch][]byte // grown to the largest datagram, then reused
	addrs [maxBatch]netip.AddrPort
	sys   sysBatch
}

func (c *mediaConn) newSender(s *mediaSock) *sender { return &sender{sock: s, c: c} }

func (s *sender) cork() {
	if s != nil {
		s.corks++
	}
}

// uncork ends a cork and sends what is queued.
func (s *sender) uncork() {
	if s == nil {
		return
	}
	s.corks--
	if s.corks == 0 && s.batch.n > 0 {
		s.flush()
	}
}

// write queues a copy of b for addr; it leaves at once unless corked.
func (s *sender) write(b []byte, addr netip.AddrPort) {
	s.queue(append(s.buffer(), b...), addr)
}

// buffer is an empty slice over the batch's next slot, for a datagram to
// be built in place and given to queue: the encrypted copies of a
// fan-out are written straight into the batch.
func (s *sender) buffer() []byte { return s.batch.bufs[s.batch.n][:0] }

// queue adds d, built in buffer's slice (or, if it outgrew it, in memory
// nobody else holds), to the batch for addr; it leaves at once unless
// corked.
func (s *sender) queue(d []byte, addr netip.AddrPort) {
	if addr.Addr().Zone() != "" {
		// A scoped IPv6 address needs an interface lookup: rare enough
		// to take the standard library's path.
		if _, err := s.sock.WriteToUDPAddrPort(d, addr); err != nil {
			s.failed(err)
		}
		return
	}
	bt := &s.batch
	bt.bufs[bt.n] = d
	bt.addrs[bt.n] = addr
	bt.n++
	if s.corks == 0 || bt.n == maxBatch {
		s.flush()
	}
}

func (s *sender) flush() {
	if err := s.sock.send(&s.batch); err != nil {
		s.failed(err)
	}
	s.batch.n = 0
}

// failed counts and logs, at the 1st, 2nd, 4th, 8th... failure, a send
// the kernel refused (UDP gives no delivery guarantee either way).
func (s *sender) failed(err error) {
	n := s.c.errs.Add(1)
	if n&(n-1) == 0 && !errors.Is(err, net.ErrClosed) {
		s.c.log.Warn("sending media datagrams", "failures", n, "err", err)
	}
}
