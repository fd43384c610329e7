//go:build race

package wasmtest

// race is true when the tests run under the race detector.
const race = true
