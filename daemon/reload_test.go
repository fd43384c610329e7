package daemon_test

import (
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
`

// TestConfigReloadOnSIGHUP: a flood of 100 000 pps runs under a threshold
// of 500 000; the threshold is lowered to 20 000 in the file and the
// process gets SIGHUP: the running flood is detected without a restart.
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
		daemontest.SendAttack(t, sflow, demo.UDPFlood, netip.MustParseAddr("203.0.113.9"), 5*time.Second, 7)
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
	if r := logs.Find("config reloaded"); r == nil || !strings.Contains(logs.All(), `"applied":["hostgroups"]`) {
		t.Errorf("no config reloaded line naming hostgroups; log:\n%s", logs.All())
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
