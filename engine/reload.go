package engine

import "net/netip"

// Reconfigure applies what of cfg can change while the engine runs: the
// hostgroups (prefixes, thresholds, ignore lists), Cooldown and Hysteresis.
// The new prefix table is built off to the side; when cfg is invalid (a
// prefix in two hostgroups, a hysteresis out of range) an error wrapping
// ErrConfig is returned and nothing changes.
//
// Window, Shards, QueueSize, SampleSize and MaxHot size the shards and
// cannot change without a restart: they are left as they are, and the
// names of those that differ from the running ones are returned in restart.
//
// Each shard moves its windows to the new table itself, at its next
// sub-batch or tick (at once in a synchronous engine, before Reconfigure
// returns):
//   - a window of an address (or a prefix total) that stays protected is
//     kept, buckets and detail, and judged against its new thresholds from
//     its next record on: a threshold lowered below a rate already in the
//     window starts an attack at the next record;
//   - an address that is no longer protected loses its windows, and its
//     attack ends at once: an Ended candidate with Unprotected set, so that
//     its mitigation is withdrawn. A prefix total goes the same way when its
//     prefix is removed;
//   - an attack whose target stays protected keeps running; when its
//     thresholds are lowered or raised it goes on or cools down by the new
//     ones.
//
// Records already routed with the previous table are counted in the new
// one; those whose window the new table no longer has are dropped, counted
// as kapkan_engine_dropped_records_total{reason="reconfigured"}.
//
// Reconfigure may be called from any goroutine on a live engine; on a
// synchronous one, from the goroutine that feeds it.
func (e *Engine) Reconfigure(cfg Config) (restart []string, err error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	cur := &e.cfg
	for _, f := range []struct {
		name    string
		changed bool
	}{
		{"Window", cfg.Window != cur.Window},
		{"Shards", cfg.Shards != cur.Shards},
		{"QueueSize", cfg.QueueSize != cur.QueueSize},
		{"SampleSize", cfg.SampleSize != cur.SampleSize},
		{"MaxHot", cfg.MaxHot != cur.MaxHot},
	} {
		if f.changed {
			restart = append(restart, f.name)
		}
	}
	t, err := e.buildTable(&cfg, e.table.Load().gen+1)
	if err != nil {
		return nil, err
	}
	e.table.Store(t)
	if e.sync {
		for _, s := range e.shards {
			s.migrate(t)
			s.publish()
		}
	}
	return restart, nil
}

// migrate moves the shard's entries to table t: each keeps its window with
// the index of its prefix in t, or, no longer protected, is removed and its
// attack ended.
func (s *shard) migrate(t *prefixTable) {
	old := s.table
	if t.gen < old.gen {
		return // never back: tables are published in order
	}
	if t.layout == old.layout {
		// Only thresholds, ignore lists or hostgroup names changed: every
		// index still means the same prefix, nothing to move.
		s.table = t
		return
	}
	for i := range s.n {
		e := s.entry(i)
		if !e.listed {
			continue
		}
		if pi, ok := t.indexOf(e); ok {
			e.prefix = pi
			continue
		}
		// Reported with the old table (the entry still refers to it): the
		// hostgroup and prefix the attack was detected under.
		if e.attack >= 0 {
			c := s.candidate(s.attacks[e.attack], AttackEnded, s.now, true)
			c.Unprotected = true
			s.emit(c)
			s.freeAttack(e)
		}
		s.remove(i)
	}
	s.table = t
}

// indexOf returns the index in t of the prefix entry e belongs to: for an
// address, its most specific protected prefix; for a prefix total, the same
// prefix.
func (t *prefixTable) indexOf(e *entry) (uint32, bool) {
	if e.isTotal() {
		pi, ok := t.byID[totalID(&e.addr)]
		return pi, ok
	}
	return t.find(netip.AddrFrom16(e.addr).Unmap())
}

// remapStale moves the items of a sub-batch routed with an older table to
// the shard's: each is routed again as the new table would have (its
// address still protected, its remote not ignored, its prefix total still
// kept), or dropped. Only sub-batches in flight during a reconfiguration
// take this way.
func (s *shard) remapStale(sb *subBatch) {
	t := s.table
	kept := 0
	for i := range sb.n {
		it := &sb.items[i]
		pi, ok := t.route(it)
		if !ok {
			continue
		}
		it.prefix = pi
		if kept != i {
			sb.items[kept] = *it
		}
		kept++
	}
	if dropped := sb.n - kept; dropped > 0 {
		s.e.m.dropped.WithLabelValues("reconfigured").Add(float64(dropped))
	}
	sb.n, sb.table = kept, t
}

// route returns the prefix index item it has in t, or false when t would
// not have routed it to its window.
func (t *prefixTable) route(it *item) (uint32, bool) {
	d := Direction(it.key.meta & 1)
	var pi uint32
	var ok bool
	if it.key.meta&kindTotal != 0 {
		pi, ok = t.byID[totalID(&it.key.addr)]
	} else {
		pi, ok = t.find(netip.AddrFrom16(it.key.addr).Unmap())
	}
	if !ok {
		return 0, false
	}
	hg := &t.hostgroups[t.prefixes[pi].hostgroup]
	if it.key.meta&kindTotal != 0 && !hg.hasTotal[d] {
		return 0, false
	}
	remote := it.rec.SrcAddr()
	if d == Out {
		remote = it.rec.DstAddr()
	}
	if hg.ignore != nil && hg.ignore.Contains(remote) {
		return 0, false
	}
	return pi, true
}
