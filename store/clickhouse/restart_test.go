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
