// Package ingest turns flow telemetry (sFlow v5, NetFlow v5, NetFlow v9,
// IPFIX) into flow.Record batches: UDP listeners, a pcap file source for
// replay, the goflow2 decoders in library mode, and Kapkan's own producer
// that resolves the sampling rate of every record and keeps per-exporter
// state (templates, sampling rates, sequence numbers).
package ingest

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/flow"
)

// Options configure a Decoder.
type Options struct {
	// DefaultSamplingRate applies where the telemetry carries no rate. 0 means 1.
	DefaultSamplingRate uint32
	// Exporters are per-exporter settings, keyed by the exporter's address
	// (the UDP source of its datagrams).
	Exporters map[netip.Addr]ExporterOptions
	// Window is the detection window; exporters announcing a longer active
	// timeout are warned about. 0 disables the check.
	Window time.Duration
	// Limits bound the state kept for what exporters send.
	Limits Limits
}

// ExporterOptions are the settings of one exporter.
type ExporterOptions struct {
	// Name is used in logs and metric labels instead of the address.
	Name string
	// SamplingRate, when non-zero, overrides whatever the telemetry says.
	SamplingRate uint32
}

// Deps are the Decoder's collaborators.
type Deps struct {
	Registry prometheus.Registerer // nil: metrics are kept but not registered
	Logger   *slog.Logger          // nil: slog.Default()
	// Now is the clock Exporters reads the records of the last second
	// against (time.Now when nil); a replay passes its virtual clock.
	Now func() time.Time
	// Flight, when set, is the flight recorder: each listener worker keeps
	// the datagrams it reads in a ring of it.
	Flight *Flight
}

// ErrUnknownFormat is returned for a datagram that is none of the four
// supported formats.
var ErrUnknownFormat = errors.New("not an sFlow v5, NetFlow v5, NetFlow v9 or IPFIX datagram")

// errDecoderPanic marks an error from a decoder that panicked on bad input;
// the panic is contained to that datagram.
var errDecoderPanic = errors.New("decoder panic")

// Decoder decodes datagrams into records. It is safe for concurrent use:
// state is per exporter and each exporter's state has its own lock, taken
// once per datagram.
type Decoder struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	budgets budgets
	now     func() time.Time

	mu        sync.RWMutex
	exporters map[netip.Addr]*exporterState
	full      bool // Limits.MaxExporters reached (logged once)

	// noFastPath sends every sFlow, NetFlow v9 and IPFIX datagram through
	// goflow2 (tests compare the two paths).
	noFastPath bool
}

// New builds a Decoder. It starts nothing.
func New(opts Options, deps Deps) *Decoder {
	if opts.DefaultSamplingRate == 0 {
		opts.DefaultSamplingRate = 1
	}
	opts.Limits = opts.Limits.withDefaults()
	log := deps.Logger
	if log == nil {
		log = slog.Default()
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	m := newMetrics(deps.Registry)
	return &Decoder{
		opts:      opts,
		now:       now,
		log:       log.With("component", "ingest"),
		metrics:   m,
		budgets:   newBudgets(opts.Limits, m),
		exporters: make(map[netip.Addr]*exporterState),
	}
}

// Result describes one decoded datagram.
type Result struct {
	Format  flow.Format
	Records int // flow records emitted to the batcher
	Options int // options data records (NetFlow v9 / IPFIX)
}

// DetectFormat classifies a datagram by its first bytes.
func DetectFormat(data []byte) flow.Format {
	if len(data) < 4 {
		return flow.FormatUnknown
	}
	if binary.BigEndian.Uint32(data) == 5 {
		return flow.FormatSFlow5
	}
	switch binary.BigEndian.Uint16(data) {
	case 5:
		return flow.FormatNetFlow5
	case 9:
		return flow.FormatNetFlow9
	case 10:
		return flow.FormatIPFIX
	}
	return flow.FormatUnknown
}

// Decode decodes one datagram received from exporter at time recv and adds
// its flow records to out. Records decoded before an error are kept; the
// error says what was wrong with the rest. Decode never panics on bad input.
func (d *Decoder) Decode(data []byte, exporter netip.Addr, recv time.Time, out *Batcher) (res Result, err error) {
	exporter = exporter.Unmap()
	res.Format = DetectFormat(data)
	st := d.exporter(exporter)
	if st == nil {
		d.metrics.decodeError("other", res.Format, "exporter_limit")
		return res, fmt.Errorf("decode datagram from %s: more than %d exporters", exporter, d.opts.Limits.MaxExporters)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.counters.datagrams[res.Format].Inc()
	ws := st.workerStats(out)
	st.cur = ws
	ws.datagram(res.Format, recv)
	defer func() {
		if p := recover(); p != nil {
			d.decodeError(st, res.Format, reasonPanic)
			err = fmt.Errorf("decode %s datagram from %s: %w: %v", res.Format, exporter, errDecoderPanic, p)
		}
		if res.Records > 0 {
			st.counters.records[res.Format].Add(float64(res.Records))
			ws.addRecords(res.Records, recv)
		}
		if res.Options > 0 {
			st.counters.optionsRecords[res.Format].Add(float64(res.Options))
		}
	}()
	now := recv.UnixNano()
	switch res.Format {
	case flow.FormatSFlow5:
		err = d.decodeSFlow(st, data, now, out, &res)
	case flow.FormatNetFlow5:
		err = d.decodeNetFlow5(st, data, now, out, &res)
	case flow.FormatNetFlow9, flow.FormatIPFIX:
		err = d.decodeNetFlow(st, data, now, out, &res)
	default:
		d.decodeError(st, res.Format, reasonVersion)
		return res, fmt.Errorf("decode datagram from %s: %w", exporter, ErrUnknownFormat)
	}
	if err != nil {
		err = fmt.Errorf("decode %s datagram from %s: %w", res.Format, exporter, err)
	}
	return res, err
}

// exporter returns the state of an exporter, creating it on first sight.
func (d *Decoder) exporter(a netip.Addr) *exporterState {
	d.mu.RLock()
	st := d.exporters[a]
	d.mu.RUnlock()
	if st != nil {
		return st
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if st = d.exporters[a]; st != nil {
		return st
	}
	o, configured := d.opts.Exporters[a]
	// Exporters named in the configuration are always admitted: an
	// address flood must not lock out the real ones.
	if !configured && !d.budgets.exporters.take(1) {
		if !d.full {
			d.full = true
			d.log.Warn("exporter limit reached, datagrams from new exporters are dropped", "limit", d.opts.Limits.MaxExporters)
		}
		return nil
	}
	name := o.Name
	if name == "" {
		name = a.String()
	}
	label := d.metrics.exporterLabel(name)
	st = &exporterState{
		addr:     a,
		addr16:   a.As16(),
		name:     name,
		label:    label,
		override: o.SamplingRate,
		counters: d.metrics.forExporter(label),
	}
	st.templates.init()
	st.templates.budget, st.seq.budget, st.rates.budget = d.budgets.templates, d.budgets.sequence, d.budgets.samplers
	st.pending.budget = d.budgets.pending
	if configured {
		st.templates.budget, st.seq.budget, st.rates.budget = d.budgets.exemptTemplates, d.budgets.exemptSequence, d.budgets.exemptSamplers
		st.pending.budget = d.budgets.exemptPending
	}
	d.exporters[a] = st
	d.metrics.exporters.Set(float64(len(d.exporters)))
	return st
}

// exporterState is everything learned from one exporter.
type exporterState struct {
	mu sync.Mutex
	// cur is the slot of the worker decoding under mu (next to mu, whose
	// cache line every datagram writes anyway).
	cur      *workerStats
	addr     netip.Addr
	addr16   [16]byte
	name     string
	label    string
	override uint32
	counters *exporterCounters

	templates templateStore
	pending   pendingSets
	rates     rateStore
	seq       seqTracker

	warnedDefault [len(flow.Formats) + 1]bool
	warnedTimeout bool
	activeTimeout uint64

	stats exporterStats
	// workers are the per-datagram figures, one slot per Batcher (so per
	// worker goroutine) that decoded datagrams of this exporter, and shared
	// for decodes without a Batcher or past maxWorkerSlots.
	workers []*workerStats
	shared  workerStats
}

// maxWorkerSlots bounds the workerStats slots of one exporter (listeners
// have one Batcher per worker, a replay one).
const maxWorkerSlots = 64

// workerStats returns the slot of b's worker for st's figures, creating it
// on first sight. st's lock is held.
func (st *exporterState) workerStats(b *Batcher) *workerStats {
	if b == nil {
		return &st.shared
	}
	if b.lastExporter == st {
		return b.lastStats
	}
	ws := b.stats[st]
	if ws == nil {
		ws = &st.shared
		if len(st.workers) < maxWorkerSlots {
			ws = new(workerStats)
			st.workers = append(st.workers, ws)
		}
		if b.stats == nil {
			b.stats = make(map[*exporterState]*workerStats)
		}
		b.stats[st] = ws
	}
	b.lastExporter, b.lastStats = st, ws
	return ws
}

// resolveRate applies the sampling precedence: a configured override wins,
// then what the telemetry said, then the configured default (counted and
// logged once per exporter and format).
func (d *Decoder) resolveRate(st *exporterState, r *flow.Record, rate uint32, src flow.SamplingSource) {
	switch {
	case st.override != 0:
		r.SamplingRate, r.Sampling = st.override, flow.SamplingOverride
	case rate != 0:
		r.SamplingRate, r.Sampling = rate, src
	default:
		r.SamplingRate, r.Sampling = d.opts.DefaultSamplingRate, flow.SamplingDefault
		st.counters.unknownSampling[r.Format].Inc()
		if !st.warnedDefault[r.Format] {
			st.warnedDefault[r.Format] = true
			d.log.Warn("exporter sends no sampling rate, applying the default",
				"exporter", st.name, "format", r.Format.String(), "default_sampling_rate", d.opts.DefaultSamplingRate)
		}
	}
	st.stats.sampling(r.Format, r.SamplingRate, r.Sampling)
}

// decodeError counts a datagram or set of st's that could not be decoded.
func (d *Decoder) decodeError(st *exporterState, f flow.Format, reason string) {
	st.cur.decodeErrors++
	d.metrics.decodeError(st.label, f, reason)
}

// ExporterInfo is a snapshot of what is known about one exporter, for the
// API and tests: the telemetry self-check. Totals count from the
// exporter's first datagram; RecordsPerSecond is the last complete second.
type ExporterInfo struct {
	Address       netip.Addr
	Name          string
	Override      uint32
	ActiveTimeout time.Duration
	// ActiveTimeoutWarning is set when the exporter announced an active
	// timeout longer than the detection window: its long flows arrive in
	// bursts, late.
	ActiveTimeoutWarning bool
	Samplers             []SamplerInfo
	// Formats are the formats the exporter sent, in flow.Formats order
	// (FormatUnknown last, for datagrams of no known format).
	Formats []flow.Format
	// Sampling lists the sampling rates applied to its records and where
	// each came from, per format (the first maxSamplingSeen distinct ones).
	Sampling []SamplingSeen
	// DatagramsTotal counts every datagram, RecordsTotal the flow records
	// decoded from them.
	DatagramsTotal, RecordsTotal uint64
	// RecordsPerSecond is the records decoded from the datagrams received
	// in the last complete second, by the Decoder's clock (Deps.Now).
	RecordsPerSecond uint64
	// SequenceGaps counts the units its sequence numbers say went missing
	// (see kapkan_ingest_sequence_gaps_total), DecodeErrors the datagrams
	// and sets that could not be decoded.
	SequenceGaps, DecodeErrors uint64
	// LastSeen is when its newest datagram was received.
	LastSeen time.Time
}

// SamplingSeen is a sampling rate applied to an exporter's records of a
// format, and where it came from.
type SamplingSeen struct {
	Format flow.Format
	Rate   uint32
	Source flow.SamplingSource
}

// SamplerInfo is one learned sampling rate.
type SamplerInfo struct {
	Version uint16 // 9 or 10
	Domain  uint32 // Source ID / Observation Domain ID
	Kind    string // domain, sampler or selector
	ID      uint64
	Rate    uint32
}

// Exporters returns a snapshot of every exporter's state, ordered by
// address. It takes each exporter's lock for a moment (the one its
// datagrams are decoded under), so it is current, and meant for the API's
// pace rather than a loop.
func (d *Decoder) Exporters() []ExporterInfo {
	d.mu.RLock()
	states := make([]*exporterState, 0, len(d.exporters))
	for _, st := range d.exporters {
		states = append(states, st)
	}
	d.mu.RUnlock()
	slices.SortFunc(states, func(a, b *exporterState) int { return a.addr.Compare(b.addr) })
	now := d.now().Unix()
	out := make([]ExporterInfo, 0, len(states))
	kinds := [...]string{"domain", "sampler", "selector"}
	for _, st := range states {
		st.mu.Lock()
		timeout := time.Duration(st.activeTimeout) * time.Second
		info := ExporterInfo{Address: st.addr, Name: st.name, Override: st.override,
			ActiveTimeout: timeout, ActiveTimeoutWarning: d.opts.Window > 0 && timeout > d.opts.Window}
		for k, e := range st.rates.rates {
			info.Samplers = append(info.Samplers, SamplerInfo{Version: k.version, Domain: k.domain,
				Kind: kinds[k.kind], ID: k.id, Rate: e.rate})
		}
		st.fill(&info, now)
		st.mu.Unlock()
		out = append(out, info)
	}
	return out
}

// maxSamplingSeen bounds the sampling rates remembered per exporter.
const maxSamplingSeen = 16

// exporterStats are the per-exporter figures behind ExporterInfo that
// change rarely (on a new sampling rate), guarded by the exporter's lock,
// which decoding holds anyway: per record only a compare with the previous
// record's sampling, which reads and does not write.
type exporterStats struct {
	// seen are the distinct sampling rates and sources, last the one of
	// the previous record.
	seen        [maxSamplingSeen]SamplingSeen
	nSeen, last int
}

// workerStats are the figures of an exporter that change with every
// datagram (and its errors and sequence gaps), as one worker counted them. They are written and read under
// the exporter's lock like the rest of its state, but each worker writes
// only its own slot, so these cache lines stay in the cache of the core
// that runs the worker instead of following the lock from core to core:
// when they were fields of exporterState, two workers decoding one
// exporter's datagrams lost 10–17 % of BenchmarkEndToEnd (sFlow) to it.
// The padding keeps two slots allocated side by side off one line pair.
type workerStats struct {
	formats      uint8 // bit set of flow.Format
	datagrams    uint64
	records      uint64
	decodeErrors uint64
	sequenceGaps uint64
	lastSeen     int64 // Unix ns of the newest datagram
	// recs counts the records of the datagrams received in second secs[i],
	// the two most recent seconds by parity.
	secs [2]int64
	recs [2]uint64
	_    [48]byte // to 128 bytes, TestWorkerStatsSize
}

func (s *workerStats) datagram(f flow.Format, recv time.Time) {
	if s.formats&(1<<f) == 0 {
		s.formats |= 1 << f
	}
	s.datagrams++
	if ns := recv.UnixNano(); ns > s.lastSeen {
		s.lastSeen = ns
	}
}

// addRecords counts n records of a datagram received at recv; one older
// than the second its slot counts is left out of the rate (not the total).
func (s *workerStats) addRecords(n int, recv time.Time) {
	s.records += uint64(n)
	sec := recv.Unix()
	i := sec & 1
	switch {
	case s.secs[i] == sec:
	case s.secs[i] < sec:
		s.secs[i], s.recs[i] = sec, 0
	default:
		return
	}
	s.recs[i] += uint64(n)
}

// sampling notes the rate and source applied to a record of format f.
func (s *exporterStats) sampling(f flow.Format, rate uint32, src flow.SamplingSource) {
	v := SamplingSeen{Format: f, Rate: rate, Source: src}
	if s.nSeen > 0 && s.seen[s.last] == v {
		return
	}
	for i := range s.nSeen {
		if s.seen[i] == v {
			s.last = i
			return
		}
	}
	if s.nSeen < len(s.seen) {
		s.seen[s.nSeen] = v
		s.last = s.nSeen
		s.nSeen++
	}
}

// fill copies st's figures into info, reading the rate at Unix second
// now; st's lock is held.
func (st *exporterState) fill(info *ExporterInfo, now int64) {
	s := &st.stats
	var formats uint8
	var lastSeen int64
	add := func(w *workerStats) {
		formats |= w.formats
		info.DatagramsTotal += w.datagrams
		info.RecordsTotal += w.records
		info.DecodeErrors += w.decodeErrors
		info.SequenceGaps += w.sequenceGaps
		lastSeen = max(lastSeen, w.lastSeen)
		if i := (now - 1) & 1; w.secs[i] == now-1 {
			info.RecordsPerSecond += w.recs[i]
		}
	}
	for _, w := range st.workers {
		add(w)
	}
	add(&st.shared)
	for _, f := range flow.Formats {
		if formats&(1<<f) != 0 {
			info.Formats = append(info.Formats, f)
		}
	}
	if formats&(1<<flow.FormatUnknown) != 0 {
		info.Formats = append(info.Formats, flow.FormatUnknown)
	}
	info.Sampling = slices.Clone(s.seen[:s.nSeen])
	slices.SortFunc(info.Sampling, func(a, b SamplingSeen) int {
		return cmp.Or(cmp.Compare(a.Format, b.Format), cmp.Compare(a.Rate, b.Rate), cmp.Compare(a.Source, b.Source))
	})
	if lastSeen != 0 {
		info.LastSeen = time.Unix(0, lastSeen).UTC()
	}
}

// noteActiveTimeout records an exporter's active timeout and warns once when
// it is longer than the detection window: long flows would then be reported
// in bursts.
func (d *Decoder) noteActiveTimeout(st *exporterState, seconds uint64) {
	if seconds == 0 || seconds == st.activeTimeout {
		return
	}
	st.activeTimeout = seconds
	d.metrics.activeTimeout.WithLabelValues(st.label).Set(float64(seconds))
	if d.opts.Window > 0 && time.Duration(seconds)*time.Second > d.opts.Window && !st.warnedTimeout {
		st.warnedTimeout = true
		d.log.Warn("exporter active timeout is longer than the detection window",
			"exporter", st.name, "active_timeout", formatSeconds(seconds), "window", d.opts.Window.String())
	}
}

// newBuffer wraps data for the goflow2 decoders.
func newBuffer(data []byte) *bytes.Buffer { return bytes.NewBuffer(data) }
