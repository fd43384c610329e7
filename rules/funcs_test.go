package rules

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestFuncsRegistry: the registry lists exactly the functions Env binds
// (by their expr names), and the rule-writing guide documents each.
func TestFuncsRegistry(t *testing.T) {
	var bound []string
	et := reflect.TypeFor[Env]()
	for i := range et.NumField() {
		if f := et.Field(i); f.Type.Kind() == reflect.Func {
			bound = append(bound, f.Tag.Get("expr"))
		}
	}
	var listed []string
	for _, f := range Funcs {
		listed = append(listed, f.Name)
		if !strings.HasPrefix(f.Signature, f.Name+"(") {
			t.Errorf("%s: signature %q", f.Name, f.Signature)
		}
	}
	slices.Sort(bound)
	slices.Sort(listed)
	if !slices.Equal(bound, listed) {
		t.Fatalf("Env binds %v, the registry lists %v", bound, listed)
	}
	doc, err := os.ReadFile("../docs/60-writing-rules.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range listed {
		if !strings.Contains(string(doc), "`"+name+"(") {
			t.Errorf("docs/60-writing-rules.md does not document %s", name)
		}
	}
}
