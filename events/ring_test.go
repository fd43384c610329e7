package events

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kapkan-io/kapkan/internal/testutil"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// attackEvent is an event whose attack ID says who wrote it.
func attackEvent(id uint64) Event {
	return Event{Kind: AttackUpdated, Attack: &Attack{ID: id}}
}

func TestSizeRounding(t *testing.T) {
	for _, tc := range []struct{ size, want int }{{-1, 2}, {0, 2}, {1, 2}, {2, 2}, {3, 4}, {4, 4}, {5, 8}, {1000, 1024}} {
		if got := NewRing(tc.size, nil).Size(); got != tc.want {
			t.Errorf("NewRing(%d).Size() = %d, want %d", tc.size, got, tc.want)
		}
	}
}

func TestRingOrderAndSeq(t *testing.T) {
	r := NewRing(8, nil)
	if r.Last() != 0 || r.Oldest() != 1 {
		t.Fatalf("empty ring: Last %d Oldest %d, want 0 and 1", r.Last(), r.Oldest())
	}
	rd := r.NewReader("test", 1)
	if _, ok := rd.TryNext(); ok {
		t.Fatal("TryNext on an empty ring returned an event")
	}
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	before := time.Now()
	kinds := []Kind{AttackStarted, MitigationAnnounced, AttackEnded}
	for i, k := range kinds {
		e := Event{Kind: k, Seq: 99} // Publish owns Seq
		if i == 0 {
			e.At = at
		}
		if got := r.Publish(e); got != uint64(i+1) {
			t.Errorf("Publish #%d returned Seq %d", i+1, got)
		}
	}
	if r.Last() != 3 {
		t.Errorf("Last = %d, want 3", r.Last())
	}
	for i, k := range kinds {
		e, ok := rd.TryNext()
		if !ok || e.Seq != uint64(i+1) || e.Kind != k {
			t.Fatalf("read #%d: %v %d %s, want seq %d %s", i+1, ok, e.Seq, e.Kind, i+1, k)
		}
		switch {
		case i == 0 && !e.At.Equal(at):
			t.Errorf("At set by the writer was changed to %v", e.At)
		case i > 0 && e.At.Before(before):
			t.Errorf("zero At not set to the wall clock: %v", e.At)
		}
	}
	if _, ok := rd.TryNext(); ok {
		t.Error("TryNext past the newest returned an event")
	}
	if rd.Lost() != 0 {
		t.Errorf("Lost = %d for a reader that kept up", rd.Lost())
	}
}

func TestNewReaderFrom(t *testing.T) {
	r := NewRing(4, nil)
	for i := range 10 {
		r.Publish(attackEvent(uint64(i)))
	} // keeps 7..10
	for _, tc := range []struct {
		name  string
		from  uint64
		first uint64 // 0: nothing to read
	}{
		{"zero is the oldest kept", 0, 7},
		{"one is the oldest kept", 1, 7},
		{"overwritten is clamped, not lost", 5, 7},
		{"oldest", 7, 7},
		{"middle", 9, 9},
		{"newest", 10, 10},
		{"only new", 11, 0},
		{"future is clamped to only new", 500, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rd := r.NewReader("test", tc.from)
			e, ok := rd.TryNext()
			if ok != (tc.first != 0) || e.Seq != tc.first {
				t.Errorf("first read: %v seq %d, want seq %d", ok, e.Seq, tc.first)
			}
			if rd.Lost() != 0 {
				t.Errorf("Lost = %d", rd.Lost())
			}
		})
	}
	// A reader of only new events sees the next one published.
	rd := r.NewReader("test", r.Last()+1)
	r.Publish(attackEvent(11))
	if e, ok := rd.TryNext(); !ok || e.Seq != 11 {
		t.Errorf("only-new reader read %v seq %d, want 11", ok, e.Seq)
	}
}

func TestReaderLapped(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	r := NewRing(4, reg)
	rd := r.NewReader("slow", 1)
	if e, ok := rd.TryNext(); ok {
		t.Fatalf("read %d from an empty ring", e.Seq)
	}
	for i := range 10 {
		r.Publish(attackEvent(uint64(i + 1)))
	}
	e, ok := rd.TryNext()
	if !ok || e.Seq != 7 || e.Attack.ID != 7 {
		t.Fatalf("lapped reader read %v seq %d, want the oldest kept (7)", ok, e.Seq)
	}
	if rd.LostBefore() != 6 || rd.Lost() != 6 {
		t.Errorf("LostBefore %d Lost %d, want 6 and 6", rd.LostBefore(), rd.Lost())
	}
	for want := uint64(8); want <= 10; want++ {
		e, ok := rd.TryNext()
		if !ok || e.Seq != want || rd.LostBefore() != 0 {
			t.Fatalf("read %v seq %d lost before %d, want %d and 0", ok, e.Seq, rd.LostBefore(), want)
		}
	}
	// Lapped again, through Next this time.
	for i := range 5 {
		r.Publish(attackEvent(uint64(i + 11)))
	}
	e, err := rd.Next(context.Background())
	if err != nil || e.Seq != 12 || rd.LostBefore() != 1 || rd.Lost() != 7 {
		t.Errorf("Next: %v seq %d lost before %d lost %d, want 12, 1, 7", err, e.Seq, rd.LostBefore(), rd.Lost())
	}
	if got := testutil.MetricValue(t, reg, "kapkan_events_lost_total", map[string]string{"reader": "slow"}); got != 7 {
		t.Errorf("kapkan_events_lost_total{reader=slow} = %v, want 7", got)
	}
	if got := testutil.MetricValue(t, reg, "kapkan_events_published_total", map[string]string{"kind": string(AttackUpdated)}); got != 15 {
		t.Errorf("kapkan_events_published_total{kind=attack_updated} = %v, want 15", got)
	}
}

func TestReadersIndependent(t *testing.T) {
	r := NewRing(4, nil)
	fast, slow := r.NewReader("fast", 1), r.NewReader("slow", 1)
	var fastSeen []uint64
	for i := range 12 {
		r.Publish(attackEvent(uint64(i)))
		e, ok := fast.TryNext()
		if !ok {
			t.Fatalf("fast reader found nothing after publish %d", i+1)
		}
		fastSeen = append(fastSeen, e.Seq)
		if i%4 == 0 { // the slow one reads one event in four
			slow.TryNext()
		}
	}
	if fast.Lost() != 0 || len(fastSeen) != 12 || fastSeen[11] != 12 {
		t.Errorf("fast reader: lost %d, saw %v", fast.Lost(), fastSeen)
	}
	// slow read 1 (at 1), 2 (at 5), 6 (at 9, lapped: 3..5 lost); now 7..8 are
	// gone as well (the ring keeps 9..12).
	e, ok := slow.TryNext()
	if !ok || e.Seq != 9 || slow.Lost() != 5 {
		t.Errorf("slow reader: %v seq %d lost %d, want seq 9 and 5 lost", ok, e.Seq, slow.Lost())
	}
}

// TestPublishNeverBlocks publishes ten times the ring's size while one
// reader never reads and another waits in Next: a writer that waited for
// either would not finish.
func TestPublishNeverBlocks(t *testing.T) {
	r := NewRing(64, nil)
	idle := r.NewReader("idle", 1)
	waiting := r.NewReader("waiting", r.Last()+1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		// Waits in Next (most likely before the first publish), takes one
		// event, then never reads again.
		if _, err := waiting.Next(ctx); err == nil {
			<-ctx.Done()
		}
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 10 * r.Size() {
			r.Publish(attackEvent(uint64(i)))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("publishing 640 events did not finish in 10 s: the writer waits for readers")
	}
	cancel()
	wg.Wait()
	if e, ok := idle.TryNext(); !ok || e.Seq != uint64(9*r.Size()+1) || idle.Lost() != uint64(9*r.Size()) {
		t.Errorf("idle reader: %v seq %d lost %d", ok, e.Seq, idle.Lost())
	}
}

func TestNextWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := NewRing(4, nil)
		rd := r.NewReader("test", 1)

		// Ends at the deadline, not before.
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := rd.Next(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != time.Minute {
			t.Errorf("Next on an empty ring: %v after %v, want the deadline after 1m", err, time.Since(start))
		}

		// A cancelled context wins even over an event ready to read.
		r.Publish(attackEvent(1))
		ctx, cancel = context.WithCancel(context.Background())
		cancel()
		if _, err := rd.Next(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Next with a cancelled context: %v", err)
		}

		// Wakes when an event is published.
		got := make(chan Event, 2)
		go func() {
			for range 2 {
				e, err := rd.Next(context.Background())
				if err != nil {
					t.Error(err)
				}
				got <- e
			}
		}()
		synctest.Wait()
		if e := <-got; e.Seq != 1 {
			t.Fatalf("first Next: seq %d, want 1", e.Seq)
		}
		synctest.Wait() // blocked in Next again
		select {
		case e := <-got:
			t.Fatalf("Next returned seq %d with nothing published", e.Seq)
		default:
		}
		r.Publish(attackEvent(2))
		if e := <-got; e.Seq != 2 {
			t.Errorf("Next after Publish: seq %d, want 2", e.Seq)
		}

		// Close wakes a waiting Next.
		errc := make(chan error)
		go func() {
			_, err := rd.Next(context.Background())
			errc <- err
		}()
		synctest.Wait()
		rd.Close()
		rd.Close()
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Errorf("Next on a closed reader: %v", err)
		}
		r.Publish(attackEvent(3))
		if _, ok := rd.TryNext(); ok {
			t.Error("TryNext on a closed reader returned an event")
		}
	})
}

// TestHammer runs writers and readers at once (under -race in CI): every
// reader sees strictly increasing Seq, each writer's events in its order,
// and accounts for every event as seen or lost.
func TestHammer(t *testing.T) {
	const writers, perWriter = 4, 5000
	const total = writers * perWriter
	reg := prometheus.NewPedanticRegistry()
	r := NewRing(64, reg) // small, so that readers get lapped
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	type result struct {
		name       string
		seen, lost uint64
		err        error
	}
	results := make(chan result, 3)
	readers := []struct {
		name string
		read func(rd *Reader) (Event, error)
	}{
		{"next", func(rd *Reader) (Event, error) { return rd.Next(ctx) }},
		{"slow", func(rd *Reader) (Event, error) {
			runtime.Gosched()
			runtime.Gosched()
			return rd.Next(ctx)
		}},
		{"try", func(rd *Reader) (Event, error) {
			for {
				if e, ok := rd.TryNext(); ok {
					return e, nil
				}
				if err := ctx.Err(); err != nil {
					return Event{}, err
				}
				runtime.Gosched()
			}
		}},
	}
	var rwg sync.WaitGroup
	for _, rs := range readers {
		rd := r.NewReader(rs.name, 1)
		rwg.Go(func() {
			res := result{name: rs.name}
			var prev uint64
			last := map[uint64]uint64{} // writer → its last counter seen
			for prev < total {
				e, err := rs.read(rd)
				if err != nil {
					res.err = err
					break
				}
				if e.Seq != prev+1+rd.LostBefore() {
					res.err = fmt.Errorf("seq %d after %d with %d lost before it", e.Seq, prev, rd.LostBefore())
					break
				}
				w, n := e.Attack.ID>>32, e.Attack.ID&0xffffffff
				if c, ok := last[w]; ok && n <= c {
					res.err = fmt.Errorf("writer %d: event %d after %d", w, n, c)
					break
				}
				last[w] = n
				prev = e.Seq
				res.seen++
			}
			res.lost = rd.Lost()
			results <- res
		})
	}
	var wwg sync.WaitGroup
	for w := range uint64(writers) {
		wwg.Go(func() {
			for i := range uint64(perWriter) {
				r.Publish(attackEvent(w<<32 | i))
			}
		})
	}
	wwg.Wait()
	rwg.Wait()
	close(results)
	for res := range results {
		if res.err != nil {
			t.Errorf("reader %s: %v", res.name, res.err)
			continue
		}
		if res.seen+res.lost != total {
			t.Errorf("reader %s: seen %d + lost %d != published %d", res.name, res.seen, res.lost, total)
		}
		if got := testutil.MetricValue(t, reg, "kapkan_events_lost_total", map[string]string{"reader": res.name}); got != float64(res.lost) {
			t.Errorf("reader %s: lost metric %v, Lost() %d", res.name, got, res.lost)
		}
		t.Logf("reader %s: seen %d, lost %d", res.name, res.seen, res.lost)
	}
	if r.Last() != total {
		t.Errorf("Last = %d, want %d", r.Last(), total)
	}
	if got := testutil.MetricValue(t, reg, "kapkan_events_published_total", map[string]string{"kind": string(AttackUpdated)}); got != total {
		t.Errorf("published metric %v, want %d", got, total)
	}
}

// TestMetricsLint runs promlint over the ring's metrics (the daemon's
// metric test lints them again once the ring is wired in).
func TestMetricsLint(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	r := NewRing(4, reg)
	r.NewReader("log", 1)
	r.Publish(attackEvent(1))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	if len(mfs) != 2 {
		t.Errorf("gathered %d metric families, want published and lost", len(mfs))
	}
}
