package sfu

import (
	"encoding/binary"
	"errors"
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
	peers []*net.UDPConn
}

// setupMediaConn binds a mediaConn on addr and n receiving sockets on
// loopback.
func setupMediaConn(t *testing.T, addr string, n int) *mediaConnBundle {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr)
	require.NoError(t, err)
	uc, err := net.ListenUDP("udp", ua)
	require.NoError(t, err)
	c, err := newMediaConn(uc, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	b := &mediaConnBundle{conn: c}
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

// datagram is n as 8 bytes, padded to size.
func datagram(n uint64, size int) []byte {
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

func TestMediaConnUncorkedWriteLeavesAtOnce(t *testing.T) {
	t.Parallel()
	b := setupMediaConn(t, "127.0.0.1:0", 1)
	n, err := b.conn.WriteToAddrPort(datagram(7, 100), b.addr(0))
	require.NoError(t, err)
	require.Equal(t, 100, n)
	require.Equal(t, []uint64{7}, readAll(t, b.peers[0], 1))
}

func TestMediaConnCorkedFanOutLeavesInOrderAtUncork(t *testing.T) {
	t.Parallel()
	b := setupMediaConn(t, "127.0.0.1:0", 3)
	const total = 150 // two full batches and part of a third
	b.conn.cork()
	for i := range total {
		_, err := b.conn.WriteToAddrPort(datagram(uint64(i), 60+i), b.addr(i%3))
		require.NoError(t, err)
	}
	b.conn.mu.Lock()
	queued := b.conn.cur.n
	b.conn.mu.Unlock()
	require.Equal(t, total%maxBatch, queued, "full batches leave at once, the rest waits for uncork")
	b.conn.uncork()

	for p := range 3 {
		var want []uint64
		for i := p; i < total; i += 3 {
			want = append(want, uint64(i))
		}
		require.Equal(t, want, readAll(t, b.peers[p], len(want)), "peer %d", p)
	}
	require.Zero(t, b.conn.sendErrors())
}

func TestMediaConnDualStackSocketReachesIPv4Peers(t *testing.T) {
	t.Parallel()
	b := setupMediaConn(t, "[::]:0", 1)
	b.conn.cork()
	for i := range 5 {
		_, err := b.conn.WriteToAddrPort(datagram(uint64(i), 40), b.addr(0))
		require.NoError(t, err)
	}
	b.conn.uncork()
	require.Equal(t, []uint64{0, 1, 2, 3, 4}, readAll(t, b.peers[0], 5))
}

func TestMediaConnSkipsARefusedDatagramAndSendsTheRest(t *testing.T) {
	t.Parallel()
	b := setupMediaConn(t, "127.0.0.1:0", 1)
	b.conn.cork()
	_, err := b.conn.WriteToAddrPort(datagram(1, 40), b.addr(0))
	require.NoError(t, err)
	// An IPv4 socket cannot reach an IPv6 address: that one is refused.
	_, err = b.conn.WriteToAddrPort(datagram(2, 40), netip.MustParseAddrPort("[2001:db8::1]:9"))
	require.NoError(t, err, "a queued datagram's fate is not the writer's error")
	_, err = b.conn.WriteToAddrPort(datagram(3, 40), b.addr(0))
	require.NoError(t, err)
	b.conn.uncork()
	require.Equal(t, []uint64{1, 3}, readAll(t, b.peers[0], 2))
	require.Equal(t, uint64(1), b.conn.sendErrors())

	// Sent alone, the refusal is the writer's error.
	_, err = b.conn.WriteToAddrPort(datagram(4, 40), netip.MustParseAddrPort("[2001:db8::1]:9"))
	require.Error(t, err)
}

func TestMediaConnCloseSendsQueuedThenRefusesWrites(t *testing.T) {
	t.Parallel()
	b := setupMediaConn(t, "127.0.0.1:0", 1)
	b.conn.cork()
	_, err := b.conn.WriteToAddrPort(datagram(9, 40), b.addr(0))
	require.NoError(t, err)
	require.NoError(t, b.conn.Close())
	require.Equal(t, []uint64{9}, readAll(t, b.peers[0], 1))
	_, err = b.conn.WriteToAddrPort(datagram(10, 40), b.addr(0))
	require.True(t, errors.Is(err, net.ErrClosed), "got %v", err)
}

func TestMediaConnConcurrentFanOutsLoseNothing(t *testing.T) {
	t.Parallel()
	const writers, peers, perWriter = 4, 4, 300
	b := setupMediaConn(t, "127.0.0.1:0", peers)
	got := make([][]uint64, peers)
	errs := make([]error, peers)
	var readers sync.WaitGroup
	for p := range peers {
		readers.Go(func() { got[p], errs[p] = readN(b.peers[p], writers*perWriter) })
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				b.conn.cork()
				for p := range peers {
					_, _ = b.conn.WriteToAddrPort(datagram(uint64(w<<32|i), 60), b.addr(p))
				}
				b.conn.uncork()
			}
		})
	}
	wg.Wait()
	readers.Wait()
	for p := range peers {
		require.NoError(t, errs[p], "peer %d", p)
		next := make([]int, writers)
		for _, v := range got[p] {
			w, i := int(v>>32), int(v&0xffffffff)
			require.Equal(t, next[w], i, "peer %d: writer %d's datagrams in order", p, w)
			next[w]++
		}
	}
}

// TestMediaConnFanOutAllocatesNothing is not parallel on purpose: the
// malloc counter is process-wide, and a few thousand fan-outs are too few
// to dilute other tests' allocations to zero per operation.
func TestMediaConnFanOutAllocatesNothing(t *testing.T) {
	res := testing.Benchmark(benchmarkFanOut)
	require.NotZero(t, res.N)
	require.Zero(t, res.AllocsPerOp(), "a batched fan-out allocates")
}

// fanOutListeners is a full meeting's fan-out of one speaker's packet.
const fanOutListeners = 150

// benchmarkFanOut sends one packet to 150 listeners through a corked
// mediaConn: the SFU's forwarding burst.
func benchmarkFanOut(b *testing.B) {
	c, pkt, to := benchConn(b)
	b.ReportAllocs()
	for b.Loop() {
		c.cork()
		for range fanOutListeners {
			_, _ = c.WriteToAddrPort(pkt, to)
		}
		c.uncork()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*fanOutListeners), "ns/datagram")
}

// benchConn is a mediaConn and a loopback sink nobody reads: the kernel
// drops what overflows it, at the same cost to the sender.
func benchConn(b *testing.B) (*mediaConn, []byte, netip.AddrPort) {
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(b, err)
	c, err := newMediaConn(uc, slog.New(slog.DiscardHandler))
	require.NoError(b, err)
	b.Cleanup(func() { _ = c.Close() })
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(b, err)
	b.Cleanup(func() { _ = sink.Close() })
	return c, datagram(1, 100), sink.LocalAddr().(*net.UDPAddr).AddrPort()
}

// BenchmarkMediaConnFanOut compares a batched fan-out (sendmmsg on Linux)
// with one sendto per listener, the cost before batching.
func BenchmarkMediaConnFanOut(b *testing.B) {
	b.Run("batched", benchmarkFanOut)
	b.Run("sendto", func(b *testing.B) {
		c, pkt, to := benchConn(b)
		b.ReportAllocs()
		for b.Loop() {
			for range fanOutListeners {
				_, _ = c.WriteToUDPAddrPort(pkt, to)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*fanOutListeners), "ns/datagram")
	})
}
