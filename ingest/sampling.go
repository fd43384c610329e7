package ingest

import (
	"math"

	"github.com/kapkan-io/kapkan/flow"
)

// Sampler identifiers a NetFlow v9 / IPFIX options record can be scoped by.
const (
	scopeDomain   uint8 = iota // the whole exporter / observation domain
	scopeSampler               // IE 48 samplerId (v9 FLOW_SAMPLER_ID)
	scopeSelector              // IE 302 selectorId (PSAMP)
)

// samplerKey identifies one sampler of one exporter.
type samplerKey struct {
	version uint16
	domain  uint32
	kind    uint8
	id      uint64
}

// rateEntry is a learned sampling rate and where it came from.
type rateEntry struct {
	rate   uint32
	source flow.SamplingSource
}

// rateStore keeps the sampling rates one exporter announced. It is owned by
// the exporter's state and guarded by its lock.
type rateStore struct {
	budget *budget // shared over every exporter; nil: no shared bound
	rates  map[samplerKey]rateEntry
	// perDomain counts the sampler- or selector-scoped rates of a domain, and
	// remembers the last, so that records without a sampler id can still
	// use the one rate a domain announced.
	perDomain map[domainKey]domainSamplers
	// memo is the last lookup and its answer, cleared by set: an
	// exporter's records name the same sampler again and again, and this
	// spares each of them two map lookups.
	memo struct {
		ok   bool
		q    samplerKey
		rate uint32
		hit  bool
	}
}

type domainKey struct {
	version uint16
	domain  uint32
}

type domainSamplers struct {
	count int
	last  uint32
}

const maxSamplersPerExporter = 4096

func (s *rateStore) set(k samplerKey, rate uint32) {
	if rate == 0 {
		return
	}
	if s.rates == nil {
		s.rates = make(map[samplerKey]rateEntry)
		s.perDomain = make(map[domainKey]domainSamplers)
	}
	s.memo.ok = false
	old, existed := s.rates[k]
	if !existed && (len(s.rates) >= maxSamplersPerExporter || !s.budget.take(1)) {
		if len(s.rates) >= maxSamplersPerExporter {
			s.budget.refuse()
		}
		return // bounded: a misbehaving exporter cannot grow this forever
	}
	s.rates[k] = rateEntry{rate: rate, source: flow.SamplingOptions}
	if k.kind != scopeDomain {
		dk := domainKey{k.version, k.domain}
		d := s.perDomain[dk]
		if !existed {
			d.count++
		}
		d.last = rate
		s.perDomain[dk] = d
	}
	_ = old
}

// lookup finds the rate for a record of (version, domain) that named sampler
// (kind, id); kind is scopeDomain when the record names none.
func (s *rateStore) lookup(version uint16, domain uint32, kind uint8, id uint64) (uint32, bool) {
	if s.rates == nil {
		return 0, false
	}
	q := samplerKey{version, domain, kind, id}
	if s.memo.ok && s.memo.q == q {
		return s.memo.rate, s.memo.hit
	}
	rate, hit := s.find(version, domain, kind, id)
	s.memo.ok, s.memo.q, s.memo.rate, s.memo.hit = true, q, rate, hit
	return rate, hit
}

func (s *rateStore) find(version uint16, domain uint32, kind uint8, id uint64) (uint32, bool) {
	if kind != scopeDomain {
		if e, ok := s.rates[samplerKey{version, domain, kind, id}]; ok {
			return e.rate, true
		}
	}
	if e, ok := s.rates[samplerKey{version, domain, scopeDomain, 0}]; ok {
		return e.rate, true
	}
	// No domain-wide rate: if the domain announced exactly one sampler, it
	// is the only candidate (common with a single Flexible NetFlow sampler
	// whose data records do not carry the sampler id).
	if d := s.perDomain[domainKey{version, domain}]; d.count == 1 {
		return d.last, true
	}
	return 0, false
}

// samplingFields collects what a v9/IPFIX record or options record says about
// sampling. Zero means absent.
type samplingFields struct {
	interval       uint64 // IE 34 samplingInterval
	randomInterval uint64 // IE 50 samplerRandomInterval
	pktInterval    uint64 // IE 305 samplingPacketInterval
	pktSpace       uint64 // IE 306 samplingPacketSpace
	hasPktSpace    bool
	size           uint64 // IE 309 samplingSize
	population     uint64 // IE 310 samplingPopulation
	probability    float64
	samplerID      uint64 // IE 48
	hasSamplerID   bool
	selectorID     uint64 // IE 302
	hasSelectorID  bool
}

// rate derives a sampling rate (1 in N) from the fields present, or 0.
func (f *samplingFields) rate() uint32 {
	switch {
	case f.pktInterval > 0 && f.hasPktSpace:
		// PSAMP systematic count-based: select interval packets, skip space.
		return clampRate((f.pktInterval + f.pktSpace) / f.pktInterval)
	case f.randomInterval > 0:
		return clampRate(f.randomInterval)
	case f.interval > 0:
		return clampRate(f.interval)
	case f.size > 0 && f.population > 0:
		return clampRate(f.population / f.size)
	case f.probability > 0 && f.probability <= 1:
		return clampRate(uint64(math.Round(1 / f.probability)))
	}
	return 0
}

func clampRate(v uint64) uint32 {
	if v > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(v)
}

// samplerRef returns the sampler a record or options scope names.
func (f *samplingFields) samplerRef() (kind uint8, id uint64) {
	switch {
	case f.hasSelectorID:
		return scopeSelector, f.selectorID
	case f.hasSamplerID:
		return scopeSampler, f.samplerID
	}
	return scopeDomain, 0
}
