package rules_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/internal/testutil"
	"github.com/kapkan-io/kapkan/rules"
	"github.com/kapkan-io/kapkan/rules/wasm"
	"github.com/kapkan-io/kapkan/rules/wasm/wasmtest"
)

// stoppedClock is a breaker clock that never moves: a suspension lasts for
// the whole test.
func stoppedClock() time.Time { return time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC) }

// breakerHost is a host with its own registry whose suspensions never end.
func breakerHost(t *testing.T) (*wasm.Host, *prometheus.Registry) {
	t.Helper()
	h := wasm.NewHostWith(slog.New(slog.NewTextHandler(io.Discard, nil)), wasm.Breaker{Now: stoppedClock})
	reg := prometheus.NewRegistry()
	reg.MustRegister(h.Collectors()...)
	return h, reg
}

func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	return testutil.MetricValue(t, reg, name, labels)
}

// TestClassifyHangingModules is the case: three rules name a
// module that never returns, and ten attacks are classified at once (as
// the verdict path's workers would). Every verdict comes back within the
// budget with the expr rule's labels, each module is suspended after its
// first round of failures and counted, and then its rules are skipped at
// once.
func TestClassifyHangingModules(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout string
		budget  time.Duration
	}{
		{"module timeout above the budget", "1s", 500 * time.Millisecond},
		{"module timeout below the budget", "150ms", 500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			wasmtest.Write(t, "bad/loop", dir, "loop.wasm")
			writeFile(t, filepath.Join(dir, "ops.yaml"), `kapkan_rules: 1
rules:
  - {name: hang-a, wasm: loop.wasm, limits: {timeout: `+tc.timeout+`}}
  - {name: hang-b, wasm: loop.wasm, limits: {timeout: `+tc.timeout+`}}
  - {name: hang-c, wasm: loop.wasm, limits: {timeout: `+tc.timeout+`}}
  - name: ops-udp
    match: udp_share > 0.9
    labels: [ops-udp]
    vector: {protocol: udp}
`)
			host, reg := breakerHost(t)
			set, err := compileDir(t, host, dir)
			if err != nil {
				t.Fatal(err)
			}
			modules := []string{"hang-a", "hang-b", "hang-c"}
			f := rules.Compute(wsdCandidate(10, 1000))
			// Each round suspends at least the first module not yet
			// suspended (it gets the whole budget); the fourth finds them
			// all suspended.
			const attacks = 10
			for round := 1; round <= 4; round++ {
				var wg sync.WaitGroup
				verdicts := make([]rules.Verdict, attacks)
				took := make([]time.Duration, attacks)
				errs := make([]error, attacks)
				for i := range attacks {
					wg.Add(1)
					go func() {
						defer wg.Done()
						ctx, cancel := context.WithTimeout(context.Background(), tc.budget)
						defer cancel()
						start := time.Now()
						verdicts[i], errs[i] = set.ClassifyContext(ctx, &f)
						took[i] = time.Since(start)
					}()
				}
				wg.Wait()
				t.Logf("round %d: slowest verdict %s", round, slices.Max(took))
				for i, v := range verdicts {
					if errs[i] != nil {
						t.Fatalf("round %d attack %d: %v", round, i, errs[i])
					}
					// The acceptance bound: every verdict within 1 s (the
					// budget plus slack for a busy machine).
					if took[i] >= time.Second {
						t.Errorf("round %d attack %d: classified in %s, want under 1s (budget %s)", round, i, took[i], tc.budget)
					}
					if !slices.Equal(v.Labels, []string{"ops-udp"}) || v.Vector.Protocol != "udp" {
						t.Errorf("round %d attack %d: verdict %+v, want the expr rule's", round, i, v)
					}
					var missing []string
					for _, u := range v.Unanswered {
						missing = append(missing, u.Rule)
						switch u.Reason {
						case rules.NoAnswerSuspended, rules.NoAnswerBudget, wasm.ResultTimeout, wasm.ResultBusy:
						default:
							t.Errorf("round %d attack %d: %s unanswered for %q", round, i, u.Rule, u.Reason)
						}
						if round == 4 && u.Reason != rules.NoAnswerSuspended {
							t.Errorf("round 4 attack %d: %s unanswered for %q, want suspended", i, u.Rule, u.Reason)
						}
					}
					if !slices.Equal(missing, modules) {
						t.Errorf("round %d attack %d: unanswered %v, want %v", round, i, missing, modules)
					}
					if round == 4 && took[i] > 300*time.Millisecond {
						t.Errorf("round 4 attack %d: %s with every module suspended", i, took[i])
					}
				}
				for _, m := range modules[:min(round, len(modules))] {
					if g := metric(t, reg, "kapkan_wasm_module_suspended", map[string]string{"module": m}); g != 1 {
						t.Errorf("after round %d: %s not suspended", round, m)
					}
				}
			}
			for _, m := range modules {
				if n := metric(t, reg, "kapkan_wasm_suspensions_total", map[string]string{"module": m}); n != 1 {
					t.Errorf("%s: %v suspensions counted, want 1", m, n)
				}
				if n := metric(t, reg, "kapkan_wasm_skipped_calls_total", map[string]string{"module": m, "reason": wasm.SkipSuspended}); n < attacks {
					t.Errorf("%s: %v calls skipped as suspended, want at least %d", m, n, attacks)
				}
			}
		})
	}
}

// TestClassifyBudget: once the budget is spent the remaining WASM rules
// are skipped (counted, named in the verdict) and every expr rule still
// answers.
func TestClassifyBudget(t *testing.T) {
	dir := t.TempDir()
	wasmtest.Write(t, "bad/loop", dir, "loop.wasm")
	wasmtest.Write(t, "conformance", dir, "conformance.wasm")
	writeFile(t, filepath.Join(dir, "ops.yaml"), `kapkan_rules: 1
rules:
  - {name: hang, wasm: loop.wasm, limits: {timeout: 1s}}
  - {name: answers, wasm: conformance.wasm, labels: [answered]}
  - name: ops-udp
    match: udp_share > 0.9
    labels: [ops-udp]
`)
	host, reg := breakerHost(t)
	set, err := compileDir(t, host, dir)
	if err != nil {
		t.Fatal(err)
	}
	f := rules.Compute(wsdCandidate(10, 1000))
	spent, cancel := context.WithCancel(context.Background())
	cancel()
	short, cancelShort := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelShort()
	for _, tc := range []struct {
		name       string
		ctx        context.Context
		labels     []string
		unanswered []rules.Unanswered
	}{
		{"budget spent before", spent, []string{"ops-udp"},
			[]rules.Unanswered{{Rule: "hang", Reason: rules.NoAnswerBudget}, {Rule: "answers", Reason: rules.NoAnswerBudget}}},
		{"budget spent by the first module", short, []string{"ops-udp"},
			[]rules.Unanswered{{Rule: "hang", Reason: wasm.ResultTimeout}, {Rule: "answers", Reason: rules.NoAnswerBudget}}},
		// Proof that the second module answers when it has time.
		{"no budget", context.Background(), []string{"answered", "conformance", "ops-udp"},
			[]rules.Unanswered{{Rule: "hang", Reason: wasm.ResultTimeout}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			v, err := set.ClassifyContext(tc.ctx, &f)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(v.Labels, tc.labels) || !slices.Equal(v.Unanswered, tc.unanswered) {
				t.Errorf("verdict %+v\nwant labels %v, unanswered %v", v, tc.labels, tc.unanswered)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("classified in %s", d)
			}
		})
	}
	if n := metric(t, reg, "kapkan_wasm_skipped_calls_total", map[string]string{"module": "answers", "reason": wasm.SkipBudget}); n != 2 {
		t.Errorf("%v budget skips of the second module counted, want 2", n)
	}
	if n := metric(t, reg, "kapkan_wasm_calls_total", map[string]string{"module": "answers", "result": wasm.ResultOK}); n != 1 {
		t.Errorf("%v calls of the second module, want 1", n)
	}
	// A skip for lack of budget is not the module's failure.
	if g := metric(t, reg, "kapkan_wasm_module_suspended", map[string]string{"module": "answers"}); g != 0 {
		t.Error("a module skipped for budget was suspended")
	}
}

// TestWASMPolicySuspended: a policy module whose decisions keep failing is
// suspended like a classifier; its Decide then returns ErrSuspended at
// once, which leaves the attack's action as it is.
func TestWASMPolicySuspended(t *testing.T) {
	dir := t.TempDir()
	wasmtest.Write(t, "conformance", dir, "conformance.wasm")
	writeFile(t, filepath.Join(dir, "ops.yaml"), `kapkan_rules: 1
ladders:
  - {name: nuke-policy, hostgroups: [a], wasm: conformance.wasm, config: {action: nuke}}
`)
	host, reg := breakerHost(t)
	set, err := compileDir(t, host, dir)
	if err != nil {
		t.Fatal(err)
	}
	f := rules.Compute(wsdCandidate(10, 1000))
	policy := set.Ladder("a", nil).Policy
	for i := range wasm.DefaultBreakerFailures {
		var ce *wasm.CallError
		if _, err := policy.Decide(rules.PolicyInput{Features: &f}); !errors.As(err, &ce) || ce.Result != wasm.ResultBadOutput {
			t.Fatalf("decision %d: %v, want a bad_output", i, err)
		}
	}
	start := time.Now()
	if _, err := policy.Decide(rules.PolicyInput{Features: &f}); !errors.Is(err, wasm.ErrSuspended) {
		t.Errorf("decision after %d failures: %v, want ErrSuspended", wasm.DefaultBreakerFailures, err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("a suspended policy took %s to refuse", d)
	}
	if g := metric(t, reg, "kapkan_wasm_module_suspended", map[string]string{"module": "nuke-policy"}); g != 1 {
		t.Error("the policy module is not shown as suspended")
	}
	if n := metric(t, reg, "kapkan_wasm_skipped_calls_total", map[string]string{"module": "nuke-policy", "role": "decide", "reason": wasm.SkipSuspended}); n != 1 {
		t.Errorf("%v suspended decisions counted, want 1", n)
	}
}
