package daemon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	kt "github.com/kapkan-io/kapkan/internal/testutil"
	"github.com/kapkan-io/kapkan/rules/wasm"
)

// TestShadowRulesHotReload: without a directory there is no shadow set; a
// configuration reload that names one brings it in; an edit of its files
// is picked up by the watcher; a broken edit keeps the running shadow set
// and shows in kapkan_shadow_last_reload_successful; a reload that names
// no directory any more turns it off. No reload of it is published.
func TestShadowRulesHotReload(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) {
		if err := os.WriteFile(filepath.Join(dir, "next.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("kapkan_rules: 1\nrules:\n  - name: next-udp\n    match: udp_share > 0.5\n    labels: [next-udp]\n")
	logs := &kt.LogLines{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	reg := prometheus.NewRegistry()
	r, err := newShadowRuntime(nil, log, reg, wasm.NewHost(log))
	if err != nil {
		t.Fatal(err)
	}
	if r.Set() != nil {
		t.Fatal("a shadow set without a directory")
	}
	if err := r.reloadDirs([]string{dir}, "test"); err != nil {
		t.Fatal(err)
	}
	first := r.Set()
	if first == nil || !slices.Contains(first.Rules(), "next-udp") {
		t.Fatalf("shadow set after naming its directory: %v", first)
	}
	write("kapkan_rules: 1\nrules:\n  - name: next-udp\n    match: udp_share >\n")
	if err := r.Reload("test"); err == nil || r.Set() != first {
		t.Fatalf("broken shadow file: err %v, running set replaced: %v", err, r.Set() != first)
	}
	if got := testutil.ToFloat64(r.metrics.lastOK); got != 0 {
		t.Errorf("kapkan_shadow_last_reload_successful = %v after a broken edit", got)
	}
	write("kapkan_rules: 1\nrules:\n  - name: next-udp-2\n    match: udp_share > 0.6\n    labels: [next-udp]\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = r.Watch(ctx, func() time.Duration { return 20 * time.Millisecond }) }()
	for deadline := time.Now().Add(5 * time.Second); !slices.Contains(r.Set().Rules(), "next-udp-2"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the watcher did not load the fixed shadow file")
		}
	}
	if got := testutil.ToFloat64(r.metrics.lastOK); got != 1 {
		t.Errorf("kapkan_shadow_last_reload_successful = %v after the fix", got)
	}
	cancel()
	if err := r.reloadDirs(nil, "test"); err != nil || r.Set() != nil {
		t.Fatalf("no directory any more: err %v, set %v", err, r.Set())
	}
	if n := kt.MetricValue(t, reg, "kapkan_shadow_reloads_total", map[string]string{"result": "success"}); n < 3 {
		t.Errorf("kapkan_shadow_reloads_total{result=success} = %v, want 3", n)
	}
}
