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
	"flow":             {},
	"flowspec":         {},
	"events":           {"flowspec"},
	"config":           {},
	"ingest":           {"flow"},
	"ingest/flowgen":   {},
	"ingest/demo":      {"flow", "ingest/flowgen"},
	"engine":           {"flow"},
	"rules":            {"flow", "flowspec", "engine", "rules/wasm"},
	"builtin":          {},
	"policy":           {"flow", "flowspec", "engine", "rules"},
	"mitigate":         {"flowspec"},
	"mitigate/bgp":     {"flowspec", "mitigate"},
	"api":              {"config", "events", "flowspec", "mitigate", "store"},
	"store":            {"events", "flow", "flowspec"},
	"store/embedded":   {"events", "flowspec", "store"},
	"store/clickhouse": {"events", "flow", "flowspec", "store"},
	"store/storetest":  {"events", "flowspec", "store"},
	"pipeline":         {"flow", "flowspec", "engine", "events", "rules", "policy", "mitigate"},
	"ruletest":         {"flow", "flowspec", "engine", "events", "ingest", "ingest/demo", "ingest/flowgen", "pipeline", "rules"},
	"notify":           {"config", "events", "flowspec"},
	// The flight recorder's read side: it follows events, reads ingest's
	// rings and writes captures and rule tests.
	"incident": {"events", "flow", "flowspec", "ingest", "ingest/flowgen"},
	// The FastNetMon importer writes a configuration; it needs its types
	// and checks only.
	"fnmimport":         {"config"},
	"internal/testutil": {},
	"web":               {},
	// Only the daemon (and cmd/kapkan through it) knows every part.
	"daemon":            {"api", "builtin", "config", "engine", "events", "flow", "flowspec", "incident", "ingest", "ingest/demo", "mitigate", "mitigate/bgp", "notify", "pipeline", "rules", "rules/wasm", "store", "store/clickhouse", "store/embedded", "web"},
	"daemon/daemontest": {"config", "daemon", "flow", "ingest/demo", "internal/testutil"},
	"cmd/kapkan":        {"*"},
	"bench/e2e":         {"bench/fnm", "ingest", "flow"},
	"bench/fnm":         {},
	"bench/soak":        {},
	// Acceptance tests only (_test.go files): they drive the built binary
	// and import nothing of the module but the harness of the real parts
	// they run beside it (BIRD, gobgpd).
	"e2e": {"internal/testutil"},
	// Tests only: the Debian package's files, checked against the
	// configuration loader and the daemon's preflight.
	"packaging": {"config", "daemon", "internal/testutil"},

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

// never lists, for a package, what it must never reach, directly or through
// another package: a module package (with its subpackages, module-relative)
// or an outside import path (with its subpackages). The allow-list above
// checks one step; this checks the whole closure, so a stage cannot reach a
// forbidden one by way of a package that is itself allowed. Packages that do
// not exist yet (api, store, notify, daemon) are named so that the rule holds
// the day they land.
var never = map[string][]string{
	"mitigate": {"rules", "policy", "config", "pipeline", "engine", "ingest",
		"api", "store", "notify", "daemon", "cmd"},
	"mitigate/bgp": {"rules", "policy", "config", "pipeline", "engine", "ingest",
		"api", "store", "notify", "daemon", "cmd",
		"github.com/expr-lang/expr", "github.com/tetratelabs/wazero"},
	"engine":   {"rules", "policy", "mitigate", "pipeline"},
	"rules":    {"policy", "mitigate", "pipeline"},
	"pipeline": {"ingest", "config", "daemon", "cmd", "api"},
	"notify":   {"mitigate", "engine", "pipeline", "rules", "policy", "ingest", "daemon", "api", "store", "cmd"},
	// History is written from the event ring and read through interfaces:
	// it knows no stage.
	"store": {"engine", "pipeline", "rules", "policy", "mitigate", "ingest", "daemon", "api", "notify", "cmd"},
	// The daemon is built by cmd/kapkan, never the other way round.
	"daemon": {"cmd"},
}

// only lists leaf packages and the only module packages they may reach
// (transitively): nothing else of the module, present or future.
var only = map[string][]string{
	"flow":     {},
	"flowspec": {},
	"events":   {"flowspec"},
}

// under reports whether import path p is path or one of its subpackages.
func under(p, path string) bool {
	return p == path || strings.HasPrefix(p, path+"/")
}

// reached returns "pkg reaches dep" for every dependency in deps (the
// package's transitive closure, full import paths) that never or only forbid.
func reached(pkg string, deps []string, never, only map[string][]string) []string {
	var out []string
	for _, d := range deps {
		dep, inModule := strings.CutPrefix(d, module+"/")
		for _, f := range never[pkg] {
			if (inModule && under(dep, f)) || (!inModule && under(d, f)) {
				out = append(out, pkg+" reaches "+dep+" (never "+f+")")
			}
		}
		if ok, leaf := only[pkg]; leaf && inModule {
			permitted := false
			for _, a := range ok {
				permitted = permitted || a == dep
			}
			if !permitted {
				out = append(out, pkg+" reaches "+dep+" (a leaf: only "+strings.Join(ok, ", ")+")")
			}
		}
	}
	return out
}

// TestLayoutNever enforces the never and only lists on the transitive
// dependencies `go list -deps` computes (tests' own imports are not counted).
func TestLayoutNever(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Deps", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := map[string]bool{}
	for dec.More() {
		var p struct {
			ImportPath string
			Deps       []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkg := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		seen[pkg] = true
		for _, v := range reached(pkg, p.Deps, never, only) {
			t.Error(v)
		}
	}
	// A rule about a package that was renamed away would pass forever.
	for _, m := range []map[string][]string{never, only} {
		for pkg := range m {
			if !seen[pkg] {
				t.Errorf("the never/only lists name %s, which go list did not see", pkg)
			}
		}
	}
}

// TestLayoutNeverFires proves the transitive check catches violations, on a
// fixture of made-up dependency closures.
func TestLayoutNeverFires(t *testing.T) {
	for _, tc := range []struct {
		name string
		pkg  string
		deps []string
		want []string
	}{
		{"mitigate reaching the store through another package", "mitigate",
			[]string{"fmt", module + "/flowspec", module + "/events", module + "/store/embedded"},
			[]string{"mitigate reaches store/embedded (never store)"}},
		{"bgp speaker pulling in expr", "mitigate/bgp",
			[]string{module + "/mitigate", "github.com/expr-lang/expr/vm"},
			[]string{"mitigate/bgp reaches github.com/expr-lang/expr/vm (never github.com/expr-lang/expr)"}},
		{"rules reaching policy", "rules",
			[]string{module + "/engine", module + "/policy"},
			[]string{"rules reaches policy (never policy)"}},
		{"leaf events reaching flow", "events",
			[]string{module + "/flowspec", module + "/flow"},
			[]string{"events reaches flow (a leaf: only flowspec)"}},
		{"leaf flow with outside deps only", "flow",
			[]string{"sync", "net/netip"}, nil},
		{"prefix is not a package: rulesx is not rules", "engine",
			[]string{module + "/flow", module + "/rulesx"}, nil},
		{"allowed closure", "pipeline",
			[]string{module + "/engine", module + "/rules", module + "/rules/wasm", module + "/mitigate"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := reached(tc.pkg, tc.deps, never, only)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("reached(%s) = %q, want %q", tc.pkg, got, tc.want)
			}
		})
	}
}
