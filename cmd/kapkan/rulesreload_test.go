package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
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
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	r, err := newRuleRuntime([]string{dir}, newLogger(logs, "info", "json"), reg)
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
		if got := testutil.ToFloat64(r.lastOK); got != 0 {
			t.Errorf("%s: kapkan_rules_last_reload_successful = %v", broken.name, got)
		}
	}
	if !strings.Contains(strings.Join(logs.lines, "\n"), `"rule":"ops-udp"`) {
		t.Error("the failure log does not name the rule")
	}
	// The watcher picks up a fixed file by itself.
	write("kapkan_rules: 1\nrules:\n  - name: ops-udp-2\n    match: udp_share > 0.6\n    labels: [ops-udp]\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = r.Watch(ctx, 20*time.Millisecond) }()
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(r.Set().Rules(), "ops-udp-2") {
		if time.Now().After(deadline) {
			t.Fatal("the fixed file was not loaded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := testutil.ToFloat64(r.lastOK); got != 1 {
		t.Errorf("kapkan_rules_last_reload_successful = %v after the fix", got)
	}
	if got := testutil.ToFloat64(r.reloads.WithLabelValues("failure")); got != 4 {
		t.Errorf("failed reloads = %v, want 4", got)
	}
}
