package builtin_test

import (
	"testing"

	"github.com/kapkan-io/kapkan/builtin"
	"github.com/kapkan-io/kapkan/rules"
	"github.com/kapkan-io/kapkan/ruletest"
)

// TestBuiltinRuleTests runs the built-in rule set's *_test.yaml files with
// the same runner as `kapkan test`, and fails when a rule has no positive
// or no negative case.
func TestBuiltinRuleTests(t *testing.T) {
	set, err := rules.Compile(rules.Source{FS: builtin.Classify(), Name: "builtin", Builtin: true})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ruletest.Run(builtin.Tests(), set, ruletest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) < 20 {
		t.Fatalf("%d test cases", len(rep.Results))
	}
	for _, r := range rep.Results {
		for _, f := range r.Failures {
			t.Errorf("%s: %s: %s", r.File, r.Name, f)
		}
	}
	for _, u := range rep.Uncovered {
		t.Errorf("coverage: %s", u)
	}
}
