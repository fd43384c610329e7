package rules

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

var yamlBlock = regexp.MustCompile("(?s)```yaml\n(.*?)```")

// TestDocsRuleFiles: every rule file shown in the rule-writing docs parses
// (modules are not loaded: their files are not there).
func TestDocsRuleFiles(t *testing.T) {
	n := 0
	for _, doc := range []string{"../docs/60-writing-rules.md", "../docs/65-wasm.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range yamlBlock.FindAllStringSubmatch(string(b), -1) {
			if !strings.HasPrefix(m[1], "kapkan_rules:") {
				continue
			}
			n++
			if _, errs := parseFile(doc, []byte(m[1])); len(errs) > 0 {
				t.Errorf("%s: a rule file example does not parse:\n%v\n%s", doc, errs, m[1])
			}
		}
	}
	if n < 3 {
		t.Errorf("found %d rule file examples, want the WASM ones at least", n)
	}
	// The check fires.
	if _, errs := parseFile("x", []byte("kapkan_rules: 1\nrules:\n  - name: x\n    wasm: a.wasm\n    match: udp_share > 1\n")); len(errs) == 0 {
		t.Error("a rule with both match and wasm parsed")
	}
}
