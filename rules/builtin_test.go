package rules_test

import (
	"testing"

	"github.com/kapkan-io/kapkan/builtin"
	"github.com/kapkan-io/kapkan/rules"
)

func TestBuiltinCompiles(t *testing.T) {
	set, err := rules.Compile(rules.Source{FS: builtin.Classify(), Name: "builtin", Builtin: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Rules()) < 13 {
		t.Fatalf("built-in rules: %v", set.Rules())
	}
}
