package rules

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/flowspec"
)

// records is n records of protocol proto to target, each of 10 packets.
func records(target string, proto uint8, n int) []flow.Record {
	dst := netip.MustParseAddr(target).As16()
	out := make([]flow.Record, n)
	for i := range out {
		out[i] = flow.Record{Dst: dst, Proto: proto, Packets: 10, Bytes: 12800, SamplingRate: 1, Flags: flow.FlagHasIP}
	}
	return out
}

func TestFallback(t *testing.T) {
	for _, tc := range []struct {
		name        string
		target      string
		sample      []flow.Record
		in          Verdict
		wantLabels  []string
		wantVector  flowspec.Match
		wantDecider string
	}{
		{name: "a GRE flood is named by number", target: "203.0.113.1", sample: records("203.0.113.1", 47, 20),
			wantLabels: []string{FallbackLabel}, wantVector: flowspec.Match{Protocol: "47"}, wantDecider: FallbackDecider},
		{name: "UDP by name", target: "203.0.113.1", sample: append(records("203.0.113.1", 17, 19), records("203.0.113.1", 6, 1)...),
			wantLabels: []string{FallbackLabel}, wantVector: flowspec.Match{Protocol: "udp"}, wantDecider: FallbackDecider},
		{name: "ICMP to an IPv6 target is icmpv6", target: "2001:db8::1", sample: records("2001:db8::1", 58, 5),
			wantLabels: []string{FallbackLabel}, wantVector: flowspec.Match{Protocol: "icmpv6"}, wantDecider: FallbackDecider},
		{name: "no protocol dominates: a label, no vector", target: "203.0.113.1",
			sample:     append(records("203.0.113.1", 17, 10), records("203.0.113.1", 6, 10)...),
			wantLabels: []string{FallbackLabel}},
		{name: "protocol 0 is no vector", target: "2001:db8::1", sample: records("2001:db8::1", 0, 10),
			wantLabels: []string{FallbackLabel}},
		{name: "no sample: a label", target: "203.0.113.1", wantLabels: []string{FallbackLabel}},
		{name: "a rule's verdict stays", target: "203.0.113.1", sample: records("203.0.113.1", 17, 10),
			in:         Verdict{Labels: []string{"dns-amplification"}, Vector: flowspec.Match{Protocol: "udp", SrcPorts: []string{"53"}}, Decider: "dns-amplification"},
			wantLabels: []string{"dns-amplification"}, wantVector: flowspec.Match{Protocol: "udp", SrcPorts: []string{"53"}}, wantDecider: "dns-amplification"},
		{name: "a rule's label without a vector gets the protocol", target: "203.0.113.1", sample: records("203.0.113.1", 6, 10),
			in:         Verdict{Labels: []string{"odd"}},
			wantLabels: []string{"odd"}, wantVector: flowspec.Match{Protocol: "tcp"}, wantDecider: FallbackDecider},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := engine.Candidate{Target: netip.PrefixFrom(netip.MustParseAddr(tc.target), 32), Sample: tc.sample}
			if c.Target.Addr().Is6() {
				c.Target = netip.PrefixFrom(c.Target.Addr(), 128)
			}
			f := Compute(&c)
			v := tc.in
			Fallback(&f, &v)
			if !slices.Equal(v.Labels, tc.wantLabels) || v.Vector.String() != tc.wantVector.String() || v.Decider != tc.wantDecider {
				t.Errorf("got %v %q %q, want %v %q %q", v.Labels, v.Vector, v.Decider, tc.wantLabels, tc.wantVector, tc.wantDecider)
			}
		})
	}
}
