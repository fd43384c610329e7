//go:build !race

package wasmtest

const race = false
