package kapkan_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/kapkan-io/kapkan"

// allowed lists, for every package of the module, the module packages it may
// import: data flows one way (flow → ingest → engine → …), and only the
// composition root (cmd/kapkan) knows every stage.
var allowed = map[string][]string{
	"flow":              {},
	"flowspec":          {},
	"events":            {"flowspec"},
	"config":            {},
	"ingest":            {"flow"},
	"ingest/flowgen":    {},
	"ingest/demo":       {"flow", "ingest/flowgen"},
	"engine":            {"flow"},
	"rules":             {"flow", "flowspec", "engine", "rules/wasm"},
	"builtin":           {},
	"policy":            {"flow", "flowspec", "engine", "rules"},
	"mitigate":          {"flowspec"},
	"mitigate/bgp":      {"flowspec", "mitigate"},
	"pipeline":          {"flow", "flowspec", "engine", "events", "rules", "policy", "mitigate"},
	"ruletest":          {"flow", "flowspec", "engine", "events", "ingest", "ingest/demo", "ingest/flowgen", "pipeline", "rules"},
	"internal/testutil": {},
	// Only the daemon (and cmd/kapkan through it) knows every part.
	"daemon":            {"builtin", "config", "engine", "events", "flow", "flowspec", "ingest", "ingest/demo", "mitigate", "mitigate/bgp", "pipeline", "rules", "rules/wasm"},
	"daemon/daemontest": {"config", "daemon", "flow", "ingest/demo", "internal/testutil"},
	"cmd/kapkan":        {"*"},
	"bench/e2e":         {"bench/fnm", "ingest", "flow"},
	"bench/fnm":         {},

	// The WASM host is a leaf under rules (it sees flow records, and rules
	// hands it JSON); the guest SDK imports nothing of the module.
	"rules/wasm":                    {"flow"},
	"rules/wasm/wasmtest":           {},
	"rules/wasm/wasmtest/warmcache": {"rules/wasm"}, // compiles with the host's settings
	"wasm-sdk/go":                   {},
}

// violations returns "pkg imports dep" for every module import of pkg that
// the allow-list does not permit (and for packages it does not know).
func violations(pkg string, imports []string, allow map[string][]string) []string {
	ok, known := allow[pkg]
	if !known {
		return []string{pkg + " is not in the layout allow-list (add it to layout_test.go)"}
	}
	var out []string
	for _, imp := range imports {
		dep, inModule := strings.CutPrefix(imp, module+"/")
		if !inModule {
			continue
		}
		permitted := false
		for _, a := range ok {
			if a == "*" || a == dep {
				permitted = true
			}
		}
		if !permitted {
			out = append(out, pkg+" imports "+dep)
		}
	}
	return out
}

// TestLayout enforces the import direction with `go list`.
func TestLayout(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	n := 0
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkg := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		if pkg == "" {
			continue // this test's own package
		}
		n++
		for _, v := range violations(pkg, p.Imports, allowed) {
			t.Error(v)
		}
	}
	if n < len(allowed) {
		t.Errorf("go list saw %d packages, the allow-list names %d", n, len(allowed))
	}
}

// TestLayoutCheckFires proves the check catches a violation: an engine that
// reaches back into ingest, and a package nobody listed.
func TestLayoutCheckFires(t *testing.T) {
	if v := violations("engine", []string{module + "/flow", module + "/ingest"}, allowed); len(v) != 1 || v[0] != "engine imports ingest" {
		t.Errorf("engine importing ingest: %v", v)
	}
	if v := violations("newstage", nil, allowed); len(v) != 1 {
		t.Errorf("unlisted package: %v", v)
	}
	if v := violations("ingest", []string{"fmt", module + "/flow"}, allowed); len(v) != 0 {
		t.Errorf("allowed imports reported: %v", v)
	}
}
