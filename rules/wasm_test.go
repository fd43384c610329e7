package rules_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/builtin"
	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/internal/testutil"
	"github.com/kapkan-io/kapkan/rules"
	"github.com/kapkan-io/kapkan/rules/wasm"
	"github.com/kapkan-io/kapkan/rules/wasm/wasmtest"
)

// testHost shares its compilation cache across the tests.
var testHost = wasm.NewHost(nil)

// wsdCandidate is a WS-Discovery reflection (UDP from port 3702 of 300
// reflectors, about 1.3 KB packets) at mbps, with n sample records.
func wsdCandidate(n int, mbps float64) *engine.Candidate {
	target := netip.MustParseAddr("203.0.113.30")
	c := &engine.Candidate{Kind: engine.AttackStarted, ID: 1, Target: netip.PrefixFrom(target, 32), Hostgroup: "customers",
		Trigger: engine.MetricBPS, Rate: uint64(mbps * 1e6 / 8), Threshold: 500e6 / 8}
	c.Rates[engine.MetricBPS] = uint64(mbps * 1e6 / 8)
	c.Rates[engine.MetricPPS] = uint64(mbps * 1e6 / 8 / 1300)
	for i := range n {
		c.Sample = append(c.Sample, flow.Record{
			Src: netip.AddrFrom4([4]byte{198, 51, byte(100 + i%3), byte(1 + i%100)}).As16(), Dst: target.As16(),
			SrcPort: 3702, DstPort: uint16(1024 + i*7), Proto: 17, Bytes: uint64(1000 + i%500), Packets: 1,
			SamplingRate: 100, Flags: flow.FlagHasIP})
	}
	return c
}

func writeFile(t testing.TB, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func compileDir(t testing.TB, h *wasm.Host, dir string) (*rules.Set, error) {
	t.Helper()
	set, err := rules.CompileWith(h, rules.Dir(dir), rules.Source{FS: builtin.Classify(), Name: "builtin", Builtin: true})
	if set != nil {
		t.Cleanup(func() { _ = set.Close() })
	}
	return set, err
}

// TestWASMExamples: the example classifier labels a WS-Discovery
// reflection the built-ins do not know, and the example policy blackholes
// it above its bound, for its hostgroup only.
func TestWASMExamples(t *testing.T) {
	dir := t.TempDir()
	wasmtest.Write(t, "wsdiscovery", dir, "classifiers/wsdiscovery.wasm")
	wasmtest.Write(t, "bigblackhole", dir, "policies/bigblackhole.wasm")
	writeFile(t, filepath.Join(dir, "ops.yaml"), `kapkan_rules: 1
rules:
  - name: ws-discovery-amplification
    description: WS-Discovery reflection, judged on the flow sample
    wasm: classifiers/wsdiscovery.wasm
    limits: {memory_mb: 64, timeout: 2s}
    config: {min_share: 0.6, min_sources: 5}
ladders:
  - name: customers-big-blackhole
    hostgroups: [customers]
    wasm: policies/bigblackhole.wasm
    config: {blackhole_above_mbps: 5000}
`)
	h := testHost
	set, err := compileDir(t, h, dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := set.Modules(); !slices.Equal(got, []string{"ws-discovery-amplification", "customers-big-blackhole"}) {
		t.Errorf("modules %v", got)
	}

	c := wsdCandidate(2000, 6000)
	f := rules.Compute(c)
	v, err := set.Classify(&f)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(v.Labels, []string{"amplification", "ws-discovery-amplification"}) || !slices.Equal(v.Rules, []string{"ws-discovery-amplification"}) ||
		v.Vector.Protocol != "udp" || !slices.Equal(v.Vector.SrcPorts, []string{"3702"}) {
		t.Errorf("verdict %+v", v)
	}
	// The built-ins alone say nothing of it.
	if bv, _ := builtinSet(t).Classify(&f); len(bv.Labels) != 0 {
		t.Errorf("built-in verdict %+v", bv)
	}

	l := set.Ladder("customers", v.Labels)
	if l == nil || l.Name != "customers-big-blackhole" || l.Policy == nil || len(l.Steps) != 0 {
		t.Fatalf("ladder %+v", l)
	}
	if other := set.Ladder("transit", v.Labels); other == nil || other.Name != "default" {
		t.Errorf("ladder for another hostgroup: %+v", other)
	}
	for _, tc := range []struct {
		mbps    float64
		current flowspec.Action
		vector  bool
		want    rules.PolicyDecision
	}{
		{6000, flowspec.None, true, rules.PolicyDecision{Action: flowspec.Blackhole, Reason: "6000 Mbps, above 5000 Mbps"}},
		{3000, flowspec.Blackhole, true, rules.PolicyDecision{Action: flowspec.Blackhole, Reason: "3000 Mbps, still above half of 5000 Mbps"}},
		{1000, flowspec.Blackhole, true, rules.PolicyDecision{Action: flowspec.Discard, Reason: "drop the attack's vector"}},
		{1000, flowspec.None, false, rules.PolicyDecision{Action: flowspec.RateLimit, RateMbps: 100, Reason: "no vector: rate-limit the target"}},
	} {
		f := rules.Compute(wsdCandidate(50, tc.mbps))
		in := rules.PolicyInput{Features: &f, Labels: v.Labels, Current: tc.current, Since: time.Minute}
		if tc.vector {
			in.Vector = v.Vector
		}
		d, err := l.Policy.Decide(in)
		if err != nil || d != tc.want {
			t.Errorf("%v Mbps, current %q: %+v %v, want %+v", tc.mbps, tc.current, d, err, tc.want)
		}
	}
}

// TestWASMRuleFailureKeepsVerdict: a module whose calls fail contributes
// nothing, and Classify still gives the other rules' verdict.
func TestWASMRuleFailureKeepsVerdict(t *testing.T) {
	dir := t.TempDir()
	wasmtest.Write(t, "conformance", dir, "conformance.wasm")
	writeFile(t, filepath.Join(dir, "ops.yaml"), `kapkan_rules: 1
rules:
  - name: failing-module
    wasm: conformance.wasm
    config: {mode: error}
  - name: bad-output-module
    wasm: conformance.wasm
    config: {mode: bad_vector}
  - name: bad-label-module
    wasm: conformance.wasm
    config: {mode: bad_label}
  - name: ops-udp
    match: udp_share > 0.9
    labels: [ops-udp]
    vector: {protocol: udp}
`)
	host := wasm.NewHost(nil) // its own counters
	reg := prometheus.NewRegistry()
	reg.MustRegister(host.Collectors()...)
	set, err := compileDir(t, host, dir)
	if err != nil {
		t.Fatal(err)
	}
	f := rules.Compute(wsdCandidate(10, 1000))
	v, err := set.Classify(&f)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(v.Rules, []string{"ops-udp"}) || !slices.Equal(v.Labels, []string{"ops-udp"}) {
		t.Errorf("verdict %+v, want the expr rule's alone", v)
	}
	// The modules did fail, each counted under its kind.
	for module, result := range map[string]string{"failing-module": wasm.ResultGuestError,
		"bad-output-module": wasm.ResultBadOutput, "bad-label-module": wasm.ResultBadOutput} {
		if n := callCount(t, reg, module, result); n != 1 {
			t.Errorf("%s: %v calls counted as %s, want 1", module, n, result)
		}
	}
}

// callCount reads kapkan_wasm_calls_total for a module and result.
func callCount(t *testing.T, reg *prometheus.Registry, module, result string) float64 {
	t.Helper()
	return testutil.MetricValue(t, reg, "kapkan_wasm_calls_total", map[string]string{"module": module, "result": result})
}

// loadFailures reads kapkan_wasm_load_failures_total for a reason.
func loadFailures(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	return testutil.MetricValue(t, reg, "kapkan_wasm_load_failures_total", map[string]string{"reason": reason})
}

// TestWASMOrder: WASM rules take their place among expr rules; the first
// matching rule with a vector gives the vector, labels are merged.
func TestWASMOrder(t *testing.T) {
	dir := t.TempDir()
	wasmtest.Write(t, "conformance", dir, "m/conformance.wasm")
	writeFile(t, filepath.Join(dir, "a.yaml"), `kapkan_rules: 1
rules:
  - name: first-expr
    match: udp_share > 0.9
    labels: [first]
  - name: module-rule
    wasm: m/conformance.wasm
    labels: [from-file]
    vector: {protocol: udp, dst_ports: ["1-1023"]}
    config: {label: from-module, vector: {protocol: udp, src_ports: [top]}}
`)
	writeFile(t, filepath.Join(dir, "b.yaml"), `kapkan_rules: 1
rules:
  - name: later-expr
    match: udp_share > 0.9
    labels: [later]
    vector: {protocol: tcp}
`)
	set, err := compileDir(t, testHost, dir)
	if err != nil {
		t.Fatal(err)
	}
	f := rules.Compute(wsdCandidate(10, 1000))
	v, err := set.Classify(&f)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(v.Rules, []string{"first-expr", "module-rule", "later-expr"}) ||
		!slices.Equal(v.Labels, []string{"conformance", "first", "from-file", "from-module", "later"}) ||
		v.Vector.Protocol != "udp" || !slices.Equal(v.Vector.SrcPorts, []string{"3702"}) || len(v.Vector.DstPorts) != 0 {
		t.Errorf("verdict %+v", v)
	}
}

// TestWASMPolicyRejectsBadDecisions: a decision a ladder step could not
// hold is an error of that call.
func TestWASMPolicyRejectsBadDecisions(t *testing.T) {
	dir := t.TempDir()
	wasmtest.Write(t, "conformance", dir, "conformance.wasm")
	writeFile(t, filepath.Join(dir, "ops.yaml"), `kapkan_rules: 1
ladders:
  - {name: unknown-action, hostgroups: [a], wasm: conformance.wasm, config: {action: nuke}}
  - {name: rate-without-limit, hostgroups: [b], wasm: conformance.wasm, config: {action: flowspec-ratelimit}}
  - {name: rate-on-blackhole, hostgroups: [c], wasm: conformance.wasm, config: {action: blackhole, rate_mbps: 5}}
  - {name: no-action, hostgroups: [d], wasm: conformance.wasm, config: {action: ""}}
`)
	set, err := compileDir(t, testHost, dir)
	if err != nil {
		t.Fatal(err)
	}
	f := rules.Compute(wsdCandidate(10, 1000))
	for hg, want := range map[string]string{"a": `action "nuke"`, "b": "needs rate_mbps > 0", "c": "rate_mbps applies to flowspec-ratelimit only", "d": ""} {
		d, err := set.Ladder(hg, nil).Policy.Decide(rules.PolicyInput{Features: &f})
		var ce *wasm.CallError
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", hg, err)
		case want == "" && d.Action != flowspec.None:
			t.Errorf("%s: decision %+v", hg, d)
		case want != "" && (!errors.As(err, &ce) || ce.Result != wasm.ResultBadOutput || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: %v, want a bad_output with %q", hg, err, want)
		}
	}
}

// TestWASMRuleFileErrors: mistakes in the module part of a rule file are
// positioned and say what was expected; a module that cannot load fails
// the compilation.
func TestWASMRuleFileErrors(t *testing.T) {
	dir := t.TempDir()
	bin := wasmtest.Write(t, "conformance", dir, "conformance.wasm")
	data, _ := os.ReadFile(bin)
	sum := sha256.Sum256(data)
	writeFile(t, filepath.Join(dir, "not.wasm"), "hello")
	wasmtest.Write(t, "wsdiscovery", dir, "classifier-only.wasm")
	for _, tc := range []struct {
		name, body, want string
	}{
		{"both", "  - name: x\n    match: udp_share > 1\n    wasm: conformance.wasm\n", `ops.yaml:4:12: rule "x": a rule has a match expression or a wasm module, not both`},
		{"no file", "  - name: x\n    wasm: nosuch.wasm\n", `ops.yaml:4:11: rule "x": wasm: ` + filepath.Join(dir, "nosuch.wasm") + `: read module: open nosuch.wasm`},
		{"escape", "  - name: x\n    wasm: ../x.wasm\n", `the path leaves the rule directory`},
		{"not wasm", "  - name: x\n    wasm: not.wasm\n", `not.wasm: not a WebAssembly module: starts with "hell", want "\x00asm"`},
		{"suffix", "  - name: x\n    wasm: conformance\n", `wasm "conformance" (want a path to a .wasm file`},
		{"limits", "  - name: x\n    wasm: conformance.wasm\n    limits: {memory_mb: 5000, timeout: soon}\n", `ops.yaml:5:13: rule "x": limits: timeout "soon" is not a duration`},
		{"limits bounds", "  - name: x\n    wasm: conformance.wasm\n    limits: {memory_mb: 5000}\n", `limits: memory_mb 5000 (want 4 to 1024)`},
		{"sha256 format", "  - name: x\n    wasm: conformance.wasm\n    sha256: abc\n", `sha256 "abc" (want 64 hex digits`},
		{"sha256 pin", "  - name: x\n    wasm: conformance.wasm\n    sha256: " + strings.Repeat("0", 64) + "\n",
			"conformance.wasm: sha256 is " + hex.EncodeToString(sum[:]) + ", the rule file pins " + strings.Repeat("0", 64)},
		{"sha256 without wasm", "  - name: x\n    match: udp_share > 1\n    sha256: abc\n", `sha256 applies to a wasm module only`},
		{"ladder with steps", "ladders:\n  - name: y\n    wasm: conformance.wasm\n    steps: [{action: blackhole}]\n", `a ladder has steps or a wasm policy module, not both`},
		{"ladder module", "ladders:\n  - name: y\n    wasm: not.wasm\n", `ops.yaml:4:11: rule "y": wasm: ` + filepath.Join(dir, "not.wasm") + `: not a WebAssembly module`},
		{"classifier as policy", "ladders:\n  - name: y\n    wasm: classifier-only.wasm\n", `the module does not serve kapkan_decide (with the Go SDK, set Guest.Decide)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := "kapkan_rules: 1\nrules:\n" + tc.body
			if strings.HasPrefix(tc.body, "ladders:") {
				body = "kapkan_rules: 1\n" + tc.body
			}
			writeFile(t, filepath.Join(dir, "ops.yaml"), body)
			_, err := compileDir(t, testHost, dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
	// A module that cannot be read is counted like any load failure.
	host := wasm.NewHost(nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(host.Collectors()...)
	writeFile(t, filepath.Join(dir, "ops.yaml"), "kapkan_rules: 1\nrules:\n  - name: x\n    wasm: nosuch.wasm\n")
	if _, err := compileDir(t, host, dir); err == nil {
		t.Error("a missing module loaded")
	}
	if n := loadFailures(t, reg, wasm.ReasonRead); n != 1 {
		t.Errorf("%v read failures counted, want 1", n)
	}
	// The right pin loads.
	writeFile(t, filepath.Join(dir, "ops.yaml"), "kapkan_rules: 1\nrules:\n  - name: x\n    wasm: conformance.wasm\n    sha256: "+strings.ToUpper(hex.EncodeToString(sum[:]))+"\n")
	if _, err := compileDir(t, testHost, dir); err != nil {
		t.Errorf("pinned module: %v", err)
	}
}
