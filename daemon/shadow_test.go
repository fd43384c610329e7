package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/daemon/daemontest"
	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/ingest/demo"
	"github.com/kapkan-io/kapkan/internal/testutil"
)

// shadowRules is a shadow rule set that differs from the active one: it
// switches the built-in DNS rule off, names the attack otherwise, and
// blackholes it at once, where the active set's default ladder drops its
// vector with FlowSpec.
const shadowRules = `kapkan_rules: 1
disable: [dns-amplification]
rules:
  - name: shadow-dns
    description: UDP from port 53
    match: udp_share > 0.8 && src_port_share(53) > 0.5
    labels: [shadow-dns]
    vector: {protocol: udp, src_ports: [53]}
ladders:
  - name: shadow-blackhole
    labels: [shadow-dns]
    steps:
      - action: blackhole
`

// TestShadowRuleSetActsOnNothing is the case: a daemon peering
// with a real router runs a shadow rule set that differs from the active
// one. During a DNS amplification the shadow's verdict and would-be
// blackhole are recorded (the attack's shadow field in the API and the
// events, kapkan_shadow_* metrics), and nothing of it is acted on: the
// router receives only the active set's FlowSpec rule and no blackhole,
// the mitigation manager holds no blackhole, no event announces one, and
// the webhook is told only what the active set did.
func TestShadowRuleSetActsOnNothing(t *testing.T) {
	router := testutil.StartGoBGPD(t, testutil.GoBGPNeighbor{Address: "127.0.0.1", ASN: 65010,
		Families: []string{"ipv4-unicast", "ipv4-flowspec"}})
	var hookMu sync.Mutex
	var hooks []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		hookMu.Lock()
		hooks = append(hooks, m)
		hookMu.Unlock()
	}))
	defer hook.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "shadow.yaml"), []byte(shadowRules), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := daemontest.Config(t, daemontest.BGPMitigation(router.BGPPort, "")+fmt.Sprintf(`rules: {shadow_dirs: [%q]}
notify:
  - name: hook
    type: webhook
    url: %s
    events: [attack_started, attack_escalated, attack_ended, mitigation]
`, dir, hook.URL))
	d, logs := daemontest.Start(t, cfg, "")
	rd := d.Events().NewReader("test", 1)
	router.WaitEstablished("127.0.0.1", 30*time.Second)
	victim := netip.MustParseAddr("203.0.113.5")
	daemontest.SendAttack(t, d.FlowAddrs()[0], demo.DNSAmp, victim, 3*time.Second, 5)
	want := "[destination: 203.0.113.5/32][protocol: ==udp][source-port: ==53]"
	waitFor(t, 15*time.Second, func() bool { _, ok := router.AdjIn("127.0.0.1", "ipv4-flowspec")[want]; return ok },
		func() string { return "no FlowSpec rule at the router; log:\n" + logs.All() })

	// Every event until the attack ends.
	var evs []events.Event
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var id uint64
	for ended := false; !ended; {
		e, err := rd.Next(ctx)
		if err != nil {
			t.Fatalf("attack did not end: %v; log:\n%s", err, logs.All())
		}
		evs = append(evs, e)
		if e.Kind == events.AttackStarted {
			id = e.Attack.ID
		}
		ended = e.Kind == events.AttackEnded
	}

	// Recorded: the API's attack carries the shadow verdict and would-be
	// action, and what decided the active verdict.
	api := "http://" + d.APIAddr().String()
	var a struct {
		Labels []string `json:"labels"`
		Shadow struct {
			Labels  []string       `json:"labels"`
			Vector  map[string]any `json:"vector"`
			Decider string         `json:"decider"`
			Ladder  string         `json:"ladder"`
			Step    int            `json:"step"`
			Action  string         `json:"action"`
			Differs bool           `json:"differs"`
		} `json:"shadow"`
		Explain struct {
			Decider string   `json:"decider"`
			Ladder  string   `json:"ladder"`
			Action  string   `json:"action"`
			Seen    []string `json:"seen"`
		} `json:"explain"`
	}
	getJSON(t, fmt.Sprintf("%s/api/v1/attacks/%d", api, id), &a)
	s := a.Shadow
	if !slices.Equal(s.Labels, []string{"shadow-dns"}) || s.Decider != "shadow-dns" || s.Ladder != "shadow-blackhole" || s.Step != 1 ||
		s.Action != "blackhole" || !s.Differs || s.Vector["protocol"] != "udp" {
		t.Errorf("GET /api/v1/attacks/%d shadow: %+v, want labels [shadow-dns], would-be blackhole of ladder shadow-blackhole, differing", id, s)
	}
	if !slices.Contains(a.Labels, "dns-amplification") || a.Explain.Decider != "dns-amplification" || a.Explain.Ladder != "default" ||
		a.Explain.Action != "flowspec-discard" || len(a.Explain.Seen) == 0 {
		t.Errorf("GET /api/v1/attacks/%d: labels %v explain %+v, want the active dns-amplification verdict explained", id, a.Labels, a.Explain)
	}
	m := func(name string, labels map[string]string) float64 {
		return testutil.MetricValue(t, d.Registry(), name, labels)
	}
	if n := m("kapkan_shadow_verdicts_total", map[string]string{"agreement": "different"}); n < 1 {
		t.Errorf("kapkan_shadow_verdicts_total{agreement=different} = %v, want at least 1", n)
	}
	if n := m("kapkan_shadow_would_mitigate_total", map[string]string{"action": "blackhole", "outcome": "admitted"}); n != 1 {
		t.Errorf("kapkan_shadow_would_mitigate_total{action=blackhole,outcome=admitted} = %v, want 1", n)
	}

	// Never acted on.
	if routes := router.AdjIn("127.0.0.1", "ipv4"); len(routes) != 0 {
		t.Errorf("the router received unicast routes %v: a blackhole was announced", routes)
	}
	if fs := router.AdjIn("127.0.0.1", "ipv4-flowspec"); len(fs) != 1 {
		t.Errorf("the router holds FlowSpec rules %v, want only the active set's", fs)
	}
	for _, kind := range []string{"blackhole"} {
		for _, dry := range []string{"true", "false"} {
			if n := m("kapkan_mitigation_active", map[string]string{"kind": kind, "dry_run": dry}); n != 0 {
				t.Errorf("kapkan_mitigation_active{kind=%s,dry_run=%s} = %v: the manager holds a blackhole", kind, dry, n)
			}
		}
	}
	var mits struct {
		Mitigations []struct {
			Kind string `json:"kind"`
		} `json:"mitigations"`
	}
	getJSON(t, api+"/api/v1/mitigations", &mits)
	if len(mits.Mitigations) != 1 || mits.Mitigations[0].Kind != "flowspec-discard" {
		t.Errorf("GET /api/v1/mitigations: %+v, want the active set's flowspec-discard alone", mits)
	}
	known := map[events.Kind]bool{events.AttackStarted: true, events.AttackUpdated: true, events.AttackEnded: true,
		events.MitigationAnnounced: true, events.BGPSessionUp: true}
	for _, e := range evs {
		if !known[e.Kind] {
			t.Errorf("event %s: a kind the active set alone does not produce here (%+v)", e.Kind, e)
		}
		if e.Mitigation != nil && (e.Mitigation.Action == flowspec.Blackhole || e.Mitigation.AttackID != id) {
			t.Errorf("mitigation event %s %+v: not the active set's", e.Kind, e.Mitigation)
		}
	}
	waitFor(t, 5*time.Second, func() bool {
		hookMu.Lock()
		defer hookMu.Unlock()
		return len(hooks) >= 3 // started, announced, ended
	}, func() string { return fmt.Sprintf("webhook got %d messages", len(hooks)) })
	hookMu.Lock()
	defer hookMu.Unlock()
	var kinds []string
	for _, h := range hooks {
		e, _ := h["event"].(map[string]any)
		k, _ := e["kind"].(string)
		kinds = append(kinds, k)
		if mm, ok := e["mitigation"].(map[string]any); ok && mm["action"] != "flowspec-discard" {
			t.Errorf("webhook told of mitigation %v, not the active set's", mm)
		}
	}
	slices.Sort(kinds)
	if got := strings.Join(kinds, ","); got != "attack_ended,attack_started,mitigation_announced" {
		t.Errorf("webhook kinds %s, want the active set's attack_started, mitigation_announced, attack_ended", got)
	}
}
