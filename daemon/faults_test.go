package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/daemon"
	"github.com/kapkan-io/kapkan/daemon/daemontest"
	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/ingest/demo"
	"github.com/kapkan-io/kapkan/internal/testutil"
)

// detectsAndMitigates sends a DNS amplification to victim and waits for
// the attack and its (dry-run) mitigation on the daemon's event ring: the
// proof that detection and mitigation went on whatever else was failing.
func detectsAndMitigates(t *testing.T, d *daemon.Daemon, victim string, seed uint64) {
	t.Helper()
	rd := d.Events().NewReader("fault-test", d.Events().Last()+1)
	defer rd.Close()
	daemontest.SendAttack(t, d.FlowAddrs()[0], demo.DNSAmp, netip.MustParseAddr(victim), 3*time.Second, seed)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	target := netip.MustParsePrefix(victim + "/32")
	var started, announced bool
	for !started || !announced {
		e, err := rd.Next(ctx)
		if err != nil {
			t.Fatalf("attack on %s: started %v, mitigation announced %v within 15 s", victim, started, announced)
		}
		switch {
		case e.Kind == events.AttackStarted && e.Attack != nil && e.Attack.Target == target:
			started = true
		case e.Kind == events.MitigationAnnounced && e.Mitigation != nil && e.Mitigation.Target == target:
			announced = true
		}
	}
}

// historyHas tells whether the history API lists an attack on target.
func historyHas(t *testing.T, d *daemon.Daemon, target string) bool {
	var got struct {
		Attacks []struct {
			Target string `json:"target"`
		} `json:"attacks"`
	}
	resp, err := http.Get("http://" + d.APIAddr().String() + "/api/v1/attacks?from=1h")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		return false
	}
	for _, a := range got.Attacks {
		if a.Target == target {
			return true
		}
	}
	return false
}

// TestHistoryStoreUnavailable: the history store stops taking writes
// while an attack comes — ClickHouse stopped, or the embedded store's
// disk full (a 2 MiB tmpfs filled up). The daemon detects and mitigates as
// usual, the writer reports the store unavailable and counts the failed
// writes, and once the store is back (ClickHouse started again, the disk
// freed) the attack reaches the history with nothing dropped or lost.
func TestHistoryStoreUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup returns the store section of the configuration and the
		// functions that take the store away and give it back.
		setup func(t *testing.T) (store string, down, up func(), says string)
	}{
		{"clickhouse stopped", func(t *testing.T) (string, func(), func(), string) {
			ch := testutil.StartClickHouse(t)
			return fmt.Sprintf("store: {path: \"\", clickhouse: {dsn: %q}}\n", ch.DSN("kapkan_fault_test")),
				ch.Stop, func() { ch.Start(t) }, "connection refused"
		}},
		{"embedded disk full", func(t *testing.T) (string, func(), func(), string) {
			dir := smallDisk(t, "2m")
			filler := filepath.Join(dir, "filler")
			return fmt.Sprintf("store: {path: %q}\n", filepath.Join(dir, "history")),
				func() { fillDisk(t, filler) }, func() {
					if err := os.Remove(filler); err != nil {
						t.Fatal(err)
					}
				}, "the disk is full"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storeCfg, down, up, says := tc.setup(t)
			d, logs := daemontest.Start(t, daemontest.Config(t, storeCfg), "")
			metric := func(name string, labels map[string]string) float64 {
				return testutil.MetricValue(t, d.Registry(), name, labels)
			}
			detectsAndMitigates(t, d, "203.0.113.5", 5)
			waitFor(t, 15*time.Second, func() bool { return historyHas(t, d, "203.0.113.5/32") },
				func() string { return "the first attack is not in the history; log:\n" + logs.All() })

			down()
			detectsAndMitigates(t, d, "203.0.113.6", 6)
			waitFor(t, 30*time.Second, func() bool { return metric("kapkan_store_unavailable", nil) == 1 },
				func() string { return "kapkan_store_unavailable not 1 with the store down; log:\n" + logs.All() })
			if n := metric("kapkan_store_errors_total", map[string]string{"op": "events"}); n < 1 {
				t.Errorf("kapkan_store_errors_total{op=events} = %v with the store down", n)
			}
			if !strings.Contains(logs.All(), says) {
				t.Errorf("the log does not say %q:\n%s", says, logs.All())
			}
			up()
			waitFor(t, 30*time.Second, func() bool { return historyHas(t, d, "203.0.113.6/32") },
				func() string { return "the attack during the outage never reached the history; log:\n" + logs.All() })
			waitFor(t, 15*time.Second, func() bool { return metric("kapkan_store_unavailable", nil) == 0 },
				func() string { return "kapkan_store_unavailable still 1 with the store back" })
			for _, name := range []string{"kapkan_store_events_dropped_total", "kapkan_store_events_lost_total"} {
				if n := metric(name, nil); n != 0 {
					t.Errorf("%s = %v, want 0", name, n)
				}
			}
		})
	}
}

// smallDisk mounts a tmpfs of size (as mount(8) writes it) on a directory
// of the test's own, unmounted when the test ends. It needs root, as the
// test suite runs in CI; elsewhere it fails saying so.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("mounting a small tmpfs to fill needs root (run the tests as root, as make test in CI does)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs on %s: %v: %s", dir, err, out)
	}
	// Registered after TempDir's clean-up, so it runs first.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes path until its file system is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for range 1 << 10 { // at most 64 MiB: far more than the disks of these tests
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
	t.Fatal("wrote 64 MiB without filling the disk")
}

// TestNotifierHangs: one webhook endpoint accepts connections and never
// answers. Its deliveries time out and are counted, its queue stays
// bounded (the overflow dropped and counted), while the other webhook gets
// every event on time and the daemon goes on detecting and mitigating.
func TestNotifierHangs(t *testing.T) {
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // kept open, never read nor answered
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		hung.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	var (
		gotMu sync.Mutex
		got   []string
	)
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Event struct {
				Kind string `json:"kind"`
			} `json:"event"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		gotMu.Lock()
		got = append(got, body.Event.Kind)
		gotMu.Unlock()
	}))
	t.Cleanup(good.Close)
	received := func(kind string) int {
		gotMu.Lock()
		defer gotMu.Unlock()
		n := 0
		for _, k := range got {
			if k == kind {
				n++
			}
		}
		return n
	}

	const queue = 2
	cfg := daemontest.Config(t, fmt.Sprintf(`notify:
  - {name: hung, type: webhook, url: "http://%s/hook", timeout: 300ms, retries: 3, queue_size: %d, dry_run: true}
  - {name: good, type: webhook, url: %q, dry_run: true}
`, hung.Addr(), queue, good.URL+"/hook"))
	d, logs := daemontest.Start(t, cfg, "")
	metric := func(name string, labels map[string]string) float64 {
		return testutil.MetricValue(t, d.Registry(), name, labels)
	}
	victims := []string{"203.0.113.11", "203.0.113.12", "203.0.113.13"}
	for i, v := range victims {
		detectsAndMitigates(t, d, v, uint64(10+i))
	}
	waitFor(t, 15*time.Second, func() bool { return received("attack_started") == len(victims) },
		func() string { return fmt.Sprintf("the good webhook got %v; log:\n%s", got, logs.All()) })
	waitFor(t, 15*time.Second, func() bool {
		return metric("kapkan_notify_failed_total", map[string]string{"channel": "hung", "reason": "timeout"}) >= 1
	}, func() string { return "no timeout counted for the hung webhook; log:\n" + logs.All() })
	// Every event the hung channel was handed is in flight, queued,
	// failed or dropped: no more than one in flight and queue_size wait.
	sentGood := metric("kapkan_notify_sent_total", map[string]string{"channel": "good"})
	failed := metric("kapkan_notify_failed_total", map[string]string{"channel": "hung", "reason": "timeout"})
	dropped := metric("kapkan_notify_dropped_total", map[string]string{"channel": "hung", "reason": "queue_full"})
	if dropped == 0 {
		t.Errorf("nothing dropped for the hung webhook (queue_size %d, %v sent to the good one, %v failed)", queue, sentGood, failed)
	}
	if waiting := sentGood - failed - dropped; waiting > queue+1 {
		t.Errorf("hung webhook: %v events not yet failed nor dropped, more than one in flight and %d queued (good got %v, failed %v, dropped %v)",
			waiting, queue, sentGood, failed, dropped)
	}
	if n := metric("kapkan_notify_sent_total", map[string]string{"channel": "hung"}); n != 0 {
		t.Errorf("kapkan_notify_sent_total{channel=hung} = %v", n)
	}
	t.Logf("good webhook: %v sent; hung webhook: %v timed out, %v dropped", sentGood, failed, dropped)
}
