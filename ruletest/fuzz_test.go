package ruletest

import (
	"io/fs"
	"net/netip"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/kapkan-io/kapkan/builtin"
	"github.com/kapkan-io/kapkan/ingest/demo"
	"github.com/kapkan-io/kapkan/rules"
)

var testPrefixes = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8:1::/48")}

// TestTrafficBounds: traffic a test would replay in memory is bounded, so
// a typo fails the test instead of exhausting the machine.
func TestTrafficBounds(t *testing.T) {
	attack := func(pps int, dur string) []demo.Attack {
		d, err := time.ParseDuration(dur)
		if err != nil {
			t.Fatal(err)
		}
		return []demo.Attack{{Kind: demo.UDPFlood, Target: netip.MustParseAddr("203.0.113.9"), PPS: pps, Start: time.Second, Duration: d}}
	}
	for _, tc := range []struct {
		name string
		tr   Traffic
		want string // "" when accepted
	}{
		{"a built-in shape", Traffic{Sampling: 1000, Background: Background{Hosts: 100, PPS: 30000}, attacks: attack(500000, "5s"), Duration: "8s"}, ""},
		{"long", Traffic{Duration: "10000h"}, "duration 10000h0m0s (want more than 0, at most 1h0m0s)"},
		{"negative", Traffic{Duration: "-1s"}, "duration -1s"},
		{"many hosts", Traffic{Background: Background{Hosts: 1 << 30, PPS: 1}}, "background of 1073741824 hosts"},
		{"long attack", Traffic{attacks: attack(1, "100000h")}, "attack 1: start 1s, duration 100000h0m0s"},
		{"negative start", Traffic{attacks: []demo.Attack{{Kind: demo.UDPFlood, Target: netip.MustParseAddr("203.0.113.9"), PPS: 1, Start: -time.Second, Duration: time.Second}}}, "attack 1: start -1s"},
		{"too many records", Traffic{Sampling: 1, attacks: attack(10_000_000, "10s"), Duration: "20s"}, "the traffic makes 100000000 sampled records"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := scenario(&tc.tr, testPrefixes)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzTestFile reads any bytes as a rule test file: Parse and the traffic
// checks never panic, what they accept builds a generator, and a small
// accepted test runs through detection and the rules without panicking.
func FuzzTestFile(f *testing.F) {
	names, _ := fs.Glob(builtin.Tests(), "*/*_test.yaml")
	if len(names) == 0 {
		f.Fatal("no built-in rule test file: the seeds moved")
	}
	for _, n := range names {
		data, err := fs.ReadFile(builtin.Tests(), n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("kapkan_rule_tests: 1\ntests:\n  - name: small\n    traffic: {format: netflow5, sampling: 10, background: {hosts: 3, pps: 100}, attacks: [{kind: dns-amplification, target: 203.0.113.9, pps: 2000, start: 1s, duration: 2s}], duration: 4s}\n    expect: [{target: 203.0.113.9, labels: [dns-amplification], action: blackhole}]\n"))
	f.Add([]byte("kapkan_rule_tests: 1\ntests:\n  - {name: c, capture: x.pcap, no_attack: true, prefixes: [198.51.100.0/24], thresholds: {pps: 1, mbps: 1}}\n"))
	set, err := rules.Compile(rules.Source{FS: builtin.Classify(), Name: "builtin", Builtin: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tf, err := Parse("fuzz_test.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz_test.yaml:") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		ran := 0
		for i := range tf.Tests {
			tc := &tf.Tests[i]
			if tc.Traffic == nil {
				continue
			}
			s, err := scenario(tc.Traffic, testPrefixes)
			if err != nil {
				continue
			}
			g, err := demo.NewGenerator(s)
			if err != nil {
				continue
			}
			for range 10 {
				if _, _, ok := g.Next(); !ok {
					break
				}
			}
			// The first two short, lightly sampled tests run whole.
			if ran < 2 && s.Duration <= 10*time.Second && sampled(s) <= 5000 {
				ran++
				runTest(fstest.MapFS{}, "fuzz_test.yaml", tc, set, Options{Explain: true})
			}
		}
	})
}

// sampled is how many sampled records the scenario makes.
func sampled(s demo.Scenario) float64 {
	n := float64(s.BackgroundPPS) * s.Duration.Seconds()
	for _, a := range s.Attacks {
		n += float64(a.PPS) * a.Duration.Seconds()
	}
	return n / float64(s.SamplingRate)
}
