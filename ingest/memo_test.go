package ingest

import (
	"math/rand/v2"
	"testing"

	"github.com/kapkan-io/kapkan/flow"
)

// refTracker is seqTracker without its hot entry: the map alone.
type refTracker struct{ next map[seqKey]uint32 }

func (t *refTracker) observe(k seqKey, seq, advance uint32) (gap uint32, reset bool) {
	if t.next == nil {
		t.next = make(map[seqKey]uint32)
	}
	want, seen := t.next[k]
	if seen {
		switch diff := seq - want; {
		case diff == 0:
		case diff < maxGap:
			gap = diff
		case -diff <= maxReorder:
			return 0, false
		default:
			reset = true
		}
	} else if len(t.next) >= 4096 {
		return 0, false
	}
	t.next[k] = seq + advance
	return gap, reset
}

// TestSequenceTrackerHotEntry: with keys taking turns, runs of one key,
// late and lost messages, resets and forgotten keys, the tracker with its
// hot entry says exactly what the map alone says.
func TestSequenceTrackerHotEntry(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := []seqKey{{format: flow.FormatSFlow5, a: 1}, {format: flow.FormatSFlow5, a: 1, b: 2}, {format: flow.FormatNetFlow9, a: 7}}
	var got seqTracker
	var want refTracker
	next := make([]uint32, len(keys))
	k := 0
	for i := range 100_000 {
		if rng.IntN(8) == 0 { // mostly runs of one key
			k = rng.IntN(len(keys))
		}
		seq := next[k]
		switch rng.IntN(20) {
		case 0:
			seq += uint32(rng.IntN(5)) // loss
		case 1:
			seq -= uint32(rng.IntN(5)) // late
		case 2:
			seq = rng.Uint32() // restart
		case 3:
			got.forget(keys[k])
			delete(want.next, keys[k])
		}
		next[k] = seq + 1
		g, gr := got.observe(keys[k], seq, 1)
		w, wr := want.observe(keys[k], seq, 1)
		if g != w || gr != wr {
			t.Fatalf("step %d key %d seq %d: gap %d reset %v, want gap %d reset %v", i, k, seq, g, gr, w, wr)
		}
	}
}

// TestSequenceTrackerAllocs: following one key costs no allocation.
func TestSequenceTrackerAllocs(t *testing.T) {
	var tr seqTracker
	k := seqKey{format: flow.FormatSFlow5, a: 1}
	seq := uint32(0)
	if n := testing.AllocsPerRun(1000, func() { tr.observe(k, seq, 1); seq++ }); n != 0 {
		t.Errorf("%v allocations per message", n)
	}
}

// TestRateStoreMemo: the remembered last lookup never outlives a change of
// the rates — a new rate, a first rate, a second sampler of the domain.
func TestRateStoreMemo(t *testing.T) {
	var s rateStore
	look := func(kind uint8, id uint64) (uint32, bool) { return s.lookup(9, 1, kind, id) }
	if _, ok := look(scopeDomain, 0); ok {
		t.Fatal("a rate before any was set")
	}
	s.set(samplerKey{9, 1, scopeSampler, 5}, 100)
	for range 2 { // the second time from the memo
		if r, ok := look(scopeSampler, 5); r != 100 || !ok {
			t.Fatalf("sampler 5: %d %v, want 100", r, ok)
		}
		if r, ok := look(scopeDomain, 0); r != 100 || !ok {
			t.Fatalf("no sampler id, one sampler in the domain: %d %v, want 100", r, ok)
		}
	}
	s.set(samplerKey{9, 1, scopeSampler, 5}, 200)
	if r, _ := look(scopeDomain, 0); r != 200 {
		t.Fatalf("after a new rate: %d, want 200", r)
	}
	s.set(samplerKey{9, 1, scopeSampler, 6}, 300)
	if r, ok := look(scopeDomain, 0); ok {
		t.Fatalf("two samplers and no sampler id: %d, want none", r)
	}
	if r, _ := look(scopeSampler, 6); r != 300 {
		t.Fatalf("sampler 6: %d, want 300", r)
	}
	if n := testing.AllocsPerRun(1000, func() { look(scopeSampler, 6) }); n != 0 {
		t.Errorf("%v allocations per lookup", n)
	}
}
