package wasm

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	wt "github.com/kapkan-io/kapkan/rules/wasm/wasmtest"
)

// TestRawModules runs guests written in WebAssembly itself: the ABI needs
// no Go, and modules no compiler would make are caught.
func TestRawModules(t *testing.T) {
	h, _ := newTestHost(t)

	t.Run("classifier", func(t *testing.T) {
		m := load(t, h, wt.RawClassifier(nil).Encode(), Options{Name: "raw", Role: RoleClassify})
		res, err := m.Classify(payload(5), nil)
		if err != nil || !res.Match || strings.Join(res.Labels, ",") != "raw-wasm" || string(res.Vector) != `{"protocol":"udp"}` {
			t.Errorf("%+v %v", res, err)
		}
		if m.Features() != FeatureClassify {
			t.Errorf("features %#x", m.Features())
		}
	})

	for _, tc := range []struct {
		name, result string
		classify     []byte
	}{
		{"unreachable", ResultTrap, []byte{wt.OpUnreachable}},
		{"endless loop", ResultTimeout, []byte{wt.OpLoop, wt.BlockEmpty, wt.OpBr, 0, wt.OpEnd, wt.OpUnreachable}},
		{"result outside memory", ResultBadOutput, wt.I64Const(wt.Result(0xffff0000, 100))},
		{"no result", ResultGuestError, wt.I64Const(0)},
		{"not json", ResultBadOutput, wt.I64Const(wt.Result(2048, 5))}, // {"mat
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := load(t, h, wt.RawClassifier(tc.classify).Encode(), Options{Name: "raw-" + strings.ReplaceAll(tc.name, " ", "-"),
				Role: RoleClassify, Limits: Limits{Timeout: 200 * time.Millisecond}})
			_, err := m.Classify(payload(5), nil)
			var ce *CallError
			if !errors.As(err, &ce) || ce.Result != tc.result {
				t.Errorf("%v, want a %s", err, tc.result)
			}
		})
	}

	for _, tc := range []struct {
		name, reason, want string
		raw                wt.Raw
		role               Role
	}{
		{"foreign import", ReasonImports, "imports env.abort; a v1 module may import only from wasi_snapshot_preview1 and kapkan_v1",
			withImport(wt.RawClassifier(nil), "env", "abort"), RoleClassify},
		{"v2 import", ReasonImports, "imports kapkan_v2.log (a module for another ABI version)",
			withImport(wt.RawClassifier(nil), "kapkan_v2", "log"), RoleClassify},
		{"no memory export", ReasonMissingExport, `exports no memory named "memory"`,
			func() wt.Raw { r := wt.RawClassifier(nil); r.NoMemoryExport = true; return r }(), RoleClassify},
		{"wrong signature", ReasonMissingExport, "export kapkan_alloc has type (i64) -> (i32), want (i32) -> (i32)",
			func() wt.Raw {
				r := wt.RawClassifier(nil)
				r.Funcs[2] = wt.Func{Name: "kapkan_alloc", Params: []byte{wt.I64}, Results: []byte{wt.I32}, Body: wt.I32Const(4096)}
				return r
			}(), RoleClassify},
		{"classifier loaded as policy", ReasonMissingExport, "no export kapkan_decide", wt.RawClassifier(nil), RoleDecide},
		{"too much memory", ReasonInstantiate, "needs more memory than memory_mb 64 allows: section memory: min 2000 pages", func() wt.Raw { r := wt.RawClassifier(nil); r.MemoryPages = 2000; return r }(), RoleClassify},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.Load(context.Background(), tc.raw.Encode(), Options{Name: "bad", File: "bad.wasm", Role: tc.role, Limits: Limits{MemoryMB: 64}})
			var le *LoadError
			if !errors.As(err, &le) || le.Reason != tc.reason || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v, want a %s error with %q", err, tc.reason, tc.want)
			}
		})
	}
}

func withImport(r wt.Raw, module, name string) wt.Raw {
	r.Imports = append(r.Imports, wt.Import{Module: module, Name: name, Params: []byte{wt.I32}})
	return r
}
