package demo

import (
	"fmt"
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
		})
	}
}

// BenchmarkGeneratorHosts compares the random-address host table with
// DistinctHosts at a million hosts (sFlow), where the table no longer fits
// in cache.
func BenchmarkGeneratorHosts(b *testing.B) {
	for _, distinct := range []bool{false, true} {
		b.Run(fmt.Sprintf("hosts=1000000/distinct=%v", distinct), func(b *testing.B) {
			s := Scenario{Format: flow.FormatSFlow5, SamplingRate: 1000, Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/12")},
				Hosts: 1_000_000, DistinctHosts: distinct, BackgroundPPS: 1_000_000_000, Duration: 1 << 40,
				Agent: netip.MustParseAddr("192.0.2.1"), Seed: 1}
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
		})
	}
}

// BenchmarkLoop measures replaying pre-generated background (what
// `kapkan simulate --pregenerate` sends from) at a million hosts.
func BenchmarkLoop(b *testing.B) {
	for _, f := range []flow.Format{flow.FormatSFlow5, flow.FormatNetFlow9} {
		b.Run(f.String(), func(b *testing.B) {
			s := Scenario{Format: f, SamplingRate: 1000, Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/12")},
				Hosts: 1_000_000, BackgroundPPS: 1_000_000_000, Duration: 1 << 40, Agent: netip.MustParseAddr("192.0.2.1"), Seed: 1}
			l, err := NewLoop(s, time.Second)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			start := l.Records
			for b.Loop() {
				l.Next()
			}
			b.ReportMetric(float64(l.Records-start)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
