package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHistorySurvivesSIGKILL (issue #15): an attack detected by `kapkan
// run` is still listed by GET /api/v1/attacks after the daemon is killed
// with SIGKILL and started again on the same history.
func TestHistorySurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	base := fmt.Sprintf(`detection: {window: 2s, cooldown: 2s}
hostgroups:
  - name: customers
    prefixes: [203.0.113.0/24]
    thresholds:
      incoming: {pps: 50000}
api: {open_read: true}
store: {path: %q}
`, dir)
	d := startDaemon(t, base)
	capture := filepath.Join(root, "testdata/captures/sflow-udp-flood/capture.pcap")
	go func() { _ = d.send(capture, "sflow5", 6, 30*time.Second) }()
	if !d.waitFor(30*time.Second, func() bool { return strings.Contains(strings.Join(d.lines, "\n"), `"msg":"attack detected"`) }) {
		t.Fatalf("no attack detected; log:\n%s", d.log())
	}
	// The history writer flushes within a fraction of a second.
	time.Sleep(time.Second)
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.done

	again := startDaemon(t, base)
	var got struct {
		Attacks []struct {
			Target string   `json:"target"`
			Labels []string `json:"labels"`
		} `json:"attacks"`
	}
	resp, err := http.Get("http://" + again.api + "/api/v1/attacks?from=24h")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || json.Unmarshal(body, &got) != nil {
		t.Fatalf("history after the restart: %d %s", resp.StatusCode, body)
	}
	if len(got.Attacks) != 1 || got.Attacks[0].Target != "203.0.113.10/32" || !strings.Contains(strings.Join(got.Attacks[0].Labels, ","), "udp-flood") {
		t.Fatalf("history after SIGKILL and a restart: %s, want the UDP flood on 203.0.113.10", body)
	}
}
