package wasm

import (
	"context"
	"log/slog"
	"testing"

	"github.com/kapkan-io/kapkan/rules/wasm/wasmtest"
)

// BenchmarkInstantiate is the cost of one more instance of a loaded module
// (after a trap, or for one more concurrent call): the Go runtime's
// _initialize included.
func BenchmarkInstantiate(b *testing.B) {
	h := NewHost(slog.New(slog.DiscardHandler))
	m, err := h.Load(context.Background(), wasmtest.One(b, "wsdiscovery"), Options{Name: "bench", Role: RoleClassify})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	for b.Loop() {
		in, err := m.c.instantiate(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		_ = in.mod.Close(context.Background())
	}
}
