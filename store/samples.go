package store

import (
	"context"
	"time"

	"github.com/kapkan-io/kapkan/flow"
)

// SampleStore is a store that also keeps the raw flow sample records of
// attacks, for forensics (the ClickHouse store): the events carry only a
// summary. Writing the same sample (attack and time) twice keeps it once.
type SampleStore interface {
	PutSample(ctx context.Context, attackID uint64, taken time.Time, recs []flow.Record) error
}

// Sample is an attack's raw flow sample taken at a moment (its start, its
// end), handed to the writer by the verdict path.
type Sample struct {
	AttackID uint64
	Taken    time.Time
	Records  []flow.Record
}

// sampleQueue is how many samples may wait for the writer; beyond it a
// sample is dropped (counted), never waited for.
const sampleQueue = 256

// KeepsSamples reports whether the writer's store keeps raw samples:
// without one, nobody need hand it any.
func (w *Writer) KeepsSamples() bool {
	_, ok := w.s.(SampleStore)
	return ok
}

// Sample hands the writer an attack's raw flow sample without waiting: a
// full queue drops it (kapkan_store_samples_dropped_total). The records
// must not change afterwards.
func (w *Writer) Sample(s Sample) {
	select {
	case w.samples <- s:
	default:
		w.samplesDropped.Inc()
	}
}

// writeSample writes one sample, once: a sample is forensics, and a store
// that cannot take it now has the attack's summary all the same.
func (w *Writer) writeSample(ctx context.Context, s Sample) {
	ss, ok := w.s.(SampleStore)
	if !ok || len(s.Records) == 0 {
		return
	}
	start := time.Now()
	err := ss.PutSample(ctx, s.AttackID, s.Taken, s.Records)
	w.seconds.WithLabelValues("samples").Observe(time.Since(start).Seconds())
	if err != nil {
		w.errs.WithLabelValues("samples").Inc()
		w.samplesDropped.Inc()
		w.log.Warn("history store could not keep a flow sample", "attack", s.AttackID, "records", len(s.Records), "err", err)
		return
	}
	w.samplesWritten.Inc()
}
