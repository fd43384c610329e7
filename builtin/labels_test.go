package builtin_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"gopkg.in/yaml.v3"

	"github.com/kapkan-io/kapkan/builtin"
	"github.com/kapkan-io/kapkan/ingest/demo"
	"github.com/kapkan-io/kapkan/rules"
	"github.com/kapkan-io/kapkan/ruletest"
)

// labelCase is traffic whose attack must come out with a given label.
type labelCase struct {
	name, test string // the rule test of the case (a YAML list item)
	target     string
	want       string // the label it must have
}

// kindLabel is the label of a generator kind.
func kindLabel(k string) string {
	if k == string(demo.FragFlood) {
		return "fragment-flood"
	}
	return k
}

// allAttackCases are every attack kind of `kapkan simulate` (the
// generator's kinds, to an IPv4 and an IPv6 target) and every attack of the
// test captures (testdata/captures, from the generator; testdata/real, from
// softflowd), with the label each must have. Captures go into fsys.
func allAttackCases(t *testing.T, fsys fstest.MapFS) []labelCase {
	t.Helper()
	var out []labelCase
	for i, k := range demo.Kinds {
		for j, target := range []string{fmt.Sprintf("203.0.113.%d", 100+i), fmt.Sprintf("2001:db8:1::%x", 0x100+i)} {
			name := fmt.Sprintf("simulate %s to %s", k, target)
			out = append(out, labelCase{name: name, target: target, want: kindLabel(string(k)), test: fmt.Sprintf(`
  - name: %q
    traffic:
      attacks: [{kind: %s, target: %q, pps: 400000, start: 1s, duration: 5s}]
      duration: 7s
      seed: %d`, name, k, target, 2*i+j)})
		}
	}
	root := filepath.Join("..", "testdata")
	for _, dir := range []string{"captures", "real"} {
		truths, err := filepath.Glob(filepath.Join(root, dir, "*", "truth.yaml"))
		if err != nil || len(truths) == 0 {
			t.Fatalf("no captures in testdata/%s: %v", dir, err)
		}
		for _, tp := range truths {
			var truth struct {
				Kind    string `yaml:"kind"`
				Victim  string `yaml:"victim"`
				Attacks []struct {
					Kind   string `yaml:"kind"`
					Target string `yaml:"target"`
				} `yaml:"attacks"`
			}
			raw, err := os.ReadFile(tp)
			if err != nil {
				t.Fatal(err)
			}
			if err := yaml.Unmarshal(raw, &truth); err != nil {
				t.Fatalf("%s: %v", tp, err)
			}
			pcap, thresholds := "capture.pcap", ""
			if dir == "real" {
				// softflowd samples 1 in 100 a few thousand packets a second.
				pcap, thresholds = "export.pcap", "\n    thresholds: {pps: 5000}"
				truth.Attacks = append(truth.Attacks, struct {
					Kind   string `yaml:"kind"`
					Target string `yaml:"target"`
				}{truth.Kind, truth.Victim})
			}
			c := filepath.Base(filepath.Dir(tp))
			data, err := os.ReadFile(filepath.Join(filepath.Dir(tp), pcap))
			if err != nil {
				t.Fatal(err)
			}
			file := dir + "-" + c + ".pcap"
			fsys[file] = &fstest.MapFile{Data: data}
			if len(truth.Attacks) == 0 {
				t.Fatalf("%s: no attack in the truth", tp)
			}
			for _, a := range truth.Attacks {
				name := fmt.Sprintf("testdata/%s/%s: %s on %s", dir, c, a.Kind, a.Target)
				out = append(out, labelCase{name: name, target: a.Target, want: kindLabel(a.Kind), test: fmt.Sprintf(`
  - name: %q
    capture: %s%s`, name, file, thresholds)})
			}
		}
	}
	return out
}

// runLabelCases runs the cases through ruletest (ingest, the engine and
// the verdict path of the daemon, pipeline) with set, and returns each
// test's verdicts.
func runLabelCases(t *testing.T, set *rules.Set, cases []labelCase, fsys fstest.MapFS) []ruletest.Result {
	t.Helper()
	var b strings.Builder
	b.WriteString("kapkan_rule_tests: 1\ntests:")
	for _, c := range cases {
		b.WriteString(c.test)
	}
	fsys["labels_test.yaml"] = &fstest.MapFile{Data: []byte(b.String() + "\n")}
	rep, err := ruletest.Run(fsys, set, ruletest.Options{Covered: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != len(cases) {
		t.Fatalf("%d results for %d cases", len(rep.Results), len(cases))
	}
	return rep.Results
}

// TestEveryAttackHasALabel: every attack kind of `kapkan simulate` and of
// the test captures, run through the pipeline, comes out with its kind's
// label from the built-in set; no attack detected on the way, victim or
// not, comes out without a label.
func TestEveryAttackHasALabel(t *testing.T) {
	set, err := rules.Compile(rules.Source{FS: builtin.Classify(), Name: "builtin", Builtin: true})
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{}
	cases := allAttackCases(t, fsys)
	if len(cases) < 2*len(demo.Kinds)+2+14 {
		t.Fatalf("%d cases", len(cases))
	}
	for i, r := range runLabelCases(t, set, cases, fsys) {
		c := cases[i]
		if len(r.Failures) > 0 {
			t.Errorf("%s: %v", c.name, r.Failures)
		}
		v, ok := r.Verdicts[c.target]
		if !ok {
			t.Errorf("%s: no attack on %s", c.name, c.target)
			continue
		}
		if !slices.Contains(v.Labels, c.want) {
			t.Errorf("%s: labels %v, want %s", c.name, v.Labels, c.want)
		}
		for target, v := range r.Verdicts {
			if len(v.Labels) == 0 {
				t.Errorf("%s: the attack on %s has no label", c.name, target)
			}
		}
	}
}

// TestNoRuleStillNames: with every built-in rule disabled, the same
// attacks still reach the operator with a name: ip-flood, and their
// dominant protocol as the vector where one carries 90 % of the packets.
func TestNoRuleStillNames(t *testing.T) {
	set, err := rules.Compile(rules.Source{FS: fstest.MapFS{"r.yaml": {Data: []byte("kapkan_rules: 1\nrules: []\n")}}, Name: "empty"})
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{}
	cases := allAttackCases(t, fsys)
	protocols := 0
	for i, r := range runLabelCases(t, set, cases, fsys) {
		c := cases[i]
		v, ok := r.Verdicts[c.target]
		if !ok {
			t.Errorf("%s: no attack on %s (%v)", c.name, c.target, r.Failures)
			continue
		}
		if !slices.Equal(v.Labels, []string{rules.FallbackLabel}) {
			t.Errorf("%s: labels %v, want [%s]", c.name, v.Labels, rules.FallbackLabel)
		}
		if v.Vector.Protocol != "" {
			protocols++
			if v.Decider != rules.FallbackDecider {
				t.Errorf("%s: vector %v decided by %q", c.name, v.Vector, v.Decider)
			}
		}
	}
	if protocols < len(cases)*3/4 {
		t.Errorf("%d of %d attacks got a protocol vector", protocols, len(cases))
	}
}

// TestSoftflowdIPv6FragmentsNeedTheirRule: the IPv6 fragment flood as
// softflowd 1.1.0 exports it (next header 0, ports 0, no fragment field)
// is a fragment-flood by ipv6-next-header-zero-fragments alone; without
// that rule no other built-in rule names it and it is only an ip-flood,
// with no vector (protocol 0 is none).
func TestSoftflowdIPv6FragmentsNeedTheirRule(t *testing.T) {
	set, err := rules.Compile(rules.Source{FS: fstest.MapFS{"d.yaml": {Data: []byte("kapkan_rules: 1\ndisable: [ipv6-next-header-zero-fragments]\n")}}, Name: "d"},
		rules.Source{FS: builtin.Classify(), Name: "builtin", Builtin: true})
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{}
	var cases []labelCase
	for _, c := range allAttackCases(t, fsys) {
		if strings.HasPrefix(c.name, "testdata/real/ipv6-fragment-flood:") {
			cases = append(cases, c)
		}
	}
	if len(cases) != 1 {
		t.Fatalf("%d ipv6-fragment-flood cases", len(cases))
	}
	v := runLabelCases(t, set, cases, fsys)[0].Verdicts[cases[0].target]
	if !slices.Equal(v.Labels, []string{rules.FallbackLabel}) || !v.Vector.IsZero() {
		t.Errorf("without its rule: labels %v vector %v, want [%s] and none", v.Labels, v.Vector, rules.FallbackLabel)
	}
}
