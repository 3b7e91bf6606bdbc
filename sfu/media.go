package sfu

import (
	"errors"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/transport/v5/packetio"
)

// The media path. pion terminates ICE, DTLS and RTCP; RTP does not go
// through it. pion hands each received packet through four goroutines
// (the ICE mux, the candidate, the DTLS/SRTP demultiplexer, the SRTP
// session) and each sent one through its interceptor and ICE bookkeeping,
// which cost most of the SFU's CPU (docs/benchmarks.md). Here the
// goroutine that read a publisher's packet from the media port decrypts
// it, hands it to the Tap and fans it out, encrypting each copy for its
// listener and queueing it on its socket's sender, without a hand-off or
// an allocation. Non-RTP datagrams (STUN, DTLS, RTCP) and RTP from
// addresses without a route go to pion.

// router finds the publishing session an RTP datagram comes from. The
// route table is read on every packet without a lock and copied on every
// change (joins and ICE changes, rare).
type router struct {
	mu     sync.Mutex // serialises changes
	routes atomic.Pointer[map[netip.AddrPort]*inbound]
}

// take handles b if it is RTP from a routed address and reports whether
// it did; pion gets the rest. A socket's reader calls it, with its sender.
func (r *router) take(b []byte, from netip.AddrPort, out *sender) bool {
	if !isRTP(b) {
		return false
	}
	m := r.routes.Load()
	if m == nil {
		return false
	}
	// A dual-stack socket reads IPv4 peers as IPv4-mapped addresses.
	in := (*m)[netip.AddrPortFrom(from.Addr().Unmap(), from.Port())]
	if in == nil {
		return false
	}
	in.receive(b, time.Now(), out)
	return true
}

// isRTP tells RTP from what shares its port (RFC 7983: STUN 0-3, DTLS
// 20-63, RTP and RTCP 128-191; RFC 5761: RTCP types 192-223).
func isRTP(b []byte) bool {
	return len(b) >= 12 && b[0]&0xc0 == 0x80 && (b[1] < 192 || b[1] > 223)
}

// move routes to in from addr instead of from old (either may be the zero
// address: none).
func (r *router) move(old, addr netip.AddrPort, in *inbound) {
	if old == addr {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.routes.Load()
	next := make(map[netip.AddrPort]*inbound, len(routesOf(cur))+1)
	for a, v := range routesOf(cur) {
		if a != old || v != in {
			next[a] = v
		}
	}
	if addr.IsValid() {
		next[addr] = in
	}
	r.routes.Store(&next)
}

func routesOf(m *map[netip.AddrPort]*inbound) map[netip.AddrPort]*inbound {
	if m == nil {
		return nil
	}
	return *m
}

// inbound is a publishing session's receiving half: its SRTP context and
// its tracks, one per audio section of the offer.
type inbound struct {
	stats *counters

	mu     sync.Mutex
	keys   *srtp.Context // nil until DTLS made them
	tracks []*publishedTrack
	closed bool
	hdr    rtp.Header
	pkt    rtp.Packet
	bad    uint64
	onBad  func(count uint64, err error)
}

// receive decrypts b in place and hands it to its track; copies leave
// through out.
func (in *inbound) receive(b []byte, now time.Time, out *sender) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed || in.keys == nil {
		return
	}
	plain, err := in.keys.DecryptRTP(b, b, &in.hdr)
	if err != nil {
		in.stats.received.Add(1)
		in.stats.srtp.Add(1)
		in.bad++
		if in.onBad != nil && in.bad&(in.bad-1) == 0 { // the 1st, 2nd, 4th, 8th...
			in.onBad(in.bad, err)
		}
		return
	}
	in.forward(plain, now, out)
}

// receivePlain hands b, decrypted by pion's own SRTP path (a session
// without keys of its own, see session.keysFailed), to its track as
// receive would.
func (in *inbound) receivePlain(b []byte, now time.Time, out *sender) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return
	}
	if _, err := in.hdr.Unmarshal(b); err != nil {
		in.stats.received.Add(1)
		in.stats.malformed.Add(1)
		return
	}
	in.forward(b, now, out)
}

// forward hands a decrypted packet whose header is in in.hdr to its
// track. Called with in.mu held.
func (in *inbound) forward(plain []byte, now time.Time, out *sender) {
	t := in.trackFor(in.hdr.SSRC)
	if t == nil || !in.takes(t, in.hdr.SSRC, now) {
		in.stats.received.Add(1)
		in.stats.srtp.Add(1)
		return
	}
	t.receive(&in.pkt, plain, now, out)
}

// trackFor finds the track an SSRC belongs to: the one the offer gave it
// to, or the only one.
func (in *inbound) trackFor(ssrc uint32) *publishedTrack {
	if len(in.tracks) == 1 {
		return in.tracks[0]
	}
	for _, t := range in.tracks {
		if t.offeredSSRC == ssrc {
			return t
		}
	}
	return nil
}

// takes reports whether t takes a packet of ssrc now. A sender may move
// its track to a new SSRC (the track then opens a new TrackTap), but
// only once the current one has fallen silent: two SSRCs interleaved
// would open a recording and restart every listener's stream at each
// packet. Called with in.mu held.
func (in *inbound) takes(t *publishedTrack, ssrc uint32, now time.Time) bool {
	cur := t.curSSRC
	if cur == ssrc {
		return true
	}
	if t.curSet && now.UnixNano()-t.lastAt.Load() <= int64(activeWindow) {
		return false
	}
	t.curSSRC, t.curSet = ssrc, true
	return true
}

func (in *inbound) setKeys(k *srtp.Context) {
	in.mu.Lock()
	in.keys = k
	in.mu.Unlock()
}

// close stops packets for good; once it returns, none is being handled.
func (in *inbound) close() {
	in.mu.Lock()
	in.closed = true
	in.mu.Unlock()
}

// srtpOverhead is the most SRTP adds to a packet: a 16-byte AEAD tag
// (the HMAC profiles add 10).
const srtpOverhead = 16

// errNotConnected is a write to a listener whose DTLS handshake has not
// made its keys yet, or whose connection closed.
var errNotConnected = errors.New("sfu: listener not connected")

// outbound is a listening session's sending half: its slots write RTP
// here, and it leaves encrypted through the sender of the reader doing
// the fan-out.
type outbound struct {
	mu    sync.Mutex
	keys  *srtp.Context
	addr  netip.AddrPort
	plain []byte
	hdr   rtp.Header
}

// writeRTP encrypts one packet and queues it for the listener. Slots call
// it under their own lock, so it locks too: a listener's slots are fed by
// different speakers, whose packets different readers handle.
func (o *outbound) writeRTP(out *sender, h *rtp.Header, payload []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.keys == nil || !o.addr.IsValid() {
		return errNotConnected
	}
	n := h.MarshalSize()
	if cap(o.plain) < n+len(payload) {
		// Sized to the packets seen, not to an MTU: one per listener.
		o.plain = make([]byte, 0, n+len(payload)+64)
	}
	plain := o.plain[:n+len(payload)]
	if _, err := h.MarshalTo(plain); err != nil {
		return err
	}
	copy(plain[n:], payload)
	// Encrypted straight into the sender's batch; the slot grows once to
	// the largest datagram it carries.
	buf := out.buffer()
	if cap(buf) < len(plain)+srtpOverhead {
		buf = make([]byte, 0, len(plain)+srtpOverhead+64)
	}
	enc, err := o.keys.EncryptRTP(buf, plain, &o.hdr)
	if err != nil {
		return err
	}
	out.queue(enc, o.addr)
	return nil
}

func (o *outbound) set(keys *srtp.Context, addr netip.AddrPort) {
	o.mu.Lock()
	o.keys, o.addr = keys, addr
	o.mu.Unlock()
}

// link follows one session's connection for the media path: the SRTP
// keys its DTLS handshake makes, and the peer's address, which ICE sets
// and may change (a restart, a new network). The media path uses both
// once both are known.
type link struct {
	router *router
	in     *inbound  // WHIP sessions
	out    *outbound // WHEP sessions

	mu     sync.Mutex
	keys   srtpKeys
	addr   netip.AddrPort
	routed netip.AddrPort // where router sends to in
	closed bool
}

func (l *link) setKeys(k srtpKeys) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keys = k
	l.apply()
}

func (l *link) setAddr(a netip.AddrPort) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.addr = a
	l.apply()
}

// apply hands keys and address to the media path. Called with l.mu held.
func (l *link) apply() {
	if l.closed || (l.keys.local == nil && l.keys.remote == nil) || !l.addr.IsValid() {
		return
	}
	if l.out != nil {
		l.out.set(l.keys.local, l.addr)
	}
	if l.in != nil {
		l.in.setKeys(l.keys.remote)
		l.router.move(l.routed, l.addr, l.in)
		l.routed = l.addr
	}
}

// close takes the session off the media path; once it returns, none of
// its packets is being handled or sent.
func (l *link) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.in != nil {
		l.router.move(l.routed, netip.AddrPort{}, l.in)
		l.in.close()
	}
	if l.out != nil {
		l.out.set(nil, netip.AddrPort{})
	}
}

// sink is what pion's SRTP read streams deliver into. The media path
// reads RTP itself, so RTP that still reaches pion (from an address with
// no route) is dropped here, and RTCP is handled as it arrives: no reader
// goroutine and no buffer per stream.
type sink struct {
	write func([]byte) // nil: drop
	done  chan struct{}
	once  sync.Once
}

func (s *sink) Write(b []byte) (int, error) {
	if s.write != nil {
		s.write(b)
	}
	return len(b), nil
}

// Read blocks until Close: pion starts a reader on some streams.
func (s *sink) Read([]byte) (int, error) {
	<-s.done
	return 0, io.EOF
}

func (s *sink) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}

// pionBuffer is a bounded packet buffer for pion's SRTP read stream of a
// publisher on pion's own SRTP path, read by its track.
type pionBuffer struct{ *packetio.Buffer }

func newPionBuffer() *pionBuffer {
	b := &pionBuffer{packetio.NewBuffer()}
	b.SetLimitSize(pionRTPBuffer)
	return b
}

func (b *pionBuffer) Read(p []byte) (int, error) {
	n, _, err := b.Buffer.Read(p, nil)
	return n, err
}

func (b *pionBuffer) Write(p []byte) (int, error) { return b.Buffer.Write(p, nil) }
