// Package daemontest starts a daemon for a test and sends it traffic.
package daemontest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/daemon"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/ingest/demo"
	"github.com/kapkan-io/kapkan/internal/testutil"
)

// baseConfig is what the daemon tests share: sFlow on loopback, a 2 s
// window and cool-down, 203.0.113.0/24 protected at 20 000 pps incoming,
// the API on loopback with open reads and one operate token (Token, read
// from a file).
const baseConfig = `ingest:
  sflow: {listen: "127.0.0.1:0", workers: 1}
  netflow: {listen: ""}
detection: {window: 2s, cooldown: 2s}
hostgroups:
  - name: customers
    prefixes: [203.0.113.0/24]
    thresholds:
      incoming: {pps: 20000}
api:
  listen: "127.0.0.1:0"
  open_read: true
  tokens: [{name: test, scope: operate, token_file: %q}]
`

// Token is the operate token of the shared test configuration.
const Token = "daemontest-operate-token"

// Config is the shared test configuration with extra YAML appended (for
// instance a mitigation section from BGPMitigation); without a mitigation
// section it keeps no state file.
func Config(t testing.TB, extra string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(ConfigYAML(t, extra)))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// ConfigYAML is the text of Config, for a daemon run in a process of its
// own; the token file it names is in the test's temporary directory.
func ConfigYAML(t testing.TB, extra string) string {
	t.Helper()
	tok := filepath.Join(t.TempDir(), "api.token")
	if err := os.WriteFile(tok, []byte(Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(extra, "store:") {
		// The history in the test's own directory, never the default one.
		extra += fmt.Sprintf("store: {path: %q}\n", filepath.Join(t.TempDir(), "history"))
	}
	if !strings.Contains(extra, "mitigation:") {
		// Never the default state file: a test must not leave actions in
		// force for the next one (or the machine) to restore.
		extra += "mitigation: {state_file: \"\"}\n"
	}
	return fmt.Sprintf(baseConfig, tok) + extra
}

// BGPMitigation is a live (dry_run: false) mitigation section peering with
// a router on loopback at port (Kapkan AS 65010, the router AS 65000,
// IPv4 unicast and FlowSpec), keeping its state in stateFile ("" for
// none), with allow-listed prefixes.
func BGPMitigation(port int, stateFile string, allow ...string) string {
	return fmt.Sprintf(`dry_run: false
mitigation:
  allowlist: [%s]
  state_file: %q
  bgp:
    asn: 65010
    router_id: 192.0.2.10
    peers:
      - address: 127.0.0.1
        port: %d
        asn: 65000
        families: [ipv4-unicast, ipv4-flowspec]
`, strings.Join(allow, ", "), stateFile, port)
}

// Start builds and runs a daemon logging JSON into the returned lines,
// with the configuration read from path ("" for none: no reload); it is
// stopped when the test ends.
func Start(t *testing.T, cfg *config.Config, path string) (*daemon.Daemon, *testutil.LogLines) {
	t.Helper()
	logs := &testutil.LogLines{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	d, err := daemon.New(cfg, daemon.Deps{Logger: log, ConfigPath: path})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return d, logs
}

// SendAttack sends a generated attack as sFlow to a listener, paced in
// real time, and returns the connection (closed when the test ends).
func SendAttack(t *testing.T, to netip.AddrPort, kind demo.Kind, victim netip.Addr, dur time.Duration, seed uint64) *net.UDPConn {
	t.Helper()
	return SendAttackPPS(t, to, kind, victim, 100_000, dur, seed)
}

// SendAttackPPS is SendAttack at pps packets per second.
func SendAttackPPS(t *testing.T, to netip.AddrPort, kind demo.Kind, victim netip.Addr, pps int, dur time.Duration, seed uint64) *net.UDPConn {
	t.Helper()
	return SendScenario(t, to, demo.Scenario{Format: flow.FormatSFlow5, SamplingRate: 100,
		Attacks:  []demo.Attack{{Kind: kind, Target: victim, PPS: pps, Duration: dur}},
		Duration: dur, Agent: netip.MustParseAddr("127.0.0.1"), Seed: seed})
}

// SendScenario sends a generated scenario (for instance an attack given by
// a demo.Shape) to a listener, paced in real time, and returns the
// connection (closed when the test ends).
func SendScenario(t *testing.T, to netip.AddrPort, s demo.Scenario) *net.UDPConn {
	t.Helper()
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	dgs, err := s.Generate()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, dg := range dgs {
		if wait := time.Until(start.Add(dg.At)); wait > 0 {
			time.Sleep(wait)
		}
		if _, err := conn.Write(dg.Payload); err != nil {
			t.Fatal(err)
		}
	}
	return conn
}
