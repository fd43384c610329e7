//go:build wasip1

// Command membomb is a classifier that allocates until it runs out of
// memory: the host must stop it at the module's memory cap and count a
// memory failure.
package main

import kapkan "github.com/kapkan-io/kapkan/wasm-sdk/go"

var hoard [][]byte

func init() {
	kapkan.Register(kapkan.Guest{Classify: func(*kapkan.Input) (kapkan.Verdict, error) {
		for {
			b := make([]byte, 1<<20)
			for i := range b {
				b[i] = byte(i)
			}
			hoard = append(hoard, b)
		}
	}})
}

func main() {}
