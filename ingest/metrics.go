package ingest

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/flow"
)

// maxExporterLabels bounds the exporter label: past that many distinct
// exporters, the rest share the label value "other".
const maxExporterLabels = 1000

// metrics holds the ingest counters. It is built once per Decoder with an
// injected registry.
type metrics struct {
	datagrams       *prometheus.CounterVec
	records         *prometheus.CounterVec
	optionsRecords  *prometheus.CounterVec
	decodeErrors    *prometheus.CounterVec
	unknownSampling *prometheus.CounterVec
	sequenceGaps    *prometheus.CounterVec
	sequenceResets  *prometheus.CounterVec
	pendingSets     *prometheus.CounterVec
	activeTimeout   *prometheus.GaugeVec
	exporters       prometheus.Gauge
	refused         *prometheus.CounterVec

	mu     sync.Mutex
	labels map[string]struct{}
}

// Decode-error reasons, the values of the reason label.
const (
	reasonTruncated    = "truncated"
	reasonVersion      = "unknown_version"
	reasonMalformed    = "malformed"
	reasonNoTemplate   = "template_not_found"
	reasonTemplateCap  = "template_limit"
	reasonPanic        = "decoder_panic"
	reasonPendingDrop  = "pending_dropped"
	reasonPendingStale = "pending_expired"
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		datagrams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_ingest_datagrams_total",
			Help: "Flow datagrams received, by exporter and format.",
		}, []string{"exporter", "format"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_ingest_records_total",
			Help: "Flow records (sFlow flow samples, NetFlow/IPFIX data records) decoded, by exporter and format.",
		}, []string{"exporter", "format"}),
		optionsRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_ingest_options_records_total",
			Help: "NetFlow v9 / IPFIX options data records decoded, by exporter and format.",
		}, []string{"exporter", "format"}),
		decodeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_ingest_decode_errors_total",
			Help: "Datagrams or flow sets that could not be decoded, by exporter, format and reason.",
		}, []string{"exporter", "format", "reason"}),
		unknownSampling: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_ingest_unknown_sampling_total",
			Help: "Records whose telemetry carried no sampling rate, so ingest.default_sampling_rate was applied.",
		}, []string{"exporter", "format"}),
		sequenceGaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_ingest_sequence_gaps_total",
			Help: "Units missing according to exporter sequence numbers (NetFlow v9: export packets; NetFlow v5 and IPFIX: records; sFlow: samples).",
		}, []string{"exporter", "format"}),
		sequenceResets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_ingest_sequence_resets_total",
			Help: "Times an exporter's sequence number went backwards or jumped too far to be a gap (exporter restart).",
		}, []string{"exporter", "format"}),
		pendingSets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_ingest_pending_sets_total",
			Help: "NetFlow v9 / IPFIX data sets that arrived before their template, by outcome (buffered, decoded, dropped, expired).",
		}, []string{"exporter", "format", "outcome"}),
		activeTimeout: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kapkan_ingest_exporter_active_timeout_seconds",
			Help: "Active flow timeout an exporter announced in options data (IE 36).",
		}, []string{"exporter"}),
		exporters: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kapkan_ingest_exporters",
			Help: "Exporters that have sent at least one datagram.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_ingest_state_refused_total",
			Help: "State refused because a limit was reached, by kind: exporter (ingest.max_exporters), template (ingest.max_templates, or too many fields), pending_set (ingest.max_pending_bytes), sequence and sampler (fixed bounds).",
		}, []string{"kind"}),
		labels: make(map[string]struct{}),
	}
	for _, k := range []string{refusedExporter, refusedTemplate, refusedPending, refusedSequence, refusedSampler} {
		m.refused.WithLabelValues(k) // every kind is exported from the start, at 0
	}
	if reg != nil {
		reg.MustRegister(m.datagrams, m.records, m.optionsRecords, m.decodeErrors, m.unknownSampling,
			m.sequenceGaps, m.sequenceResets, m.pendingSets, m.activeTimeout, m.exporters, m.refused)
	}
	return m
}

// exporterLabel returns the bounded label value for an exporter.
func (m *metrics) exporterLabel(name string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.labels[name]; ok {
		return name
	}
	if len(m.labels) >= maxExporterLabels {
		return "other"
	}
	m.labels[name] = struct{}{}
	return name
}

// exporterCounters are the counters of one exporter, resolved once so the
// decode path does no label lookups.
type exporterCounters struct {
	datagrams       [len(flow.Formats) + 1]prometheus.Counter
	records         [len(flow.Formats) + 1]prometheus.Counter
	optionsRecords  [len(flow.Formats) + 1]prometheus.Counter
	unknownSampling [len(flow.Formats) + 1]prometheus.Counter
	sequenceGaps    [len(flow.Formats) + 1]prometheus.Counter
	sequenceResets  [len(flow.Formats) + 1]prometheus.Counter
}

func (m *metrics) forExporter(label string) *exporterCounters {
	c := &exporterCounters{}
	for _, f := range append([]flow.Format{flow.FormatUnknown}, flow.Formats[:]...) {
		fs := f.String()
		c.datagrams[f] = m.datagrams.WithLabelValues(label, fs)
		c.records[f] = m.records.WithLabelValues(label, fs)
		c.optionsRecords[f] = m.optionsRecords.WithLabelValues(label, fs)
		c.unknownSampling[f] = m.unknownSampling.WithLabelValues(label, fs)
		c.sequenceGaps[f] = m.sequenceGaps.WithLabelValues(label, fs)
		c.sequenceResets[f] = m.sequenceResets.WithLabelValues(label, fs)
	}
	return c
}

func (m *metrics) decodeError(label string, f flow.Format, reason string) {
	m.decodeErrors.WithLabelValues(label, f.String(), reason).Inc()
}

func (m *metrics) pending(label string, f flow.Format, outcome string, n int) {
	if n > 0 {
		m.pendingSets.WithLabelValues(label, f.String(), outcome).Add(float64(n))
	}
}

func formatSeconds(s uint64) string { return strconv.FormatUint(s, 10) + "s" }
