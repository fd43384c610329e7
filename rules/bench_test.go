package rules_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/ingest/demo"
	"github.com/kapkan-io/kapkan/rules"
)

// BenchmarkClassify measures classifying one attack with the full built-in
// set: features from a 2000-record sample, then every rule.
func BenchmarkClassify(b *testing.B) {
	set := builtinSet(b)
	s := demo.Scenario{Format: 1, SamplingRate: 100, Duration: 6 * time.Second, Agent: netip.MustParseAddr("192.0.2.1"), Seed: 3,
		Attacks: []demo.Attack{{Kind: demo.DNSAmp, Target: netip.MustParseAddr("203.0.113.50"), PPS: 400_000, Start: time.Second, Duration: 5 * time.Second}}}
	started := detect(b, s)
	if len(started) != 1 {
		b.Fatalf("%d attacks", len(started))
	}
	c := started[0]
	for len(c.Sample) < 2000 { // a full sample, as an attack carries at its end
		c.Sample = append(c.Sample, c.Sample...)
	}
	c.Sample = c.Sample[:2000]
	b.Run("features+rules", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f := rules.Compute(&c)
			if _, err := set.Classify(&f); err != nil {
				b.Fatal(err)
			}
		}
	})
	f := rules.Compute(&c)
	b.Run("rules", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := set.Classify(&f); err != nil {
				b.Fatal(err)
			}
		}
	})
	v, _ := set.Classify(&f)
	b.Run("explain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = set.Explain(&f, &v)
		}
	})
}
