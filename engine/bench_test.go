package engine

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/flow"
)

// benchBatches builds batches of records to n distinct protected addresses
// (10.0.0.0/8), sampled 1:1000, seeded.
func benchBatches(n, batches int) []flow.Batch {
	rng := rand.New(rand.NewPCG(42, uint64(n)))
	out := make([]flow.Batch, batches)
	src := netip.MustParseAddr("198.51.100.1").As16()
	for bi := range out {
		b := &out[bi]
		for range flow.BatchSize {
			i := rng.IntN(n)
			dst := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).As16()
			b.Add(&flow.Record{
				Received: time.Unix(1700000000, 0).UnixNano(), Src: src, Dst: dst,
				Packets: 1, Bytes: 512, SamplingRate: 1000, Proto: 17, Flags: flow.FlagHasIP,
				Format: flow.FormatSFlow5, SrcPort: 53, DstPort: uint16(i),
			})
		}
	}
	return out
}

func benchEngine(b *testing.B, prefixes int) *Engine {
	hg := Hostgroup{Name: "bench", Incoming: Thresholds{PPS: 1 << 40, Mbps: 1 << 30}}
	hg.Prefixes = append(hg.Prefixes, netip.MustParsePrefix("10.0.0.0/8"))
	// Extra, more specific prefixes, as an ISP's table would have.
	for i := 1; i < prefixes; i++ {
		hg.Prefixes = append(hg.Prefixes, netip.PrefixFrom(netip.AddrFrom4([4]byte{100, byte(i >> 16), byte(i >> 8), byte(i)}), 32))
	}
	cfg := DefaultConfig()
	cfg.Shards = 1
	cfg.Hostgroups = []Hostgroup{hg}
	e, err := NewSync(cfg, Deps{Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkEngineConsume measures lookup + window update on one core with
// 10k and 1M active addresses and a table of 100k protected prefixes.
func BenchmarkEngineConsume(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("addresses=%d", n), func(b *testing.B) {
			e := benchEngine(b, 100_000)
			batches := benchBatches(n, 4096)
			// Warm up: every address gets its window.
			for range 2*n/(len(batches)*flow.BatchSize) + 1 {
				for i := range batches {
					nb := flow.DefaultPool.Get()
					*nb = batches[i]
					e.Consume(nb)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			i, records := 0, 0
			for b.Loop() {
				nb := flow.DefaultPool.Get()
				*nb = batches[i%len(batches)]
				e.Consume(nb)
				i++
				records += flow.BatchSize
			}
			b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
		})
	}
}

// BenchmarkEngineMemory reports the heap each tracked address costs.
func BenchmarkEngineMemory(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("addresses=%d", n), func(b *testing.B) {
			for b.Loop() {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				e := benchEngine(b, 1)
				var r flow.Record
				r.Received = time.Unix(1700000000, 0).UnixNano()
				r.Src = netip.MustParseAddr("198.51.100.1").As16()
				r.Packets, r.Bytes, r.SamplingRate, r.Proto, r.Flags = 1, 100, 1, 17, flow.FlagHasIP
				nb := flow.DefaultPool.Get()
				for i := range n {
					r.Dst = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).As16()
					if nb.Add(&r) {
						e.Consume(nb)
						nb = flow.DefaultPool.Get()
					}
				}
				e.Consume(nb)
				runtime.GC()
				runtime.ReadMemStats(&after)
				if got := e.Stats().Tracked; got != int64(n) {
					b.Fatalf("tracked %d, want %d", got, n)
				}
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "bytes/address")
				runtime.KeepAlive(e)
			}
		})
	}
}

// BenchmarkPrefixLookup measures the protected-prefix lookup alone.
func BenchmarkPrefixLookup(b *testing.B) {
	e := benchEngine(b, 100_000)
	t := e.table.Load()
	addrs := make([]netip.Addr, 1024)
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{byte(i), byte(i * 7), byte(i * 13), byte(i * 31)})
	}
	i := 0
	for b.Loop() {
		t.find(addrs[i&1023])
		i++
	}
}

// BenchmarkReconfigure measures what a reload costs a shard with 650k
// windows and a table of 100k prefixes (a synchronous engine, so the shard
// moves inside Reconfigure): thresholds changed only (the indexes stay
// valid), and a prefix added (every window is looked up in the new table).
func BenchmarkReconfigure(b *testing.B) {
	const n = 1_000_000
	e := benchEngine(b, 100_000)
	batches := benchBatches(n, 4096)
	for range 2*n/(len(batches)*flow.BatchSize) + 1 {
		for i := range batches {
			nb := flow.DefaultPool.Get()
			*nb = batches[i]
			e.Consume(nb)
		}
	}
	for _, prefixes := range []bool{false, true} {
		b.Run(fmt.Sprintf("prefixes_changed=%v", prefixes), func(b *testing.B) {
			cfg := e.cfg
			cfg.Hostgroups = slices.Clone(cfg.Hostgroups)
			base := cfg.Hostgroups[0].Prefixes
			for i := 0; b.Loop(); i++ {
				cfg.Hostgroups[0].Incoming.PPS = 1<<40 + uint64(i)
				if prefixes {
					cfg.Hostgroups[0].Prefixes = append(slices.Clip(base), netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 32))
				}
				if _, err := e.Reconfigure(cfg); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(e.Stats().Tracked), "windows")
		})
	}
}

// BenchmarkEngineTick measures one shard's once-a-second walk (evict, and
// the traffic snapshot taken in it) over 1M windows: what a second of a
// shard's goroutine costs besides its records.
func BenchmarkEngineTick(b *testing.B) {
	const n = 1_000_000
	e := benchEngine(b, 1)
	batches := benchBatches(n, 4096)
	for range 2*n/(len(batches)*flow.BatchSize) + 1 {
		for i := range batches {
			nb := flow.DefaultPool.Get()
			*nb = batches[i]
			e.Consume(nb)
		}
	}
	now := time.Unix(1700000001, 0)
	e.Tick(now) // windows advanced to now: each later walk finds them there
	s := e.shards[0]
	b.ReportAllocs()
	for b.Loop() {
		s.lastEvict = 0 // the walk runs again at the same second
		e.Tick(now)
	}
	if got := e.Stats().Tracked; got < n/2 {
		b.Fatalf("tracked %d windows, want about %d", got, n)
	}
	b.ReportMetric(float64(e.Stats().Tracked), "windows")
}
