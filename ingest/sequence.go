package ingest

import "github.com/kapkan-io/kapkan/flow"

// seqKey identifies one sequence-number space of an exporter.
type seqKey struct {
	format flow.Format
	agent  [16]byte // sFlow agent address
	a, b   uint32   // v9 source id / IPFIX domain / v5 engine / sFlow sub-agent; sFlow source id
}

// seqTracker follows sequence numbers and counts what went missing.
//
// The expectation of the last key seen is kept out of the map (hot): an
// sFlow datagram's samples mostly come from one data source, and a NetFlow
// exporter's datagrams from one domain, so most lookups skip the map's
// hashing of a 28-byte key. While hot is valid, its map entry may be stale.
type seqTracker struct {
	budget  *budget // shared over every exporter; nil: no shared bound
	next    map[seqKey]uint32
	hot     seqKey
	hotNext uint32
	hotOK   bool
}

// maxGap is the largest forward jump counted as loss; beyond it (or going
// backwards beyond maxReorder) the exporter is assumed to have restarted.
const (
	maxSequenceKeysPerExporter = 4096
	maxGap                     = 1 << 20
	maxReorder                 = 1 << 10
)

// observe checks seq against the expected value for k and sets the
// expectation for the next message to seq+advance. It returns the number of
// units missing, and whether the sequence was reset.
func (t *seqTracker) observe(k seqKey, seq, advance uint32) (gap uint32, reset bool) {
	var want uint32
	var seen bool
	if t.hotOK && k == t.hot {
		want, seen = t.hotNext, true
	} else {
		if t.next == nil {
			t.next = make(map[seqKey]uint32)
		}
		if t.hotOK {
			t.next[t.hot] = t.hotNext // write the last key back before another takes its place
			t.hotOK = false
		}
		want, seen = t.next[k]
	}
	if seen {
		switch diff := seq - want; {
		case diff == 0:
		case diff < maxGap:
			gap = diff
		case -diff <= maxReorder:
			// A late datagram: neither loss nor reset; keep the expectation.
			return 0, false
		default:
			reset = true
		}
	} else if len(t.next) >= maxSequenceKeysPerExporter {
		t.budget.refuse()
		return 0, false // bounded
	} else if !t.budget.take(1) {
		return 0, false
	} else {
		t.next[k] = seq + advance // a new key takes its place in the map
	}
	t.hot, t.hotNext, t.hotOK = k, seq+advance, true
	return gap, reset
}

// forget drops the expectation for k (the next message's position is unknown).
func (t *seqTracker) forget(k seqKey) {
	if t.hotOK && t.hot == k {
		t.hotOK = false
	}
	if _, ok := t.next[k]; ok {
		delete(t.next, k)
		t.budget.give(1)
	}
}

func (d *Decoder) sequence(st *exporterState, k seqKey, seq, advance uint32) {
	gap, reset := st.seq.observe(k, seq, advance)
	if gap > 0 {
		st.cur.sequenceGaps += uint64(gap)
		st.counters.sequenceGaps[k.format].Add(float64(gap))
	}
	if reset {
		st.counters.sequenceResets[k.format].Inc()
	}
}
