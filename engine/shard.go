package engine

import (
	"github.com/kapkan-io/kapkan/flow"
)

// bucket is one second of one window.
type bucket struct {
	pkts  uint32 // saturating
	flows uint32 // saturating
	bytes uint64
}

// entry is the window of one address (or prefix total) and direction.
type entry struct {
	key    tableKey
	last   int64 // the second of the newest bucket
	sums   [numTotals]uint64
	prefix uint32 // protected prefix index
	hot    int32  // index into shard.hot, -1 when none
	attack int32  // index into shard.attacks, -1 when none
}

// hotDetail is kept for addresses near a threshold or under attack:
// per-protocol buckets and a ring of recent records.
type hotDetail struct {
	buckets []protoBucket // window seconds × classes
	sums    [numClasses]protoBucket
	sample  []flow.Record
	next    int  // ring write position
	full    bool // the ring has wrapped
}

type protoBucket struct {
	pkts  uint64
	bytes uint64
}

// shard owns the windows of the addresses that hash to it. Only its own
// goroutine touches it (or the caller, in synchronous mode).
type shard struct {
	e      *Engine
	id     int
	window int64 // seconds
	in     chan *subBatch

	ix      index
	entries []entry
	buckets []bucket // len(entries) × window
	free    []uint32

	hot     []hotDetail
	hotFree []int32
	hotUsed int

	attacks     []*attackState
	attackFree  []int32
	attackCount int

	now       int64 // newest second seen (data time) or ticked
	lastEvict int64

	outbox []Candidate

	stats shardStats
}

// shardStats are plain counters owned by the shard, published to the
// engine's atomics once per sub-batch or tick.
type shardStats struct {
	records, late, hotRefused uint64
}

func newShard(e *Engine, id int, window int64, queue int) *shard {
	return &shard{
		e: e, id: id, window: window,
		in: make(chan *subBatch, queue),
		ix: newIndex(1024),
	}
}

// lookup returns the entry for k, creating it when absent.
func (s *shard) lookup(k *tableKey, prefix uint32) uint32 {
	h := hashKey(k)
	for i := h & s.ix.mask; ; i = (i + 1) & s.ix.mask {
		slot := s.ix.slots[i]
		if slot == 0 {
			break
		}
		if s.entries[slot-1].key == *k {
			return slot - 1
		}
	}
	if s.ix.needsGrow() {
		s.grow()
	}
	var ei uint32
	if n := len(s.free); n > 0 {
		ei = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		ei = uint32(len(s.entries))
		s.entries = append(s.entries, entry{})
		for range s.window {
			s.buckets = append(s.buckets, bucket{})
		}
	}
	s.entries[ei] = entry{key: *k, prefix: prefix, hot: -1, attack: -1}
	clear(s.buckets[int64(ei)*s.window : int64(ei+1)*s.window])
	s.ix.insert(h, ei)
	return ei
}

// grow doubles the index and reinserts every live entry.
func (s *shard) grow() {
	old := s.ix.slots
	s.ix = index{slots: make([]uint32, len(old)*2), mask: uint64(len(old)*2 - 1)}
	for _, slot := range old {
		if slot != 0 {
			s.ix.insert(hashKey(&s.entries[slot-1].key), slot-1)
		}
	}
}

// remove deletes entry ei from the index (backward-shift deletion) and
// frees it.
func (s *shard) remove(ei uint32) {
	ix := &s.ix
	i := hashKey(&s.entries[ei].key) & ix.mask
	for ix.slots[i] != ei+1 {
		if ix.slots[i] == 0 {
			return
		}
		i = (i + 1) & ix.mask
	}
	ix.slots[i] = 0
	ix.count--
	for j := (i + 1) & ix.mask; ix.slots[j] != 0; j = (j + 1) & ix.mask {
		home := hashKey(&s.entries[ix.slots[j]-1].key) & ix.mask
		// Slot j may move back to the hole at i unless its home lies in the
		// cyclic range (i, j].
		var stays bool
		if i <= j {
			stays = home > i && home <= j
		} else {
			stays = home > i || home <= j
		}
		if !stays {
			ix.slots[i] = ix.slots[j]
			ix.slots[j] = 0
			i = j
		}
	}
	e := &s.entries[ei]
	if e.hot >= 0 {
		s.releaseHot(e)
	}
	*e = entry{hot: -1, attack: -1, last: -1}
	s.free = append(s.free, ei)
}

// advance moves entry e's window forward to second sec, dropping the seconds
// that leave it.
func (s *shard) advance(ei uint32, sec int64) {
	e := &s.entries[ei]
	if sec <= e.last {
		return
	}
	W := s.window
	base := int64(ei) * W
	if sec-e.last >= W || e.last == 0 {
		clear(s.buckets[base : base+W])
		e.sums = [numTotals]uint64{}
		if e.hot >= 0 {
			h := &s.hot[e.hot]
			clear(h.buckets)
			h.sums = [numClasses]protoBucket{}
		}
	} else {
		for t := e.last + 1; t <= sec; t++ {
			b := &s.buckets[base+t%W]
			e.sums[0] -= uint64(b.pkts)
			e.sums[1] -= b.bytes
			e.sums[2] -= uint64(b.flows)
			*b = bucket{}
			if e.hot >= 0 {
				h := &s.hot[e.hot]
				pb := h.buckets[(t%W)*numClasses : (t%W+1)*numClasses]
				for c := range pb {
					h.sums[c].pkts -= pb[c].pkts
					h.sums[c].bytes -= pb[c].bytes
					pb[c] = protoBucket{}
				}
			}
		}
	}
	e.last = sec
}

// add counts traffic in second sec of entry ei.
func (s *shard) add(ei uint32, sec int64, pkts, bytes, flows uint64, cls uint8) {
	e := &s.entries[ei]
	if sec > e.last {
		s.advance(ei, sec)
	} else if sec <= e.last-s.window {
		s.stats.late++
		return
	}
	b := &s.buckets[int64(ei)*s.window+sec%s.window]
	b.pkts = satAdd32(b.pkts, pkts)
	b.flows = satAdd32(b.flows, flows)
	b.bytes += bytes
	e.sums[0] += pkts
	e.sums[1] += bytes
	e.sums[2] += flows
	if e.hot >= 0 && cls != 0 {
		h := &s.hot[e.hot]
		pb := h.buckets[(sec%s.window)*numClasses : (sec%s.window+1)*numClasses]
		for c := range numClasses {
			if cls&(1<<c) != 0 {
				pb[c].pkts += pkts
				pb[c].bytes += bytes
				h.sums[c].pkts += pkts
				h.sums[c].bytes += bytes
			}
		}
	}
}

func satAdd32(a uint32, b uint64) uint32 {
	if s := uint64(a) + b; s < 1<<32 {
		return uint32(s)
	}
	return 1<<32 - 1
}

// windowSums returns the window sums of every metric of entry e.
func (s *shard) windowSums(e *entry) (v [NumMetrics]uint64) {
	v[MetricPPS], v[MetricBPS], v[MetricFPS] = e.sums[0], e.sums[1], e.sums[2]
	if e.hot >= 0 {
		h := &s.hot[e.hot]
		for c := range numClasses {
			v[MetricTCPPPS+Metric(c)] = h.sums[c].pkts
			v[MetricTCPBPS+Metric(c)] = h.sums[c].bytes
		}
	}
	return v
}

// makeHot gives entry ei per-protocol detail and a sample ring, if the hot
// budget allows.
func (s *shard) makeHot(ei uint32) {
	if s.hotUsed >= s.e.maxHotPerShard {
		s.stats.hotRefused++
		return
	}
	var hi int32
	if n := len(s.hotFree); n > 0 {
		hi = s.hotFree[n-1]
		s.hotFree = s.hotFree[:n-1]
	} else {
		hi = int32(len(s.hot))
		s.hot = append(s.hot, hotDetail{
			buckets: make([]protoBucket, s.window*numClasses),
			sample:  make([]flow.Record, s.e.cfg.SampleSize),
		})
	}
	h := &s.hot[hi]
	clear(h.buckets)
	h.sums = [numClasses]protoBucket{}
	h.next, h.full = 0, false
	s.entries[ei].hot = hi
	s.hotUsed++
}

func (s *shard) releaseHot(e *entry) {
	s.hotFree = append(s.hotFree, e.hot)
	e.hot = -1
	s.hotUsed--
}

// sampleCopy returns the entry's recent records, oldest first.
func (s *shard) sampleCopy(e *entry) []flow.Record {
	if e.hot < 0 {
		return nil
	}
	h := &s.hot[e.hot]
	if !h.full {
		return append([]flow.Record(nil), h.sample[:h.next]...)
	}
	out := make([]flow.Record, 0, len(h.sample))
	out = append(out, h.sample[h.next:]...)
	return append(out, h.sample[:h.next]...)
}

func (s *shard) keepSample(e *entry, r *flow.Record) {
	h := &s.hot[e.hot]
	if len(h.sample) == 0 {
		return
	}
	h.sample[h.next] = *r
	h.next++
	if h.next == len(h.sample) {
		h.next, h.full = 0, true
	}
}
