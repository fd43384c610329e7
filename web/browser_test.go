package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/daemon/daemontest"
	"github.com/kapkan-io/kapkan/ingest"
	"github.com/kapkan-io/kapkan/internal/testutil"
)

// The capture the browser test plays, and the attack it holds.
const (
	capture       = "testdata/captures/netflow9-dns-amplification"
	captureTarget = "203.0.113.20"
	captureLabels = "amplification,dns-amplification"
)

// TestDashboardInBrowser drives the dashboard in Debian's chromium
// (through playwright-core, test/dashboard.test.mjs) against a real daemon
// fed a testdata capture: sign-in with read and operate tokens, the
// attack appearing live with its labels, the dry-run banner, a manual ban
// and its refusal, no ban button for a read token, a broken rule file's
// reload error, keyboard navigation, and screenshots of every page at
// 1440×900 and 390×844 in bin/screenshots (or $KAPKAN_SHOTS).
func TestDashboardInBrowser(t *testing.T) {
	root := testutil.RepoRoot(t)
	for _, need := range []struct{ path, fix string }{
		{"/usr/bin/chromium", "apt-get install chromium (make deps does)"},
		{filepath.Join(root, "web/node_modules/playwright-core/package.json"), "npm ci --prefix web (make deps does)"},
	} {
		if _, err := os.Stat(need.path); err != nil {
			t.Fatalf("the browser test needs %s: %v; %s", need.path, err, need.fix)
		}
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("the browser test needs node: %v", err)
	}

	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const readToken, operateToken = "browser-read-token-0123", "browser-operate-token-4567"
	rules := filepath.Join(dir, "rules")
	write("rules/ops.yaml", "kapkan_rules: 1\nrules:\n  - name: ops-udp\n    match: udp_share > 0.99\n    labels: [ops-udp]\n")
	capCfg, err := os.ReadFile(filepath.Join(root, capture, "kapkan.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	body := string(capCfg) + fmt.Sprintf(`ingest:
  sflow: {listen: ""}
  netflow: {listen: "127.0.0.1:0", workers: 1}
rules: {dirs: [%q]}
api:
  listen: "127.0.0.1:0"
  open_read: false
  tokens:
    - {name: noc, scope: read, token_file: %q}
    - {name: oncall, scope: operate, token_file: %q}
store: {path: %q}
mitigation: {state_file: ""}
`, rules, write("read.token", readToken), write("operate.token", operateToken), filepath.Join(dir, "history"))
	path := write("kapkan.yaml", body)
	cfg, err := config.Parse(path, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	d, _ := daemontest.Start(t, cfg, path)

	shots := os.Getenv("KAPKAN_SHOTS")
	if shots == "" {
		shots = filepath.Join(root, "bin", "screenshots")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "test/dashboard.test.mjs")
	cmd.Dir = filepath.Join(root, "web")
	cmd.Env = append(os.Environ(),
		"KAPKAN_URL=http://"+d.APIAddr().String(),
		"KAPKAN_READ_TOKEN="+readToken, "KAPKAN_OPERATE_TOKEN="+operateToken,
		"KAPKAN_RULES_DIR="+rules, "KAPKAN_SHOTS="+shots,
		"KAPKAN_TARGET="+captureTarget, "KAPKAN_LABELS="+captureLabels)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	var result map[string]float64
	sc := bufio.NewScanner(stdout)
	sent := make(chan error, 1)
	for sc.Scan() {
		line := sc.Text()
		t.Log(line)
		switch {
		case line == "READY":
			go func() {
				sent <- sendCapture(ctx, d.FlowAddrs()[0].String(), filepath.Join(root, capture, "capture.pcap"))
			}()
			if _, err := io.WriteString(stdin, "GO\n"); err != nil {
				t.Fatal(err)
			}
		case strings.HasPrefix(line, "RESULT "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "RESULT ")), &result); err != nil {
				t.Errorf("result line: %v", err)
			}
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the browser test failed: %v\n%s", err, stderr.String())
	}
	select {
	case err := <-sent:
		if err != nil {
			t.Errorf("send the capture: %v", err)
		}
	default:
		t.Error("the capture was never sent")
	}
	if result == nil {
		t.Fatal("no RESULT line")
	}
	t.Logf("dashboard: %.0f files, %.1f KiB transferred (gzip), %.1f KiB decoded; sign-in page first contentful paint %.0f ms; overview first paint %.0f ms, rendered with data %.0f ms; attack shown %.0f ms after the capture started",
		result["files"], result["transfer_bytes"]/1024, result["decoded_bytes"]/1024, result["first_contentful_paint_ms"],
		result["overview_first_paint_ms"], result["overview_rendered_ms"], result["attack_shown_after_send_ms"])
	// The weight budget: everything the sign-in page loads, gzipped.
	if result["transfer_bytes"] > 64<<10 {
		t.Errorf("the dashboard weighs %.0f bytes transferred, over the 64 KiB budget", result["transfer_bytes"])
	}
	t.Logf("screenshots in %s", shots)
}

// sendCapture plays the capture to the daemon's NetFlow listener at five
// times its pace (50 s of capture in 10 s).
func sendCapture(ctx context.Context, to, pcap string) error {
	s, err := ingest.NewSender(ingest.SendOptions{Target: mustAddrPort(to), Speed: 5})
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Send(ctx, pcap)
}

func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
