package engine

import (
	"cmp"
	"net/netip"
	"slices"
	"time"
)

// TopLimit is the most targets per direction a traffic snapshot can list:
// each shard keeps, per direction, its TopLimit busiest addresses by each
// of packets, bytes and flows.
const TopLimit = 100

// TrafficRates are the rate now of packets, bytes and flows per second
// (bytes in bytes/s; Mbps converts them).
type TrafficRates struct {
	PPS, BPS, FPS uint64
}

func (r *TrafficRates) add(o *[numTotals]uint64) {
	r.PPS += o[MetricPPS]
	r.BPS += o[MetricBPS]
	r.FPS += o[MetricFPS]
}

// TopTarget is one protected address in a traffic snapshot.
type TopTarget struct {
	Target    netip.Addr
	Hostgroup string
	Rates     TrafficRates
}

// HostgroupTraffic sums the rates of a hostgroup's addresses per direction.
type HostgroupTraffic struct {
	Name               string
	Incoming, Outgoing TrafficRates
}

// TopSnapshot is the traffic now, as the shards saw it at their last
// once-a-second walk: it is at most about a second old (At says when), and
// each rate is the rate now that attacks report (the window's traffic
// over the time it spans).
type TopSnapshot struct {
	// At is the newest second a shard took its part at; zero before the
	// first walk.
	At            time.Time
	WindowSeconds int
	// By is the metric the targets are ordered by (highest first).
	By Metric
	// Incoming and Outgoing are the busiest addresses of each direction,
	// at most the limit asked for; addresses without traffic in that
	// metric are left out.
	Incoming, Outgoing []TopTarget
	// Hostgroups lists every configured hostgroup, in configuration order.
	Hostgroups []HostgroupTraffic
}

// topItem is one address's rates in a shard's snapshot.
type topItem struct {
	addr [16]byte
	hg   uint32 // hostgroup index in the shard's table at the walk
	r    [numTotals]uint64
}

// topHeap keeps the TopLimit largest items by one metric; items[0] is the
// smallest kept.
type topHeap struct {
	m     Metric
	items []topItem
}

// less orders by the heap's metric, then by address (the higher address
// counts as smaller), so that ties are broken the same way every time.
func (h *topHeap) less(a, b *topItem) bool {
	if a.r[h.m] != b.r[h.m] {
		return a.r[h.m] < b.r[h.m]
	}
	return string(a.addr[:]) > string(b.addr[:])
}

// offer keeps it if it is among the largest seen so far.
func (h *topHeap) offer(it *topItem) {
	if it.r[h.m] == 0 {
		return
	}
	if len(h.items) < cap(h.items) {
		h.items = append(h.items, *it)
		for i := len(h.items) - 1; i > 0; {
			p := (i - 1) / 2
			if !h.less(&h.items[i], &h.items[p]) {
				break
			}
			h.items[i], h.items[p] = h.items[p], h.items[i]
			i = p
		}
		return
	}
	if !h.less(&h.items[0], it) {
		return
	}
	h.items[0] = *it
	for i, n := 0, len(h.items); ; {
		l, small := 2*i+1, i
		if l < n && h.less(&h.items[l], &h.items[small]) {
			small = l
		}
		if r := l + 1; r < n && h.less(&h.items[r], &h.items[small]) {
			small = r
		}
		if small == i {
			return
		}
		h.items[i], h.items[small] = h.items[small], h.items[i]
		i = small
	}
}

// trafficScratch is what a shard fills during its walk, reused from one
// second to the next.
type trafficScratch struct {
	heaps [2][numTotals]topHeap
	// hg sums the window traffic of each hostgroup's addresses, per
	// direction and per divisor: windows whose newest second already holds
	// traffic span one second less (rateNow), and the sums are divided at
	// publication, so the walk divides only for would-be top addresses.
	hg [][2][2][numTotals]uint64
}

// shardTraffic is a shard's published part of the traffic snapshot; it is
// never changed once published.
type shardTraffic struct {
	at      int64 // Unix second of the walk
	targets [2][]topItem
	hgNames []string
	hg      [][2][numTotals]uint64 // rates per hostgroup and direction
}

// beginTraffic readies the scratch for a walk with table t.
func (s *shard) beginTraffic(t *prefixTable) *trafficScratch {
	sc := &s.traffic
	for d := range sc.heaps {
		for m := range sc.heaps[d] {
			h := &sc.heaps[d][m]
			if h.items == nil {
				h.items = make([]topItem, 0, TopLimit)
			}
			h.m, h.items = Metric(m), h.items[:0]
		}
	}
	if cap(sc.hg) < len(t.hostgroups) {
		sc.hg = make([][2][2][numTotals]uint64, len(t.hostgroups))
	}
	sc.hg = sc.hg[:len(t.hostgroups)]
	clear(sc.hg)
	return sc
}

// observeTraffic adds address entry ei, with window sums tot over span
// seconds at a whole second (see rateSpan), to the walk's scratch. Its
// rates are the rate now (rateNow's definition, so the
// snapshot and attack events agree), worked out only when one of them can
// enter a full top list: a window divided by at least window-1 seconds
// cannot beat a kept rate r with less than r×(window-1) in its sum. This
// spares most of a million windows three divisions and conversions (the
// walk cost 23.6 ms a second per million windows computing every rate,
// see BenchmarkEngineTick).
func (s *shard) observeTraffic(sc *trafficScratch, t *prefixTable, ei uint32, tot *[numTotals]uint64, span float64) {
	e := s.entry(ei)
	d := e.dir()
	short := 0
	if span < float64(s.window) {
		short = 1
	}
	hg := t.prefixes[e.prefix].hostgroup
	sum := &sc.hg[hg][d][short]
	sum[0] += tot[0]
	sum[1] += tot[1]
	sum[2] += tot[2]
	hs := &sc.heaps[d]
	minSpan := uint64(max(s.window-1, 1))
	for m := range numTotals {
		h := &hs[m]
		if tot[m] == 0 || len(h.items) == cap(h.items) && tot[m] < h.items[0].r[m]*minSpan {
			continue
		}
		it := topItem{addr: e.addr, hg: uint32(hg)}
		for m := range numTotals {
			it.r[m] = uint64(float64(tot[m]) / span)
		}
		for m := range hs {
			hs[m].offer(&it)
		}
		return
	}
}

// publishTraffic publishes the walk's result, built off to the side: a few
// allocations of a few kilobytes per shard and second.
func (s *shard) publishTraffic(sc *trafficScratch, t *prefixTable, now int64) {
	st := &shardTraffic{at: now, hg: make([][2][numTotals]uint64, len(sc.hg))}
	div := [2]uint64{uint64(s.window), uint64(max(s.window-1, 1))}
	for i := range sc.hg {
		for d := range sc.hg[i] {
			for short := range sc.hg[i][d] {
				for m := range numTotals {
					st.hg[i][d][m] += sc.hg[i][d][short][m] / div[short]
				}
			}
		}
	}
	for d := range sc.heaps {
		var all []topItem
		for m := range sc.heaps[d] {
			all = append(all, sc.heaps[d][m].items...)
		}
		// An address busy in several metrics is kept once.
		slices.SortFunc(all, func(a, b topItem) int { return cmp.Compare(string(a.addr[:]), string(b.addr[:])) })
		st.targets[d] = slices.CompactFunc(all, func(a, b topItem) bool { return a.addr == b.addr })
	}
	st.hgNames = make([]string, len(t.hostgroups))
	for i := range t.hostgroups {
		st.hgNames[i] = t.hostgroups[i].name
	}
	s.trafficSnap.Store(st)
}

// Top returns the traffic now: the limit busiest protected addresses of
// each direction by metric by, and every hostgroup's totals. It merges
// the parts the shards published at their last once-a-second walk (see
// TopSnapshot), so it is cheap, never waits for a shard, and is safe to
// call from any goroutine, on live and synchronous engines alike (a
// synchronous engine walks at each Tick to a new second). A limit of 0 or
// less, or above TopLimit, means TopLimit; by is MetricPPS, MetricBPS or
// MetricFPS, anything else means MetricPPS.
func (e *Engine) Top(limit int, by Metric) TopSnapshot {
	if limit <= 0 || limit > TopLimit {
		limit = TopLimit
	}
	if by >= numTotals {
		by = MetricPPS
	}
	snap := TopSnapshot{WindowSeconds: int(e.window), By: by}
	t := e.table.Load()
	hgIndex := make(map[string]int, len(t.hostgroups))
	for i := range t.hostgroups {
		snap.Hostgroups = append(snap.Hostgroups, HostgroupTraffic{Name: t.hostgroups[i].name})
		hgIndex[t.hostgroups[i].name] = i
	}
	var dirs [2][]TopTarget
	for _, s := range e.shards {
		st := s.trafficSnap.Load()
		if st == nil {
			continue
		}
		if at := time.Unix(st.at, 0).UTC(); at.After(snap.At) {
			snap.At = at
		}
		for i, name := range st.hgNames {
			j, ok := hgIndex[name]
			if !ok {
				continue // removed by a reload since
			}
			snap.Hostgroups[j].Incoming.add(&st.hg[i][In])
			snap.Hostgroups[j].Outgoing.add(&st.hg[i][Out])
		}
		for d := range st.targets {
			for _, it := range st.targets[d] {
				if it.r[by] == 0 {
					continue
				}
				dirs[d] = append(dirs[d], TopTarget{
					Target:    netip.AddrFrom16(it.addr).Unmap(),
					Hostgroup: st.hgNames[it.hg],
					Rates:     TrafficRates{PPS: it.r[MetricPPS], BPS: it.r[MetricBPS], FPS: it.r[MetricFPS]},
				})
			}
		}
	}
	for d := range dirs {
		slices.SortFunc(dirs[d], func(a, b TopTarget) int {
			if c := cmp.Compare(b.Rates.get(by), a.Rates.get(by)); c != 0 {
				return c
			}
			return a.Target.Compare(b.Target)
		})
		if len(dirs[d]) > limit {
			dirs[d] = dirs[d][:limit:limit]
		}
	}
	snap.Incoming, snap.Outgoing = dirs[In], dirs[Out]
	return snap
}

// get returns the rate of metric m (one of the totals).
func (r TrafficRates) get(m Metric) uint64 {
	switch m {
	case MetricBPS:
		return r.BPS
	case MetricFPS:
		return r.FPS
	}
	return r.PPS
}
