//go:build wasip1

// Command loop is a classifier that never returns: the host must interrupt
// it at its timeout and count a timeout.
package main

import kapkan "github.com/kapkan-io/kapkan/wasm-sdk/go"

var spins int

func init() {
	kapkan.Register(kapkan.Guest{Classify: func(*kapkan.Input) (kapkan.Verdict, error) {
		for {
			spins++
		}
	}})
}

func main() {}
