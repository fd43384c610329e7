package store

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/events"
)

// WriterDeps are what a Writer needs besides the store, the ring and the
// traffic source. Zero values take the defaults given.
type WriterDeps struct {
	Logger     *slog.Logger          // slog.Default()
	Registerer prometheus.Registerer // nil: metrics not registered
	// Retention is the age past which Prune drops history; 0 keeps all.
	Retention time.Duration
	// Now is the clock retention is computed from (time.Now).
	Now func() time.Time

	BatchSize       int           // events per PutEvents, 500
	BatchWait       time.Duration // the longest an event waits for its batch, 200 ms
	TrafficInterval time.Duration // how often traffic() is written, 1 s
	PruneInterval   time.Duration // how often Prune runs, 1 h (and once at start)
	// RetryMin and RetryMax bound the backoff between attempts of a failed
	// batch (100 ms doubling to 10 s); MaxAttempts is how many failed
	// attempts a batch gets before it is dropped, counted (10). Failures
	// marked ErrUnavailable (the store down, its disk full) do not use up
	// attempts: the batch waits for the store to come back.
	RetryMin, RetryMax time.Duration
	MaxAttempts        int
}

// Writer copies the event ring into a Store: it follows the ring with a
// reader of its own named "store", writes the events in batches, writes
// the hostgroup traffic once a second and prunes the history. It never
// slows the ring down: when the store is slow or unavailable, the reader
// falls behind and the ring (plus one batch in hand and one queued) is the
// buffer; once the ring overwrites events the reader has not read, they are
// counted in kapkan_store_events_lost_total, and the reader catches up
// from the oldest kept when the store is back.
type Writer struct {
	s       Store
	ring    *events.Ring
	traffic func() []TrafficPoint
	d       WriterDeps
	log     *slog.Logger

	written, lost, retries, points prometheus.Counter
	dropped                        prometheus.Counter
	unavailable                    prometheus.Gauge
	errs                           *prometheus.CounterVec
	seconds                        *prometheus.HistogramVec

	trafficFailing bool // the last traffic write failed (Run's goroutine only)

	samples                        chan Sample
	samplesWritten, samplesDropped prometheus.Counter
}

// NewWriter returns a writer of ring into s; traffic (nil: none) returns
// the hostgroup traffic points to write, called once per TrafficInterval.
// It starts nothing: Run does.
func NewWriter(s Store, ring *events.Ring, traffic func() []TrafficPoint, d WriterDeps) *Writer {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	def := func(v *time.Duration, x time.Duration) {
		if *v <= 0 {
			*v = x
		}
	}
	def(&d.BatchWait, 200*time.Millisecond)
	def(&d.TrafficInterval, time.Second)
	def(&d.PruneInterval, time.Hour)
	def(&d.RetryMin, 100*time.Millisecond)
	def(&d.RetryMax, 10*time.Second)
	if d.BatchSize <= 0 {
		d.BatchSize = 500
	}
	if d.MaxAttempts <= 0 {
		d.MaxAttempts = 10
	}
	w := &Writer{
		s: s, ring: ring, traffic: traffic, d: d,
		log: d.Logger.With("component", "store"),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kapkan_store_events_written_total",
			Help: "Events written to the history store.",
		}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kapkan_store_events_lost_total",
			Help: "Events the history store never saw: the ring overwrote them before the store's reader got to them (a slow store).",
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kapkan_store_write_retries_total",
			Help: "Attempts to write a batch of events to the history store again after a failure.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kapkan_store_events_dropped_total",
			Help: "Events given up after every attempt to write their batch failed.",
		}),
		unavailable: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kapkan_store_unavailable",
			Help: "1 while the history store cannot take writes (its server down, its disk full) and the writer waits with a batch in hand; 0 otherwise.",
		}),
		points: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kapkan_store_traffic_points_written_total",
			Help: "Hostgroup traffic points written to the history store.",
		}),
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_store_errors_total",
			Help: "Failed history store operations, by operation (events, traffic, prune, samples).",
		}, []string{"op"}),
		samples: make(chan Sample, sampleQueue),
		samplesWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kapkan_store_samples_written_total",
			Help: "Raw flow samples of attacks written to a history store that keeps them (ClickHouse).",
		}),
		samplesDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kapkan_store_samples_dropped_total",
			Help: "Raw flow samples not kept: the writer's queue was full or the store refused them.",
		}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kapkan_store_write_seconds",
			Help:    "Time taken by history store writes, by operation (events, traffic, prune, samples).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9), // 0.5 ms … 33 s
		}, []string{"op"}),
	}
	for _, op := range []string{"events", "traffic", "prune", "samples"} {
		w.errs.WithLabelValues(op)
		w.seconds.WithLabelValues(op)
	}
	if d.Registerer != nil {
		d.Registerer.MustRegister(w.written, w.lost, w.retries, w.dropped, w.unavailable, w.points, w.errs, w.seconds, w.samplesWritten, w.samplesDropped)
	}
	return w
}

// Run writes until ctx ends; then it writes the batch in hand (for at
// most a second) and returns nil. All store writes happen in Run's
// goroutine.
func (w *Writer) Run(ctx context.Context) error {
	rd := w.ring.NewReader("store", 1) // from the oldest kept: nothing published before Run is missed
	defer rd.Close()
	ch := make(chan events.Event, w.d.BatchSize)
	pumpCtx, stopPump := context.WithCancel(ctx)
	pumped := make(chan struct{})
	go func() {
		// The pump blocks on ch while a batch is written: the reader then
		// stays behind and the ring laps it rather than waiting.
		defer close(pumped)
		for {
			e, err := rd.Next(pumpCtx)
			if err != nil {
				return
			}
			if n := rd.LostBefore(); n > 0 {
				w.lost.Add(float64(n))
				w.log.Warn("history store fell behind the event ring, events lost", "lost", n)
			}
			select {
			case ch <- e:
			case <-pumpCtx.Done():
				return
			}
		}
	}()
	defer func() { stopPump(); <-pumped }()

	traffic := time.NewTicker(w.d.TrafficInterval)
	defer traffic.Stop()
	prune := time.NewTicker(w.d.PruneInterval)
	defer prune.Stop()
	w.prune(ctx)

	batch := make([]events.Event, 0, w.d.BatchSize)
	var (
		deadline *time.Timer
		due      <-chan time.Time
	)
	flush := func(ctx context.Context) {
		if len(batch) > 0 {
			w.write(ctx, batch)
		}
		batch = batch[:0]
		if deadline != nil {
			deadline.Stop()
		}
		due = nil
	}
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			// Take what the pump already handed over.
			for drained := false; !drained; {
				select {
				case e := <-ch:
					batch = append(batch, e)
				default:
					drained = true
				}
			}
			flush(fctx)
			cancel()
			return nil
		case e := <-ch:
			batch = append(batch, e)
			if len(batch) >= w.d.BatchSize {
				flush(ctx)
			} else if due == nil {
				deadline = time.NewTimer(w.d.BatchWait)
				due = deadline.C
			}
		case <-due:
			flush(ctx)
		case smp := <-w.samples:
			w.writeSample(ctx, smp)
		case <-traffic.C:
			w.writeTraffic(ctx)
		case <-prune.C:
			w.prune(ctx)
		}
	}
}

// write writes a batch, retrying with backoff; it gives the batch up after
// MaxAttempts failures not marked ErrUnavailable, or when ctx ends.
func (w *Writer) write(ctx context.Context, batch []events.Event) {
	backoff := w.d.RetryMin
	defer w.unavailable.Set(0)
	failed := 0
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := w.s.PutEvents(ctx, batch)
		w.seconds.WithLabelValues("events").Observe(time.Since(start).Seconds())
		if err == nil {
			w.written.Add(float64(len(batch)))
			if attempt > 1 {
				w.log.Info("history store write went through", "events", len(batch), "attempts", attempt)
			}
			return
		}
		w.errs.WithLabelValues("events").Inc()
		down := errors.Is(err, ErrUnavailable)
		if down {
			w.unavailable.Set(1)
		} else {
			failed++
		}
		if failed >= w.d.MaxAttempts || ctx.Err() != nil {
			w.dropped.Add(float64(len(batch)))
			w.log.Error("history store write failed, events dropped", "events", len(batch), "attempts", attempt, "err", err)
			return
		}
		w.log.Warn("history store write failed, retrying", "events", len(batch), "attempt", attempt, "backoff", backoff, "unavailable", down, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			w.dropped.Add(float64(len(batch)))
			return
		}
		w.retries.Inc()
		backoff = min(2*backoff, w.d.RetryMax)
	}
}

// writeTraffic writes the traffic points of now, once: the next second
// brings fresh ones.
func (w *Writer) writeTraffic(ctx context.Context) {
	if w.traffic == nil {
		return
	}
	pts := w.traffic()
	if len(pts) == 0 {
		return
	}
	start := time.Now()
	err := w.s.PutTraffic(ctx, pts)
	w.seconds.WithLabelValues("traffic").Observe(time.Since(start).Seconds())
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			w.errs.WithLabelValues("traffic").Inc()
			// Once per outage, not once a second: the counter has the rest.
			if !w.trafficFailing {
				w.log.Warn("history store traffic write failed, counting the next failures without a log line until one goes through", "points", len(pts), "err", err)
			}
			w.trafficFailing = true
		}
		return
	}
	if w.trafficFailing {
		w.log.Info("history store traffic write went through again")
		w.trafficFailing = false
	}
	w.points.Add(float64(len(pts)))
}

func (w *Writer) prune(ctx context.Context) {
	if w.d.Retention <= 0 {
		return
	}
	before := w.d.Now().Add(-w.d.Retention)
	start := time.Now()
	err := w.s.Prune(ctx, before)
	w.seconds.WithLabelValues("prune").Observe(time.Since(start).Seconds())
	if err != nil {
		w.errs.WithLabelValues("prune").Inc()
		w.log.Warn("history store prune failed", "before", before, "err", err)
	}
}
