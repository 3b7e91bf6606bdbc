package sfu

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type mediaConnBundle struct {
	conn  *mediaConn
	out   *sender // the first socket's, driven by the test as its reader would
	peers []*net.UDPConn
}

// setupMediaConn binds a one-socket mediaConn on addr, not yet reading,
// and n receiving sockets on loopback.
func setupMediaConn(t *testing.T, addr string, n int) *mediaConnBundle {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr)
	require.NoError(t, err)
	uc, err := net.ListenUDP("udp", ua)
	require.NoError(t, err)
	c, err := newMediaConn([]*net.UDPConn{uc}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	b := &mediaConnBundle{conn: c, out: c.newSender(c.socks[0])}
	for range n {
		p, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		require.NoError(t, err)
		require.NoError(t, p.SetReadBuffer(1<<20))
		t.Cleanup(func() { _ = p.Close() })
		b.peers = append(b.peers, p)
	}
	return b
}

func (b *mediaConnBundle) addr(i int) netip.AddrPort {
	return b.peers[i].LocalAddr().(*net.UDPAddr).AddrPort()
}

// numbered is n as 8 bytes, padded to size.
func numbered(n uint64, size int) []byte {
	d := make([]byte, max(size, 8))
	binary.BigEndian.PutUint64(d, n)
	return d
}

// readAll reads want datagrams from p and returns their numbers in
// arrival order. The deadline only bounds a failing test.
func readAll(t *testing.T, p *net.UDPConn, want int) []uint64 {
	t.Helper()
	got, err := readN(p, want)
	require.NoError(t, err)
	return got
}

// readN is readAll for goroutines other than the test's.
func readN(p *net.UDPConn, want int) ([]uint64, error) {
	if err := p.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return nil, err
	}
	buf := make([]byte, 2048)
	var got []uint64
	for len(got) < want {
		n, err := p.Read(buf)
		if err != nil {
			return got, fmt.Errorf("after %d of %d datagrams: %w", len(got), want, err)
		}
		if n < 8 {
			return got, fmt.Errorf("a %d-byte datagram", n)
		}
		got = append(got, binary.BigEndian.Uint64(buf[:8]))
	}
	return got, nil
}

func TestSenderUncorkedWriteLeavesAtOnce(t *testing.T) {
	t.Parallel()
	b := setupMediaConn(t, "127.0.0.1:0", 1)
	b.out.write(numbered(7, 100), b.addr(0))
	require.Equal(t, []uint64{7}, readAll(t, b.peers[0], 1))
}

func TestSenderCorkedFanOutLeavesInOrderAtUncork(t *testing.T) {
	t.Parallel()
	b := setupMediaConn(t, "127.0.0.1:0", 3)
	const total = 150 // two full batches and part of a third
	b.out.cork()
	for i := range total {
		b.out.write(numbered(uint64(i), 60+i), b.addr(i%3))
	}
	require.Equal(t, total%maxBatch, b.out.batch.n, "full batches leave at once, the rest waits for uncork")
	b.out.uncork()

	for p := range 3 {
		var want []uint64
		for i := p; i < total; i += 3 {
			want = append(want, uint64(i))
		}
		require.Equal(t, want, readAll(t, b.peers[p], len(want)), "peer %d", p)
	}
	require.Zero(t, b.conn.sendErrors())
}

func TestSenderDualStackSocketReachesIPv4Peers(t *testing.T) {
	t.Parallel()
	b := setupMediaConn(t, "[::]:0", 1)
	b.out.cork()
	for i := range 5 {
		b.out.write(numbered(uint64(i), 40), b.addr(0))
	}
	b.out.uncork()
	require.Equal(t, []uint64{0, 1, 2, 3, 4}, readAll(t, b.peers[0], 5))
}

func TestSenderSkipsARefusedDatagramAndSendsTheRest(t *testing.T) {
	t.Parallel()
	b := setupMediaConn(t, "127.0.0.1:0", 1)
	b.out.cork()
	b.out.write(numbered(1, 40), b.addr(0))
	// An IPv4 socket cannot reach an IPv6 address: that one is refused.
	b.out.write(numbered(2, 40), netip.MustParseAddrPort("[2001:db8::1]:9"))
	b.out.write(numbered(3, 40), b.addr(0))
	b.out.uncork()
	require.Equal(t, []uint64{1, 3}, readAll(t, b.peers[0], 2))
	require.Equal(t, uint64(1), b.conn.sendErrors())
}

// TestMediaPortReadsEverySocketAndGivesPionTheRest binds two sockets to
// one port the way Start does, and checks that what the media path takes
// stays with it, on the reader of the socket the peer landed on, while
// everything else reaches pion's ReadFromAddrPort.
func TestMediaPortReadsEverySocketAndGivesPionTheRest(t *testing.T) {
	t.Parallel()
	conns, err := listenMedia(t.Context(), "127.0.0.1:0", 2)
	require.NoError(t, err)
	c, err := newMediaConn(conns, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	var mu sync.Mutex
	taken := map[uint64]*sender{}
	c.take = func(b []byte, _ netip.AddrPort, out *sender) bool {
		if b[0] != 0x80 {
			return false
		}
		mu.Lock()
		taken[binary.BigEndian.Uint64(b[8:16])] = out
		mu.Unlock()
		return true
	}
	c.run()
	t.Cleanup(func() { _ = c.Close() })
	port := c.LocalAddr().(*net.UDPAddr).AddrPort()
	for _, s := range c.socks[1:] {
		require.Equal(t, port, s.LocalAddr().(*net.UDPAddr).AddrPort(), "every socket on the one port")
	}

	const peers = 32 // all on one socket by chance: 2 in 2^32
	for i := range peers {
		p, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Close() })
		media := numbered(0, 16)
		media[0] = 0x80
		binary.BigEndian.PutUint64(media[8:], uint64(i))
		_, err = p.WriteToUDPAddrPort(media, port)
		require.NoError(t, err)
		_, err = p.WriteToUDPAddrPort(numbered(uint64(i), 20), port)
		require.NoError(t, err)
	}
	got := map[uint64]bool{}
	buf := make([]byte, 1500)
	for range peers {
		n, _, err := c.ReadFromAddrPort(buf)
		require.NoError(t, err)
		require.Equal(t, 20, n)
		got[binary.BigEndian.Uint64(buf)] = true
	}
	require.Len(t, got, peers, "pion got every other datagram")
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(taken) == peers }, 5*time.Second, time.Millisecond)
	senders := map[*sender]bool{}
	for _, s := range taken {
		senders[s] = true
	}
	require.Len(t, senders, 2, "peers spread over both sockets, each taken by its own reader")

	require.NoError(t, c.Close())
	_, _, err = c.ReadFromAddrPort(buf)
	require.ErrorIs(t, err, net.ErrClosed, "Close ends pion's reads")
	require.NoError(t, c.Close(), "Close is idempotent")
}

// TestSenderFanOutAllocatesNothing is not parallel on purpose: the malloc
// counter is process-wide, and a few thousand fan-outs are too few to
// dilute other tests' allocations to zero per operation.
func TestSenderFanOutAllocatesNothing(t *testing.T) {
	res := testing.Benchmark(benchmarkFanOut)
	require.NotZero(t, res.N)
	require.Zero(t, res.AllocsPerOp(), "a batched fan-out allocates")
}

// fanOutListeners is a full meeting's fan-out of one speaker's packet.
const fanOutListeners = 150

// benchmarkFanOut sends one packet to 150 listeners through a corked
// sender: the SFU's forwarding burst.
func benchmarkFanOut(b *testing.B) {
	out, pkt, to := benchSender(b)
	b.ReportAllocs()
	for b.Loop() {
		out.cork()
		for range fanOutListeners {
			out.write(pkt, to)
		}
		out.uncork()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*fanOutListeners), "ns/datagram")
}

// benchSender is a sender and a loopback sink nobody reads: the kernel
// drops what overflows it, at the same cost to the sender.
func benchSender(b *testing.B) (*sender, []byte, netip.AddrPort) {
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(b, err)
	c, err := newMediaConn([]*net.UDPConn{uc}, slog.New(slog.DiscardHandler))
	require.NoError(b, err)
	b.Cleanup(func() { _ = c.Close() })
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(b, err)
	b.Cleanup(func() { _ = sink.Close() })
	return c.newSender(c.socks[0]), numbered(1, 100), sink.LocalAddr().(*net.UDPAddr).AddrPort()
}

// BenchmarkSenderFanOut compares a batched fan-out (sendmmsg on Linux)
// with one sendto per listener, the cost before batching.
func BenchmarkSenderFanOut(b *testing.B) {
	b.Run("batched", benchmarkFanOut)
	b.Run("sendto", func(b *testing.B) {
		out, pkt, to := benchSender(b)
		b.ReportAllocs()
		for b.Loop() {
			for range fanOutListeners {
				_, _ = out.sock.WriteToUDPAddrPort(pkt, to)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*fanOutListeners), "ns/datagram")
	})
}

// TestMediaPortIsNotShared checks that the SO_REUSEPORT group refuses a
// port someone holds, and that a second group cannot join a held one.
func TestMediaPortIsNotShared(t *testing.T) {
	t.Parallel()
	first, err := listenMedia(t.Context(), "127.0.0.1:0", 2)
	require.NoError(t, err)
	t.Cleanup(func() {
		for _, c := range first {
			_ = c.Close()
		}
	})
	_, err = listenMedia(t.Context(), first[0].LocalAddr().String(), 2)
	require.Error(t, err, "a second SFU on the same port is refused, not given half the peers")

	plain, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = plain.Close() })
	_, err = listenMedia(t.Context(), plain.LocalAddr().String(), 2)
	require.Error(t, err, "a port held without SO_REUSEPORT is refused")
}
