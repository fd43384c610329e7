package ingest_test

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/ingest"
	"github.com/kapkan-io/kapkan/ingest/demo"
)

// BenchmarkEndToEnd drives datagram → decode → engine windows on every core
// (b.RunParallel, one batcher per goroutine, a live engine with one shard
// per core), with 10k and 1M active destinations. It reports records/s and
// the share of records the engine had to drop (a full shard queue).
func BenchmarkEndToEnd(b *testing.B) {
	for _, format := range []flow.Format{flow.FormatSFlow5, flow.FormatNetFlow9} {
		for _, hosts := range []int{10_000, 1_000_000} {
			b.Run(fmt.Sprintf("%s/hosts=%d", format, hosts), func(b *testing.B) {
				s := demo.Scenario{Format: format, SamplingRate: 1,
					Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Hosts: hosts, BackgroundPPS: 400_000,
					Duration: time.Second, Agent: netip.MustParseAddr("192.0.2.1"), Seed: 1}
				dgs, err := s.Generate()
				if err != nil {
					b.Fatal(err)
				}
				cfg := engine.DefaultConfig()
				cfg.QueueSize = 4096
				cfg.Hostgroups = []engine.Hostgroup{{Name: "bench", Prefixes: s.Prefixes,
					Incoming: engine.Thresholds{PPS: 1 << 40}}}
				eng, err := engine.New(cfg, engine.Deps{})
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				go eng.Run(ctx)
				dec := ingest.New(ingest.Options{}, ingest.Deps{})
				// Templates first for NetFlow v9.
				warm := ingest.NewBatcher(nil, eng)
				for _, dg := range dgs[:min(len(dgs), 64)] {
					_, _ = dec.Decode(dg.Payload, s.Agent, time.Now(), warm)
				}
				warm.Flush()
				var records atomic.Int64
				var next atomic.Int64
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					batcher := ingest.NewBatcher(nil, eng)
					var n int64
					now := time.Now()
					for pb.Next() {
						i := int(next.Add(1)) % len(dgs)
						res, _ := dec.Decode(dgs[i].Payload, s.Agent, now, batcher)
						n += int64(res.Records)
					}
					batcher.Flush()
					records.Add(n)
				})
				b.StopTimer()
				// Let the shards drain their queues before reading the stats.
				deadline := time.Now().Add(5 * time.Second)
				for time.Now().Before(deadline) {
					st := eng.Stats()
					if st.Records > 0 && int64(st.Records) >= records.Load()-int64(dropped(eng)) {
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
				b.ReportMetric(float64(records.Load())/b.Elapsed().Seconds(), "records/s")
				b.ReportMetric(float64(dropped(eng))/float64(max(records.Load(), 1))*100, "%dropped")
			})
		}
	}
}

// dropped reads the engine's queue_full drop count through its Stats.
func dropped(e *engine.Engine) uint64 { return e.Dropped() }

// BenchmarkDecodeGenerated decodes what `kapkan simulate` sends (one
// exporter, 1M distinct destinations) through the fast paths, on one core,
// into a batcher whose batches go straight back to the pool: the part of a
// listener's loop between recvmmsg and the engine.
func BenchmarkDecodeGenerated(b *testing.B) {
	for _, format := range []flow.Format{flow.FormatSFlow5, flow.FormatNetFlow9} {
		b.Run(format.String(), func(b *testing.B) {
			s := demo.Scenario{Format: format, SamplingRate: 1000, Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/12")},
				Hosts: 1_000_000, DistinctHosts: true, BackgroundPPS: 200_000_000, Duration: time.Second,
				Agent: netip.MustParseAddr("192.0.2.1"), Seed: 1}
			dgs, err := s.Generate()
			if err != nil {
				b.Fatal(err)
			}
			dec := ingest.New(ingest.Options{}, ingest.Deps{})
			batcher := ingest.NewBatcher(nil, flow.SinkFunc(func(b *flow.Batch) { flow.DefaultPool.Put(b) }))
			now := time.Now()
			records := 0
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				res, _ := dec.Decode(dgs[i%len(dgs)].Payload, s.Agent, now, batcher)
				records += res.Records
				i++
			}
			batcher.Flush()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
		})
	}
}
