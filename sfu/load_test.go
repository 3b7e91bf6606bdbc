package sfu_test

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/token"
	"github.com/greffier/greffier/sfu"
	"github.com/greffier/greffier/sfu/sfutest"
)

// BenchmarkMeeting runs an n-person meeting on loopback (n publishers and
// n listeners on 3 slots, clients in the same process) for three seconds
// of audio and reports goroutines per connection and CPU per participant.
// Run it alone: go test -run x -bench Meeting -benchtime 1x ./sfu/
func BenchmarkMeeting(b *testing.B) {
	for _, n := range []int{10, 40} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				runMeeting(b, n)
			}
		})
	}
}

func runMeeting(b *testing.B, n int) {
	bundle := setup(b, sfu.Config{MaxParticipants: 2 * n})
	file := tone(b, 440, 3)
	before := runtime.NumGoroutine()
	var pubs []*sfutest.Publisher
	var lis []*sfutest.Listener
	for i := range n {
		id := fmt.Sprintf("p%02d", i)
		l, err := sfutest.ListenWith(b.Context(), sfutest.ListenOptions{WHEPURL: bundle.whep,
			Token: bundle.token(b, "m1", id, token.RightListen), HTTPClient: bundle.srv.Client()})
		require.NoError(b, err)
		lis = append(lis, l)
	}
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	for i := range n {
		id := fmt.Sprintf("p%02d", i)
		p, err := sfutest.Publish(b.Context(), sfutest.PublishOptions{WHIPURL: bundle.whip, OggPath: file,
			Token: bundle.token(b, "m1", id, token.RightPublish), HTTPClient: bundle.srv.Client(),
			Level: sfutest.LevelFixed, FixedLevel: uint8(10 + i)})
		require.NoError(b, err)
		pubs = append(pubs, p)
	}
	goroutines := runtime.NumGoroutine() - before
	for _, p := range pubs {
		<-p.Done()
	}
	elapsed := time.Since(start)
	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
	received := 0
	for _, l := range lis {
		received += l.Count()
	}
	b.ReportMetric(float64(goroutines)/float64(2*n), "goroutines/conn(client+server)")
	b.ReportMetric(cpu.Seconds()/elapsed.Seconds()/float64(n), "cores/participant(client+server)")
	b.ReportMetric(float64(received)/float64(n), "pkts-received/listener")
	for _, l := range lis {
		_ = l.Close(b.Context())
	}
	for _, p := range pubs {
		_ = p.Close(b.Context())
	}
}
