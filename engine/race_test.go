//go:build race

package engine

// raceEnabled: under the race detector sync.Pool drops a share of what is
// put back on purpose, so pooled paths allocate now and then.
const raceEnabled = true
