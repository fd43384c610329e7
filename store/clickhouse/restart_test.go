package clickhouse_test

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/internal/testutil"
	"github.com/kapkan-io/kapkan/store"
	"github.com/kapkan-io/kapkan/store/clickhouse"
)

// TestServerRestartWhileWriting restarts the server twice (a clean stop,
// then a kill) while a writer puts batches of attacks and mitigations
// without pause: every batch the writer was told is written reads back,
// and the retries show in the counter.
func TestServerRestartWhileWriting(t *testing.T) {
	srv := testutil.StartClickHouse(t)
	reg := prometheus.NewRegistry()
	s, err := clickhouse.Open(context.Background(), srv.DSN("kapkan"), clickhouse.Deps{Registry: reg, RetryFor: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	var written atomic.Uint64
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for id := uint64(1); ; id++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			at := t0.Add(time.Duration(id) * time.Millisecond)
			target := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(id >> 8), byte(id)}), 32)
			batch := []events.Event{
				{Seq: 2 * id, Kind: events.AttackStarted, At: at, Attack: &events.Attack{ID: id, Target: target, Started: at, Hostgroup: "web",
					Direction: "incoming", Rates: map[string]float64{"pps": float64(id)}}},
				{Seq: 2*id + 1, Kind: events.MitigationAnnounced, At: at, Mitigation: &events.Mitigation{AttackID: id, Target: target, Action: flowspec.Discard}},
			}
			c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := s.PutEvents(c, batch)
			cancel()
			if err != nil {
				done <- err
				return
			}
			written.Store(id)
		}
	}()

	// waitFor polls a condition of the live server and writer (a real
	// process: there is no clock to advance).
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("waited 20 s for %s (written %d)", what, written.Load())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	retries := func() float64 {
		return testutil.MetricValue(t, reg, "kapkan_store_clickhouse_retries_total", nil)
	}
	for _, how := range []struct {
		name string
		down func()
	}{{"stop", srv.Stop}, {"kill", srv.Kill}} {
		waitFor("batches before the "+how.name, func() bool { return written.Load() >= 20 })
		before := retries()
		down := time.Now()
		how.down()
		t.Logf("%s took %v", how.name, time.Since(down).Round(time.Millisecond))
		waitFor("a retry while the server is down", func() bool { return retries() > before })
		at := written.Load()
		up := time.Now()
		srv.Start(t)
		started := time.Since(up)
		waitFor("batches after the restart", func() bool { return written.Load() >= at+20 })
		t.Logf("%s: %d batches before the restart, server up again in %v, 20 batches more in %v; retries now %v",
			how.name, at, started.Round(time.Millisecond), (time.Since(up) - started).Round(time.Millisecond), retries())
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("the writer failed: %v", err)
	}

	n := written.Load()
	c := ctx(t)
	as, err := s.Attacks(c, store.AttackFilter{Limit: int(n) + 10})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]int{}
	for _, a := range as {
		seen[a.ID]++
	}
	ms, err := s.Mitigations(c, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	mseen := map[uint64]int{}
	for _, m := range ms {
		mseen[m.AttackID]++
	}
	for id := uint64(1); id <= n; id++ {
		if seen[id] != 1 || mseen[id] != 1 {
			t.Errorf("attack %d read back %d times, its mitigation %d times; want once each", id, seen[id], mseen[id])
		}
	}
	if r := retries(); r == 0 {
		t.Error("no retry counted")
	}
	t.Logf("%d batches written, %d attacks and %d mitigations read back, %v retries", n, len(as), len(ms), retries())
}

// TestWriterWhileServerDown: the daemon's history writer in front of a
// server that is stopped. Events published meanwhile never wait (the ring
// never blocks, so detection goes on), the writer holds its batch and says
// the store is unavailable, and once the server is back every event
// arrives. Stopped again with more events than the ring holds, the
// overflow is counted as lost and everything else arrives: each event is
// either written or counted.
func TestWriterWhileServerDown(t *testing.T) {
	srv := testutil.StartClickHouse(t)
	reg := prometheus.NewRegistry()
	s, err := clickhouse.Open(context.Background(), srv.DSN("kapkan"), clickhouse.Deps{Registry: reg, RetryFor: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const ringSize = 64
	ring := events.NewRing(ringSize, reg)
	w := store.NewWriter(s, ring, nil, store.WriterDeps{Registerer: reg, BatchSize: 8, BatchWait: 50 * time.Millisecond,
		RetryMax: time.Second, MaxAttempts: 2})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	defer func() { stop(); <-done }()

	metric := func(name string) float64 { return testutil.MetricValue(t, reg, name, nil) }
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("waited 30 s for %s: written %v, lost %v, dropped %v, unavailable %v", what,
					metric("kapkan_store_events_written_total"), metric("kapkan_store_events_lost_total"),
					metric("kapkan_store_events_dropped_total"), metric("kapkan_store_unavailable"))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	next := uint64(1)
	publish := func(n int) time.Duration {
		start := time.Now()
		for range n {
			at := t0.Add(time.Duration(next) * time.Second)
			target := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, byte(next >> 8), byte(next)}), 32)
			ring.Publish(events.Event{Kind: events.AttackStarted, At: at, Attack: &events.Attack{ID: next, Target: target,
				Started: at, Hostgroup: "web", Direction: "incoming", Rates: map[string]float64{"pps": 1}}})
			next++
		}
		return time.Since(start)
	}
	stored := func() int {
		as, err := s.Attacks(ctx(t), store.AttackFilter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return len(as)
	}

	// Down, within the ring: nothing lost, nothing dropped.
	srv.Stop()
	if took := publish(20); took > 100*time.Millisecond {
		t.Errorf("publishing 20 events with the store down took %v", took)
	}
	waitFor("the writer to find the store unavailable", func() bool { return metric("kapkan_store_unavailable") == 1 })
	time.Sleep(3 * time.Second) // more than MaxAttempts × RetryMax: an outage does not use the attempts up
	srv.Start(t)
	waitFor("the 20 events after the restart", func() bool { return metric("kapkan_store_events_written_total") == 20 })
	if n := stored(); n != 20 {
		t.Errorf("%d attacks read back after the restart, want 20", n)
	}
	if lost, dropped := metric("kapkan_store_events_lost_total"), metric("kapkan_store_events_dropped_total"); lost != 0 || dropped != 0 {
		t.Errorf("lost %v, dropped %v within the ring, want none", lost, dropped)
	}

	// Down, over the ring: the overflow is counted, the rest arrives.
	srv.Kill()
	publish(1) // the batch in hand when the writer finds the server gone
	waitFor("the writer to find the store unavailable", func() bool { return metric("kapkan_store_unavailable") == 1 })
	if took := publish(4*ringSize - 1); took > 100*time.Millisecond {
		t.Errorf("publishing %d events with the store down took %v", 4*ringSize-1, took)
	}
	srv.Start(t)
	total := float64(next - 1)
	waitFor("every event written or counted", func() bool {
		return metric("kapkan_store_events_written_total")+metric("kapkan_store_events_lost_total") == total
	})
	lost := metric("kapkan_store_events_lost_total")
	if lost < 2*ringSize {
		t.Errorf("lost %v of %d events published over a ring of %d, want the overflow counted", lost, 4*ringSize, ringSize)
	}
	if n := stored(); float64(n) != total-lost {
		t.Errorf("%d attacks read back, want %v (%v published, %v lost)", n, total-lost, total, lost)
	}
	t.Logf("second outage: %d events published, %v lost over the ring of %d, %d read back", 4*ringSize, lost, ringSize, stored()-20)
}
