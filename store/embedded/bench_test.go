package embedded_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/store"
	"github.com/kapkan-io/kapkan/store/embedded"
)

func benchAttack(id uint64, at time.Time, kind events.Kind) events.Event {
	target := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(id >> 16), byte(id >> 8), byte(id)}), 32)
	a := &events.Attack{
		ID: id, Target: target, Scope: "address", Direction: "incoming", Hostgroup: "web",
		Started: at, Trigger: "pps", Rate: 90000, Threshold: 50000,
		Rates:  map[string]float64{"pps": 90000, "mbps": 800, "fps": 300, "udp_pps": 90000},
		Labels: []string{"dns-amplification", "udp-flood"},
		Vector: flowspec.Match{Protocol: "udp", SrcPorts: []string{"53"}, PacketLength: ">=512"},
		Rules:  []string{"dns-amp", "udp-generic"}, Decider: "dns-amp", SampleRecords: 300,
		Sample: &events.SampleSummary{
			TopSources: []events.Share{{Value: "203.0.113.7", Share: 0.4}, {Value: "203.0.113.8", Share: 0.3}},
			Sources:    12, TopSrcPorts: []events.Share{{Value: "53", Share: 0.98}},
			MeanPacketSize: 1200, P50PacketSize: 1300,
		},
	}
	if kind == events.AttackEnded {
		a.Ended = at
		a.Peak = map[string]float64{"pps": 95000, "mbps": 900}
	}
	return events.Event{Kind: kind, At: at, Attack: a}
}

func fileSize(b *testing.B, s *embedded.Store) int64 {
	fi, err := os.Stat(s.Path())
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}

func benchOpen(b *testing.B) *embedded.Store {
	s, err := embedded.Open(b.TempDir(), embedded.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkPutEvents: batches of 500 updates of 50 running attacks, as the
// writer hands them over; events/s absorbed.
func BenchmarkPutEvents(b *testing.B) {
	s := benchOpen(b)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	batch := make([]events.Event, 500)
	sec := 0
	b.ReportAllocs()
	for b.Loop() {
		for i := range batch {
			batch[i] = benchAttack(uint64(i%50+1), t0.Add(time.Duration(sec)*time.Second), events.AttackUpdated)
			if i%50 == 49 {
				sec++
			}
		}
		if err := s.PutEvents(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDiskPerAttack: one attack of 60 rate points and 3 mitigation
// events (started, 58 updates, ended), bytes of the file in use per attack
// over 1000 attacks.
func BenchmarkDiskPerAttack(b *testing.B) {
	for b.Loop() {
		s := benchOpen(b)
		ctx := context.Background()
		t0 := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
		empty, _ := s.Used()
		const n = 1000
		var batch []events.Event
		for id := uint64(1); id <= n; id++ {
			st := t0.Add(time.Duration(id) * time.Minute)
			batch = append(batch, benchAttack(id, st, events.AttackStarted))
			for k := 1; k < 59; k++ {
				batch = append(batch, benchAttack(id, st.Add(time.Duration(k)*time.Second), events.AttackUpdated))
			}
			e := benchAttack(id, st.Add(59*time.Second), events.AttackEnded)
			batch = append(batch, e)
			target := e.Attack.Target
			for k, kind := range []events.Kind{events.MitigationAnnounced, events.MitigationRenewed, events.MitigationWithdrawn} {
				batch = append(batch, events.Event{Seq: uint64(k), Kind: kind, At: st.Add(time.Duration(k*20+2) * time.Second),
					Mitigation: &events.Mitigation{AttackID: id, Target: target, Action: flowspec.Discard,
						Match: flowspec.Match{Protocol: "udp", SrcPorts: []string{"53"}}, Ladder: "default", Step: 1, Reason: "step 1"}})
			}
			if len(batch) >= 500 {
				if err := s.PutEvents(ctx, batch); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		if err := s.PutEvents(ctx, batch); err != nil {
			b.Fatal(err)
		}
		used, _ := s.Used()
		b.ReportMetric(float64(used-empty)/n, "bytes/attack")
		b.ReportMetric(float64(fileSize(b, s))/n, "file-bytes/attack")
	}
}

// BenchmarkDiskPerTrafficPoint: a day of one-second points for 4 series
// (2 hostgroups × 2 directions), written a second at a time.
func BenchmarkDiskPerTrafficPoint(b *testing.B) {
	for b.Loop() {
		s := benchOpen(b)
		ctx := context.Background()
		t0 := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
		empty, _ := s.Used()
		const secs = 3600 * 6
		var pts []store.TrafficPoint
		for i := range secs {
			at := t0.Add(time.Duration(i) * time.Second)
			for _, hg := range []string{"web", "dc"} {
				for _, dir := range []string{"incoming", "outgoing"} {
					pts = append(pts, store.TrafficPoint{At: at, Hostgroup: hg, Direction: dir, PPS: float64(i), Mbps: 1, FPS: 2})
				}
			}
			if i%60 == 59 { // a minute per transaction here: a second each would time fsyncs, not the layout
				if err := s.PutTraffic(ctx, pts); err != nil {
					b.Fatal(err)
				}
				pts = pts[:0]
			}
		}
		used, _ := s.Used()
		b.ReportMetric(float64(used-empty)/(secs*4), "bytes/point")
	}
}

// BenchmarkCarpetBomb: 10 000 attacks in a minute — each started, 3
// updates, ended — written as the writer would (batches of 500).
func BenchmarkCarpetBomb(b *testing.B) {
	const n = 10_000
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		s, err := embedded.Open(dir, embedded.Options{})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		t0 := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
		var evs []events.Event
		for id := uint64(1); id <= n; id++ {
			st := t0.Add(time.Duration(id) * 6 * time.Millisecond) // spread over the minute
			evs = append(evs, benchAttack(id, st, events.AttackStarted))
		}
		for k := 1; k <= 3; k++ {
			for id := uint64(1); id <= n; id++ {
				st := t0.Add(time.Duration(id) * 6 * time.Millisecond)
				evs = append(evs, benchAttack(id, st.Add(time.Duration(k)*time.Second), events.AttackUpdated))
			}
		}
		for id := uint64(1); id <= n; id++ {
			st := t0.Add(time.Duration(id) * 6 * time.Millisecond)
			evs = append(evs, benchAttack(id, st.Add(5*time.Second), events.AttackEnded))
		}
		b.StartTimer()
		start := time.Now()
		for i := 0; i < len(evs); i += 500 {
			if err := s.PutEvents(ctx, evs[i:min(i+500, len(evs))]); err != nil {
				b.Fatal(err)
			}
		}
		el := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(el.Nanoseconds())/float64(len(evs)), "ns/event")
		b.ReportMetric(float64(fileSize(b, s)), "file-bytes")
		used, _ := s.Used()
		b.ReportMetric(float64(used), "used-bytes")
		s.Close()
		os.RemoveAll(filepath.Dir(s.Path()))
		b.StartTimer()
	}
}
