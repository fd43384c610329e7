package ingest

import (
	"runtime"
	"testing"

	"github.com/kapkan-io/kapkan/flow"
)

// BenchmarkDecode measures datagram → flow.Record for each format on the
// real captures of the shared corpus: ns and allocations per record, and
// allocations per datagram (goflow2's decoders allocate; this is the budget).
func BenchmarkDecode(b *testing.B) {
	for _, f := range flow.Formats {
		b.Run(f.String(), func(b *testing.B) {
			dgs := corpusDatagrams(b, f)
			sink := &discardSink{}
			d := New(Options{}, Deps{Logger: newDiscardLogger()})
			batcher := NewBatcher(nil, sink)
			// One pass first so every template is known.
			for _, dg := range dgs {
				_, _ = d.Decode(dg.payload, dg.src, dg.time, batcher)
			}
			batcher.Flush()
			sink.n = 0
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			b.ReportAllocs()
			b.ResetTimer()
			n := 0
			for b.Loop() {
				for _, dg := range dgs {
					_, _ = d.Decode(dg.payload, dg.src, dg.time, batcher)
				}
				n++
			}
			b.StopTimer()
			batcher.Flush()
			runtime.ReadMemStats(&after)
			records := float64(sink.n)
			if records == 0 {
				b.Fatal("no records decoded")
			}
			allocs := float64(after.Mallocs - before.Mallocs)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/records, "ns/record")
			b.ReportMetric(allocs/records, "allocs/record")
			b.ReportMetric(allocs/float64(n*len(dgs)), "allocs/datagram")
			b.ReportMetric(records/b.Elapsed().Seconds(), "records/s")
		})
	}
}
