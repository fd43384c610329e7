package demo

import (
	"net/netip"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/flow"
)

// BenchmarkGenerator measures how many sampled records per second the
// generator produces on one core, per format (goal: 1.5M/s for sFlow).
func BenchmarkGenerator(b *testing.B) {
	for _, f := range flow.Formats {
		b.Run(f.String(), func(b *testing.B) {
			s := Scenario{Format: f, SamplingRate: 1000, Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
				Hosts: 100_000, BackgroundPPS: 1_000_000_000, Duration: 1 << 40, Agent: netip.MustParseAddr("192.0.2.1"), Seed: 1}
			g, err := NewGenerator(s)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			start := g.Records
			for b.Loop() {
				g.Next()
			}
			b.ReportMetric(float64(g.Records-start)/b.Elapsed().Seconds(), "records/s")
			_ = time.Second
		})
	}
}
