package engine

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/flow"
)

// stream feeds, every second from 0 to secs-1, n NetFlow records (one
// flow each, unsampled) of pkts packets and bytes bytes from src to dst.
type stream struct {
	src, dst    string
	n           int
	pkts, bytes uint64
}

func feedStreams(f *feeder, secs int, flows []stream) {
	for sec := range secs {
		for _, fl := range flows {
			for i := range fl.n {
				r := rec(fl.src, fl.dst, 17, 0, fl.pkts, fl.bytes, 1, float64(sec)+0.1+float64(i)/100)
				r.Format = flow.FormatNetFlow9
				f.add(r)
			}
		}
	}
}

func TestTopTrafficSnapshot(t *testing.T) {
	customers := hostgroup(Thresholds{}, Thresholds{}, "203.0.113.0/24")
	servers := hostgroup(Thresholds{}, Thresholds{}, "198.51.100.0/24")
	servers.Name = "servers"
	f := newFeeder(t, cfgWith(customers, servers))
	const remote = "192.0.2.1"
	// Per second: rates are n×pkts pps, n×bytes B/s and n fps.
	feedStreams(f, 10, []stream{
		{remote, "203.0.113.1", 1, 3000, 150_000},  // A: first by pps
		{remote, "203.0.113.2", 2, 1000, 200_000},  // B: first by bytes
		{remote, "198.51.100.7", 3, 100, 10_000},   // C: first by flows
		{"203.0.113.3", remote, 1, 500, 50_000},    // D: outgoing
		{"198.51.100.8", remote, 1, 5000, 500_000}, // E: outgoing
	})
	f.idle(1) // the walk at second 10 sees seconds 5 to 9, all complete

	a := TopTarget{netip.MustParseAddr("203.0.113.1"), "customers", TrafficRates{3000, 150_000, 1}}
	b := TopTarget{netip.MustParseAddr("203.0.113.2"), "customers", TrafficRates{2000, 400_000, 2}}
	c := TopTarget{netip.MustParseAddr("198.51.100.7"), "servers", TrafficRates{300, 30_000, 3}}
	d := TopTarget{netip.MustParseAddr("203.0.113.3"), "customers", TrafficRates{500, 50_000, 1}}
	e := TopTarget{netip.MustParseAddr("198.51.100.8"), "servers", TrafficRates{5000, 500_000, 1}}
	hostgroups := []HostgroupTraffic{
		{"customers", TrafficRates{5000, 550_000, 3}, TrafficRates{500, 50_000, 1}},
		{"servers", TrafficRates{300, 30_000, 3}, TrafficRates{5000, 500_000, 1}},
	}
	at := t0.Add(10 * time.Second)
	for _, tc := range []struct {
		name    string
		limit   int
		by      Metric
		wantBy  Metric
		in, out []TopTarget
	}{
		{name: "pps", limit: 10, by: MetricPPS, wantBy: MetricPPS, in: []TopTarget{a, b, c}, out: []TopTarget{e, d}},
		{name: "bytes", limit: 10, by: MetricBPS, wantBy: MetricBPS, in: []TopTarget{b, a, c}, out: []TopTarget{e, d}},
		// Ties (D and E at 1 fps) are broken by address.
		{name: "flows", limit: 10, by: MetricFPS, wantBy: MetricFPS, in: []TopTarget{c, b, a}, out: []TopTarget{e, d}},
		{name: "limit cuts", limit: 2, by: MetricPPS, wantBy: MetricPPS, in: []TopTarget{a, b}, out: []TopTarget{e, d}},
		{name: "limit one", limit: 1, by: MetricFPS, wantBy: MetricFPS, in: []TopTarget{c}, out: []TopTarget{e}},
		{name: "no limit is the most", limit: 0, by: MetricPPS, wantBy: MetricPPS, in: []TopTarget{a, b, c}, out: []TopTarget{e, d}},
		{name: "not a total metric is pps", limit: 10, by: MetricSYNPPS, wantBy: MetricPPS, in: []TopTarget{a, b, c}, out: []TopTarget{e, d}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := f.e.Top(tc.limit, tc.by)
			want := TopSnapshot{At: at, WindowSeconds: 5, By: tc.wantBy, Incoming: tc.in, Outgoing: tc.out, Hostgroups: hostgroups}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Top(%d, %s):\n got %+v\nwant %+v", tc.limit, tc.by, got, want)
			}
		})
	}

	// The rate the snapshot shows is the rate now that attacks report: with
	// the newest second under way (traffic of second 11 in before the walk
	// at 11), the window spans one second less.
	batch := flow.DefaultPool.Get()
	r := rec(remote, "203.0.113.1", 17, 0, 3000, 150_000, 1, 11.5)
	batch.Add(&r)
	f.e.Consume(batch)
	f.e.Tick(t0.Add(11 * time.Second))
	got := f.e.Top(1, MetricPPS).Incoming[0]
	// Seconds 7 to 9 and 11 hold 4 × 3000 packets, over 4 seconds.
	if got.Target != a.Target || got.Rates.PPS != 3000 {
		t.Errorf("with the newest second under way: %+v, want %s at 3000 pps", got, a.Target)
	}
}

// TestTopAcrossShards: 1000 addresses of distinct rates spread over 4
// shards; the snapshot holds exactly the TopLimit busiest, in order.
func TestTopAcrossShards(t *testing.T) {
	cfg := cfgWith(hostgroup(Thresholds{}, Thresholds{}, "10.0.0.0/16"))
	cfg.Shards = 4
	f := newFeeder(t, cfg)
	const n = 1000
	for sec := range 6 {
		for i := range n {
			f.add(rec("192.0.2.1", fmt.Sprintf("10.0.%d.%d", i/200, i%200), 17, 0, uint64(i+1), 100, 1, float64(sec)+0.5))
		}
	}
	f.idle(1)
	got := f.e.Top(0, MetricPPS)
	if len(got.Incoming) != TopLimit {
		t.Fatalf("%d targets, want %d", len(got.Incoming), TopLimit)
	}
	for k, tg := range got.Incoming {
		if want := uint64(n - k); tg.Rates.PPS != want {
			t.Fatalf("target %d: %s at %d pps, want %d", k, tg.Target, tg.Rates.PPS, want)
		}
	}
	// The hostgroup total counts every address, not only the top ones.
	if want := uint64(n * (n + 1) / 2); got.Hostgroups[0].Incoming.PPS != want {
		t.Errorf("hostgroup total %d pps, want %d", got.Hostgroups[0].Incoming.PPS, want)
	}
	if len(got.Outgoing) != 0 {
		t.Errorf("outgoing %v, want none", got.Outgoing)
	}
}

// TestTopBeforeFirstWalk: an engine that has not walked yet reports its
// hostgroups at zero and no targets.
func TestTopBeforeFirstWalk(t *testing.T) {
	f := newFeeder(t, cfgWith(hostgroup(Thresholds{}, Thresholds{}, "203.0.113.0/24")))
	got := f.e.Top(10, MetricPPS)
	want := TopSnapshot{WindowSeconds: 5, By: MetricPPS, Hostgroups: []HostgroupTraffic{{Name: "customers"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// TestTopWhileConsuming hammers a live engine: Consume from two
// goroutines while another calls Top, until Top shows the traffic (run
// under -race, this is the check that the snapshot is shared safely).
func TestTopWhileConsuming(t *testing.T) {
	cfg := cfgWith(hostgroup(Thresholds{}, Thresholds{}, "203.0.113.0/24"))
	var clock atomic.Int64 // virtual wall clock, Unix ns
	clock.Store(t0.UnixNano())
	e, err := New(cfg, Deps{Logger: quiet(), Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { _ = e.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	for w := range 2 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil && i < 1_000_000; i++ {
				b := flow.DefaultPool.Get()
				for j := range flow.BatchSize {
					r := rec("192.0.2.1", fmt.Sprintf("203.0.113.%d", 1+(j+w)%8), 17, 0, 10, 1000, 1, 0)
					r.Received = clock.Load()
					b.Add(&r)
				}
				e.Consume(b)
				clock.Add(int64(time.Millisecond)) // a second of data time every 1000 batches
			}
		})
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := e.Top(5, MetricBPS)
		if len(s.Incoming) == 5 && s.Hostgroups[0].Incoming.PPS > 0 {
			for k := 1; k < len(s.Incoming); k++ {
				if s.Incoming[k].Rates.BPS > s.Incoming[k-1].Rates.BPS {
					t.Fatalf("out of order: %+v", s.Incoming)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no traffic in the snapshot after 20 s: %+v", s)
		}
		runtime.Gosched()
	}
}
