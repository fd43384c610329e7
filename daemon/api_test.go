package daemon_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/daemon/daemontest"
	"github.com/kapkan-io/kapkan/ingest/demo"
	"github.com/kapkan-io/kapkan/internal/testutil"
)

// TestDaemonAPI reads a live daemon through its API while a flood runs:
// the target tops the traffic, the exporter shows with its sampling, the
// attack is active with its verdict and mitigation history, the event
// stream carries it, and BGP (no peer) has no session.
func TestDaemonAPI(t *testing.T) {
	d, logs := daemontest.Start(t, daemontest.Config(t, ""), "")
	api := "http://" + d.APIAddr().String()
	// Follow the event stream from the start.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, api+"/api/v1/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	kinds := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if k, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				kinds <- k
			}
		}
		close(kinds)
	}()

	daemontest.SendAttack(t, d.FlowAddrs()[0], demo.DNSAmp, netip.MustParseAddr("203.0.113.5"), 3*time.Second, 5)
	var sawStart bool
	for !sawStart {
		select {
		case k, ok := <-kinds:
			if !ok {
				t.Fatal("event stream closed before attack_started")
			}
			sawStart = k == "attack_started"
		case <-ctx.Done():
			t.Fatalf("no attack_started on the event stream; log:\n%s", logs.All())
		}
	}

	var traffic struct {
		Top struct {
			Incoming []struct {
				Target string  `json:"target"`
				PPS    float64 `json:"pps"`
			} `json:"incoming"`
		} `json:"top"`
		Hostgroups []struct {
			Name string `json:"name"`
		} `json:"hostgroups"`
	}
	getJSON(t, api+"/api/v1/traffic?limit=5&by=pps", &traffic)
	if len(traffic.Top.Incoming) == 0 || traffic.Top.Incoming[0].Target != "203.0.113.5" || traffic.Top.Incoming[0].PPS <= 0 {
		t.Errorf("traffic: %+v, want 203.0.113.5 on top", traffic)
	}
	if len(traffic.Hostgroups) != 1 || traffic.Hostgroups[0].Name != "customers" {
		t.Errorf("hostgroups: %+v", traffic.Hostgroups)
	}

	var exporters struct {
		Exporters []struct {
			Address  string   `json:"address"`
			Formats  []string `json:"formats"`
			Sampling []struct {
				Rate   int    `json:"rate"`
				Source string `json:"source"`
			} `json:"sampling"`
			RecordsTotal int `json:"records_total"`
		} `json:"exporters"`
	}
	getJSON(t, api+"/api/v1/exporters", &exporters)
	if len(exporters.Exporters) != 1 || exporters.Exporters[0].Address != "127.0.0.1" ||
		strings.Join(exporters.Exporters[0].Formats, ",") != "sflow5" || exporters.Exporters[0].RecordsTotal == 0 ||
		len(exporters.Exporters[0].Sampling) == 0 || exporters.Exporters[0].Sampling[0].Rate != 100 ||
		exporters.Exporters[0].Sampling[0].Source != "sample" {
		t.Errorf("exporters: %+v", exporters)
	}

	var attacks struct {
		Active []struct {
			Target      string            `json:"target"`
			Labels      []string          `json:"labels"`
			Vector      map[string]any    `json:"vector"`
			Mitigations []json.RawMessage `json:"mitigations"`
		} `json:"active"`
	}
	waitFor(t, 5*time.Second, func() bool {
		getJSON(t, api+"/api/v1/attacks", &attacks)
		return len(attacks.Active) == 1 && len(attacks.Active[0].Mitigations) > 0
	}, func() string { return "no active attack with a mitigation; log:\n" + logs.All() })
	a := attacks.Active[0]
	if a.Target != "203.0.113.5/32" || !strings.Contains(strings.Join(a.Labels, ","), "dns-amplification") || a.Vector["protocol"] != "udp" {
		t.Errorf("attack: %+v", a)
	}

	var bgp struct {
		Sessions []any `json:"sessions"`
	}
	getJSON(t, api+"/api/v1/bgp", &bgp)
	if bgp.Sessions == nil || len(bgp.Sessions) != 0 {
		t.Errorf("bgp without peers: %+v, want an empty list", bgp)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(testutil.Get(t, url)), v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}
