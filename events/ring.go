package events

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrClosed is what Next returns once the reader was closed.
var ErrClosed = errors.New("events: reader closed")

// Ring keeps the newest events, a fixed number of them. Publish never
// waits for a reader: it overwrites the oldest event, and a reader that
// had not read it yet learns so on its next read (the event is counted as
// lost for that reader). Readers follow at their own pace, each with its
// own position; the ring does not know them.
//
// Publish takes a short mutex: events are few (per attack and per
// mitigation, not per record), so a lock-free ring would buy nothing, and
// the mutex makes the order of Seq the order in the buffer.
type Ring struct {
	mu   sync.Mutex
	buf  []Event
	mask uint64
	last uint64 // Seq of the newest event, 0 before the first
	// wake is closed by the next Publish, which wakes every reader
	// blocked in Next; nil when no reader waits, so that a Publish nobody
	// waits for allocates nothing.
	wake chan struct{}

	published     map[Kind]prometheus.Counter // every known kind, made once
	publishedKind *prometheus.CounterVec      // other kinds
	lost          *prometheus.CounterVec
}

// NewRing returns a ring keeping the newest size events (size is rounded
// up to a power of two, at least 2). Its metrics are registered with reg
// when it is not nil.
func NewRing(size int, reg prometheus.Registerer) *Ring {
	n := 2
	for n < size {
		n <<= 1
	}
	r := &Ring{
		buf:  make([]Event, n),
		mask: uint64(n - 1),
		publishedKind: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_events_published_total",
			Help: "Events published, by kind.",
		}, []string{"kind"}),
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_events_lost_total",
			Help: "Events a reader did not see because the ring overwrote them first (the reader fell behind), by reader.",
		}, []string{"reader"}),
		published: make(map[Kind]prometheus.Counter, len(Kinds)),
	}
	for _, k := range Kinds {
		r.published[k] = r.publishedKind.WithLabelValues(string(k))
	}
	if reg != nil {
		reg.MustRegister(r.publishedKind, r.lost)
	}
	return r
}

// Size returns how many events the ring keeps.
func (r *Ring) Size() int { return len(r.buf) }

// Publish adds e to the ring and returns its Seq. It sets e.Seq, and e.At
// to the wall clock when it is zero. It never blocks on readers, and is
// safe from any number of goroutines.
func (r *Ring) Publish(e Event) uint64 {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	c, ok := r.published[e.Kind] // read-only after NewRing
	if !ok {
		c = r.publishedKind.WithLabelValues(string(e.Kind))
	}
	r.mu.Lock()
	r.last++
	e.Seq = r.last
	r.buf[(e.Seq-1)&r.mask] = e
	wake := r.wake
	r.wake = nil
	r.mu.Unlock()
	if wake != nil {
		close(wake)
	}
	c.Inc()
	return e.Seq
}

// Last returns the Seq of the newest event, 0 when there is none.
func (r *Ring) Last() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// Oldest returns the Seq of the oldest event still kept (Last()+1 when
// the ring is empty).
func (r *Ring) Oldest() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.oldestLocked()
}

func (r *Ring) oldestLocked() uint64 {
	if n := uint64(len(r.buf)); r.last > n {
		return r.last - n + 1
	}
	return 1
}

// Reader follows a ring from a position of its own. Next, TryNext and
// LostBefore are for one goroutine; Lost and Close are safe from any.
type Reader struct {
	r    *Ring
	name string
	next uint64 // Seq of the next event to return
	gap  uint64 // events lost just before the last one returned

	lost     atomic.Uint64
	lostC    prometheus.Counter
	done     chan struct{}
	closeOne sync.Once
}

// NewReader returns a reader named name (the label of
// kapkan_events_lost_total: use a fixed set of names, "log", "replay",
// "sse") whose first event is the one with Seq from: Last()+1 for only new
// events, 1 (or 0) for the oldest still kept. from is clamped to the
// events kept: below the oldest, it starts at the oldest (not counted as
// lost); past Last()+1, at Last()+1.
func (r *Ring) NewReader(name string, from uint64) *Reader {
	rd := &Reader{r: r, name: name, lostC: r.lost.WithLabelValues(name), done: make(chan struct{})}
	r.mu.Lock()
	defer r.mu.Unlock()
	rd.next = min(max(from, r.oldestLocked()), r.last+1)
	return rd
}

// Name returns the reader's name.
func (rd *Reader) Name() string { return rd.name }

// take returns the next event if there is one (r.mu held), skipping to the
// oldest kept when the ring lapped the reader; lost is how many it skipped.
func (rd *Reader) take() (e Event, lost uint64, ok bool) {
	r := rd.r
	if rd.next > r.last {
		return Event{}, 0, false
	}
	if oldest := r.oldestLocked(); rd.next < oldest {
		lost = oldest - rd.next
		rd.next = oldest
	}
	e = r.buf[(rd.next-1)&r.mask]
	rd.next++
	return e, lost, true
}

// account records the events lost before the one just returned.
func (rd *Reader) account(lost uint64) {
	rd.gap = lost
	if lost > 0 {
		rd.lost.Add(lost)
		rd.lostC.Add(float64(lost))
	}
}

// Next returns the next event, waiting for one until ctx ends (ctx.Err())
// or the reader is closed (ErrClosed). When the ring overwrote events the
// reader had not read yet, Next returns the oldest event kept, counts the
// ones skipped in Lost, and LostBefore tells how many were skipped right
// before it.
func (rd *Reader) Next(ctx context.Context) (Event, error) {
	r := rd.r
	for {
		if err := ctx.Err(); err != nil {
			return Event{}, err
		}
		select {
		case <-rd.done:
			return Event{}, ErrClosed
		default:
		}
		r.mu.Lock()
		e, lost, ok := rd.take()
		if ok {
			r.mu.Unlock()
			rd.account(lost)
			return e, nil
		}
		if r.wake == nil {
			r.wake = make(chan struct{})
		}
		wake := r.wake
		r.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		case <-rd.done:
			return Event{}, ErrClosed
		}
	}
}

// TryNext returns the next event if there is one, without waiting (replay
// drains the ring between steps); false when there is none or the reader
// is closed. Lapping is handled as in Next.
func (rd *Reader) TryNext() (Event, bool) {
	select {
	case <-rd.done:
		return Event{}, false
	default:
	}
	rd.r.mu.Lock()
	e, lost, ok := rd.take()
	rd.r.mu.Unlock()
	if ok {
		rd.account(lost)
	}
	return e, ok
}

// LostBefore returns how many events the reader lost right before the
// event Next or TryNext last returned: 0 unless the ring had lapped it.
func (rd *Reader) LostBefore() uint64 { return rd.gap }

// Lost returns how many events the reader lost in all.
func (rd *Reader) Lost() uint64 { return rd.lost.Load() }

// Close ends the reader: a Next waiting in another goroutine returns
// ErrClosed. Closing twice is harmless.
func (rd *Reader) Close() { rd.closeOne.Do(func() { close(rd.done) }) }
