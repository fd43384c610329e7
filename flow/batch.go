package flow

import "sync"

// BatchSize is the capacity of a Batch. 256 records of 112 bytes fit a batch
// in 28 KiB, small enough to stay in cache between ingest and engine.
const BatchSize = 256

// Batch is a fixed-capacity array of records. N records are valid.
type Batch struct {
	N       int
	Records [BatchSize]Record
}

// Add appends r and reports whether the batch is now full. Adding to a full
// batch panics: callers flush on a true return.
func (b *Batch) Add(r *Record) bool {
	b.Records[b.N] = *r
	b.N++
	return b.N == BatchSize
}

// Valid returns the records in use.
func (b *Batch) Valid() []Record { return b.Records[:b.N] }

// Sink receives batches. The receiver owns the batch from the call on and
// returns it with Pool.Put when done; the sender must not touch it again.
type Sink interface {
	Consume(*Batch)
}

// SinkFunc adapts a function to the Sink interface.
type SinkFunc func(*Batch)

// Consume calls f(b).
func (f SinkFunc) Consume(b *Batch) { f(b) }

// Pool recycles batches. The zero value is ready to use.
type Pool struct {
	p sync.Pool
}

// DefaultPool is shared by the stages of one process.
var DefaultPool = &Pool{}

// Get returns an empty batch.
func (p *Pool) Get() *Batch {
	if b, ok := p.p.Get().(*Batch); ok {
		b.N = 0
		return b
	}
	return new(Batch)
}

// Put returns a batch to the pool. The caller must not use it afterwards.
func (p *Pool) Put(b *Batch) {
	if b == nil {
		return
	}
	b.N = 0
	p.p.Put(b)
}
