package engine

import (
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/kapkan-io/kapkan/flow"
)

// bucket is one second of one window.
type bucket struct {
	pkts  uint32 // saturating
	flows uint32 // saturating
	bytes uint64
}

// entry is the window of one address (or prefix total) and direction. It
// is kept small (36 bytes) because there is one per active address; its
// buckets live in its chunk and its sums are computed from them.
type entry struct {
	addr   [16]byte
	last   uint32 // Unix second of the newest bucket; 0 for a free entry
	prefix uint32 // protected prefix index
	hot    int32  // index into shard.hot, -1 when none
	attack int32  // index into shard.attacks, -1 when none
	meta   uint8  // direction | kindTotal
	listed bool   // in the index (a live entry)
	// samples counts the records added in the second `last`, for the fast
	// trip (saturating).
	samples uint16
}

func (e *entry) dir() Direction      { return Direction(e.meta & 1) }
func (e *entry) isTotal() bool       { return e.meta&kindTotal != 0 }
func (e *entry) free() bool          { return e.last == 0 }
func (e *entry) is(k *tableKey) bool { return e.meta == k.meta && e.addr == k.addr }

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
	// table is the prefix table the entries' prefix indexes refer to; the
	// shard moves to a newer one itself (migrate).
	table *prefixTable

	ix     index
	chunks []chunk // entry ei is chunks[ei>>shift].entries[ei&cmask]
	shift  uint32
	cmask  uint32
	n      uint32 // entries handed out so far (live or in free)
	free   []uint32

	hot     []hotDetail
	hotFree []int32
	hotUsed int

	attacks     []*attackState
	attackFree  []int32
	attackCount int

	now       int64 // newest second seen (data time) or ticked
	lastEvict int64

	outbox []Candidate

	touched uint64 // what prefetch read, kept so that its loads are not removed

	// traffic is filled by the once-a-second walk (evict) and published
	// in trafficSnap for Engine.Top.
	traffic     trafficScratch
	trafficSnap atomic.Pointer[shardTraffic]

	stats shardStats
}

// shardStats are plain counters owned by the shard, published to the
// engine's atomics once per sub-batch or tick.
type shardStats struct {
	records, late, hotRefused uint64
}

// newShard builds a shard whose index is sized for expect entries (at
// least 1024). The engine passes its share of the protected addresses:
// one entry each for incoming traffic; outgoing windows and prefix totals
// come on top and grow the index as needed.
func newShard(e *Engine, id int, window int64, queue, expect int) *shard {
	s := &shard{
		e: e, id: id, window: window,
		in:    make(chan *subBatch, queue),
		ix:    newIndex(max(expect, 1024)),
		table: e.table.Load(),
	}
	s.shift = chunkShift(window)
	s.cmask = 1<<s.shift - 1
	return s
}

// A chunk holds up to maxChunkEntries entries (576 KiB) and their buckets,
// fewer for long windows so that its buckets stay within maxChunkBuckets
// (2 MiB): with the default 5-second window, 16 Ki entries; with a
// 300-second window, 256.
const (
	maxChunkEntries = 1 << 14
	minChunkEntries = 1 << 8
	maxChunkBuckets = 1 << 17
)

// chunkShift returns log2 of the entries per chunk for a window.
func chunkShift(window int64) uint32 {
	shift := uint32(bits.TrailingZeros(maxChunkEntries))
	for int64(1)<<shift > minChunkEntries && (int64(1)<<shift)*window > maxChunkBuckets {
		shift--
	}
	return shift
}

// chunk holds a fixed number of entries and their buckets. The shard's
// tables grow a chunk at a time and never move: a million new addresses
// arriving at once cost 62 allocations and no copying, where doubling
// slices copied every entry and bucket about twice and left as much garbage
// to collect (the cold-start losses in docs/performance.md).
type chunk struct {
	entries []entry
	buckets []bucket // len(entries) × window
}

// entry returns entry ei.
func (s *shard) entry(ei uint32) *entry {
	return &s.chunks[ei>>s.shift].entries[ei&s.cmask]
}

// bucketsOf returns entry ei's window, one bucket per second (second t in
// t % window).
func (s *shard) bucketsOf(ei uint32) []bucket {
	off := int64(ei&s.cmask) * s.window
	return s.chunks[ei>>s.shift].buckets[off : off+s.window : off+s.window]
}

// bucket returns entry ei's bucket for second sec.
func (s *shard) bucket(ei uint32, sec int64) *bucket {
	return &s.chunks[ei>>s.shift].buckets[int64(ei&s.cmask)*s.window+sec%s.window]
}

// lookup returns the entry for k, creating it when absent.
func (s *shard) lookup(k *tableKey, prefix uint32) uint32 {
	h := hashKey(k)
	for i := h & s.ix.mask; ; i = (i + 1) & s.ix.mask {
		slot := s.ix.slots[i]
		if slot == 0 {
			break
		}
		if s.entry(slot - 1).is(k) {
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
		ei = s.n
		if ei>>s.shift == uint32(len(s.chunks)) {
			n := int64(s.cmask) + 1
			s.chunks = append(s.chunks, chunk{entries: make([]entry, n), buckets: make([]bucket, n*s.window)})
		}
		s.n++
	}
	*s.entry(ei) = entry{addr: k.addr, meta: k.meta, prefix: prefix, hot: -1, attack: -1, listed: true}
	clear(s.bucketsOf(ei))
	s.ix.insert(h, ei)
	return ei
}

// grow doubles the index and reinserts every live entry, reading the
// entries in memory order rather than in the old index's (random) order.
func (s *shard) grow() {
	s.ix = index{slots: make([]uint32, len(s.ix.slots)*2), mask: uint64(len(s.ix.slots)*2 - 1)}
	for ci, c := range s.chunks {
		for i := range c.entries {
			ei := uint32(ci)<<s.shift | uint32(i)
			if ei >= s.n {
				return
			}
			if e := &c.entries[i]; e.listed {
				s.ix.insert(hashKey(&tableKey{e.addr, e.meta}), ei)
			}
		}
	}
}

// remove deletes entry ei from the index (backward-shift deletion) and
// frees it.
func (s *shard) remove(ei uint32) {
	ix := &s.ix
	i := s.entryHash(ei) & ix.mask
	for ix.slots[i] != ei+1 {
		if ix.slots[i] == 0 {
			return
		}
		i = (i + 1) & ix.mask
	}
	ix.slots[i] = 0
	ix.count--
	for j := (i + 1) & ix.mask; ix.slots[j] != 0; j = (j + 1) & ix.mask {
		home := s.entryHash(ix.slots[j]-1) & ix.mask
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
	e := s.entry(ei)
	if e.hot >= 0 {
		s.releaseHot(e)
	}
	*e = entry{hot: -1, attack: -1}
	s.free = append(s.free, ei)
}

func (s *shard) entryHash(ei uint32) uint64 {
	e := s.entry(ei)
	return hashKey(&tableKey{e.addr, e.meta})
}

// advance moves entry ei's window forward to second sec, dropping the
// seconds that leave it.
func (s *shard) advance(ei uint32, sec int64) {
	e := s.entry(ei)
	last := int64(e.last)
	if sec <= last {
		return
	}
	W := s.window
	win := s.bucketsOf(ei)
	if sec-last >= W {
		clear(win)
		if e.hot >= 0 {
			h := &s.hot[e.hot]
			clear(h.buckets)
			h.sums = [numClasses]protoBucket{}
		}
	} else {
		for t := last + 1; t <= sec; t++ {
			win[t%W] = bucket{}
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
	e.last = uint32(sec)
	e.samples = 0
}

// add counts traffic in second sec of entry ei.
func (s *shard) add(ei uint32, sec int64, pkts, bytes, flows uint64, cls uint8) {
	e := s.entry(ei)
	if sec > int64(e.last) {
		s.advance(ei, sec)
	} else if sec <= int64(e.last)-s.window {
		s.stats.late++
		return
	}
	b := s.bucket(ei, sec)
	b.pkts = satAdd32(b.pkts, pkts)
	b.flows = satAdd32(b.flows, flows)
	b.bytes += bytes
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

// totals sums entry ei's buckets: packets, bytes and flows in the window.
// The caller has advanced the window to the current second.
func (s *shard) totals(ei uint32) (t [numTotals]uint64) {
	for _, b := range s.bucketsOf(ei) {
		t[0] += uint64(b.pkts)
		t[1] += b.bytes
		t[2] += uint64(b.flows)
	}
	return t
}

// current returns the packets, bytes and flows of the newest second.
func (s *shard) current(ei uint32) (t [numTotals]uint64) {
	b := s.bucket(ei, int64(s.entry(ei).last))
	return [numTotals]uint64{uint64(b.pkts), b.bytes, uint64(b.flows)}
}

func satAdd32(a uint32, b uint64) uint32 {
	if s := uint64(a) + b; s < 1<<32 {
		return uint32(s)
	}
	return 1<<32 - 1
}

// windowSums returns the window sums of every metric of entry ei, given
// its totals t.
func (s *shard) windowSums(ei uint32, t [numTotals]uint64) (v [NumMetrics]uint64) {
	v[MetricPPS], v[MetricBPS], v[MetricFPS] = t[0], t[1], t[2]
	e := s.entry(ei)
	if e.hot >= 0 {
		h := &s.hot[e.hot]
		for c := range numClasses {
			v[MetricTCPPPS+Metric(c)] = h.sums[c].pkts
			v[MetricTCPBPS+Metric(c)] = h.sums[c].bytes
		}
	}
	return v
}

// rateNow is "the rate now" of entry ei at now (Unix ns): the one
// definition that attack events, ladder conditions, code policies and the
// API see. It is the window's traffic over the time the window spans: its
// complete seconds and, when the second in progress already holds traffic,
// the part of that second that has passed. Dividing by the whole window
// instead read a steady rate low whenever the newest second was young (at
// a tick it is empty: a steady 100 000 pps read as 80 000 with a 5 s
// window, so a ladder condition "pps > 90000" never held). Thresholds
// still trip on the window sum as records arrive (check), which is what
// makes detection fast.
func (s *shard) rateNow(ei uint32, now int64) (r Rates) {
	span := s.rateSpan(ei, now)
	sums := s.windowSums(ei, s.totals(ei))
	for m := range NumMetrics {
		r[m] = uint64(float64(sums[m]) / span)
	}
	return r
}

// rateSpan moves entry ei's window to the second before now (Unix ns) if
// it is older, and returns the seconds its traffic is divided by for the
// rate now (see rateNow).
func (s *shard) rateSpan(ei uint32, now int64) float64 {
	sec := now / int64(time.Second)
	if last := int64(s.entry(ei).last); last < sec-1 {
		s.advance(ei, sec-1) // the seconds since are complete and empty
	}
	span := float64(s.window)
	if int64(s.entry(ei).last) >= sec && s.window > 1 {
		span = float64(s.window-1) + float64(now-sec*int64(time.Second))/float64(time.Second)
	}
	return span
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
	s.entry(ei).hot = hi
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
