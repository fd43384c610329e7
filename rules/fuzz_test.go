package rules

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/kapkan-io/kapkan/builtin"
	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/rules/wasm"
	wt "github.com/kapkan-io/kapkan/rules/wasm/wasmtest"
)

// ruleSeeds are the built-in rule files and a few small files of the
// shapes the compiler treats apart (modules, ladders, disables, errors).
func ruleSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	names, _ := fs.Glob(builtin.Classify(), "*/*.yaml")
	for _, n := range names {
		if strings.HasSuffix(n, "_test.yaml") {
			continue
		}
		data, err := fs.ReadFile(builtin.Classify(), n)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, data)
	}
	if len(seeds) < 3 {
		f.Fatalf("%d built-in rule files: the seeds moved", len(seeds))
	}
	for _, s := range []string{
		"kapkan_rules: 1\nrules:\n  - name: big-udp\n    description: d\n    match: udp_share > 0.9 && mbps > 100\n    labels: [udp-flood]\n    vector: {protocol: udp, dst_ports: [top], packet_length: \">1000\"}\n",
		"kapkan_rules: 1\nrules:\n  - name: m\n    description: d\n    wasm: m.wasm\n    sha256: 00\n    limits: {memory_mb: 4, timeout: 5ms, instances: 1}\n",
		"kapkan_rules: 1\nladders:\n  - name: l\n    hostgroups: [a]\n    labels: [x]\n    steps:\n      - {action: flowspec-ratelimit, rate_mbps: 10, hold: 30s, when: \"mbps > 1\"}\n      - {action: blackhole}\n",
		"kapkan_rules: 1\ndisable: [dns-amplification]\n",
		"kapkan_rules: 2\nrules: {}\n",
		"kapkan_rules: 1\nrules:\n  - name: Bad_Name\n    match: 'len(labels'\n    vector: {tcp_flags: 'syn&&ack'}\n",
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

// FuzzRuleFile compiles any bytes as an operator's rule file: it never
// panics, every error names the file and says something, and a set it
// accepts classifies without error.
func FuzzRuleFile(f *testing.F) {
	for _, s := range ruleSeeds(f) {
		f.Add(s)
	}
	host := wasm.NewHost(slog.New(slog.DiscardHandler))
	f.Fuzz(func(t *testing.T, data []byte) {
		// A file that takes seconds to compile is a finding too: the
		// fuzzer reports no hang by itself, so the worker is made to crash
		// (and the input is kept).
		hang := time.AfterFunc(5*time.Second, func() { panic(fmt.Sprintf("compiling took over 5s: %q", data)) })
		defer hang.Stop()
		set, err := CompileWith(host, Source{FS: fstest.MapFS{"fuzz.yaml": {Data: data}}, Name: "ops"})
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error %T is not rule Errors: %v", err, err)
			}
			for _, e := range errs {
				if !strings.HasPrefix(e.File, "ops") || e.Msg == "" || e.Line < 0 || e.Col < 0 {
					t.Fatalf("error without its file or message: %+v", e)
				}
			}
			return
		}
		defer set.Close()
		for _, feat := range []*Features{{}, {Target: "203.0.113.9/32", PPS: 1e6, Mbps: 5000, UDPShare: 1, Samples: 10}} {
			if _, err := set.Classify(feat); err != nil {
				t.Fatalf("an accepted set fails to classify %+v: %v", feat, err)
			}
		}
	})
}

// FuzzModuleResult runs what a WASM module may return, through the real
// host and the checks of the rule set: a raw module holds data in its
// memory and returns ptr and n, as a classifier or as a policy. Nothing
// panics, and what the checks accept is a valid verdict or decision.
func FuzzModuleResult(f *testing.F) {
	for _, s := range []string{
		`{"match":true,"labels":["raw-wasm"],"vector":{"protocol":"udp"}}`,
		`{"match":true,"labels":["dns-amplification"],"vector":{"protocol":"udp","src_ports":["53"],"packet_length":">512"}}`,
		`{"match":true,"labels":["x"],"vector":{"protocol":"tcp","tcp_flags":"syn&!ack","dst_ports":["top"]}}`,
		`{"match":false}`,
		`{"match":true,"labels":["Not Kebab"],"vector":{"bogus":1}}`,
		`{"error":"guest says no"}`,
		`{"action":"flowspec-ratelimit","rate_mbps":100,"reason":"r"}`,
		`{"action":"blackhole"}`,
		`{"action":""}`,
		`{"action":"flowspec-discard","rate_mbps":-1}`,
		`{"action":"nuke"}`,
		`null`,
	} {
		for _, role := range []uint8{0, 1} {
			f.Add(role, uint32(2048), uint32(len(s)), []byte(s))
		}
	}
	f.Add(uint8(0), uint32(0xffff0000), uint32(100), []byte("{}"))
	f.Add(uint8(1), uint32(2048), uint32(1<<30), []byte("{}"))
	host := wasm.NewHost(slog.New(slog.DiscardHandler))
	payload := newPayload(&Features{Target: "203.0.113.9/32", PPS: 1e6})
	f.Fuzz(func(t *testing.T, role uint8, ptr, n uint32, data []byte) {
		if len(data) > 60<<10 {
			return // one page of memory, the data at 2048
		}
		raw := wt.RawClassifier(wt.I64Const(wt.Result(ptr, n)))
		raw.Data = map[uint32][]byte{2048: data}
		r := wasm.RoleClassify
		if role%2 == 1 {
			r = wasm.RoleDecide
			raw.Funcs[1].Body = wt.I64Const(int64(wasm.FeatureDecide))
			raw.Funcs[4].Name = "kapkan_decide"
		}
		m, err := host.Load(context.Background(), raw.Encode(), wasm.Options{Name: "fuzz", File: "fuzz.wasm", Role: r})
		if err != nil {
			t.Fatalf("the raw module does not load: %v", err)
		}
		defer m.Close()
		if r == wasm.RoleClassify {
			res, vec, err := classifyModule(context.Background(), m, payload)
			if err != nil || !res.Match {
				return
			}
			for _, l := range res.Labels {
				if !labelName.MatchString(l) {
					t.Fatalf("label %q accepted", l)
				}
			}
			if vec != nil {
				if msgs := checkVector(vec); len(msgs) > 0 {
					t.Fatalf("vector %+v accepted: %v", vec, msgs)
				}
				_ = resolveVector(*vec, &Features{Target: "203.0.113.9/32"})
			}
			return
		}
		d, err := (&modulePolicy{m: m}).Decide(PolicyInput{Labels: []string{"x"}, Current: flowspec.None})
		if err != nil {
			return
		}
		if _, err := parseAction(d.Action.String(), d.RateMbps, true); err != nil {
			t.Fatalf("decision %+v accepted: %v", d, err)
		}
		if math.IsNaN(d.RateMbps) || math.IsInf(d.RateMbps, 0) || d.RateMbps < 0 {
			t.Fatalf("rate %v accepted", d.RateMbps)
		}
	})
}
