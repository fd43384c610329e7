package daemon_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/daemon/daemontest"
	"github.com/kapkan-io/kapkan/ingest/demo"
	"github.com/kapkan-io/kapkan/internal/testutil"
)

const reloadConfigText = `ingest:
  sflow: {listen: "127.0.0.1:0", workers: 1}
  netflow: {listen: ""}
detection: {window: 2s, cooldown: 2s}
hostgroups:
  - name: customers
    prefixes: [203.0.113.0/24]
    thresholds:
      incoming: {pps: PPS}
api:
  listen: "127.0.0.1:0"
mitigation:
  state_file: ""
store: {path: ""}
`

// TestConfigReloadOnSIGHUP: a flood of 30 000 pps runs under a threshold
// of 500 000; the threshold is lowered to 20 000 in the file and the
// process gets SIGHUP: the running flood is detected without a restart,
// and at once: its window was kept. (30 000 pps is under the fast trip's
// twice 20 000 within a second, so only the window can trip it; had the
// reload dropped the window, 40 000 packets would take 1.3 s to gather
// again.)
// Then a broken file: the reload fails, says where, and the running
// configuration goes on.
func TestConfigReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kapkan.yaml")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(strings.Replace(reloadConfigText, "PPS", "500000", 1))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d, logs := daemontest.Start(t, cfg, path)
	sflow := d.FlowAddrs()[0]
	done := make(chan struct{})
	go func() {
		defer close(done)
		daemontest.SendAttackPPS(t, sflow, demo.UDPFlood, netip.MustParseAddr("203.0.113.9"), 30_000, 5*time.Second, 7)
	}()
	time.Sleep(2 * time.Second)
	if logs.Find("attack detected") != nil {
		t.Fatal("detected under the old threshold")
	}
	write(strings.Replace(reloadConfigText, "PPS", "20000", 1))
	hup := time.Now()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var detected map[string]any
	for deadline := time.Now().Add(5 * time.Second); detected == nil && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		detected = logs.Find("attack detected")
	}
	if detected == nil {
		t.Fatalf("not detected after the reload; log:\n%s", logs.All())
	}
	t.Logf("detected %v after SIGHUP", time.Since(hup).Round(time.Millisecond))
	var reloaded map[string]any
	for deadline := time.Now().Add(5 * time.Second); reloaded == nil && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		reloaded = logs.Find("config reloaded")
	}
	if reloaded == nil || !strings.Contains(logs.All(), `"applied":["hostgroups"]`) {
		t.Fatalf("no config reloaded line naming hostgroups; log:\n%s", logs.All())
	}
	// Detection follows the engine's reconfiguration at the next record;
	// the reload's line comes once the rest is applied.
	at := func(line map[string]any) time.Time {
		ts, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(line["time"]))
		return ts
	}
	if gap := at(detected).Sub(at(reloaded)); gap > 500*time.Millisecond || gap < -500*time.Millisecond {
		t.Errorf("detected %v from the reload: the window was not kept", gap)
	}
	<-done

	write("hostgroups:\n  - name: customers\n    prefixes: [203.0.113.0/24\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var failed map[string]any
	for deadline := time.Now().Add(5 * time.Second); failed == nil && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		failed = logs.Find("config reload failed, keeping the running config")
	}
	if failed == nil {
		t.Fatalf("no failed reload line; log:\n%s", logs.All())
	}
	if !strings.Contains(logs.All(), "kapkan.yaml:") {
		t.Errorf("the failure does not say where: %v", failed)
	}
	if v := testutil.MetricValue(t, d.Registry(), "kapkan_config_last_reload_successful", nil); v != 0 {
		t.Errorf("kapkan_config_last_reload_successful = %v after a failed reload", v)
	}
	if d.Config().Hostgroups[0].Thresholds.Incoming.PPS != 20000 {
		t.Errorf("running threshold %d after a failed reload, want 20000 kept", d.Config().Hostgroups[0].Thresholds.Incoming.PPS)
	}
}
