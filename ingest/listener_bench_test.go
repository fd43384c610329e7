package ingest

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/flow"
)

// countingSink counts records from several goroutines.
type countingSink struct{ n atomic.Int64 }

func (s *countingSink) Consume(b *flow.Batch) {
	s.n.Add(int64(b.N))
	flow.DefaultPool.Put(b)
}

// BenchmarkListener sends real sFlow datagrams over loopback as fast as one
// sender can, and measures what the listener receives and decodes, with
// one datagram per system call against recvmmsg batches, and one socket
// against two. Loss is what the kernel dropped (the sender outpaced the
// reader). The sender shares the machine's cores with the readers. The
// flight recorder is on, with its default ring, as in the daemon.
func BenchmarkListener(b *testing.B) {
	dgs := corpusDatagrams(b, flow.FormatSFlow5)
	var sflow [][]byte
	for _, d := range dgs {
		if len(d.payload) > 1000 { // the larger datagrams: many samples each
			sflow = append(sflow, d.payload)
		}
	}
	for _, tc := range []struct{ workers, batch int }{{1, 1}, {1, 64}, {2, 64}} {
		b.Run(fmt.Sprintf("workers=%d/batch=%d", tc.workers, tc.batch), func(b *testing.B) {
			sink := &countingSink{}
			dec := New(Options{}, Deps{Logger: newDiscardLogger()})
			l, err := NewListener(ListenerConfig{Name: "bench", Listen: "127.0.0.1:0", Workers: tc.workers,
				ReadBuffer: 32 << 20, ReadBatch: tc.batch}, dec, sink, nil, Deps{Logger: newDiscardLogger(),
				Flight: NewFlight(FlightDefaultRingBytes)})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { _ = l.Run(ctx); close(done) }()
			before := SocketDrops(int(l.Addr().Port()))
			// Several source ports so SO_REUSEPORT spreads them over sockets.
			var conns []*net.UDPConn
			for range 8 {
				c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(l.Addr()))
				if err != nil {
					b.Fatal(err)
				}
				conns = append(conns, c)
			}
			b.ResetTimer()
			sent := 0
			for i := 0; b.Loop(); i++ {
				if _, err := conns[i%len(conns)].Write(sflow[i%len(sflow)]); err == nil {
					sent++
				}
			}
			b.StopTimer()
			// Let the readers drain what is queued.
			for last := int64(-1); last != sink.n.Load(); {
				last = sink.n.Load()
				time.Sleep(50 * time.Millisecond)
			}
			drops := SocketDrops(int(l.Addr().Port())) - before
			cancel()
			<-done
			for _, c := range conns {
				c.Close()
			}
			b.ReportMetric(float64(sink.n.Load())/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(drops)/float64(max(sent, 1))*100, "%dropped")
		})
	}
}
