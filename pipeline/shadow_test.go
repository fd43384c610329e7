package pipeline_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/internal/testutil"
	"github.com/kapkan-io/kapkan/mitigate"
	"github.com/kapkan-io/kapkan/pipeline"
	"github.com/kapkan-io/kapkan/rules"
	"github.com/kapkan-io/kapkan/rules/wasm"
)

// safety lets everything in 203.0.113.0/24 through but the allow-list.
func safety(allow ...string) mitigate.Config {
	c := mitigate.Config{Protected: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, MaxBlackholes: 10, MaxFlowSpec: 10,
		MaxNewPerMinute: 10, TTL: 10 * time.Minute, MaxTTL: time.Hour}
	for _, a := range allow {
		c.Allowlist = append(c.Allowlist, netip.MustParsePrefix(a))
	}
	return c
}

// TestShadowRecordsAndActsOnNothing: an attack handled with a shadow rule
// set that names it otherwise and blackholes it gives the active
// mitigator exactly the decisions and the event kinds it gets without a
// shadow; the shadow's verdict and would-be action ride in the attack's
// events, and are counted (refused when the target is allow-listed).
func TestShadowRecordsAndActsOnNothing(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, filepath.Join(dir, "next.yaml"), `kapkan_rules: 1
disable: [dns-amplification]
rules:
  - name: shadow-dns
    match: udp_share > 0.8 && src_port_share(53) > 0.5
    labels: [shadow-dns]
    vector: {protocol: udp, src_ports: [53]}
ladders:
  - name: shadow-blackhole
    labels: [shadow-dns]
    steps: [{action: blackhole}]
`)
	host := wasm.NewHost(quiet())
	active, shadow := builtinSet(t, host), builtinSet(t, host, dir)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	feed := func(pl *pipeline.Pipeline) {
		for i, k := range []engine.CandidateKind{engine.AttackStarted, engine.AttackUpdated, engine.AttackEnded} {
			c := candidate(7, "203.0.113.7", k, 100, at)
			c.At = at.Add(time.Duration(i) * time.Second)
			pl.Handle(context.Background(), &c)
		}
	}
	baseline, base := newPipeline(t, pipeline.Config{Window: 5 * time.Second}, active)
	feed(baseline)

	for _, tc := range []struct {
		name    string
		allow   []string
		outcome string
		refused string
	}{
		{name: "admitted", outcome: "admitted"},
		{name: "allow-listed target", allow: []string{"203.0.113.7/32"}, outcome: "refused", refused: "allowlisted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder()
			reg := prometheus.NewRegistry()
			pl, err := pipeline.New(pipeline.Config{Window: 5 * time.Second}, pipeline.Deps{Rules: func() *rules.Set { return active },
				Mitigator: rec, Events: rec, Log: quiet(), Registerer: reg,
				Shadow: func() *rules.Set { return shadow }, ShadowSafety: safety(tc.allow...)})
			if err != nil {
				t.Fatal(err)
			}
			feed(pl)
			if got, want := fmt.Sprint(rec.decisions), fmt.Sprint(base.decisions); got != want {
				t.Errorf("active decisions with a shadow:\n%s\nwithout:\n%s", got, want)
			}
			if got, want := rec.kinds(7), base.kinds(7); !slices.Equal(got, want) {
				t.Errorf("event kinds with a shadow %v, without %v", got, want)
			}
			for _, e := range rec.events {
				if e.Attack == nil {
					continue
				}
				s := e.Attack.Shadow
				if s == nil || !slices.Equal(s.Labels, []string{"shadow-dns"}) || s.Action != flowspec.Blackhole ||
					s.Ladder != "shadow-blackhole" || s.Refused != tc.refused || !s.Differs {
					t.Errorf("%s: shadow %+v, want labels [shadow-dns], would-be blackhole (refused %q), differing", e.Kind, s, tc.refused)
				}
				x := e.Attack.Explain
				if x == nil || x.Decider != "dns-amplification" || x.Window != "5s" || x.Ladder != "default" || x.Action != flowspec.Discard ||
					x.Miss == nil || len(x.Miss.Failed) == 0 {
					t.Errorf("%s: explain %+v, want dns-amplification deciding, default step 1 and a closest miss", e.Kind, x)
				}
			}
			if n := testutil.MetricValue(t, reg, "kapkan_shadow_would_mitigate_total",
				map[string]string{"action": "blackhole", "outcome": tc.outcome}); n != 1 {
				t.Errorf("kapkan_shadow_would_mitigate_total{action=blackhole,outcome=%s} = %v, want 1", tc.outcome, n)
			}
			if n := testutil.MetricValue(t, reg, "kapkan_shadow_verdicts_total", map[string]string{"agreement": "different"}); n != 1 {
				t.Errorf("kapkan_shadow_verdicts_total{agreement=different} = %v, want 1", n)
			}
		})
	}
}

// TestShadowSameSetAgrees: a shadow set equal to the active one agrees,
// and its record says it does not differ.
func TestShadowSameSetAgrees(t *testing.T) {
	set := builtinSet(t, wasm.NewHost(quiet()))
	rec := newRecorder()
	reg := prometheus.NewRegistry()
	pl, err := pipeline.New(pipeline.Config{}, pipeline.Deps{Rules: func() *rules.Set { return set }, Mitigator: rec, Events: rec,
		Log: quiet(), Registerer: reg, Shadow: func() *rules.Set { return set }, ShadowSafety: safety()})
	if err != nil {
		t.Fatal(err)
	}
	c := candidate(1, "203.0.113.8", engine.AttackStarted, 100, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	pl.Handle(context.Background(), &c)
	if s := rec.events[0].Attack.Shadow; s == nil || s.Differs || s.Action != flowspec.Discard {
		t.Errorf("shadow %+v, want the active verdict and action, not differing", s)
	}
	if n := testutil.MetricValue(t, reg, "kapkan_shadow_verdicts_total", map[string]string{"agreement": "same"}); n != 1 {
		t.Errorf("kapkan_shadow_verdicts_total{agreement=same} = %v, want 1", n)
	}
}

func writeRules(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
