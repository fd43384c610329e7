// Package engine is the fast path: it maps each flow record to the
// protected address (or prefix) it concerns, keeps sampling-corrected
// packets, bytes and flows per second over a sliding window in shards owned
// by one goroutine each, compares them with the hostgroup's thresholds as
// records arrive, and follows each attack from detection to its end.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/flow"
)

// subBatchSize is the number of items a shard receives at once.
const subBatchSize = 128

// item is one record's contribution to one window.
type item struct {
	rec    flow.Record
	key    tableKey
	prefix uint32
}

type subBatch struct {
	n int
	// table is the prefix table the items were routed with: their prefix
	// indexes are into it.
	table *prefixTable
	items [subBatchSize]item
}

// Deps are the engine's collaborators.
type Deps struct {
	Registry prometheus.Registerer // nil: metrics are kept but not registered
	Logger   *slog.Logger
	// Now is the wall clock for ticks in live mode (time.Now when nil).
	Now func() time.Time
	// Pool receives the batches the engine is done with.
	Pool *flow.Pool
	// FirstID is the id after which attack ids count (0: ids start at 1,
	// as replay wants). The daemon gives the time it starts in
	// microseconds, so ids stay unique across restarts in the history.
	FirstID uint64
}

// presizeAddrs bounds the number of addresses the shards' indexes are
// sized for at start: 1 Mi addresses, 8 MiB of index in all. Without it, a
// daemon started in front of a busy /12 doubles each index ten times within
// its first second of traffic, while every record is a first sighting; that
// is when datagrams were lost at the edge of what the machine takes
// (docs/performance.md). Entries and buckets still grow with the active
// addresses.
const presizeAddrs = 1 << 20

// protectedAddrs returns how many addresses the hostgroups' prefixes hold,
// up to limit (a prefix inside another is counted twice, which the limit
// makes harmless).
func protectedAddrs(hgs []Hostgroup, limit uint64) uint64 {
	var n uint64
	for _, hg := range hgs {
		for _, p := range hg.Prefixes {
			hostBits := p.Addr().BitLen() - p.Bits()
			if hostBits >= 63 {
				return limit
			}
			n += 1 << hostBits
			if n >= limit {
				return limit
			}
		}
	}
	return n
}

// Engine implements flow.Sink.
type Engine struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	pool  *flow.Pool
	table atomic.Pointer[prefixTable]

	shards         []*shard
	maxHotPerShard int
	window         int64
	nextID         atomic.Uint64

	routers sync.Pool
	subs    sync.Pool

	// mu serializes Reconfigure, so tables are published in the order of
	// their generations; prefixIDs (guarded by it) holds the id of every
	// prefix the engine has known.
	mu        sync.Mutex
	prefixIDs map[netip.Prefix]uint32

	out chan Candidate
	// sync mode (replay, tests): Consume and Tick run the shards inline.
	sync    bool
	pending []Candidate

	m            *engineMetrics
	droppedTotal atomic.Uint64
	// shed is the load-shedding factor: under overload one record in shed
	// is kept, its sampling rate multiplied by shed so rates stay true.
	shed     atomic.Uint32
	shedSeq  atomic.Uint64
	shedDrop atomic.Uint64
}

var _ flow.Sink = (*Engine)(nil)

// ErrConfig wraps configuration problems found by New.
var ErrConfig = errors.New("engine configuration")

// New builds an engine. It starts nothing: call Run (live) or use
// NewSync for deterministic, inline processing.
func New(cfg Config, deps Deps) (*Engine, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:    cfg,
		log:    deps.Logger,
		now:    deps.Now,
		pool:   deps.Pool,
		window: int64(cfg.Window / time.Second),
		out:    make(chan Candidate, 4096),

		prefixIDs: map[netip.Prefix]uint32{},
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	e.log = e.log.With("component", "engine")
	if e.now == nil {
		e.now = time.Now
	}
	if e.pool == nil {
		e.pool = flow.DefaultPool
	}
	t, err := e.buildTable(&cfg, 1)
	if err != nil {
		return nil, err
	}
	e.table.Store(t)
	e.maxHotPerShard = (cfg.MaxHot + cfg.Shards - 1) / cfg.Shards
	expect := int(protectedAddrs(cfg.Hostgroups, presizeAddrs)) / cfg.Shards
	for i := range cfg.Shards {
		e.shards = append(e.shards, newShard(e, i, e.window, cfg.QueueSize, expect))
	}
	e.shed.Store(1)
	e.nextID.Store(deps.FirstID)
	e.routers.New = func() any { return &router{subs: make([]*subBatch, len(e.shards))} }
	e.subs.New = func() any { return new(subBatch) }
	e.m = newEngineMetrics(e, deps.Registry)
	return e, nil
}

// normalize fills in defaults and checks the values New would refuse.
func (c *Config) normalize() error {
	def := DefaultConfig()
	if c.Window <= 0 {
		c.Window = def.Window
	}
	if c.Window%time.Second != 0 {
		return fmt.Errorf("%w: window %s is not a whole number of seconds", ErrConfig, c.Window)
	}
	if c.Cooldown <= 0 {
		c.Cooldown = def.Cooldown
	}
	if c.Hysteresis < 0 || c.Hysteresis >= 1 {
		return fmt.Errorf("%w: hysteresis %v must be in [0, 1)", ErrConfig, c.Hysteresis)
	}
	if c.Shards <= 0 {
		c.Shards = runtime.GOMAXPROCS(0)
	}
	if c.QueueSize <= 0 {
		c.QueueSize = def.QueueSize
	}
	if c.SampleSize <= 0 {
		c.SampleSize = def.SampleSize
	}
	if c.MaxHot <= 0 {
		c.MaxHot = def.MaxHot
	}
	return nil
}

// buildTable compiles cfg's hostgroups and live settings into the table of
// generation gen. The caller holds e.mu, or is New.
func (e *Engine) buildTable(cfg *Config, gen uint64) (*prefixTable, error) {
	t, err := buildPrefixTable(cfg.Hostgroups, uint64(e.window), e.prefixIDs)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	t.gen, t.layout = gen, gen
	if prev := e.table.Load(); prev != nil && t.samePrefixes(prev) {
		t.layout = prev.layout
	}
	t.cooldown = int64(cfg.Cooldown / time.Second)
	t.hysteresis = cfg.Hysteresis
	return t, nil
}

// NewSync builds an engine that processes every batch inline, in the
// caller's goroutine, and reports candidates through Drain: deterministic,
// for replay and tests.
func NewSync(cfg Config, deps Deps) (*Engine, error) {
	e, err := New(cfg, deps)
	if err != nil {
		return nil, err
	}
	e.sync = true
	return e, nil
}

// Candidates is where a live engine reports attacks.
func (e *Engine) Candidates() <-chan Candidate { return e.out }

// Drain returns, in order, the candidates a synchronous engine produced
// since the last call.
func (e *Engine) Drain() []Candidate {
	out := e.pending
	e.pending = nil
	return out
}

// router splits a batch into per-shard sub-batches. One is used per Consume
// call, so concurrent callers never share one.
type router struct {
	subs                 []*subBatch
	table                *prefixTable
	unprotected, ignored uint64
	dropped, routed      uint64
	noAddress            uint64
}

// Consume takes a batch from ingest: every record is looked up in the
// protected prefixes and handed to the shards that own its windows.
func (e *Engine) Consume(b *flow.Batch) {
	r := e.routers.Get().(*router)
	t := e.table.Load()
	r.table = t
	shed := uint64(1)
	if !e.sync {
		shed = uint64(e.adjustShedding())
	}
	if shed == 1 {
		for i := range b.N {
			e.route(r, t, &b.Records[i], 1)
		}
	} else {
		// Keep one record in shed, evenly whatever exporter it came from,
		// and let it stand for the ones left out.
		seq := e.shedSeq.Add(uint64(b.N)) - uint64(b.N)
		kept := 0
		for i := range b.N {
			// A hash of the position, not the position itself: records
			// arriving in a pattern (exporters taking turns) are kept alike.
			if mix64(seq+uint64(i))&(shed-1) == 0 { // shed is a power of two
				e.route(r, t, &b.Records[i], uint32(shed))
				kept++
			}
		}
		e.shedDrop.Add(uint64(b.N - kept))
		e.m.shed.Add(float64(b.N - kept))
	}
	for si, sb := range r.subs {
		if sb != nil {
			e.send(r, si, sb)
			r.subs[si] = nil
		}
	}
	e.m.unprotected.Add(float64(r.unprotected))
	e.m.ignored.Add(float64(r.ignored))
	e.m.noAddress.Add(float64(r.noAddress))
	if r.dropped > 0 {
		e.m.dropped.WithLabelValues("queue_full").Add(float64(r.dropped))
		e.droppedTotal.Add(r.dropped)
	}
	r.unprotected, r.ignored, r.dropped, r.routed, r.noAddress = 0, 0, 0, 0, 0
	r.table = nil
	e.routers.Put(r)
	e.pool.Put(b)
}

func (e *Engine) route(r *router, t *prefixTable, rec *flow.Record, scale uint32) {
	if rec.Flags&flow.FlagHasIP == 0 {
		r.noAddress++
		return
	}
	src, dst := rec.SrcAddr(), rec.DstAddr()
	counted := false
	if pi, ok := t.find(dst); ok {
		counted = true
		hg := &t.hostgroups[t.prefixes[pi].hostgroup]
		if hg.ignore != nil && hg.ignore.Contains(src) {
			r.ignored++
		} else {
			e.push(r, rec, tableKey{addr: rec.Dst, meta: uint8(In)}, pi, scale)
			if hg.hasTotal[In] {
				e.push(r, rec, totalKey(t.prefixes[pi].id, In), pi, scale)
			}
		}
	}
	if pi, ok := t.find(src); ok {
		counted = true
		hg := &t.hostgroups[t.prefixes[pi].hostgroup]
		if hg.ignore != nil && hg.ignore.Contains(dst) {
			r.ignored++
		} else {
			e.push(r, rec, tableKey{addr: rec.Src, meta: uint8(Out)}, pi, scale)
			if hg.hasTotal[Out] {
				e.push(r, rec, totalKey(t.prefixes[pi].id, Out), pi, scale)
			}
		}
	}
	if !counted {
		r.unprotected++
	}
}

// totalKey is the key of a protected prefix's total window: the prefix's
// id (not its index, which a new table may change), and the direction.
func totalKey(id uint32, d Direction) tableKey {
	var k tableKey
	k.addr[0], k.addr[1], k.addr[2], k.addr[3] = byte(id>>24), byte(id>>16), byte(id>>8), byte(id)
	k.meta = uint8(d) | kindTotal
	return k
}

// totalID returns the prefix id in a total window's address.
func totalID(a *[16]byte) uint32 {
	return uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
}

func (e *Engine) push(r *router, rec *flow.Record, k tableKey, prefix uint32, scale uint32) {
	si := int(hashKey(&k)>>40) % len(e.shards)
	sb := r.subs[si]
	if sb == nil {
		sb = e.subs.Get().(*subBatch)
		sb.n = 0
		sb.table = r.table
		r.subs[si] = sb
	}
	it := &sb.items[sb.n]
	it.rec, it.key, it.prefix = *rec, k, prefix
	if scale > 1 {
		if it.rec.SamplingRate == 0 {
			it.rec.SamplingRate = 1
		}
		it.rec.SamplingRate *= scale
	}
	sb.n++
	if sb.n == subBatchSize {
		e.send(r, si, sb)
		r.subs[si] = nil
	}
}

// send hands a sub-batch to its shard; a full queue drops it, counted: the
// shard never blocks ingest and back-pressure is never silent.
func (e *Engine) send(r *router, si int, sb *subBatch) {
	if e.sync {
		e.shards[si].process(sb)
		e.subs.Put(sb)
		return
	}
	select {
	case e.shards[si].in <- sb:
	default:
		r.dropped += uint64(sb.n)
		e.subs.Put(sb)
	}
}

// process adds a sub-batch to the shard's windows.
func (s *shard) process(sb *subBatch) {
	// One compare per sub-batch: has a reconfiguration published a table
	// this shard has not moved to yet, or were these items routed with an
	// older one?
	if t := s.e.table.Load(); t != s.table {
		s.migrate(t)
	}
	if sb.table != s.table {
		s.remapStale(sb)
	}
	s.prefetch(sb)
	for i := range sb.n {
		it := &sb.items[i]
		s.addItem(it)
	}
	s.stats.records += uint64(sb.n)
	s.flushOutbox()
	s.publish()
}

// prefetch touches, for every item of a sub-batch, the memory addItem
// will need: its index slot, then its entry and bucket. With a million
// active addresses each is a cache miss, and addItem takes them one after
// the other (the slot says where the entry is); here the loads of one stage
// do not depend on each other, so the CPU overlaps the misses of the whole
// sub-batch, and addItem then finds them in cache. It changes nothing, and
// is skipped while the table is small enough to stay in cache anyway.
func (s *shard) prefetch(sb *subBatch) {
	if len(s.ix.slots) < prefetchSlots {
		return
	}
	var slots [subBatchSize]uint32
	var sink uint64
	mask, ix := s.ix.mask, s.ix.slots
	for i := range sb.n {
		slots[i] = ix[hashKey(&sb.items[i].key)&mask]
	}
	for i := range sb.n {
		if e := slots[i]; e != 0 && e <= s.n {
			sec := sb.items[i].rec.Received / int64(time.Second)
			sink += uint64(s.entry(e - 1).last)
			if sec >= 0 {
				sink += s.bucket(e-1, sec).bytes
			}
		}
	}
	s.touched = sink
}

// prefetchSlots is the index size from which prefetch pays: 128 Ki slots
// index about 98 000 entries, whose index, entries and buckets (about 12 MB
// with a 5-second window) no longer stay in a core's cache. It counts
// slots, not entries: an index presized for a large protected space misses
// the cache with few entries too, and prefetching its slots paid there
// (10 000 addresses of a /8: 135.8 ns/record when gated on entries, 129.1
// on slots; n=6, p=0.013).
const prefetchSlots = 1 << 17

// addItem counts one record, sampling-corrected, in its window. A record
// covering a long flow (NetFlow/IPFIX active-timeout export) is spread over
// its lifetime, anchored at its arrival, instead of landing in one second.
func (s *shard) addItem(it *item) {
	r := &it.rec
	rate := uint64(r.SamplingRate)
	if rate == 0 {
		rate = 1
	}
	pkts, bytes := r.Packets*rate, r.Bytes*rate
	var flows uint64
	if r.Format != flow.FormatSFlow5 {
		flows = rate // a flow record stands for rate flows (see docs)
	}
	sec := r.Received / int64(time.Second)
	if sec > s.now {
		s.now = sec
	}
	ei := s.lookup(&it.key, it.prefix)
	cls := classes(r)
	span := int64(1)
	if r.End > r.Start && r.Start > 0 {
		span = (r.End-r.Start)/int64(time.Second) + 1
	}
	if span <= 1 {
		s.add(ei, sec, pkts, bytes, flows, cls)
	} else {
		// Equal shares per second; the seconds before the window would
		// expire at once, so only the last `window` seconds are added.
		n := min(span, s.window)
		sp, sb, sf := pkts/uint64(span), bytes/uint64(span), flows/uint64(span)
		for t := sec - n + 1; t < sec; t++ {
			s.add(ei, t, sp, sb, sf, cls)
		}
		// The last second takes its share plus the rounding remainder.
		s.add(ei, sec, pkts-sp*uint64(span-1), bytes-sb*uint64(span-1), flows-sf*uint64(span-1), cls)
	}
	e := s.entry(ei)
	if int64(e.last) == sec && e.samples < 1<<16-1 {
		e.samples++
	}
	if e.hot >= 0 {
		s.keepSample(e, r)
	}
	s.check(ei, r.Received)
}

// Tick advances time in a synchronous engine: attack ends and updates are
// decided, idle windows evicted.
func (e *Engine) Tick(now time.Time) {
	sec := now.Unix()
	for _, s := range e.shards {
		s.tick(sec)
		s.publish()
	}
}

// Run starts the shard goroutines and blocks until ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	if e.sync {
		return errors.New("engine: Run called on a synchronous engine")
	}
	var wg sync.WaitGroup
	for _, s := range e.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run(ctx)
		}()
	}
	wg.Wait()
	return nil
}

// tickEvery is how often a live shard checks attacks for their end.
const tickEvery = 250 * time.Millisecond

func (s *shard) run(ctx context.Context) {
	t := time.NewTicker(tickEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case sb := <-s.in:
			s.process(sb)
			s.e.subs.Put(sb)
		case <-t.C:
			if t := s.e.table.Load(); t != s.table {
				s.migrate(t)
			}
			s.tick(s.e.now().Unix())
			s.publish()
		}
	}
}

// emit queues a candidate. Starts, cooling and ends are never dropped;
// updates of an attack are coalesced, the latest wins.
func (s *shard) emit(c Candidate) {
	if s.e.sync {
		s.e.pending = append(s.e.pending, c)
		return
	}
	if c.Kind == AttackUpdated {
		for i := range s.outbox {
			if s.outbox[i].ID == c.ID && s.outbox[i].Kind == AttackUpdated {
				s.outbox[i] = c
				s.e.m.coalesced.Inc()
				return
			}
		}
	}
	s.outbox = append(s.outbox, c)
}

// flushOutbox sends queued candidates without blocking.
func (s *shard) flushOutbox() {
	sent := 0
	for _, c := range s.outbox {
		select {
		case s.e.out <- c:
			sent++
			continue
		default:
		}
		break
	}
	if sent > 0 {
		n := copy(s.outbox, s.outbox[sent:])
		clear(s.outbox[n:])
		s.outbox = s.outbox[:n]
	}
}

// WindowRates returns an address's window sums over the window length, the
// second in progress included: the window's plumbing, not the rate now
// that attacks report (rateNow). A synchronous engine only: live shards
// are owned by their goroutines.
func (e *Engine) WindowRates(a netip.Addr, d Direction) (Rates, bool) {
	if !e.sync {
		return Rates{}, false
	}
	return e.windowRates(tableKey{addr: a.As16(), meta: uint8(d)})
}

// windowRates returns the window rates of key k (a synchronous engine).
func (e *Engine) windowRates(k tableKey) (Rates, bool) {
	s := e.shards[int(hashKey(&k)>>40)%len(e.shards)]
	h := hashKey(&k)
	for i := h & s.ix.mask; ; i = (i + 1) & s.ix.mask {
		slot := s.ix.slots[i]
		if slot == 0 {
			return Rates{}, false
		}
		if s.entry(slot - 1).is(&k) {
			s.advance(slot-1, s.now)
			sums := s.windowSums(slot-1, s.totals(slot-1))
			var r Rates
			for m := range NumMetrics {
				r[m] = sums[m] / uint64(s.window)
			}
			return r, true
		}
	}
}

// Dropped returns the records dropped because a shard's queue was full.
func (e *Engine) Dropped() uint64 { return e.droppedTotal.Load() }

// Load shedding thresholds: a shard queue fuller than shedAbove doubles the
// shedding factor, emptier than shedBelow halves it; at most maxShed.
const (
	shedAbove = 0.5
	shedBelow = 0.1
	maxShed   = 64
)

// adjustShedding looks at the fullest shard queue and returns the factor to
// apply to the batch at hand. Called once per batch, not per record.
func (e *Engine) adjustShedding() uint32 {
	fullest := 0.0
	for _, s := range e.shards {
		if f := float64(len(s.in)) / float64(cap(s.in)); f > fullest {
			fullest = f
		}
	}
	k := e.shed.Load()
	switch {
	case fullest > shedAbove && k < maxShed:
		if e.shed.CompareAndSwap(k, k*2) {
			k *= 2
			e.m.shedFactor.Set(float64(k))
		}
	case fullest < shedBelow && k > 1:
		if e.shed.CompareAndSwap(k, k/2) {
			k /= 2
			e.m.shedFactor.Set(float64(k))
		}
	}
	return k
}

// Shed returns the records left out by load shedding so far.
func (e *Engine) Shed() uint64 { return e.shedDrop.Load() }

// mix64 is splitmix64's finalizer: a cheap, well-spread hash of a counter.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
