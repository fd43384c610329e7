package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/internal/testutil"
	"github.com/kapkan-io/kapkan/store"
)

// fake is a Store that keeps the events and traffic written, fails the
// first fail writes of events and, when gate is set, waits on it in every
// write of events.
type fake struct {
	store.Store // reads are not called
	mu          sync.Mutex
	fail        int
	down        bool // every write of events fails with ErrUnavailable
	gate        chan struct{}
	calls       int
	evs         []events.Event
	pts         []store.TrafficPoint
	prunes      []time.Time
}

func (f *fake) PutEvents(ctx context.Context, evs []events.Event) error {
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.down {
		return fmt.Errorf("dial tcp 127.0.0.1:9000: connection refused: %w", store.ErrUnavailable)
	}
	if f.fail > 0 {
		f.fail--
		return errors.New("disk on fire")
	}
	f.evs = append(f.evs, evs...)
	return nil
}

func (f *fake) PutTraffic(_ context.Context, pts []store.TrafficPoint) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pts = append(f.pts, pts...)
	return nil
}

func (f *fake) Prune(_ context.Context, before time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prunes = append(f.prunes, before)
	return nil
}

func (f *fake) seqs() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []uint64
	for _, e := range f.evs {
		out = append(out, e.Seq)
	}
	return out
}

func publish(r *events.Ring, n int) {
	for range n {
		r.Publish(events.Event{Kind: events.AttackUpdated, Attack: &events.Attack{ID: 1}})
	}
}

func TestWriterRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		ring := events.NewRing(64, nil)
		f := &fake{fail: 3}
		w := store.NewWriter(f, ring, nil, store.WriterDeps{Registerer: reg, BatchSize: 4})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()

		publish(ring, 10)
		// 100+200+400 ms of backoff, then the rest in 200 ms batches.
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got := f.seqs(); len(got) != 10 || got[0] != 1 || got[9] != 10 {
			t.Errorf("written %v, want seq 1…10 in order", got)
		}
		if got := testutil.MetricValue(t, reg, "kapkan_store_write_retries_total", nil); got != 3 {
			t.Errorf("retries = %v, want 3", got)
		}
		if got := testutil.MetricValue(t, reg, "kapkan_store_events_written_total", nil); got != 10 {
			t.Errorf("written = %v, want 10", got)
		}
		if got := testutil.MetricValue(t, reg, "kapkan_store_errors_total", map[string]string{"op": "events"}); got != 3 {
			t.Errorf("errors = %v, want 3", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func TestWriterGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		ring := events.NewRing(64, nil)
		f := &fake{fail: 1000}
		w := store.NewWriter(f, ring, nil, store.WriterDeps{Registerer: reg, BatchSize: 5, MaxAttempts: 3})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go w.Run(ctx)
		publish(ring, 5)
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := testutil.MetricValue(t, reg, "kapkan_store_events_dropped_total", nil); got != 5 {
			t.Errorf("dropped = %v, want 5", got)
		}
		if f.calls != 3 {
			t.Errorf("%d attempts, want 3", f.calls)
		}
	})
}

// TestWriterWaitsForTheStore: a store that is unavailable for ten minutes
// (its server down, its disk full) uses up no attempts: the batch waits in
// hand and the events behind it in the ring, the gauge says so, nothing is
// dropped, and everything is written in order once the store is back. A
// batch failing for another reason is still given up after MaxAttempts.
func TestWriterWaitsForTheStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		ring := events.NewRing(64, nil)
		f := &fake{down: true}
		w := store.NewWriter(f, ring, nil, store.WriterDeps{Registerer: reg, BatchSize: 4, MaxAttempts: 3})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go w.Run(ctx)
		unavailable := func() float64 { return testutil.MetricValue(t, reg, "kapkan_store_unavailable", nil) }

		publish(ring, 30)
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		f.mu.Lock()
		calls := f.calls
		f.mu.Unlock()
		if calls <= 3 {
			t.Errorf("%d attempts in 10 minutes: the writer stopped trying", calls)
		}
		if got := unavailable(); got != 1 {
			t.Errorf("kapkan_store_unavailable = %v while the store is down, want 1", got)
		}
		f.mu.Lock()
		f.down = false
		f.mu.Unlock()
		time.Sleep(time.Minute) // the backoff is at most 10 s
		synctest.Wait()
		if got := f.seqs(); len(got) != 30 || got[0] != 1 || got[29] != 30 {
			t.Errorf("written %v, want seq 1…30 in order", got)
		}
		for name, want := range map[string]float64{"kapkan_store_events_dropped_total": 0, "kapkan_store_events_lost_total": 0,
			"kapkan_store_unavailable": 0, "kapkan_store_events_written_total": 30} {
			if got := testutil.MetricValue(t, reg, name, nil); got != want {
				t.Errorf("%s = %v, want %v", name, got, want)
			}
		}

		// Another failure uses the attempts up.
		f.mu.Lock()
		f.fail = 1000
		f.mu.Unlock()
		publish(ring, 4)
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := testutil.MetricValue(t, reg, "kapkan_store_events_dropped_total", nil); got != 4 {
			t.Errorf("dropped = %v after a failing batch, want 4", got)
		}
	})
}

// A store that hangs never holds the ring up: Publish goes on, the
// writer's reader is lapped (counted), and when the store comes back the
// writer catches up from the oldest event the ring still holds.
func TestWriterSlowStoreLoses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		ring := events.NewRing(16, reg)
		f := &fake{gate: make(chan struct{})}
		w := store.NewWriter(f, ring, nil, store.WriterDeps{Registerer: reg, BatchSize: 4})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go w.Run(ctx)

		publish(ring, 4) // a full batch: the writer now hangs in PutEvents
		synctest.Wait()
		publish(ring, 100) // never blocks
		close(f.gate)
		time.Sleep(5 * time.Second)
		synctest.Wait()

		lost := testutil.MetricValue(t, reg, "kapkan_store_events_lost_total", nil)
		got := f.seqs()
		if lost == 0 {
			t.Fatal("no events counted lost")
		}
		if len(got)+int(lost) != 104 {
			t.Errorf("%d written + %v lost, want 104", len(got), lost)
		}
		if got[len(got)-1] != 104 {
			t.Errorf("last written seq %d, want 104 (caught up)", got[len(got)-1])
		}
		for i := 1; i < len(got); i++ {
			if got[i] <= got[i-1] {
				t.Fatalf("out of order: %v", got)
			}
		}
		if ringLost := testutil.MetricValue(t, reg, "kapkan_events_lost_total", map[string]string{"reader": "store"}); ringLost != lost {
			t.Errorf("ring counted %v lost for the store reader, writer %v", ringLost, lost)
		}
	})
}

func TestWriterTrafficAndPrune(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		ring := events.NewRing(16, nil)
		f := &fake{}
		n := 0
		traffic := func() []store.TrafficPoint {
			n++
			if n == 2 {
				return nil // nothing to write this second
			}
			return []store.TrafficPoint{{At: time.Now(), Hostgroup: "web", Direction: "incoming", PPS: float64(n)}}
		}
		start := time.Now()
		w := store.NewWriter(f, ring, traffic, store.WriterDeps{Registerer: reg, Retention: 90 * 24 * time.Hour})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()
		time.Sleep(2*time.Hour + 500*time.Millisecond)
		synctest.Wait()
		cancel()
		<-done
		secs := int(2 * time.Hour / time.Second)
		if len(f.pts) != secs-1 || testutil.MetricValue(t, reg, "kapkan_store_traffic_points_written_total", nil) != float64(secs-1) {
			t.Errorf("%d traffic points, want %d", len(f.pts), secs-1)
		}
		// At start, then hourly.
		want := []time.Time{start, start.Add(time.Hour), start.Add(2 * time.Hour)}
		if len(f.prunes) != 3 {
			t.Fatalf("prunes %v, want 3", f.prunes)
		}
		for i, p := range f.prunes {
			if !p.Equal(want[i].Add(-90 * 24 * time.Hour)) {
				t.Errorf("prune %d before %v, want %v", i, p, want[i].Add(-90*24*time.Hour))
			}
		}
	})
}

// sampling is a fake store that also keeps raw samples.
type sampling struct {
	fake
	samples []store.Sample
}

func (s *sampling) PutSample(_ context.Context, id uint64, taken time.Time, recs []flow.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples = append(s.samples, store.Sample{AttackID: id, Taken: taken, Records: recs})
	return nil
}

// TestWriterSamples: raw samples reach a store that keeps them, in order;
// a writer whose store keeps none says so (nobody need hand it any); a
// full queue drops a sample and counts it, never waits.
func TestWriterSamples(t *testing.T) {
	if store.NewWriter(&fake{}, events.NewRing(16, nil), nil, store.WriterDeps{}).KeepsSamples() {
		t.Error("a store without PutSample keeps samples")
	}
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		s := &sampling{}
		w := store.NewWriter(s, events.NewRing(16, nil), nil, store.WriterDeps{Registerer: reg})
		if !w.KeepsSamples() {
			t.Fatal("a store with PutSample keeps no samples")
		}
		recs := []flow.Record{{SrcPort: 53}, {SrcPort: 123}}
		// The queue holds 256; the writer is not running yet.
		for i := range 300 {
			w.Sample(store.Sample{AttackID: uint64(i + 1), Taken: time.Now(), Records: recs})
		}
		if n := testutil.MetricValue(t, reg, "kapkan_store_samples_dropped_total", nil); n != 44 {
			t.Errorf("dropped %v, want 44", n)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()
		synctest.Wait()
		cancel()
		<-done
		if len(s.samples) != 256 || s.samples[0].AttackID != 1 || s.samples[255].AttackID != 256 || len(s.samples[0].Records) != 2 {
			t.Fatalf("%d samples written, want 1..256 in order", len(s.samples))
		}
		if n := testutil.MetricValue(t, reg, "kapkan_store_samples_written_total", nil); n != 256 {
			t.Errorf("written %v, want 256", n)
		}
	})
}
