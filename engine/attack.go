package engine

import (
	"net/netip"
	"time"
)

// attackState is an attack the shard is following.
type attackState struct {
	id         uint64
	entry      uint32
	started    int64 // ns, data time
	trigger    Metric
	rate       uint64
	threshold  uint64
	peak       Rates
	belowSince int64 // second the rates fell below; 0 while above
	lastUpdate int64 // second of the last update candidate
}

// The fast trip: the newest second must hold fastFactor × a threshold, from
// at least fastMinSamples records (so a single heavily sampled record
// cannot trip it).
const (
	fastFactor     = 2
	fastMinSamples = 8
)

// check compares entry ei's window with its thresholds after traffic was
// added by a record received at now (Unix ns), starting an attack or keeping
// one alive.
func (s *shard) check(ei uint32, now int64) {
	e := s.entry(ei)
	limits, hotAt := s.table.limitsFor(e)
	W := uint64(s.window)
	t := s.totals(ei)
	cur := s.current(ei)
	// Hot from half the smallest threshold over the window, or from the
	// smallest threshold within the newest second (so that a flood that
	// trips fast already has a flow sample).
	if e.hot < 0 {
		for i := range numTotals {
			if hotAt[i] > 0 && (t[i] >= hotAt[i] || cur[i] >= hotAt[i]*2/W) {
				s.makeHot(ei)
				e = s.entry(ei)
				break
			}
		}
	}
	// Most records are for an entry that is neither hot nor attacked: its
	// per-protocol sums are zero, so the totals decide alone. (Calling
	// windowSums for them too reads simpler but cost 5 % per record at
	// 10 000 addresses: 128.7 → 135.5 ns, n=6.)
	var sums [NumMetrics]uint64
	n := Metric(numTotals)
	if e.hot >= 0 || e.attack >= 0 {
		sums = s.windowSums(ei, t)
		n = NumMetrics
	} else {
		copy(sums[:numTotals], t[:])
	}
	if e.attack >= 0 {
		a := s.attacks[e.attack]
		r := s.rateNow(ei, now)
		for m := range NumMetrics {
			if r[m] > a.peak[m] {
				a.peak[m] = r[m]
			}
		}
		return
	}
	// Fast trip: a flood far above a threshold need not fill the window.
	// When the newest second alone already holds twice a second's worth of
	// a total threshold, from enough records to trust it, the attack starts.
	if e.samples >= fastMinSamples {
		for m := Metric(0); m < numTotals; m++ {
			if l := limits[m]; l > 0 && cur[m] >= fastFactor*l {
				s.startAttack(ei, now, m, cur[m], l, &sums)
				return
			}
		}
	}
	// The window: totals, and per-protocol when detail is kept.
	for m := range n {
		if l := limits[m]; l > 0 && sums[m] >= l*W {
			s.startAttack(ei, now, m, sums[m]/W, l, &sums)
			return
		}
	}
}

func (s *shard) startAttack(ei uint32, now int64, m Metric, rate, limit uint64, sums *[NumMetrics]uint64) {
	sec := now / int64(time.Second)
	a := &attackState{
		id:         s.e.nextID.Add(1),
		entry:      ei,
		started:    now,
		trigger:    m,
		rate:       rate,
		threshold:  limit,
		lastUpdate: sec,
	}
	a.peak = s.rateNow(ei, now)
	var ai int32
	if n := len(s.attackFree); n > 0 {
		ai = s.attackFree[n-1]
		s.attackFree = s.attackFree[:n-1]
		s.attacks[ai] = a
	} else {
		ai = int32(len(s.attacks))
		s.attacks = append(s.attacks, a)
	}
	s.entry(ei).attack = ai
	s.attackCount++
	c := s.candidate(a, AttackStarted, sec, true)
	c.Rates = a.peak // the rate now, at the record's time
	c.At = c.Started
	s.emit(c)
}

// candidate builds the Candidate for attack a at second sec.
func (s *shard) candidate(a *attackState, kind CandidateKind, sec int64, withSample bool) Candidate {
	e := s.entry(a.entry)
	t := s.table
	p := t.prefixes[e.prefix]
	c := Candidate{
		Kind:      kind,
		ID:        a.id,
		Direction: e.dir(),
		Hostgroup: t.hostgroups[p.hostgroup].name,
		Trigger:   a.trigger,
		Rate:      a.rate,
		Threshold: a.threshold,
		Peak:      a.peak,
		Started:   time.Unix(0, a.started).UTC(),
		At:        time.Unix(sec, 0).UTC(),
	}
	if e.isTotal() {
		c.Scope, c.Target = ScopePrefix, p.prefix
	} else {
		addr := netip.AddrFrom16(e.addr).Unmap()
		c.Target = netip.PrefixFrom(addr, addr.BitLen())
	}
	c.Rates = s.rateNow(a.entry, sec*int64(time.Second))
	if withSample {
		c.Sample = s.sampleCopy(e)
	}
	return c
}

// freeAttack forgets the attack of entry e, once its end was reported.
func (s *shard) freeAttack(e *entry) {
	ai := e.attack
	e.attack = -1
	s.attacks[ai] = nil
	s.attackFree = append(s.attackFree, ai)
	s.attackCount--
}

// tick advances time to second now: attacks whose rates stayed below their
// thresholds for the cool-down end, active ones report their rates once a
// second, and idle windows are evicted.
func (s *shard) tick(now int64) {
	if now > s.now {
		s.now = now
	}
	t := s.table
	cooldown := t.cooldown
	for _, a := range s.attacks {
		if a == nil {
			continue
		}
		e := s.entry(a.entry)
		limits, _ := t.limitsFor(e)
		rates := s.rateNow(a.entry, now*int64(time.Second))
		above, below := false, true
		for m := range NumMetrics {
			l := limits[m]
			if l == 0 {
				continue
			}
			r := rates[m]
			if r >= l {
				above = true
			}
			if float64(r) >= float64(l)*(1-t.hysteresis) {
				below = false
			}
		}
		switch {
		case above:
			if a.belowSince != 0 {
				a.belowSince = 0
			}
			if now > a.lastUpdate {
				a.lastUpdate = now
				// With its sample: the pipeline classifies again while the
				// verdict stood on few records.
				s.emit(s.candidate(a, AttackUpdated, now, true))
			}
		case below && a.belowSince == 0:
			a.belowSince = now
			s.emit(s.candidate(a, AttackCooling, now, false))
		case below && now-a.belowSince >= cooldown:
			s.emit(s.candidate(a, AttackEnded, now, true))
			s.freeAttack(e)
		}
	}
	if now > s.lastEvict {
		s.lastEvict = now
		s.evict(now)
	}
	s.flushOutbox()
}

// evict drops windows that have seen no traffic for longer than the window
// (and follow no attack), and detail of addresses that cooled down. The
// same walk, the one that touches every window each second, takes the
// shard's part of the traffic snapshot (Engine.Top): a second walk over a
// million windows would cost as much again in cache misses.
func (s *shard) evict(now int64) {
	t := s.table
	sc := s.beginTraffic(t)
	defer s.publishTraffic(sc, t, now)
	for i := range s.n {
		e := s.entry(i)
		if e.free() {
			continue
		}
		var tot [numTotals]uint64
		if e.isTotal() {
			if e.attack >= 0 {
				continue // an attack's window
			}
			s.advance(i, now)
			tot = s.totals(i)
		} else {
			// The rate now reads the window up to the second before now
			// (rateSpan moves it there); moving on to now then drops the
			// oldest second, which is subtracted rather than summed again.
			span := s.rateSpan(i, now*int64(time.Second))
			tot = s.totals(i)
			s.observeTraffic(sc, t, i, &tot, span)
			if e.attack >= 0 {
				continue // an attack's window
			}
			if int64(e.last) < now {
				b := s.bucket(i, now) // second now-window, leaving
				tot[0] -= uint64(b.pkts)
				tot[1] -= b.bytes
				tot[2] -= uint64(b.flows)
				s.advance(i, now)
			}
		}
		if tot == [numTotals]uint64{} {
			s.remove(uint32(i)) // nothing left in the window
			continue
		}
		if e.hot >= 0 && !e.isTotal() {
			_, hot := t.limitsFor(e)
			// Keep the detail until traffic is well below the hot mark.
			if tot[0] < hot[0]/2 && tot[1] < hot[1]/2 && tot[2] < hot[2]/2 {
				s.releaseHot(e)
			}
		}
	}
}
