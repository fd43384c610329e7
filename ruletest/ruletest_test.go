package ruletest

import (
	"reflect"
	"testing"
	"testing/fstest"

	"github.com/kapkan-io/kapkan/rules"
	"github.com/kapkan-io/kapkan/rules/wasm/wasmtest"
)

func TestSplitAnd(t *testing.T) {
	got := splitAnd(`udp_share > 0.8 && (a || b && c) && len(top_src_ports[0:1]) == 0`)
	want := []string{"udp_share > 0.8 ", " (a || b && c) ", " len(top_src_ports[0:1]) == 0"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q", got)
	}
}

func TestRunReportsBadFiles(t *testing.T) {
	set, err := rules.Compile(rules.Source{FS: fstest.MapFS{"r.yaml": {Data: []byte("kapkan_rules: 1\nrules:\n  - {name: any-udp, match: udp_share > 0.5, labels: [x]}\n")}}, Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"no tests":      "",
		"wrong version": "kapkan_rule_tests: 2\ntests: []\n",
		"unknown key":   "kapkan_rule_tests: 1\ntests:\n  - {name: x, trafic: {}}\n",
	} {
		fs := fstest.MapFS{}
		if body != "" {
			fs["a_test.yaml"] = &fstest.MapFile{Data: []byte(body)}
		}
		if _, err := Run(fs, set, Options{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A test with neither traffic nor capture fails, it does not pass.
	rep, err := Run(fstest.MapFS{"a_test.yaml": {Data: []byte("kapkan_rule_tests: 1\ntests:\n  - {name: empty}\n")}}, set, Options{})
	if err != nil || !rep.Failed() || rep.Results[0].Passed() {
		t.Fatalf("empty test: %+v %v", rep, err)
	}
}

// TestExplainShowsWASMAnswers: -v explains expr rules condition by
// condition and reports a WASM rule by its module's answer, never by
// conditions it does not have.
func TestExplainShowsWASMAnswers(t *testing.T) {
	fsys := fstest.MapFS{
		"raw.wasm": {Data: wasmtest.RawClassifier(nil).Encode()},
		"r.yaml": {Data: []byte(`kapkan_rules: 1
rules:
  - {name: raw-module, wasm: raw.wasm, labels: [raw-wasm]}
  - {name: mostly-udp, match: udp_share > 0.5 && pps > 1000000, labels: [x]}
`)},
	}
	set, err := rules.Compile(rules.Source{FS: fsys, Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	lines := explain(set, &rules.Features{UDPShare: 0.9, PPS: 10}, "203.0.113.9/32")
	want := []string{
		"203.0.113.9/32 raw-module:\n    (wasm module)\n    => MATCH",
		"203.0.113.9/32 mostly-udp:\n    true  udp_share > 0.5   [udp_share = 0.9]\n    false pps > 1000000   [pps = 10]\n    => no match",
	}
	if !reflect.DeepEqual(lines, want) {
		t.Fatalf("explain:\n%q\nwant:\n%q", lines, want)
	}
}

// TestExplainShowsValues: -v shows the value of each compared side that is
// not a literal — fields, function calls, arithmetic — once per condition.
func TestExplainShowsValues(t *testing.T) {
	fsys := fstest.MapFS{"r.yaml": {Data: []byte(`kapkan_rules: 1
rules:
  - name: game-reflection
    match: >-
      udp_share > 0.8 && src_port_share(27015) > 0.5 &&
      (mbps > 5000 || pps * 2 >= 250000 || mbps > 9000) && !ipv6 && trigger in ["pps", "fps"]
    labels: [x]
`)}}
	set, err := rules.Compile(rules.Source{FS: fsys, Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	f := &rules.Features{UDPShare: 0.98125, PPS: 123456, Mbps: 812.25, Trigger: "pps"}
	lines := explain(set, f, "203.0.113.9/32")
	want := []string{"203.0.113.9/32 game-reflection:" +
		"\n    true  udp_share > 0.8   [udp_share = 0.9812]" +
		"\n    false src_port_share(27015) > 0.5   [src_port_share(27015) = 0]" +
		"\n    false (mbps > 5000 || pps * 2 >= 250000 || mbps > 9000)   [mbps = 812.2, pps * 2 = 246912, pps = 123456]" +
		"\n    true  !ipv6" +
		"\n    true  trigger in [\"pps\", \"fps\"]   [trigger = pps]" +
		"\n    => no match"}
	if !reflect.DeepEqual(lines, want) {
		t.Fatalf("explain:\n%s\nwant:\n%s", lines[0], want[0])
	}
}
