//go:build wasip1

// Command trap is a classifier that crashes (an index out of range, which
// Go turns into a panic and the WASI exit of the instance): the host must
// count a trap and rebuild the instance.
package main

import kapkan "github.com/kapkan-io/kapkan/wasm-sdk/go"

func init() {
	kapkan.Register(kapkan.Guest{Classify: func(in *kapkan.Input) (kapkan.Verdict, error) {
		var ports [4]int
		i := len(in.Module) + 10
		ports[i%len(in.Module)+len(ports)]++ // always out of range
		return kapkan.Verdict{}, nil
	}})
}

func main() {}
