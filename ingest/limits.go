package ingest

import (
	"math"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Limits bound the state the Decoder keeps for what exporters send, so that
// datagrams from spoofed sources, or an exporter announcing thousands of
// templates, cannot grow memory without limit. Zero fields take the
// defaults below.
type Limits struct {
	// MaxExporters is the number of distinct exporter addresses that get
	// state; datagrams from further addresses are dropped and counted.
	MaxExporters int
	// MaxTemplates is the number of NetFlow v9 / IPFIX templates kept, over
	// every exporter not named in Options.Exporters (each exporter keeps at
	// most maxTemplatesPerExporter).
	MaxTemplates int
	// MaxPendingBytes bounds the data sets kept, over every exporter, while
	// their template is unknown (each set counted with pendingSetOverhead).
	MaxPendingBytes int
}

// Defaults of Limits, and the fixed bounds that go with them. Measured by
// TestExporterFloodStaysUnderCap and TestTemplateFloodStaysUnderCap (Go
// 1.26, amd64): an exporter's state costs about 18 KB while it has metric
// series of its own (the first maxExporterLabels exporters) and about 2 KB
// after (its series are the shared exporter="other" ones); a template of
// maxTemplateFields fixed-length fields, the largest accepted, about 5.7 KB.
// With the defaults that is at most about 18 + 17 MB of exporters, 47 MB of
// templates, 16 MB of data sets waiting for a template, and a few MB of
// sequence numbers and sampling rates.
const (
	DefaultMaxExporters    = 10_000
	DefaultMaxTemplates    = 8192
	DefaultMaxPendingBytes = 16 << 20

	// maxTemplateFields is the most fields (scopes and options together for
	// an options template) a template may have; longer ones are refused.
	// Real templates have a few dozen.
	maxTemplateFields = 128
	// pendingSetOverhead is what a kept data set costs besides its bytes.
	pendingSetOverhead = 96
	// maxSequenceKeys and maxSamplers bound the sequence-number spaces and
	// the announced sampling rates kept over every exporter.
	maxSequenceKeys = 1 << 16
	maxSamplers     = 1 << 16
)

// withDefaults fills the zero fields.
func (l Limits) withDefaults() Limits {
	if l.MaxExporters <= 0 {
		l.MaxExporters = DefaultMaxExporters
	}
	if l.MaxTemplates <= 0 {
		l.MaxTemplates = DefaultMaxTemplates
	}
	if l.MaxPendingBytes <= 0 {
		l.MaxPendingBytes = DefaultMaxPendingBytes
	}
	return l
}

// Kinds of state that can be refused, the values of the kind label of
// kapkan_ingest_state_refused_total.
const (
	refusedExporter = "exporter"
	refusedTemplate = "template"
	refusedPending  = "pending_set"
	refusedSequence = "sequence"
	refusedSampler  = "sampler"
)

// budget is a shared allowance of some state, taken and given back by the
// exporters that hold it (each under its own lock, hence the atomic).
type budget struct {
	used    atomic.Int64
	max     int64
	refused prometheus.Counter
}

func newBudget(max int, refused *prometheus.CounterVec, kind string) *budget {
	return &budget{max: int64(max), refused: refused.WithLabelValues(kind)}
}

// take reserves n units, or counts a refusal and returns false when that
// would go over the maximum. A nil budget allows everything.
func (b *budget) take(n int64) bool {
	if b == nil {
		return true
	}
	if b.used.Add(n) > b.max {
		b.used.Add(-n)
		b.refused.Inc()
		return false
	}
	return true
}

// refuse counts a refusal made for another reason than the budget.
func (b *budget) refuse() {
	if b != nil {
		b.refused.Inc()
	}
}

// give returns n units.
func (b *budget) give(n int64) {
	if b != nil {
		b.used.Add(-n)
	}
}

// budgets are the Decoder's shared allowances. The exempt ones have no
// shared maximum and only count refusals: exporters named in the
// configuration take from them, so that a flood of templates or sequence
// spaces from other addresses cannot lock them out (each of them is still
// bounded by the per-exporter limits).
type budgets struct {
	exporters, templates, pending, sequence, samplers *budget
	exemptTemplates, exemptSequence, exemptSamplers   *budget
	exemptPending                                     *budget
}

func newBudgets(l Limits, m *metrics) budgets {
	return budgets{
		exporters:       newBudget(l.MaxExporters, m.refused, refusedExporter),
		templates:       newBudget(l.MaxTemplates, m.refused, refusedTemplate),
		pending:         newBudget(l.MaxPendingBytes, m.refused, refusedPending),
		sequence:        newBudget(maxSequenceKeys, m.refused, refusedSequence),
		samplers:        newBudget(maxSamplers, m.refused, refusedSampler),
		exemptTemplates: newBudget(math.MaxInt64/2, m.refused, refusedTemplate),
		exemptSequence:  newBudget(math.MaxInt64/2, m.refused, refusedSequence),
		exemptSamplers:  newBudget(math.MaxInt64/2, m.refused, refusedSampler),
		exemptPending:   newBudget(math.MaxInt64/2, m.refused, refusedPending),
	}
}
