package engine

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// shardGauges are published by each shard (its own goroutine writes them)
// and read at scrape time.
type shardGauges struct {
	tracked, hot, attacks  atomic.Int64
	records, late, refused atomic.Uint64
}

type engineMetrics struct {
	unprotected prometheus.Counter
	ignored     prometheus.Counter
	noAddress   prometheus.Counter
	dropped     *prometheus.CounterVec
	coalesced   prometheus.Counter
	shed        prometheus.Counter
	shedFactor  prometheus.Gauge
	shards      []*shardGauges
	e           *Engine

	trackedDesc, hotDesc, attacksDesc, depthDesc, recordsDesc, lateDesc, refusedDesc *prometheus.Desc
}

func newEngineMetrics(e *Engine, reg prometheus.Registerer) *engineMetrics {
	m := &engineMetrics{
		e: e,
		unprotected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kapkan_engine_unprotected_records_total",
			Help: "Records whose source and destination are both outside the protected prefixes (not counted).",
		}),
		ignored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kapkan_engine_ignored_records_total",
			Help: "Records not counted because their remote address is in the hostgroup's ignore list.",
		}),
		noAddress: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kapkan_engine_non_ip_records_total",
			Help: "Records without IP addresses (non-IP traffic in sFlow samples, MPLS-only NetFlow records).",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_engine_dropped_records_total",
			Help: "Records dropped by the engine, by reason (queue_full: a shard could not keep up; too_late: older than the window; reconfigured: routed just before a reconfiguration to a window it removed).",
		}, []string{"reason"}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kapkan_engine_coalesced_updates_total",
			Help: "Attack updates replaced by a newer one before the next stage read them.",
		}),
		shed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kapkan_engine_shed_records_total",
			Help: "Records left out by load shedding under overload; the records kept stand for them (their sampling rate is scaled), so rates stay true.",
		}),
		shedFactor: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kapkan_engine_shed_factor",
			Help: "Current load-shedding factor: one record in this many is kept (1: no shedding).",
		}),
		trackedDesc: prometheus.NewDesc("kapkan_engine_tracked_addresses", "Windows kept (addresses and prefix totals, per direction).", []string{"shard"}, nil),
		hotDesc:     prometheus.NewDesc("kapkan_engine_hot_addresses", "Windows keeping per-protocol detail and a flow sample.", []string{"shard"}, nil),
		attacksDesc: prometheus.NewDesc("kapkan_engine_active_attacks", "Attacks detected and not yet ended.", []string{"shard"}, nil),
		depthDesc:   prometheus.NewDesc("kapkan_engine_queue_depth", "Sub-batches waiting in a shard's queue.", []string{"shard"}, nil),
		recordsDesc: prometheus.NewDesc("kapkan_engine_records_total", "Record contributions added to windows.", []string{"shard"}, nil),
		lateDesc:    prometheus.NewDesc("kapkan_engine_late_records_total", "Record contributions older than the window, not counted.", []string{"shard"}, nil),
		refusedDesc: prometheus.NewDesc("kapkan_engine_hot_refused_total", "Times an address near a threshold got no per-protocol detail because engine.max_hot was reached.", []string{"shard"}, nil),
	}
	m.dropped.WithLabelValues("queue_full") // exported at 0 from the start
	m.shedFactor.Set(1)
	for range e.shards {
		m.shards = append(m.shards, &shardGauges{})
	}
	if reg != nil {
		reg.MustRegister(m.unprotected, m.ignored, m.noAddress, m.dropped, m.coalesced, m.shed, m.shedFactor, m)
	}
	return m
}

// publish copies the shard's counters into its gauges.
func (s *shard) publish() {
	g := s.e.m.shards[s.id]
	g.tracked.Store(int64(s.ix.count))
	g.hot.Store(int64(s.hotUsed))
	g.attacks.Store(int64(s.attackCount))
	g.records.Store(s.stats.records)
	g.late.Store(s.stats.late)
	g.refused.Store(s.stats.hotRefused)
}

// Describe implements prometheus.Collector.
func (m *engineMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.trackedDesc, m.hotDesc, m.attacksDesc, m.depthDesc, m.recordsDesc, m.lateDesc, m.refusedDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *engineMetrics) Collect(ch chan<- prometheus.Metric) {
	for i, g := range m.shards {
		l := strconv.Itoa(i)
		ch <- prometheus.MustNewConstMetric(m.trackedDesc, prometheus.GaugeValue, float64(g.tracked.Load()), l)
		ch <- prometheus.MustNewConstMetric(m.hotDesc, prometheus.GaugeValue, float64(g.hot.Load()), l)
		ch <- prometheus.MustNewConstMetric(m.attacksDesc, prometheus.GaugeValue, float64(g.attacks.Load()), l)
		ch <- prometheus.MustNewConstMetric(m.depthDesc, prometheus.GaugeValue, float64(len(m.e.shards[i].in)), l)
		ch <- prometheus.MustNewConstMetric(m.recordsDesc, prometheus.CounterValue, float64(g.records.Load()), l)
		ch <- prometheus.MustNewConstMetric(m.lateDesc, prometheus.CounterValue, float64(g.late.Load()), l)
		ch <- prometheus.MustNewConstMetric(m.refusedDesc, prometheus.CounterValue, float64(g.refused.Load()), l)
	}
}

// Stats is a snapshot of the engine's gauges (sum over shards).
type Stats struct {
	Tracked, Hot, Attacks int64
	Records, Late         uint64
}

// Stats returns the gauges as last published by the shards.
func (e *Engine) Stats() Stats {
	var s Stats
	for _, g := range e.m.shards {
		s.Tracked += g.tracked.Load()
		s.Hot += g.hot.Load()
		s.Attacks += g.attacks.Load()
		s.Records += g.records.Load()
		s.Late += g.late.Load()
	}
	return s
}
