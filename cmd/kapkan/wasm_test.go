package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	fg "github.com/kapkan-io/kapkan/ingest/flowgen"
	kt "github.com/kapkan-io/kapkan/internal/testutil"
	"github.com/kapkan-io/kapkan/rules/wasm/wasmtest"
)

// wsdVictim is the target of the WS-Discovery capture.
const wsdVictim = "203.0.113.30"

// wsdCapture writes a NetFlow v5 capture (1-in-100 sampling) of a
// WS-Discovery reflection: from 5 s to 25 s of a 45 s capture, 60 000
// packets/s of 1000-1500 bytes (about 600 Mbps) from UDP port 3702 of 300
// reflectors to wsdVictim, over background HTTPS to other hosts. It
// returns the capture's path and a configuration to replay it with.
func wsdCapture(t *testing.T, dir string) (pcap, cfg string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(3702, 1))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	victim := netip.MustParseAddr(wsdVictim)
	var reflectors []netip.Addr
	for i := range 300 {
		reflectors = append(reflectors, netip.AddrFrom4([4]byte{198, 51, byte(100 + i/200), byte(1 + i%200)}))
	}
	var buf bytes.Buffer
	w, err := fg.NewPCAPWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var seq uint32
	const tick = 100 * time.Millisecond
	for at := time.Duration(0); at < 45*time.Second; at += tick {
		now := base.Add(at)
		var flows []fg.Flow
		for range 2 { // background: 2 000 packets/s
			flows = append(flows, fg.Flow{Src: netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + rng.IntN(50))}),
				Dst: netip.AddrFrom4([4]byte{203, 0, 113, byte(100 + rng.IntN(50))}), Proto: fg.ProtoTCP, SrcPort: uint16(1024 + rng.IntN(60000)),
				DstPort: 443, TCPFlags: fg.TCPAck, Packets: 1, Bytes: uint64(64 + rng.IntN(1400)), Start: now, End: now})
		}
		if at >= 5*time.Second && at < 25*time.Second {
			for range 60 { // 60 000 packets/s
				flows = append(flows, fg.Flow{Src: reflectors[rng.IntN(len(reflectors))], Dst: victim, Proto: fg.ProtoUDP,
					SrcPort: 3702, DstPort: uint16(1024 + rng.IntN(60000)), Packets: 1, Bytes: uint64(1000 + rng.IntN(500)),
					Start: now, End: now})
			}
		}
		for len(flows) > 0 {
			n := min(len(flows), fg.MaxNetFlow5Records)
			dg, err := fg.AppendNetFlow5(nil, fg.NetFlow5Header{Uptime: time.Hour + at, Time: now, Sequence: seq,
				SamplingMode: 1, SamplingInterval: 100}, flows[:n])
			if err != nil {
				t.Fatal(err)
			}
			seq += uint32(n)
			flows = flows[n:]
			if err := w.WritePacket(fg.Packet{Time: now, Src: netip.MustParseAddrPort("192.0.2.9:50000"),
				Dst: netip.MustParseAddrPort("192.0.2.254:2055"), Payload: dg}); err != nil {
				t.Fatal(err)
			}
		}
	}
	pcap, cfg = filepath.Join(dir, "wsd.pcap"), filepath.Join(dir, "kapkan.yaml")
	if err := os.WriteFile(pcap, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(`detection:
  window: 5s
  cooldown: 10s
hostgroups:
  - name: customers
    prefixes: [203.0.113.0/24]
    thresholds:
      incoming: {pps: 50000, mbps: 500}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	return pcap, cfg
}

// replayLine is what these tests read of replay's JSON lines.
type replayLine struct {
	Type   string   `json:"type"`
	Target string   `json:"target"`
	Labels []string `json:"labels"`
	Rules  []string `json:"rules"`
	Vector *struct {
		Protocol string   `json:"protocol"`
		SrcPorts []string `json:"src_ports"`
	} `json:"vector"`
	Event    string `json:"event"`
	Ladder   string `json:"ladder"`
	Action   string `json:"action"`
	Reason   string `json:"reason"`
	Attacks  int    `json:"attacks"`
	Detected string `json:"detected_at"`
}

func replayLines(t *testing.T, args ...string) []replayLine {
	t.Helper()
	out, stderr, code := replay(t, args...)
	if code != 0 {
		t.Fatalf("replay %v: exit %d: %s", args, code, stderr)
	}
	var lines []replayLine
	for l := range strings.Lines(out) {
		var x replayLine
		if err := json.Unmarshal([]byte(l), &x); err != nil {
			t.Fatalf("replay line %q: %v", l, err)
		}
		lines = append(lines, x)
	}
	return lines
}

// TestReplayWASMExamples: `kapkan replay --rules DIR` loads the example
// modules (built from source) from the rule directory: the classifier
// labels the WS-Discovery reflection of the capture, which the built-in
// rules name only an ip-flood, and the policy blackholes it above its bound.
func TestReplayWASMExamples(t *testing.T) {
	dir := t.TempDir()
	pcap, cfg := wsdCapture(t, dir)
	rulesDir := filepath.Join(dir, "rules")
	wasmtest.Write(t, "wsdiscovery", rulesDir, "classifiers/wsdiscovery.wasm")
	wasmtest.Write(t, "bigblackhole", rulesDir, "policies/bigblackhole.wasm")
	if err := os.WriteFile(filepath.Join(rulesDir, "ops.yaml"), []byte(`kapkan_rules: 1
rules:
  - name: ws-discovery-amplification
    description: WS-Discovery reflection (UDP source port 3702), judged on the flow sample
    wasm: classifiers/wsdiscovery.wasm
    limits: {memory_mb: 64, timeout: 1s}
ladders:
  - name: customers-big-blackhole
    description: blackhole above 400 Mbps, FlowSpec below
    hostgroups: [customers]
    wasm: policies/bigblackhole.wasm
    config: {blackhole_above_mbps: 400}
`), 0o644); err != nil {
		t.Fatal(err)
	}

	without := replayLines(t, "--config", cfg, pcap)
	with := replayLines(t, "--config", cfg, "--rules", rulesDir, pcap)

	attacks := func(lines []replayLine) []replayLine {
		var out []replayLine
		for _, l := range lines {
			if (l.Type == "attack" || l.Type == "attack_end") && l.Target == wsdVictim+"/32" {
				out = append(out, l)
			}
		}
		return out
	}
	// No built-in rule knows WS-Discovery: alone they name it only by the
	// fallback, a flood of IP packets (UDP, its vector).
	if a := attacks(without); len(a) != 2 || !slices.Equal(a[0].Labels, []string{"ip-flood"}) || len(a[0].Rules) != 0 {
		t.Fatalf("built-in rules alone: %+v, want the attack's start and end, only an ip-flood", a)
	}
	a := attacks(with)
	if len(a) != 2 {
		t.Fatalf("attack lines %+v, want the start and the end", a)
	}
	for _, l := range a {
		if !slices.Equal(l.Labels, []string{"amplification", "ws-discovery-amplification"}) || !slices.Equal(l.Rules, []string{"ws-discovery-amplification"}) ||
			l.Vector == nil || l.Vector.Protocol != "udp" || !slices.Equal(l.Vector.SrcPorts, []string{"3702"}) {
			t.Errorf("verdict %+v vector %+v", l, l.Vector)
		}
	}
	var announced []replayLine
	for _, l := range with {
		if l.Type == "mitigation" && l.Event == "announce" {
			announced = append(announced, l)
		}
	}
	if len(announced) == 0 || announced[0].Ladder != "customers-big-blackhole" || announced[0].Action != "blackhole" ||
		!strings.Contains(announced[0].Reason, "above 400 Mbps") {
		t.Errorf("mitigations %+v, want a blackhole from the policy module", announced)
	}
	// On the other captures of testdata the modules change no verdict: no
	// false positive on DNS amplification or a UDP flood.
	captures, err := filepath.Glob(filepath.Join(kt.RepoRoot(t), "testdata", "captures", "*", "capture.pcap"))
	if err != nil || len(captures) < 2 {
		t.Fatalf("captures %v %v", captures, err)
	}
	for _, c := range captures {
		out, stderr, code := replay(t, "--config", filepath.Join(filepath.Dir(c), "kapkan.yaml"), "--rules", rulesDir, "--against", t.TempDir(), c)
		if code != 0 || !strings.Contains(out, "no verdict differs") {
			t.Errorf("%s: exit %d:\n%s%s", c, code, out, stderr)
		}
	}

	// Deterministic, like every replay.
	if again := replayLines(t, "--config", cfg, "--rules", rulesDir, pcap); !slices.EqualFunc(again, with, func(x, y replayLine) bool {
		return x.Type == y.Type && x.Target == y.Target && slices.Equal(x.Labels, y.Labels) && x.Action == y.Action && x.Reason == y.Reason
	}) {
		t.Error("two replays with the modules differ")
	}
}
