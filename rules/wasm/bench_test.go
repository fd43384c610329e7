package wasm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/rules"
	"github.com/kapkan-io/kapkan/rules/wasm"
	"github.com/kapkan-io/kapkan/rules/wasm/wasmtest"
)

// quiet drops the example classifier's log line per call.
var quiet = slog.New(slog.DiscardHandler)

// wsdFeatures are the features of a WS-Discovery reflection with n sample
// records (the engine's default sample holds up to 2 000).
func wsdFeatures(n int) rules.Features {
	target := netip.MustParseAddr("203.0.113.30")
	c := &engine.Candidate{Kind: engine.AttackStarted, Target: netip.PrefixFrom(target, 32), Hostgroup: "customers"}
	for i := range n {
		c.Sample = append(c.Sample, flow.Record{Src: netip.AddrFrom4([4]byte{198, 51, byte(100 + i%3), byte(1 + i%200)}).As16(),
			Dst: target.As16(), SrcPort: 3702, DstPort: uint16(1024 + i), Proto: 17, Bytes: uint64(1000 + i%500), Packets: 1,
			SamplingRate: 100, Flags: flow.FlagHasIP})
	}
	return rules.Compute(c)
}

// BenchmarkCompile is what loading a module costs the first time (no
// cache): the example classifier, compiled to machine code by wazero.
func BenchmarkCompile(b *testing.B) {
	bin := wasmtest.One(b, "wsdiscovery")
	ctx := context.Background()
	b.SetBytes(int64(len(bin)))
	for b.Loop() {
		rt := wazero.NewRuntimeWithConfig(ctx, wasm.CompileConfig(nil))
		if _, err := rt.CompileModule(ctx, bin); err != nil {
			b.Fatal(err)
		}
		_ = rt.Close(ctx)
	}
}

// BenchmarkLoad is what a reload costs per unchanged module: a runtime,
// the compiled code from the cache, the first instance and the ABI checks.
func BenchmarkLoad(b *testing.B) {
	bin := wasmtest.One(b, "wsdiscovery")
	h := wasm.NewHost(quiet)
	ctx := context.Background()
	for b.Loop() {
		m, err := h.Load(ctx, bin, wasm.Options{Name: "bench", File: "bench.wasm", Role: wasm.RoleClassify})
		if err != nil {
			b.Fatal(err)
		}
		_ = m.Close()
	}
}

// BenchmarkClassify compares the example WASM classifier with the same
// classification written in expr, through rules.Set.Classify, on the same
// features, with samples of 200 and 2 000 records. The WASM side includes
// encoding the payload (with the sample), copying it in, the guest's JSON
// decoding and its answer.
func BenchmarkClassify(b *testing.B) {
	dir := b.TempDir()
	wasmtest.Write(b, "wsdiscovery", dir, "wasm/wsdiscovery.wasm")
	write := func(sub, body string) string {
		p := filepath.Join(dir, sub)
		if err := os.MkdirAll(p, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "rules.yaml"), []byte(body), 0o644); err != nil {
			b.Fatal(err)
		}
		return p
	}
	if err := os.Rename(filepath.Join(dir, "wasm"), filepath.Join(dir, "w")); err != nil {
		b.Fatal(err)
	}
	wasmDir := write("w", "kapkan_rules: 1\nrules:\n  - name: ws-discovery-amplification\n    wasm: wsdiscovery.wasm\n")
	exprDir := write("e", "kapkan_rules: 1\nrules:\n  - name: ws-discovery-amplification\n"+
		"    match: udp_share > 0.8 && src_port_share(3702) > 0.6 && sources >= 5 && mean_packet_size >= 200\n"+
		"    labels: [ws-discovery-amplification, amplification]\n    vector: {protocol: udp, src_ports: [\"3702\"]}\n")
	sets := map[string]*rules.Set{}
	for name, d := range map[string]string{"wasm": wasmDir, "expr": exprDir} {
		set, err := rules.CompileWith(wasm.NewHost(quiet), rules.Dir(d))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = set.Close() })
		sets[name] = set
	}
	for _, n := range []int{200, 2000} {
		f := wsdFeatures(n)
		for _, kind := range []string{"expr", "wasm"} {
			b.Run(fmt.Sprintf("%s/records=%d", kind, n), func(b *testing.B) {
				set := sets[kind]
				b.ReportAllocs()
				for b.Loop() {
					v, err := set.Classify(&f)
					if err != nil || len(v.Labels) != 2 {
						b.Fatalf("%+v %v", v, err)
					}
				}
			})
		}
	}
}

// BenchmarkDecide is a call of the example policy, which does not ask for
// the sample: the fixed cost of a call.
func BenchmarkDecide(b *testing.B) {
	h := wasm.NewHost(quiet)
	m, err := h.Load(context.Background(), wasmtest.One(b, "bigblackhole"), wasm.Options{Name: "bench", Role: wasm.RoleDecide})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	f := wsdFeatures(2000)
	attack, _ := json.Marshal(&f)
	p := &wasm.Payload{Attack: attack, Sample: nil, Verdict: json.RawMessage(`{"labels":["amplification"],"vector":{"protocol":"udp"}}`),
		Current: &wasm.Current{}}
	b.ReportAllocs()
	for b.Loop() {
		d, err := m.Decide(p, nil)
		if err != nil || d.Action == "" {
			b.Fatalf("%+v %v", d, err)
		}
	}
}
