package rules_test

import (
	"encoding/json"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/rules"
)

// udpFrom is the features of an attack of n UDP records of size bytes
// from source port sport.
func udpFrom(sport uint16, size uint64, n int) rules.Features {
	a := netip.MustParseAddr("203.0.113.10")
	c := engine.Candidate{Target: netip.PrefixFrom(a, 32), Trigger: engine.MetricPPS, Threshold: 1000}
	c.Rates[engine.MetricPPS] = 5000
	for i := range n {
		c.Sample = append(c.Sample, flow.Record{Src: netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i)}).As16(), Dst: a.As16(),
			SrcPort: sport, DstPort: uint16(1024 + i), Proto: 17, Bytes: size, Packets: 1, SamplingRate: 1, Flags: flow.FlagHasIP})
	}
	return rules.Compute(&c)
}

// TestExplain: the trace names the deciding rule, the closest rule that
// did not match with the parts of its match that failed, and the values
// of the features both read.
func TestExplain(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "ops.yaml"), `kapkan_rules: 1
rules:
  - name: big-udp
    match: udp_share > 0.8 && mean_packet_size > 1000
    labels: [big-udp]
    vector: {protocol: udp}
  - name: dns-ish
    match: udp_share > 0.8 && src_port_share(53) > 0.5 && mean_packet_size > 1000
    labels: [dns-ish]
  - name: tcp-ish
    match: tcp_share > 0.8 && syn_only_share > 0.5
    labels: [tcp-ish]
  - name: either
    match: icmp_share > 0.5 || fragment_share > 0.5
    labels: [either]
`)
	set, err := rules.Compile(rules.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		f    rules.Features
		want rules.Trace
	}{
		{name: "ntp-sized from 123: dns-ish fails on its port and size", f: udpFrom(123, 468, 20), want: rules.Trace{
			Miss: &rules.Miss{Rule: "big-udp", Held: 1, Parts: 2, Failed: []string{"mean_packet_size > 1000"},
				Values: []string{"mean_packet_size=468"}},
			Seen: []rules.Seen{{Name: "mean_packet_size", Value: "468"}, {Name: "udp_share", Value: "1"}},
		}},
		{name: "large from 123: big-udp decides, dns-ish misses on its port", f: udpFrom(123, 1400, 20), want: rules.Trace{
			Matched: []string{"big-udp"}, Decider: "big-udp",
			Miss: &rules.Miss{Rule: "dns-ish", Held: 2, Parts: 3, Failed: []string{"src_port_share(53) > 0.5"},
				Values: []string{"src_port_share(53)=0"}},
			Seen: []rules.Seen{{Name: "mean_packet_size", Value: "1400"}, {Name: "udp_share", Value: "1"}},
		}},
		{name: "a failed || rule is one part failing: closer than two", f: udpFrom(53, 1400, 20), want: rules.Trace{
			Matched: []string{"big-udp", "dns-ish"}, Decider: "big-udp",
			Miss: &rules.Miss{Rule: "either", Held: 0, Parts: 2, Failed: []string{"icmp_share > 0.5", "fragment_share > 0.5"},
				Values: []string{"icmp_share=0", "fragment_share=0"}},
			Seen: []rules.Seen{{Name: "fragment_share", Value: "0"}, {Name: "icmp_share", Value: "0"},
				{Name: "mean_packet_size", Value: "1400"}, {Name: "udp_share", Value: "1"}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := set.Classify(&tc.f)
			if err != nil {
				t.Fatal(err)
			}
			got := set.Explain(&tc.f, &v)
			if g, w := asJSON(got), asJSON(tc.want); g != w {
				t.Errorf("trace\n got: %s\nwant: %s", g, w)
			}
		})
	}
}

// TestExplainNearestMiss: of two rules failing one part each, the one
// whose failed comparison was nearer to holding is the closest miss,
// whatever their order.
func TestExplainNearestMiss(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "ops.yaml"), `kapkan_rules: 1
rules:
  - name: far
    match: udp_share > 0.8 && mean_packet_size > 5000
    labels: [far]
  - name: near
    match: udp_share > 0.8 && mean_packet_size > 1500
    labels: [near]
`)
	set, err := rules.Compile(rules.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	f := udpFrom(53, 1400, 5)
	v, _ := set.Classify(&f)
	if got := set.Explain(&f, &v).Miss; got == nil || got.Rule != "near" {
		t.Errorf("closest miss %+v, want near (1400 against 1500, not 5000)", got)
	}
}

// TestExplainOrRule: a rule whose match is a chain of || fails when every
// part fails, and each is named.
func TestExplainOrRule(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "ops.yaml"), `kapkan_rules: 1
rules:
  - name: either
    match: icmp_share > 0.5 or fragment_share > 0.5
    labels: [either]
`)
	set, err := rules.Compile(rules.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	f := udpFrom(53, 100, 5)
	v, _ := set.Classify(&f)
	got := set.Explain(&f, &v)
	want := &rules.Miss{Rule: "either", Parts: 2, Failed: []string{"icmp_share > 0.5", "fragment_share > 0.5"},
		Values: []string{"icmp_share=0", "fragment_share=0"}}
	if g, w := asJSON(got.Miss), asJSON(want); g != w {
		t.Errorf("miss\n got: %s\nwant: %s", g, w)
	}
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
