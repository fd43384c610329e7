package embedded_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/internal/testutil"
	"github.com/kapkan-io/kapkan/store"
)

// TestWriterEndToEnd follows a real ring into the embedded store: an
// attack's life and the traffic points come back through the reads.
func TestWriterEndToEnd(t *testing.T) {
	s := open(t, t.TempDir())
	reg := prometheus.NewRegistry()
	ring := events.NewRing(1024, nil)
	t0 := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	target := netip.MustParsePrefix("192.0.2.1/32")
	ticks := 0
	traffic := func() []store.TrafficPoint {
		ticks++
		return []store.TrafficPoint{{At: t0.Add(time.Duration(ticks) * time.Second), Hostgroup: "web", Direction: "incoming", PPS: 10}}
	}
	w := store.NewWriter(s, ring, traffic, store.WriterDeps{Registerer: reg, BatchWait: 10 * time.Millisecond, TrafficInterval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()

	att := func(sec int, kind events.Kind) events.Event {
		a := &events.Attack{ID: 7, Target: target, Hostgroup: "web", Direction: "incoming", Started: t0,
			Rates: map[string]float64{"pps": float64(1000 * sec)}, Labels: []string{"udp-flood"}}
		if kind == events.AttackEnded {
			a.Ended = t0.Add(time.Duration(sec) * time.Second)
		}
		return events.Event{Kind: kind, At: t0.Add(time.Duration(sec) * time.Second), Attack: a}
	}
	ring.Publish(att(0, events.AttackStarted))
	for i := 1; i <= 60; i++ {
		ring.Publish(att(i, events.AttackUpdated))
	}
	ring.Publish(events.Event{Kind: events.MitigationAnnounced, At: t0.Add(3 * time.Second), Mitigation: &events.Mitigation{AttackID: 7, Target: target}})
	ring.Publish(att(61, events.AttackEnded))

	// Poll the reads (the writer works at its own pace), bounded.
	var (
		a   store.Attack
		ms  []store.Mitigation
		err error
	)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		a, ms, err = s.Attack(ctx, 7)
		pts, _ := s.Traffic(ctx, "web", "incoming", time.Time{}, time.Time{}, 0)
		if err == nil && !a.Ended.IsZero() && len(pts) >= 3 {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err != nil || !a.Ended.Equal(t0.Add(61*time.Second)) || len(a.Rates) != 62 || len(ms) != 1 {
		t.Fatalf("attack 7: %v, ended %v, %d rates, %d mitigations; want ended at +61s, 62 rates (the end carries rates too), 1 mitigation", err, a.Ended, len(a.Rates), len(ms))
	}
	if got := testutil.MetricValue(t, reg, "kapkan_store_events_written_total", nil); got != 63 {
		t.Errorf("events written = %v, want 63", got)
	}
	if got := testutil.MetricValue(t, reg, "kapkan_store_traffic_points_written_total", nil); got < 3 {
		t.Errorf("traffic points written = %v, want at least 3", got)
	}
}
