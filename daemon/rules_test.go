package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/flow"
	kt "github.com/kapkan-io/kapkan/internal/testutil"
	"github.com/kapkan-io/kapkan/rules"
	"github.com/kapkan-io/kapkan/rules/wasm/wasmtest"
)

// TestRulesHotReload: a broken rule file leaves the running set in place,
// says where the problem is, and a fixed file is picked up.
func TestRulesHotReload(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) {
		if err := os.WriteFile(filepath.Join(dir, "ops.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("kapkan_rules: 1\nrules:\n  - name: ops-udp\n    match: udp_share > 0.5\n    labels: [ops-udp]\n")
	logs := &kt.LogLines{}
	reg := prometheus.NewRegistry()
	r, err := newRuleRuntime([]string{dir}, slog.New(slog.NewJSONHandler(logs, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	first := r.Set()
	if !slices.Contains(first.Rules(), "ops-udp") {
		t.Fatalf("rules %v", first.Rules())
	}
	for _, broken := range []struct{ name, body, want string }{
		{"syntax", "kapkan_rules: 1\nrules:\n  - name: ops-udp\n    match: udp_share >\n", `ops.yaml:4:`},
		{"not bool", "kapkan_rules: 1\nrules:\n  - name: ops-udp\n    match: udp_share + 1\n", "expected bool"},
		{"unknown field", "kapkan_rules: 1\nrules:\n  - name: ops-udp\n    matches: udp_share > 1\n", "matches"},
		{"unknown function", "kapkan_rules: 1\nrules:\n  - name: ops-udp\n    match: nosuch(53) > 0.5\n", "unknown name nosuch"},
	} {
		write(broken.body)
		err := r.Reload("test")
		if err == nil || !strings.Contains(err.Error(), broken.want) || !strings.Contains(err.Error(), "ops.yaml") {
			t.Errorf("%s: error %v, want it to mention ops.yaml and %q", broken.name, err, broken.want)
		}
		if r.Set() != first {
			t.Fatalf("%s: the running set was replaced by a broken one", broken.name)
		}
		if got := testutil.ToFloat64(r.metrics.lastOK); got != 0 {
			t.Errorf("%s: kapkan_rules_last_reload_successful = %v", broken.name, got)
		}
	}
	if !strings.Contains(logs.All(), `"rule":"ops-udp"`) {
		t.Error("the failure log does not name the rule")
	}
	// The watcher picks up a fixed file by itself.
	write("kapkan_rules: 1\nrules:\n  - name: ops-udp-2\n    match: udp_share > 0.6\n    labels: [ops-udp]\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = r.Watch(ctx, func() time.Duration { return 20 * time.Millisecond }) }()
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(r.Set().Rules(), "ops-udp-2") {
		if time.Now().After(deadline) {
			t.Fatal("the fixed file was not loaded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := testutil.ToFloat64(r.metrics.lastOK); got != 1 {
		t.Errorf("kapkan_rules_last_reload_successful = %v after the fix", got)
	}
	if got := testutil.ToFloat64(r.metrics.reloads.WithLabelValues("failure")); got != 4 {
		t.Errorf("failed reloads = %v, want 4", got)
	}
}

// wsdFeatures are the features of a WS-Discovery reflection with n sample
// records.
func wsdFeatures(n int) rules.Features {
	target := netip.MustParseAddr("203.0.113.30")
	c := &engine.Candidate{Kind: engine.AttackStarted, Target: netip.PrefixFrom(target, 32), Hostgroup: "customers"}
	for i := range n {
		c.Sample = append(c.Sample, flow.Record{Src: netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i%200)}).As16(), Dst: target.As16(),
			SrcPort: 3702, DstPort: uint16(1024 + i), Proto: 17, Bytes: 1300, Packets: 1, SamplingRate: 100, Flags: flow.FlagHasIP})
	}
	return rules.Compute(c)
}

// TestRulesReloadBadModules: every module of testdata/wasm/bad is either
// refused by the reload (the running rules stay, the failure is counted
// and logged with the file and what was expected) or loaded and contained
// at call time (the verdict is what the other rules say, the failure kind
// is counted).
func TestRulesReloadBadModules(t *testing.T) {
	bad := filepath.Join(kt.RepoRoot(t), "testdata", "wasm", "bad")
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("ops.yaml", "kapkan_rules: 1\nrules:\n  - name: ops-udp\n    match: udp_share > 0.5\n    labels: [ops-udp]\n")
	logs := &kt.LogLines{}
	reg := prometheus.NewRegistry()
	r, err := newRuleRuntime([]string{dir}, slog.New(slog.NewJSONHandler(logs, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	good := r.Set()
	f := wsdFeatures(20)

	copyBad := func(file string) {
		b, err := os.ReadFile(filepath.Join(bad, file))
		if err != nil {
			t.Fatal(err)
		}
		write("bad.wasm", string(b))
	}
	for _, tc := range []struct {
		name, guest, file, reason, want string
	}{
		{"wrong abi version", "bad/wrongabi", "", "abi", "kapkan_abi_version returned 2, want 1"},
		{"missing export", "bad/missingexport", "", "missing_export", "no export kapkan_classify"},
		{"not wasm", "", "not-wasm.wasm", "not_wasm", `not a WebAssembly module: starts with "kapk", want "\x00asm"`},
		{"truncated", "", "truncated.wasm", "not_wasm", "not a valid WebAssembly module"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.guest != "" {
				wasmtest.Write(t, tc.guest, dir, "bad.wasm")
			} else {
				copyBad(tc.file)
			}
			write("bad.yaml", "kapkan_rules: 1\nrules:\n  - name: bad-module\n    wasm: bad.wasm\n")
			failures := kt.MetricValue(t, reg, "kapkan_rules_reloads_total", map[string]string{"result": "failure"})
			loads := kt.MetricValue(t, reg, "kapkan_wasm_load_failures_total", map[string]string{"reason": tc.reason})
			err := r.Reload("test")
			if err == nil || !strings.Contains(err.Error(), "bad.yaml:4:") || !strings.Contains(err.Error(), filepath.Join(dir, "bad.wasm")+": ") ||
				!strings.Contains(err.Error(), tc.want) {
				t.Errorf("reload error %v, want bad.yaml's position, the module file and %q", err, tc.want)
			}
			if r.Set() != good {
				t.Error("a broken module replaced the running rules")
			}
			if got := kt.MetricValue(t, reg, "kapkan_rules_reloads_total", map[string]string{"result": "failure"}); got != failures+1 {
				t.Errorf("kapkan_rules_reloads_total{result=failure} = %v, want %v", got, failures+1)
			}
			if got := kt.MetricValue(t, reg, "kapkan_wasm_load_failures_total", map[string]string{"reason": tc.reason}); got != loads+1 {
				t.Errorf("kapkan_wasm_load_failures_total{reason=%s} = %v, want %v", tc.reason, got, loads+1)
			}
			if v, err := r.Set().Classify(&f); err != nil || !slices.Equal(v.Labels, []string{"ops-udp"}) {
				t.Errorf("the running rules stopped classifying: %+v %v", v, err)
			}
		})
	}
	log := logs.All()
	if !strings.Contains(log, `"file":"`+filepath.Join(dir, "bad.yaml")+`"`) || !strings.Contains(log, "want 1") {
		t.Errorf("the failure log does not name the file and what was expected:\n%s", log)
	}

	for _, tc := range []struct {
		name, guest, limits, result string
	}{
		{"infinite loop", "bad/loop", "{timeout: 1s}", "timeout"},
		{"memory bomb", "bad/membomb", "{memory_mb: 16, timeout: 5s}", "memory"},
		{"trap", "bad/trap", "{}", "trap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wasmtest.Write(t, tc.guest, dir, "bad.wasm")
			write("bad.yaml", "kapkan_rules: 1\nrules:\n  - name: bad-module\n    wasm: bad.wasm\n    labels: [never]\n    limits: "+tc.limits+"\n")
			if err := r.Reload("test"); err != nil {
				t.Fatalf("a module that fails only when called was refused: %v", err)
			}
			for range 2 {
				v, err := r.Set().Classify(&f)
				if err != nil || !slices.Equal(v.Labels, []string{"ops-udp"}) || !slices.Equal(v.Rules, []string{"ops-udp"}) {
					t.Errorf("verdict %+v %v, want the expr rule's alone", v, err)
				}
			}
			if got := kt.MetricValue(t, reg, "kapkan_wasm_calls_total", map[string]string{"module": "bad-module", "result": tc.result}); got < 1 {
				t.Errorf("kapkan_wasm_calls_total{module=bad-module,result=%s} = %v, want at least 1", tc.result, got)
			}
		})
	}
}

// TestRulesHotSwapWASM swaps the rules, a WASM module with them, while
// goroutines classify: no call fails, every verdict comes whole from one
// rule set or the other, and the replaced modules are released once
// nothing uses them.
func TestRulesHotSwapWASM(t *testing.T) {
	bins := wasmtest.Build(t, "conformance", "wsdiscovery")
	dir := t.TempDir()
	versions := []struct {
		module []byte
		yaml   string
	}{
		{bins["conformance"], "kapkan_rules: 1\nrules:\n  - name: expr-a\n    match: udp_share > 0.5\n    labels: [expr-a]\n" +
			"  - name: module-a\n    wasm: m.wasm\n    config: {label: module-a}\n    limits: {timeout: 5s}\n"},
		{bins["wsdiscovery"], "kapkan_rules: 1\nrules:\n  - name: expr-b\n    match: udp_share > 0.5\n    labels: [expr-b]\n" +
			"  - name: module-b\n    wasm: m.wasm\n    limits: {timeout: 5s}\n"},
	}
	install := func(i int) {
		v := versions[i%2]
		if err := os.WriteFile(filepath.Join(dir, "m.wasm"), v.module, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "ops.yaml"), []byte(v.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	install(0)
	reg := prometheus.NewRegistry()
	r, err := newRuleRuntime([]string{dir}, slog.New(slog.NewJSONHandler(&kt.LogLines{}, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"conformance", "expr-a", "module-a"}, {"amplification", "expr-b", "ws-discovery-amplification"}}

	const workers, swaps = 4, 8
	stop := make(chan struct{})
	errs := make(chan string, workers)
	var wg sync.WaitGroup
	counts := make([][2]int, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := wsdFeatures(200)
			for {
				select {
				case <-stop:
					return
				default:
				}
				v, err := r.Set().Classify(&f)
				switch {
				case err != nil:
					errs <- err.Error()
					return
				case slices.Equal(v.Labels, want[0]):
					counts[w][0]++
				case slices.Equal(v.Labels, want[1]):
					counts[w][1]++
				default:
					errs <- fmt.Sprintf("mixed or partial verdict %+v", v)
					return
				}
			}
		}()
	}
	for i := 1; i <= swaps; i++ {
		time.Sleep(20 * time.Millisecond)
		install(i)
		if err := r.Reload("test"); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	for w, c := range counts {
		if c[0] == 0 && c[1] == 0 {
			t.Errorf("worker %d classified nothing", w)
		}
	}
	for _, m := range []string{"module-a", "module-b"} {
		for _, result := range []string{"timeout", "memory", "trap", "guest_error", "bad_output", "busy", "closed"} {
			if got := kt.MetricValue(t, reg, "kapkan_wasm_calls_total", map[string]string{"module": m, "result": result}); got != 0 {
				t.Errorf("%s: %v calls with result %s", m, got, result)
			}
		}
	}
	if got := kt.MetricValue(t, reg, "kapkan_rules_reloads_total", map[string]string{"result": "success"}); got != swaps {
		t.Errorf("successful reloads %v, want %d", got, swaps)
	}
	// The replaced sets are unreachable now: their modules are released,
	// and only the running set's stays open.
	deadline := time.Now().Add(10 * time.Second)
	for r.wasm.OpenModules() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d modules open, want the running set's 1", r.wasm.OpenModules())
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if got := kt.MetricValue(t, reg, "kapkan_wasm_modules_open", nil); got != 1 {
		t.Errorf("kapkan_wasm_modules_open = %v", got)
	}
	// And the running set still works.
	f := wsdFeatures(10)
	if v, err := r.Set().Classify(&f); err != nil || !slices.Equal(v.Labels, want[swaps%2]) {
		t.Errorf("after the swaps: %+v %v", v, err)
	}
}

// TestRulesChecksumCoversModules: a rebuilt module is a change the watcher
// reloads, like an edited rule file.
func TestRulesChecksumCoversModules(t *testing.T) {
	dir := t.TempDir()
	r := &ruleRuntime{dirs: []string{dir}}
	if err := os.WriteFile(filepath.Join(dir, "m.wasm"), []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := r.checksum()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "m.wasm"), []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := r.checksum(); a == b {
		t.Error("the checksum ignores .wasm files")
	}
}
