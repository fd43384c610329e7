package ruletest

import (
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/kapkan-io/kapkan/builtin"
	"github.com/kapkan-io/kapkan/rules"
)

// TestReflectionRulesFromGeneratedTraffic: rules for reflections the
// built-in set does not know get positive and negative cases from the
// notation alone (protocol, ports, sizes, flags, fragments), with every
// rule of the file covered both ways.
func TestReflectionRulesFromGeneratedTraffic(t *testing.T) {
	dir := os.DirFS("testdata/reflections")
	set, err := rules.Compile(rules.Source{FS: dir, Name: "testdata/reflections"},
		rules.Source{FS: builtin.Classify(), Name: "builtin", Builtin: true})
	if err != nil {
		t.Fatal(err)
	}
	mine := []string{"ws-discovery-amplification", "arms-amplification", "dtls-amplification"}
	rep, err := Run(dir, set, Options{Covered: mine})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 11 {
		t.Errorf("%d tests run, want 11", len(rep.Results))
	}
	for _, r := range rep.Results {
		for _, f := range r.Failures {
			t.Errorf("%s: %s", r.Name, f)
		}
	}
	for _, u := range rep.Uncovered {
		t.Errorf("coverage: %s", u)
	}
	// The cases can fail: with the ws-discovery rule disabled, its
	// positive case does.
	set2, err := rules.Compile(rules.Source{FS: fstest.MapFS{"d.yaml": {Data: []byte("kapkan_rules: 1\ndisable: [ws-discovery-amplification]\n")}}, Name: "d"},
		rules.Source{FS: dir, Name: "testdata/reflections"}, rules.Source{FS: builtin.Classify(), Name: "builtin", Builtin: true})
	if err != nil {
		t.Fatal(err)
	}
	rep, err = Run(dir, set2, Options{Covered: mine[1:]})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Results[0].Passed() {
		t.Error("the ws-discovery case passed without its rule")
	}
}

// TestNotationErrors: bad notation fails the whole run before anything is
// generated, with every error at once, each with file:line:col, what was
// found and what was expected.
func TestNotationErrors(t *testing.T) {
	set, err := rules.Compile(rules.Source{FS: builtin.Classify(), Name: "builtin", Builtin: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, attack string
		want         []string // each a line of the error, in order
	}{
		{"unknown protocol", "{target: 203.0.113.1, pps: 1000, start: 1s, duration: 1s, protocol: ipx}",
			[]string{`a_test.yaml:5:85: test "t": attacks[0].protocol: found "ipx", want a name (ah, esp, gre, icmp, icmpv6, sctp, tcp, udp) or a number 0-255`}},
		{"protocol out of range", "{target: 203.0.113.1, pps: 1000, start: 1s, duration: 1s, protocol: 256}",
			[]string{`a_test.yaml:5:85: test "t": attacks[0].protocol: found "256", want a name`}},
		{"port out of range", "{target: 203.0.113.1, pps: 1000, start: 1s, duration: 1s, protocol: udp, src_ports: 70000}",
			[]string{`a_test.yaml:5:101: test "t": attacks[0].src_ports: found "70000", want a port 0-65535, a range lo-hi (1024-2047), a list of those, or random`}},
		{"reversed range in a list", "{target: 203.0.113.1, pps: 1000, start: 1s, duration: 1s, protocol: udp, dst_ports: [53, 2000-1000]}",
			[]string{`a_test.yaml:5:106: test "t": attacks[0].dst_ports: found "2000-1000", want a port`}},
		{"size", "{target: 203.0.113.1, pps: 1000, start: 1s, duration: 1s, protocol: udp, size: big}",
			[]string{`a_test.yaml:5:96: test "t": attacks[0].size: found "big", want a packet length in bytes (1-65535) or a range lo-hi (400-700)`}},
		{"flags", "{target: 203.0.113.1, pps: 1000, start: 1s, duration: 1s, protocol: tcp, tcp_flags: syn|ak}",
			[]string{`a_test.yaml:5:101: test "t": attacks[0].tcp_flags: found "syn|ak", want flag names joined by |`}},
		{"flags on udp", "{target: 203.0.113.1, pps: 1000, start: 1s, duration: 1s, protocol: udp, tcp_flags: syn}",
			[]string{`a_test.yaml:5:101: test "t": attacks[0].tcp_flags: given for protocol 17, want protocol tcp`}},
		{"fragment", "{target: 203.0.113.1, pps: 1000, start: 1s, duration: 1s, protocol: udp, fragment: last}",
			[]string{`a_test.yaml:5:100: test "t": attacks[0].fragment: found "last", want first or non-first`}},
		{"ports on icmp", "{target: 203.0.113.1, pps: 1000, start: 1s, duration: 1s, protocol: icmp, dst_ports: 53}",
			[]string{`a_test.yaml:5:102: test "t": attacks[0]: ports given for protocol 1, want tcp or udp`}},
		{"kind and protocol", "{kind: udp-flood, target: 203.0.113.1, pps: 1000, start: 1s, duration: 1s, protocol: udp}",
			[]string{`a_test.yaml:5:102: test "t": attacks[0]: kind "udp-flood" and protocol both given, want one`}},
		{"kind with a packet field", "{kind: udp-flood, target: 203.0.113.1, pps: 1000, start: 1s, duration: 1s, size: 100}",
			[]string{`a_test.yaml:5:98: test "t": attacks[0].size: describes packets, which kind "udp-flood" already does`}},
		{"unknown kind", "{kind: ws-discovery, target: 203.0.113.1, pps: 1000, start: 1s, duration: 1s}",
			[]string{`a_test.yaml:5:24: test "t": attacks[0].kind: found "ws-discovery", want one of udp-flood, syn-flood`}},
		{"neither kind nor protocol", "{target: 203.0.113.1, pps: 1000, start: 1s, duration: 1s}",
			[]string{`a_test.yaml:5:17: test "t": attacks[0]: no kind and no protocol`}},
		{"several at once", "{target: 203.0.113.300, pps: 0, start: soon, duration: 1s, protocol: udp, sorces: reflectors}",
			[]string{
				`a_test.yaml:5:91: test "t": attacks[0]: unknown key "sorces" (known keys: kind, target, pps`,
				`a_test.yaml:5:26: test "t": attacks[0].target: found "203.0.113.300", want an IPv4 or IPv6 address`,
				`a_test.yaml:5:46: test "t": attacks[0].pps: found 0, want a packet rate above 0`,
				`a_test.yaml:5:56: test "t": attacks[0].start: found "soon", want a duration from the traffic's start (2s)`,
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := "kapkan_rule_tests: 1\ntests:\n  - name: t\n    traffic:\n      attacks: [" + tc.attack + "]\n    no_attack: true\n"
			_, err := Run(fstest.MapFS{"a_test.yaml": {Data: []byte(body)}}, set, Options{})
			if err == nil {
				t.Fatal("bad notation accepted")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("%d errors, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("error %d:\n got %s\nwant %s...", i, lines[i], w)
				}
			}
		})
	}
	// What the traffic says besides its attacks.
	body := `kapkan_rule_tests: 1
tests:
  - name: t
    traffic:
      format: netflow10
      duration: 8
      backgroud: {hosts: 10}
      background: {hosts: 10, ppps: 1000}
      attacks: [{kind: udp-flood, target: 203.0.113.1, pps: 1000, start: 1s, duration: 1s}]
    no_attack: true
`
	_, err = Run(fstest.MapFS{"a_test.yaml": {Data: []byte(body)}}, set, Options{})
	want := `a_test.yaml:7:7: test "t": traffic: unknown key "backgroud" (known keys: format, sampling, background, attacks, duration, seed)
a_test.yaml:8:31: test "t": traffic.background: unknown key "ppps" (known keys: hosts, pps)
a_test.yaml:5:15: test "t": traffic.format: found "netflow10", want sflow5, netflow5, netflow9 or ipfix
a_test.yaml:6:17: test "t": traffic.duration: found "8", want a duration above 0 (8s)`
	if err == nil || err.Error() != want {
		t.Errorf("traffic errors:\n%v\nwant:\n%s", err, want)
	}

	// Errors of every test and file come together.
	fsys := fstest.MapFS{
		"a_test.yaml": {Data: []byte("kapkan_rule_tests: 1\ntests:\n  - name: one\n    traffic: {attacks: [{target: x, pps: 1, start: 1s, duration: 1s, protocol: udp}]}\n")},
		"b_test.yaml": {Data: []byte("kapkan_rule_tests: 1\ntests:\n  - name: two\n    traffic: {attacks: [{target: 203.0.113.1, pps: 1, start: 1s, duration: 1s, protocol: udp, size: 0}]}\n")},
	}
	_, err = Run(fsys, set, Options{})
	if err == nil || !slices.ContainsFunc(strings.Split(err.Error(), "\n"), func(s string) bool { return strings.HasPrefix(s, "a_test.yaml:4:") }) ||
		!strings.Contains(err.Error(), "b_test.yaml:4:") {
		t.Errorf("errors of two files: %v", err)
	}
}
