package daemon

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kapkan-io/kapkan/builtin"
	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/ingest"
	"github.com/kapkan-io/kapkan/ingest/demo"
	"github.com/kapkan-io/kapkan/pipeline"
	"github.com/kapkan-io/kapkan/rules"
)

// demoLabel is the label the built-in rules give each demo kind.
var demoLabel = map[demo.Kind]string{
	demo.UDPFlood: "udp-flood", demo.SYNFlood: "syn-flood", demo.ACKFlood: "tcp-ack-flood", demo.RSTFlood: "tcp-rst-flood",
	demo.TCPFlood: "tcp-flood", demo.ICMPFlood: "icmp-flood", demo.FragFlood: "fragment-flood",
	demo.DNSAmp: "dns-amplification", demo.NTPAmp: "ntp-amplification", demo.MemcachedAmp: "memcached-amplification",
	demo.SSDPAmp: "ssdp-amplification", demo.CLDAPAmp: "cldap-amplification", demo.ChargenAmp: "chargen-amplification",
}

// detectDemo runs a demo cycle's datagrams through the daemon's
// pipeline (decode, engine, rules, policy, dry-run mitigation) clocked by
// the scenario's own time, as replay does, and returns the attacks that
// started.
func detectDemo(t *testing.T, cfg *config.Config, s demo.Scenario) []*events.Attack {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	ecfg := EngineConfig(cfg)
	ecfg.Shards = 1
	eng, err := engine.NewSync(ecfg, engine.Deps{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srcs, err := RuleSources(nil)
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile(srcs...)
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	ring := events.NewRing(1<<14, nil)
	rd := ring.NewReader("test", ring.Last()+1)
	mit, err := NewMitigation(cfg, "", log, nil, ring)
	if err != nil {
		t.Fatal(err)
	}
	defer mit.Close()
	pl, err := pipeline.New(PipelineConfig(cfg, 1), pipeline.Deps{Rules: func() *rules.Set { return set },
		Mitigator: mit.Manager(), Events: ring, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	var started []*events.Attack
	drain := func() {
		for {
			e, ok := rd.TryNext()
			if !ok {
				return
			}
			if e.Kind == events.AttackStarted && e.Attack != nil {
				started = append(started, e.Attack)
			}
		}
	}
	handle := func() {
		for _, c := range eng.Drain() {
			pl.Handle(context.Background(), &c)
		}
		drain()
	}
	batcher := ingest.NewBatcher(flow.DefaultPool, flow.SinkFunc(func(b *flow.Batch) { eng.Consume(b); handle() }))
	clock := ingest.ReplayClock{Batcher: batcher, Tick: func(now time.Time) {
		eng.Tick(now)
		mit.Manager().Tick(now)
		handle()
	}}
	dec := ingest.New(IngestOptions(cfg), ingest.Deps{Logger: log})
	g, err := demo.NewGenerator(s)
	if err != nil {
		t.Fatal(err)
	}
	for {
		at, dgs, ok := g.Next()
		if !ok {
			break
		}
		now := demo.CaptureStart.Add(at)
		clock.Advance(now)
		for _, d := range dgs {
			if _, err := dec.Decode(d, s.Agent, now, batcher); err != nil {
				t.Fatalf("decode at %s: %v", at, err)
			}
		}
	}
	batcher.Flush()
	handle()
	return started
}

// TestDemoDetectsEveryKind plays two demo cycles (every kind, once on IPv4
// and once on IPv6, and the carpet bomb) through the daemon's pipeline with
// the demo hostgroups of the default configuration: every attack is
// detected once, on its target (the whole prefix for the carpet bomb),
// within seconds of its start and with its label; nothing else is
// detected; and between them the attacks wear every label the built-in
// rules know.
func TestDemoDetectsEveryKind(t *testing.T) {
	cfg := config.Default()
	cfg.Store.Path, cfg.Mitigation.StateFile = "", ""
	AddDemoHostgroup(cfg)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	families := map[demo.Kind]map[bool]bool{}
	for cycle := range 2 {
		s := demoScenario(cycle)
		if s.Attacks[0].Start > 30*time.Second {
			t.Errorf("the first attack starts at %s: make run would show no detection in its first minute", s.Attacks[0].Start)
		}
		if max := 5 * time.Minute; s.Duration > max {
			t.Errorf("a cycle lasts %s: a dashboard would not show every kind within %s", s.Duration, max)
		}
		started := detectDemo(t, cfg, s)
		byTarget := map[netip.Prefix][]*events.Attack{}
		for _, a := range started {
			byTarget[a.Target] = append(byTarget[a.Target], a)
		}
		for _, a := range s.Attacks {
			want := a.Carpet
			scope := "prefix"
			if !a.Carpet.IsValid() {
				want, scope = netip.PrefixFrom(a.Target, a.Target.BitLen()), "address"
				if families[a.Kind] == nil {
					families[a.Kind] = map[bool]bool{}
				}
				families[a.Kind][a.Target.Is6()] = true
			}
			name := fmt.Sprintf("cycle %d: %s on %s", cycle, a.Kind, want)
			got := byTarget[want]
			delete(byTarget, want)
			if len(got) != 1 {
				t.Errorf("%s: detected %d times, want once", name, len(got))
				continue
			}
			d := got[0]
			if lag := d.Started.Sub(demo.CaptureStart.Add(a.Start)); lag < 0 || lag > 5*time.Second {
				t.Errorf("%s: detected %s after its start", name, lag)
			}
			if d.Scope != scope {
				t.Errorf("%s: scope %s, want %s", name, d.Scope, scope)
			}
			if !slices.Contains(d.Labels, demoLabel[a.Kind]) {
				t.Errorf("%s: labels %v, want %s", name, d.Labels, demoLabel[a.Kind])
			}
			for _, l := range d.Labels {
				seen[l] = true
			}
		}
		for target, as := range byTarget {
			t.Errorf("cycle %d: %d attack(s) detected on %s, which the demo did not attack (labels %v)", cycle, len(as), target, as[0].Labels)
		}
	}
	for _, k := range demo.Kinds {
		if !families[k][false] || !families[k][true] {
			t.Errorf("%s: attacked on IPv4 %v, on IPv6 %v over two cycles; want both", k, families[k][false], families[k][true])
		}
	}
	for _, l := range builtinLabels(t) {
		if !seen[l] {
			t.Errorf("no demo attack is labelled %s", l)
		}
	}
}

// builtinLabels reads every label the built-in classification rules give.
func builtinLabels(t *testing.T) []string {
	t.Helper()
	var labels []string
	err := fs.WalkDir(builtin.Classify(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, "_test.yaml") {
			return err
		}
		b, err := fs.ReadFile(builtin.Classify(), path)
		if err != nil {
			return err
		}
		var f struct {
			Rules []struct {
				Labels []string `yaml:"labels"`
			} `yaml:"rules"`
		}
		if err := yaml.Unmarshal(b, &f); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for _, r := range f.Rules {
			for _, l := range r.Labels {
				if !slices.Contains(labels, l) {
					labels = append(labels, l)
				}
			}
		}
		return nil
	})
	if err != nil || len(labels) < 10 {
		t.Fatalf("built-in labels %v: %v", labels, err)
	}
	return labels
}
