package daemon_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/daemon/daemontest"
	"github.com/kapkan-io/kapkan/ingest/demo"
	"github.com/kapkan-io/kapkan/internal/testutil"
)

// TestDaemonDetectsAndServesMetrics runs the daemon on loopback ports,
// sends it a generated flood over real sFlow datagrams, and checks the
// "attack detected" log line, /healthz and /metrics.
func TestDaemonDetectsAndServesMetrics(t *testing.T) {
	d, logs := daemontest.Start(t, daemontest.Config(t, ""), "")

	conn := daemontest.SendAttack(t, d.FlowAddrs()[0], demo.SYNFlood, netip.MustParseAddr("203.0.113.5"), 4*time.Second, 3)
	var detected map[string]any
	// One garbage datagram: counted as a decode error, nothing else.
	if _, err := conn.Write([]byte("garbage, not flow telemetry")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for detected == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		detected = logs.Find("attack detected")
	}
	if detected == nil {
		t.Fatalf("no \"attack detected\" line; log:\n%s", logs.All())
	}
	if detected["target"] != "203.0.113.5/32" || detected["direction"] != "incoming" || detected["hostgroup"] != "customers" ||
		detected["trigger"] != "pps" || detected["level"] != "INFO" {
		t.Errorf("attack detected line: %v", detected)
	}
	api := "http://" + d.APIAddr().String()
	if body := testutil.Get(t, api+"/healthz"); !strings.Contains(body, "ok") {
		t.Errorf("/healthz: %s", body)
	}
	metrics := testutil.Get(t, api+"/metrics")
	if !strings.Contains(metrics, `kapkan_ingest_decode_errors_total{exporter="127.0.0.1",format="unknown",reason="unknown_version"} 1`) {
		t.Error("the garbage datagram was not counted as a decode error")
	}
	for _, name := range []string{"kapkan_ingest_datagrams_total", "kapkan_ingest_records_total", "kapkan_ingest_decode_errors_total",
		"kapkan_ingest_unknown_sampling_total", "kapkan_ingest_sequence_gaps_total", "kapkan_ingest_socket_drops_total",
		"kapkan_engine_tracked_addresses", "kapkan_engine_active_attacks", "kapkan_engine_dropped_records_total", "kapkan_engine_queue_depth"} {
		if !strings.Contains(metrics, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	// The end follows once the flood stopped for window + cool-down.
	deadline = time.Now().Add(15 * time.Second)
	for logs.Find("attack ended") == nil && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if logs.Find("attack ended") == nil {
		t.Error("no \"attack ended\" line after the flood stopped")
	}
}
