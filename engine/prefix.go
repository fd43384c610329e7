package engine

import (
	"fmt"
	"net/netip"

	"github.com/gaissmai/bart"
)

// protected is one protected prefix.
type protected struct {
	prefix    netip.Prefix
	hostgroup int
	// id names the prefix for as long as the engine runs, whatever its
	// index in this or a later table: it keys the prefix's total windows,
	// which therefore stay in the same shard across a reconfiguration.
	id uint32
}

// hostgroupRuntime is a hostgroup compiled for the hot path.
type hostgroupRuntime struct {
	name   string
	ignore *bart.Lite // nil when the hostgroup ignores no source
	// limits per direction, per address and per prefix total
	limits      [2][NumMetrics]uint64
	totalLimits [2][NumMetrics]uint64
	hasTotal    [2]bool
	hasProto    [2]bool
	// hotAt is the window sum (packets, bytes, flows) from which an address
	// keeps per-protocol detail and a flow sample: half the smallest
	// threshold that could trip; totalHotAt the same for prefix totals.
	hotAt, totalHotAt [2][numTotals]uint64
}

// prefixTable maps addresses to their most specific protected prefix. It is
// immutable once built and shared by every goroutine.
//
// Entries and items refer to a prefix by its index in one table; a shard
// notes the table its entries refer to (shard.table) and moves them to a new
// one when it is published (shard.migrate).
type prefixTable struct {
	lookup     bart.Table[uint32]
	prefixes   []protected
	hostgroups []hostgroupRuntime
	// byID maps a prefix id to its index in prefixes; read off the hot path
	// only (when entries move to a new table).
	byID map[uint32]uint32
	// gen counts the tables an engine published: a larger one is newer.
	gen uint64
	// layout is shared by consecutive tables with the same prefixes in the
	// same order: an index into one is the same prefix in the other, and
	// an address has the same most specific prefix in both.
	layout uint64
	// cooldown (seconds) and hysteresis are published with the table so
	// that they change live, with it.
	cooldown   int64
	hysteresis float64
}

// buildPrefixTable compiles hostgroups. window is in seconds. ids holds the
// id of every prefix the engine has known; a prefix seen for the first time
// gets a new one, added to it.
func buildPrefixTable(hgs []Hostgroup, window uint64, ids map[netip.Prefix]uint32) (*prefixTable, error) {
	t := &prefixTable{byID: map[uint32]uint32{}}
	seen := map[netip.Prefix]string{}
	for hi, hg := range hgs {
		rt := hostgroupRuntime{name: hg.Name}
		rt.limits[In], rt.limits[Out] = hg.Incoming.limits(), hg.Outgoing.limits()
		rt.totalLimits[In], rt.totalLimits[Out] = hg.IncomingTotal.limits(), hg.OutgoingTotal.limits()
		for d := range 2 {
			for m := range NumMetrics {
				if rt.totalLimits[d][m] > 0 {
					rt.hasTotal[d] = true
				}
				if m >= numTotals && rt.limits[d][m] > 0 {
					rt.hasProto[d] = true
				}
			}
			rt.hotAt[d] = hotThresholds(&rt.limits[d], window)
			rt.totalHotAt[d] = hotThresholds(&rt.totalLimits[d], window)
		}
		if len(hg.IgnoreSources) > 0 {
			rt.ignore = new(bart.Lite)
			for _, p := range hg.IgnoreSources {
				rt.ignore.Insert(p.Masked())
			}
		}
		t.hostgroups = append(t.hostgroups, rt)
		for _, p := range hg.Prefixes {
			p = p.Masked()
			if other, dup := seen[p]; dup {
				return nil, fmt.Errorf("prefix %s is in hostgroups %q and %q", p, other, hg.Name)
			}
			seen[p] = hg.Name
			id, ok := ids[p]
			if !ok {
				id = uint32(len(ids))
				ids[p] = id
			}
			t.byID[id] = uint32(len(t.prefixes))
			t.lookup.Insert(p, uint32(len(t.prefixes)))
			t.prefixes = append(t.prefixes, protected{prefix: p, hostgroup: hi, id: id})
		}
	}
	return t, nil
}

// hotThresholds returns, per total (packets, bytes, flows), half the
// smallest window sum at which any threshold could trip: a per-protocol rate
// never exceeds its address's total, so below that no per-protocol detail
// is needed.
func hotThresholds(l *[NumMetrics]uint64, window uint64) (hot [numTotals]uint64) {
	min := func(cur, v uint64) uint64 {
		if v > 0 && (cur == 0 || v < cur) {
			return v
		}
		return cur
	}
	var m [numTotals]uint64
	for i := range NumMetrics {
		switch {
		case i == MetricPPS || (i >= MetricTCPPPS && i <= MetricFragPPS):
			m[0] = min(m[0], l[i])
		case Metric(i).IsBytes():
			m[1] = min(m[1], l[i])
		case i == MetricFPS:
			m[2] = min(m[2], l[i])
		}
	}
	for i := range m {
		hot[i] = m[i] * window / 2
		if m[i] > 0 && hot[i] == 0 {
			hot[i] = 1
		}
	}
	return hot
}

// samePrefixes reports whether t and o hold the same prefixes at the same
// indexes.
func (t *prefixTable) samePrefixes(o *prefixTable) bool {
	if len(t.prefixes) != len(o.prefixes) {
		return false
	}
	for i := range t.prefixes {
		if t.prefixes[i].prefix != o.prefixes[i].prefix {
			return false
		}
	}
	return true
}

// find returns the index of the most specific protected prefix holding a.
func (t *prefixTable) find(a netip.Addr) (uint32, bool) {
	return t.lookup.Lookup(a)
}

// limitsFor returns the per-second limits and the hot marks that apply to
// an entry: its hostgroup's, per address or per prefix total, for its
// direction.
func (t *prefixTable) limitsFor(e *entry) (limits *[NumMetrics]uint64, hotAt *[numTotals]uint64) {
	hg := &t.hostgroups[t.prefixes[e.prefix].hostgroup]
	d := e.dir()
	if e.isTotal() {
		return &hg.totalLimits[d], &hg.totalHotAt[d]
	}
	return &hg.limits[d], &hg.hotAt[d]
}
