package rules_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/ingest"
	"github.com/kapkan-io/kapkan/internal/testutil"
	"github.com/kapkan-io/kapkan/rules"
)

// TestBuiltinLabelsRealExporterCaptures replays the softflowd exports of
// testdata/real (a real NetFlow v9 exporter fed crafted attacks) and
// checks that the built-in rules give each victim its attack's label.
func TestBuiltinLabelsRealExporterCaptures(t *testing.T) {
	set := builtinSet(t)
	dirs, err := filepath.Glob(filepath.Join(testutil.RepoRoot(t), "testdata", "real", "*", "truth.yaml"))
	if err != nil || len(dirs) < 13 {
		t.Fatalf("softflowd captures: %d found (%v)", len(dirs), err)
	}
	for _, truthPath := range dirs {
		dir := filepath.Dir(truthPath)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var truth struct {
				Kind   string `yaml:"kind"`
				Victim string `yaml:"victim"`
			}
			raw, err := os.ReadFile(truthPath)
			if err != nil {
				t.Fatal(err)
			}
			if err := yaml.Unmarshal(raw, &truth); err != nil {
				t.Fatal(err)
			}
			started := replayCapture(t, filepath.Join(dir, "export.pcap"))
			var victim *engine.Candidate
			for i := range started {
				if started[i].Target.Addr().String() == truth.Victim {
					victim = &started[i]
				} else {
					t.Errorf("attack detected on %s, which is not the victim", started[i].Target)
				}
			}
			if victim == nil {
				t.Fatalf("no attack on the victim %s", truth.Victim)
			}
			f := rules.Compute(victim)
			v, err := set.Classify(&f)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(v.Labels, truth.Kind) {
				t.Fatalf("labels %v, want %s (features %+v)", v.Labels, truth.Kind, f)
			}
		})
	}
}

// replayCapture runs a capture through ingest and a synchronous engine with
// low thresholds (the exports are sampled 1:100 from a few thousand packets
// per second) and returns the attacks started.
func replayCapture(t *testing.T, path string) []engine.Candidate {
	t.Helper()
	cfg := engine.DefaultConfig()
	cfg.Shards = 1
	hg := engine.Hostgroup{Name: "customers", Incoming: engine.Thresholds{PPS: 5000}}
	for _, p := range []string{"203.0.113.0/24", "2001:db8:1::/48"} {
		hg.Prefixes = append(hg.Prefixes, mustPrefix(p))
	}
	cfg.Hostgroups = []engine.Hostgroup{hg}
	eng, err := engine.NewSync(cfg, engine.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	dec := ingest.New(ingest.Options{}, ingest.Deps{})
	b := ingest.NewBatcher(nil, eng)
	var started []engine.Candidate
	clock := ingest.ReplayClock{Tick: eng.Tick, Batcher: b}
	_, err = ingest.ReadCapture(path, func(d ingest.Datagram) error {
		clock.Advance(d.Time)
		if ingest.DetectFormat(d.Payload) != flow.FormatUnknown {
			_, _ = dec.Decode(d.Payload, d.Src.Addr(), d.Time, b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b.Flush()
	for _, c := range eng.Drain() {
		if c.Kind == engine.AttackStarted {
			started = append(started, c)
		}
	}
	return started
}
