package ingest

import "github.com/kapkan-io/kapkan/flow"

// Batcher collects records into pooled batches and hands each full batch to
// a sink. One Batcher belongs to one goroutine.
type Batcher struct {
	pool *flow.Pool
	sink flow.Sink
	cur  *flow.Batch

	// stats are this worker's slots of per-exporter figures (see
	// workerStats), with the last one looked up.
	stats        map[*exporterState]*workerStats
	lastExporter *exporterState
	lastStats    *workerStats
}

// NewBatcher returns a Batcher that sends batches from pool to sink.
func NewBatcher(pool *flow.Pool, sink flow.Sink) *Batcher {
	if pool == nil {
		pool = flow.DefaultPool
	}
	return &Batcher{pool: pool, sink: sink}
}

// Add copies r into the current batch, sending the batch on when it fills.
func (b *Batcher) Add(r *flow.Record) {
	if b.cur == nil {
		b.cur = b.pool.Get()
	}
	if b.cur.Add(r) {
		b.Flush()
	}
}

// Flush sends the current batch, if it holds any record.
func (b *Batcher) Flush() {
	if b.cur == nil || b.cur.N == 0 {
		return
	}
	cur := b.cur
	b.cur = nil
	b.sink.Consume(cur)
}
