package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/ingest/demo"
)

// syncBuffer collects log lines written from several goroutines.
type syncBuffer struct {
	mu    sync.Mutex
	lines []string
	part  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.part.Write(p)
	s := b.part.String()
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			break
		}
		b.lines = append(b.lines, s[:i])
		s = s[i+1:]
	}
	b.part.Reset()
	b.part.WriteString(s)
	return len(p), nil
}

func (b *syncBuffer) all() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}

func (b *syncBuffer) find(msg string) map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.lines {
		var j map[string]any
		if json.Unmarshal([]byte(l), &j) == nil && j["msg"] == msg {
			return j
		}
	}
	return nil
}

// TestDaemonDetectsAndServesMetrics runs the daemon on loopback ports,
// sends it a generated flood over real sFlow datagrams, and checks the
// "attack detected" log line, /healthz and /metrics.
func TestDaemonDetectsAndServesMetrics(t *testing.T) {
	cfg, err := config.Parse("test.yaml", []byte(`
ingest:
  sflow: {listen: "127.0.0.1:0", workers: 2}
  netflow: {listen: "127.0.0.1:0", workers: 1}
detection: {window: 2s, cooldown: 2s}
hostgroups:
  - name: customers
    prefixes: [203.0.113.0/24]
    thresholds:
      incoming: {pps: 20000}
api:
  listen: "127.0.0.1:0"
mitigation:
  state_file: ""
`))
	if err != nil {
		t.Fatal(err)
	}
	d, logs := startDaemon(t, cfg)

	var sflowAddr netip.AddrPort
	for _, l := range d.listeners {
		if strings.Contains(l.Addr().String(), "127.0.0.1") && sflowAddr == (netip.AddrPort{}) {
			sflowAddr = l.Addr()
		}
	}
	conn := sendAttack(t, sflowAddr, demo.SYNFlood, netip.MustParseAddr("203.0.113.5"), 4*time.Second, 3)
	var detected map[string]any
	// One garbage datagram: counted as a decode error, nothing else.
	if _, err := conn.Write([]byte("garbage, not flow telemetry")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for detected == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		detected = logs.find("attack detected")
	}
	if detected == nil {
		t.Fatalf("no \"attack detected\" line; log:\n%s", strings.Join(logs.lines, "\n"))
	}
	if detected["target"] != "203.0.113.5/32" || detected["direction"] != "incoming" || detected["hostgroup"] != "customers" ||
		detected["trigger"] != "pps" || detected["level"] != "INFO" {
		t.Errorf("attack detected line: %v", detected)
	}
	api := "http://" + d.httpLn.Addr().String()
	if body := get(t, api+"/healthz"); !strings.Contains(body, "ok") {
		t.Errorf("/healthz: %s", body)
	}
	metrics := get(t, api+"/metrics")
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
	for logs.find("attack ended") == nil && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if logs.find("attack ended") == nil {
		t.Error("no \"attack ended\" line after the flood stopped")
	}
}

// sendAttack sends a generated attack as sFlow to a listener, paced in
// real time, and returns the connection (closed when the test ends).
func sendAttack(t *testing.T, to netip.AddrPort, kind demo.Kind, victim netip.Addr, dur time.Duration, seed uint64) *net.UDPConn {
	t.Helper()
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s := demo.Scenario{Format: flow.FormatSFlow5, SamplingRate: 100,
		Attacks:  []demo.Attack{{Kind: kind, Target: victim, PPS: 100_000, Duration: dur}},
		Duration: dur, Agent: netip.MustParseAddr("127.0.0.1"), Seed: seed}
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

// startDaemon builds and runs a daemon logging JSON into the returned
// buffer; it is stopped (and its BGP speaker closed) when the test ends.
func startDaemon(t *testing.T, cfg *config.Config) (*daemon, *syncBuffer) {
	t.Helper()
	return startDaemonFrom(t, cfg, "")
}

// startDaemonFrom is startDaemon for a configuration read from path, which
// a reload reads again.
func startDaemonFrom(t *testing.T, cfg *config.Config, path string) (*daemon, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	d, err := newDaemon(cfg, newLogger(logs, "info", "json"))
	if err != nil {
		t.Fatal(err)
	}
	d.configPath = path
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		d.mit.close()
	})
	return d, logs
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = io.Copy(&b, bufio.NewReader(resp.Body))
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %s", url, resp.Status)
	}
	return b.String()
}

func TestDemoSendsOnlyToLoopback(t *testing.T) {
	for _, tc := range []struct {
		listen, want string
		ok           bool
	}{
		{":6343", "127.0.0.1:6343", true},
		{"0.0.0.0:6343", "127.0.0.1:6343", true},
		{"127.0.0.1:7000", "127.0.0.1:7000", true},
		{"[::1]:7000", "[::1]:7000", true},
		{"[::]:7000", "[::1]:7000", true},
		{"192.0.2.10:6343", "", false},
		{"", "", false},
	} {
		got, err := demoDestination(tc.listen)
		if (err == nil) != tc.ok || (tc.ok && got.String() != tc.want) {
			t.Errorf("%q: got %v, %v; want %q ok=%v", tc.listen, got, err, tc.want, tc.ok)
		}
	}
}

func TestDemoHostgroup(t *testing.T) {
	cfg := config.Default()
	addDemoHostgroup(cfg)
	if len(cfg.Hostgroups) != 1 || cfg.Hostgroups[0].Prefixes[0] != demoPrefix {
		t.Fatalf("hostgroups %+v", cfg.Hostgroups)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	addDemoHostgroup(cfg) // already covered: not added twice
	if len(cfg.Hostgroups) != 1 {
		t.Fatal("demo hostgroup added twice")
	}
}
