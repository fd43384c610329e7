package rules_test

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/builtin"
	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/ingest"
	"github.com/kapkan-io/kapkan/ingest/demo"
	"github.com/kapkan-io/kapkan/rules"
)

func builtinSet(t testing.TB) *rules.Set {
	t.Helper()
	set, err := rules.Compile(rules.Source{FS: builtin.Classify(), Name: "builtin", Builtin: true})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// detect runs a generated scenario through ingest and a synchronous engine
// and returns the attacks started.
func detect(t testing.TB, s demo.Scenario) []engine.Candidate {
	t.Helper()
	dgs, err := s.Generate()
	if err != nil {
		t.Fatal(err)
	}
	cfg := engine.DefaultConfig()
	cfg.Shards = 1
	cfg.Hostgroups = []engine.Hostgroup{{Name: "customers",
		Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8:1::/48")},
		Incoming: engine.Thresholds{PPS: 50_000, Mbps: 500}}}
	eng, err := engine.NewSync(cfg, engine.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	dec := ingest.New(ingest.Options{}, ingest.Deps{})
	b := ingest.NewBatcher(nil, eng)
	var started []engine.Candidate
	for _, dg := range dgs {
		if _, err := dec.Decode(dg.Payload, s.Agent, demo.CaptureStart.Add(dg.At), b); err != nil {
			t.Fatal(err)
		}
	}
	b.Flush()
	for _, c := range eng.Drain() {
		if c.Kind == engine.AttackStarted {
			started = append(started, c)
		}
	}
	return started
}

// TestBuiltinLabelsEveryKind: each attack kind, generated over real sFlow
// and NetFlow v9 datagrams with background traffic, gets its label and no
// other attack label.
func TestBuiltinLabelsEveryKind(t *testing.T) {
	set := builtinSet(t)
	want := map[demo.Kind]string{
		demo.UDPFlood: "udp-flood", demo.SYNFlood: "syn-flood", demo.ACKFlood: "tcp-ack-flood", demo.RSTFlood: "tcp-rst-flood", demo.TCPFlood: "tcp-flood", demo.ICMPFlood: "icmp-flood", demo.FragFlood: "fragment-flood",
		demo.DNSAmp: "dns-amplification", demo.NTPAmp: "ntp-amplification", demo.MemcachedAmp: "memcached-amplification",
		demo.SSDPAmp: "ssdp-amplification", demo.CLDAPAmp: "cldap-amplification", demo.ChargenAmp: "chargen-amplification",
	}
	exclusive := []string{"udp-flood", "syn-flood", "icmp-flood", "fragment-flood", "tcp-ack-flood", "tcp-rst-flood",
		"dns-amplification", "ntp-amplification", "memcached-amplification", "ssdp-amplification", "cldap-amplification", "chargen-amplification"}
	for _, format := range []flow.Format{flow.FormatSFlow5, flow.FormatNetFlow9} {
		for _, kind := range demo.Kinds {
			for _, target := range []string{"203.0.113.50", "2001:db8:1::50"} {
				t.Run(format.String()+"/"+string(kind)+"/"+target, func(t *testing.T) {
					s := demo.Scenario{Format: format, SamplingRate: 512, Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
						Hosts: 100, BackgroundPPS: 30_000, Duration: 8 * time.Second, Agent: netip.MustParseAddr("192.0.2.1"), Seed: 9,
						Attacks: []demo.Attack{{Kind: kind, Target: netip.MustParseAddr(target), PPS: 400_000, Start: 2 * time.Second, Duration: 5 * time.Second}}}
					started := detect(t, s)
					if len(started) != 1 {
						t.Fatalf("%d attacks detected", len(started))
					}
					f := rules.Compute(&started[0])
					v, err := set.Classify(&f)
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Contains(v.Labels, want[kind]) {
						t.Fatalf("labels %v, want %s (features %+v)", v.Labels, want[kind], f)
					}
					for _, l := range exclusive {
						if l != want[kind] && slices.Contains(v.Labels, l) {
							t.Errorf("labels %v: %s too", v.Labels, l)
						}
					}
					if v.Vector.IsZero() {
						t.Error("no vector")
					}
				})
			}
		}
	}
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
