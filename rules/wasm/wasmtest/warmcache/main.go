// Command warmcache compiles WASM modules into a wazero compilation cache
// directory. The tests run it (without the race detector) before loading
// guests under -race, where wazero's compiler is about ten times slower:
// the race-enabled host then finds the compiled code in the cache.
//
//	go run ./rules/wasm/wasmtest/warmcache -dir DIR module.wasm...
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/tetratelabs/wazero"

	"github.com/kapkan-io/kapkan/rules/wasm"
)

func main() {
	dir := flag.String("dir", "", "compilation cache directory")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "usage: warmcache -dir DIR module.wasm...")
		os.Exit(2)
	}
	cache, err := wazero.NewCompilationCacheWithDir(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx := context.Background()
	// The host's compile settings, so that the host finds what this
	// compiles.
	rt := wazero.NewRuntimeWithConfig(ctx, wasm.CompileConfig(cache))
	defer rt.Close(ctx)
	for _, f := range flag.Args() {
		bin, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if _, err := rt.CompileModule(ctx, bin); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", f, err)
			os.Exit(1)
		}
	}
}
