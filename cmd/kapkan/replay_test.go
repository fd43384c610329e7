package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kapkan-io/kapkan/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite golden files")

// truthFile is testdata/captures/<case>/truth.yaml.
type truthFile struct {
	Attacks []struct {
		Kind   string    `yaml:"kind"`
		Target string    `yaml:"target"`
		Start  time.Time `yaml:"start"`
		End    time.Time `yaml:"end"`
	} `yaml:"attacks"`
}

func replay(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = cmdReplay(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

// TestReplayCaptures replays every capture of testdata/captures with its
// configuration: the output must equal the reviewed golden file byte for
// byte, and every attack of the ground truth must be detected, once, on
// exactly its victim, within one window of its start.
func TestReplayCaptures(t *testing.T) {
	root := filepath.Join(testutil.RepoRoot(t), "testdata", "captures")
	dirs, err := filepath.Glob(filepath.Join(root, "*", "capture.pcap"))
	if err != nil || len(dirs) < 2 {
		t.Fatalf("captures: %v %v", dirs, err)
	}
	for _, pcap := range dirs {
		dir := filepath.Dir(pcap)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			out, stderr, code := replay(t, "--config", filepath.Join(dir, "kapkan.yaml"), pcap)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			golden := filepath.Join(dir, "verdicts.golden.jsonl")
			if *update {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (create it with -update, then review it)", err)
			}
			if out != string(want) {
				t.Errorf("replay output differs from %s:\n got: %s\nwant: %s", golden, out, want)
			}
			// Twice the same: deterministic.
			if again, _, _ := replay(t, "--config", filepath.Join(dir, "kapkan.yaml"), pcap); again != out {
				t.Error("two replays of the same capture differ")
			}

			raw, err := os.ReadFile(filepath.Join(dir, "truth.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var truth truthFile
			if err := yaml.Unmarshal(raw, &truth); err != nil {
				t.Fatal(err)
			}
			detected := map[string][]time.Time{}
			var summary map[string]any
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				var j map[string]any
				if err := json.Unmarshal([]byte(line), &j); err != nil {
					t.Fatalf("not JSON: %s", line)
				}
				switch j["type"] {
				case "attack":
					at, _ := time.Parse(time.RFC3339Nano, j["detected_at"].(string))
					detected[j["target"].(string)] = append(detected[j["target"].(string)], at)
				case "summary":
					summary = j
				}
			}
			if summary == nil || int(summary["attacks"].(float64)) != len(truth.Attacks) || summary["decode_errors"].(float64) != 0 {
				t.Errorf("summary %v, want %d attacks and no decode error", summary, len(truth.Attacks))
			}
			if len(detected) != len(truth.Attacks) {
				t.Errorf("detected targets %v, want exactly %d", detected, len(truth.Attacks))
			}
			for _, a := range truth.Attacks {
				at := detected[a.Target+"/32"]
				if len(at) != 1 {
					t.Errorf("%s on %s detected %d times, want once", a.Kind, a.Target, len(at))
					continue
				}
				if lag := at[0].Sub(a.Start); lag < 0 || lag > 5*time.Second {
					t.Errorf("%s on %s detected %s after its start, want within the 5 s window", a.Kind, a.Target, lag)
				} else {
					t.Logf("%s on %s detected %s after its start", a.Kind, a.Target, lag)
				}
			}
		})
	}
}

func TestReplaySummaryAndRecords(t *testing.T) {
	flows := testutil.FlowsDir(t)
	out, _, code := replay(t, filepath.Join(flows, "pcap", "akvorado_netflow_combined_samplingrate.pcap"), "--records")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 7 {
		t.Fatalf("%d lines, want 6 records and a summary:\n%s", len(lines), out)
	}
	want := `{"type":"summary","datagrams":2,"records":6,"decode_errors":0,"formats":{"ipfix":0,"netflow5":0,"netflow9":2,"sflow5":0},"non_flow_udp":0,"attacks":0}`
	if lines[6] != want {
		t.Errorf("summary\n got %s\nwant %s", lines[6], want)
	}
	var rec recordJSON
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || rec.Type != "record" || rec.SamplingRate != 2048 || rec.Sampling != "record" {
		t.Errorf("first record %s (%v)", lines[0], err)
	}
}

func TestReplayErrors(t *testing.T) {
	if _, _, code := replay(t); code != 2 {
		t.Errorf("no capture: exit %d, want 2", code)
	}
	_, stderr, code := replay(t, "/nonexistent.pcap")
	if code != 1 || !strings.Contains(stderr, "/nonexistent.pcap") {
		t.Errorf("missing capture: exit %d, stderr %q", code, stderr)
	}
	bad := filepath.Join(t.TempDir(), "bad.pcap")
	if err := os.WriteFile(bad, []byte("not a capture at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := replay(t, bad)
	if code != 1 || !strings.Contains(stderr, "bad.pcap") || !strings.Contains(out, `"type":"summary"`) {
		t.Errorf("garbage capture: exit %d, stderr %q, out %q", code, stderr, out)
	}
}

func TestReplayRulesAgainst(t *testing.T) {
	root := testutil.RepoRoot(t)
	capture := filepath.Join(root, "testdata", "captures", "sflow-udp-flood", "capture.pcap")
	cfg := filepath.Join(root, "testdata", "captures", "sflow-udp-flood", "kapkan.yaml")
	a, b := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(b, "mine.yaml"), []byte(`kapkan_rules: 1
disable: [udp-flood]
rules:
  - name: big-udp
    description: any UDP attack, by the operator
    match: udp_share > 0.5
    labels: [big-udp]
    vector: {protocol: udp, dst_ports: [top]}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := replay(t, "--config", cfg, "--rules", a, "--against", a, capture)
	if code != 0 || !strings.Contains(out, "no verdict differs") {
		t.Errorf("same rules: exit %d, out %q, stderr %q", code, out, stderr)
	}
	out, stderr, code = replay(t, "--config", cfg, "--rules", a, "--against", b, capture)
	if code != 1 || !strings.Contains(out, "labels [udp-flood] → [big-udp]") || !strings.Contains(out, "verdict(s) differ") {
		t.Errorf("other rules: exit %d, out %q, stderr %q", code, out, stderr)
	}
	// An operator rule shows in the attack lines.
	out, _, code = replay(t, "--config", cfg, "--rules", b, capture)
	if code != 0 || !strings.Contains(out, `"labels":["big-udp"]`) || !strings.Contains(out, `"rules":["big-udp"]`) {
		t.Errorf("--rules: exit %d, out %q", code, out)
	}
	// A broken rule file is refused with its position.
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "bad.yaml"), []byte("kapkan_rules: 1\nrules:\n  - name: broken\n    match: udp_share > \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = replay(t, "--rules", bad, capture)
	if code != 1 || !strings.Contains(stderr, "bad.yaml:4:") || !strings.Contains(stderr, `rule "broken"`) {
		t.Errorf("broken rules: exit %d, stderr %q", code, stderr)
	}
}

// TestReplayLadderSteps replays a UDP flood under a three-step ladder:
// each step's mitigation line appears in order (the next announced before
// the previous withdrawn), the last withdrawn at its TTL after the attack
// ended; dry_run follows the configuration, true unless it says false;
// an allow-listed victim gets refusal lines and nothing else.
func TestReplayLadderSteps(t *testing.T) {
	root := testutil.RepoRoot(t)
	pcap := filepath.Join(root, "testdata", "captures", "sflow-udp-flood", "capture.pcap")
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	if err := os.Mkdir(rulesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	ladder := `kapkan_rules: 1
ladders:
  - name: three-steps
    steps:
      - {action: flowspec-ratelimit, rate_mbps: 100, hold: 5s}
      - {action: flowspec-discard, hold: 5s}
      - {action: blackhole}
`
	if err := os.WriteFile(filepath.Join(rulesDir, "ladder.yaml"), []byte(ladder), 0o644); err != nil {
		t.Fatal(err)
	}
	base := `detection: {window: 5s, cooldown: 10s}
hostgroups:
  - name: customers
    prefixes: [203.0.113.0/24]
    thresholds:
      incoming: {pps: 50000, mbps: 500}
mitigation: {ttl: 2m}
`
	for _, tc := range []struct {
		name, extra string
		want        []string
	}{
		{"dry-run by default", "", []string{
			"announce flowspec-ratelimit 1 true", "announce flowspec-discard 2 true", "withdraw flowspec-ratelimit 1 true",
			"announce blackhole 3 true", "withdraw flowspec-discard 2 true", "withdraw blackhole 3 true"}},
		{"live when the configuration says so", "dry_run: false\n", []string{
			"announce flowspec-ratelimit 1 false", "announce flowspec-discard 2 false", "withdraw flowspec-ratelimit 1 false",
			"announce blackhole 3 false", "withdraw flowspec-discard 2 false", "withdraw blackhole 3 false"}},
		{"allow-listed victim", "mitigation: {allowlist: [203.0.113.10/32]}\n", []string{
			"refused flowspec-ratelimit 1 true", "refused flowspec-discard 2 true", "refused blackhole 3 true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfgFile := filepath.Join(dir, "kapkan.yaml")
			cfg := base + tc.extra
			if strings.Contains(tc.extra, "mitigation:") {
				cfg = strings.Replace(base, "mitigation: {ttl: 2m}\n", "", 1) + tc.extra
			}
			if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			out, stderr, code := replay(t, "--config", cfgFile, "--rules", rulesDir, pcap)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var got []string
			var lastAt string
			for line := range strings.Lines(out) {
				var m mitigationJSON
				if json.Unmarshal([]byte(line), &m) != nil || m.Type != "mitigation" {
					continue
				}
				got = append(got, fmt.Sprintf("%s %s %d %t", m.Event, m.Action, m.Step, m.DryRun))
				if m.Ladder != "three-steps" || m.ID != 1 {
					t.Errorf("line %s", line)
				}
				lastAt = m.At
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("mitigation lines:\n%s\nwant:\n%s\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"), out)
			}
			// The blackhole is withdrawn at its TTL, not when the attack ends.
			if !strings.HasPrefix(tc.want[len(tc.want)-1], "refused") && !strings.HasPrefix(lastAt, "2026-01-01T00:02:") {
				t.Errorf("last withdrawal at %s, want two minutes after the blackhole", lastAt)
			}
		})
	}
}
