package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/internal/testutil"
)

// steady sends pps one-packet records per second from src to dst over
// [start, start+secs), unsampled.
func steady(f *feeder, src, dst string, pps int, start, secs float64) {
	n := int(float64(pps) * secs)
	for i := range n {
		f.add(rec(src, dst, 17, 0, 1, 100, 1, start+float64(i)/float64(pps)))
	}
}

// reconfigure applies cfg to a synchronous engine and collects what it
// reported.
func (f *feeder) reconfigure(cfg Config) []string {
	f.t.Helper()
	f.flush()
	restart, err := f.e.Reconfigure(cfg)
	if err != nil {
		f.t.Fatalf("Reconfigure: %v", err)
	}
	f.events = append(f.events, f.e.Drain()...)
	return restart
}

// totalRates returns the window rates of a protected prefix's total (a
// synchronous engine).
func totalRates(t *testing.T, e *Engine, p string, d Direction) (Rates, bool) {
	t.Helper()
	pt := e.table.Load()
	for _, pr := range pt.prefixes {
		if pr.prefix == netip.MustParsePrefix(p) {
			return e.windowRates(totalKey(pr.id, d))
		}
	}
	t.Fatalf("prefix %s not in the table", p)
	return Rates{}, false
}

func rates(t *testing.T, e *Engine, a string) Rates {
	t.Helper()
	r, ok := e.WindowRates(netip.MustParseAddr(a), In)
	if !ok {
		t.Fatalf("no window for %s", a)
	}
	return r
}

func (f *feeder) of(kind CandidateKind) []Candidate {
	var out []Candidate
	for _, c := range f.events {
		if c.Kind == kind {
			out = append(out, c)
		}
	}
	return out
}

// A threshold lowered below a rate already in the window trips at the next
// record: the window was kept, so no full window has to pass.
// Run twice: with the same prefixes (the windows' indexes stay valid) and
// with a prefix added before (every window moves to a new index).
func TestReconfigureLowerThreshold(t *testing.T) {
	for _, added := range []bool{false, true} {
		t.Run(fmt.Sprintf("prefix added=%v", added), func(t *testing.T) { testLowerThreshold(t, added) })
	}
}

func testLowerThreshold(t *testing.T, addPrefix bool) {
	hg := hostgroup(Thresholds{PPS: 1000}, Thresholds{}, "203.0.113.0/24")
	f := newFeeder(t, cfgWith(hg))
	for s := range 5 {
		steady(f, "198.51.100.1", "203.0.113.10", 400, float64(s), 1)
		steady(f, "198.51.100.1", "203.0.113.20", 100, float64(s), 1)
	}
	f.flush()
	if len(f.events) != 0 {
		t.Fatalf("below the threshold, yet: %+v", f.events)
	}
	before := rates(t, f.e, "203.0.113.20")

	hg.Incoming.PPS = 300
	if addPrefix {
		hg.Prefixes = []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24"), hg.Prefixes[0]}
	}
	if restart := f.reconfigure(cfgWith(hg)); len(restart) != 0 {
		t.Errorf("restart %v, want none", restart)
	}
	if after := rates(t, f.e, "203.0.113.20"); after != before {
		t.Errorf("window of another address changed across the reload: %v, was %v", after, before)
	}
	if len(f.events) != 0 {
		t.Fatalf("Reconfigure alone reported %+v", f.events)
	}

	// One record each, within the same second.
	f.add(rec("198.51.100.1", "203.0.113.10", 17, 0, 1, 100, 1, 4.999))
	f.add(rec("198.51.100.1", "203.0.113.20", 17, 0, 1, 100, 1, 4.999))
	f.flush()
	started := f.of(AttackStarted)
	if len(started) != 1 {
		t.Fatalf("want one attack at the first record after the reload, got %+v", f.events)
	}
	c := started[0]
	if c.Target != netip.MustParsePrefix("203.0.113.10/32") || c.Threshold != 300 || c.Rate < 400 {
		t.Errorf("attack %v rate %d threshold %d, want 203.0.113.10/32 over 300", c.Target, c.Rate, c.Threshold)
	}
}

// An attack whose thresholds are raised over its rate cools down and ends
// by the new thresholds, and Cooldown changes live.
func TestReconfigureRaiseThresholdEndsAttack(t *testing.T) {
	hg := hostgroup(Thresholds{PPS: 300}, Thresholds{}, "203.0.113.0/24")
	cfg := cfgWith(hg)
	f := newFeeder(t, cfg)
	steady(f, "198.51.100.1", "203.0.113.10", 400, 0, 6)
	f.flush()
	if n := len(f.of(AttackStarted)); n != 1 {
		t.Fatalf("%d attacks started, want 1", n)
	}
	cfg.Hostgroups[0].Incoming.PPS = 1000
	cfg.Cooldown = 2 * time.Second // was 10 s
	f.reconfigure(cfg)
	if n := len(f.of(AttackEnded)); n != 0 {
		t.Fatalf("a raised threshold ended the attack at once: %+v", f.events)
	}
	// Still 400 pps, now under 90 % of 1000: cooling, then ended after the
	// new cool-down of 2 s.
	steady(f, "198.51.100.1", "203.0.113.10", 400, 6, 4)
	f.idle(1)
	ended := f.of(AttackEnded)
	if len(ended) != 1 || ended[0].Unprotected {
		t.Fatalf("want the attack ended by the new threshold and cool-down, got %+v", f.events)
	}
	cooling := f.of(AttackCooling)
	if len(cooling) != 1 || ended[0].At.Sub(cooling[0].At) != 2*time.Second {
		t.Errorf("cooling %+v, ended at %v: want ended 2 s after cooling", cooling, ended[0].At)
	}
}

// A removed prefix loses its windows, address and total, and its attacks
// end at once; the other prefixes keep theirs.
func TestReconfigureRemovePrefix(t *testing.T) {
	keep := hostgroup(Thresholds{PPS: 1000}, Thresholds{}, "203.0.113.0/24")
	gone := hostgroup(Thresholds{PPS: 300}, Thresholds{}, "198.18.0.0/24")
	gone.Name = "leaving"
	gone.IncomingTotal = Thresholds{PPS: 300}
	reg := prometheus.NewRegistry()
	e, err := NewSync(cfgWith(keep, gone), Deps{Logger: quiet(), Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	f := &feeder{t: t, e: e, sec: t0.Unix()}
	steady(f, "192.0.2.1", "203.0.113.10", 200, 0, 6)
	steady(f, "192.0.2.1", "198.18.0.7", 400, 0, 6)
	f.flush()
	started := f.of(AttackStarted)
	if len(started) != 2 { // the address and its prefix's total
		t.Fatalf("want two attacks in 198.18.0.0/24, got %+v", f.events)
	}
	before := rates(t, f.e, "203.0.113.10")

	f.reconfigure(cfgWith(keep))
	ended := f.of(AttackEnded)
	if len(ended) != 2 {
		t.Fatalf("want both attacks of the removed prefix ended, got %+v", f.events)
	}
	for _, c := range ended {
		if !c.Unprotected || c.Hostgroup != "leaving" || !slices.ContainsFunc(started, func(s Candidate) bool { return s.ID == c.ID }) {
			t.Errorf("ended %+v: want Unprotected, in hostgroup leaving, of a started attack", c)
		}
	}
	if _, ok := f.e.WindowRates(netip.MustParseAddr("198.18.0.7"), In); ok {
		t.Error("the window of an address no longer protected is kept")
	}
	if after := rates(t, f.e, "203.0.113.10"); after != before {
		t.Errorf("window of a kept address changed: %v, was %v", after, before)
	}
	if st := f.e.Stats(); st.Attacks != 0 || st.Tracked != 1 {
		t.Errorf("stats %+v, want no attack and one window", st)
	}
	// Its traffic is not counted any more.
	steady(f, "192.0.2.1", "198.18.0.7", 400, 6, 2)
	f.flush()
	if n := len(f.of(AttackStarted)); n != 2 {
		t.Errorf("traffic to a removed prefix started an attack: %+v", f.events)
	}
	if got := testutil.MetricValue(t, reg, "kapkan_engine_unprotected_records_total", nil); got != 800 {
		t.Errorf("unprotected records %v, want 800", got)
	}
}

// An added prefix is detected.
func TestReconfigureAddPrefix(t *testing.T) {
	hg := hostgroup(Thresholds{PPS: 300}, Thresholds{}, "203.0.113.0/24")
	f := newFeeder(t, cfgWith(hg))
	steady(f, "192.0.2.1", "198.18.0.7", 400, 0, 6)
	f.flush()
	if len(f.events) != 0 || f.e.Stats().Tracked != 0 {
		t.Fatalf("unprotected traffic counted: %+v", f.events)
	}
	hg.Prefixes = append(hg.Prefixes, netip.MustParsePrefix("198.18.0.0/24"))
	f.reconfigure(cfgWith(hg))
	steady(f, "192.0.2.1", "198.18.0.7", 400, 6, 6)
	f.flush()
	if s := f.of(AttackStarted); len(s) != 1 || s[0].Target != netip.MustParsePrefix("198.18.0.7/32") {
		t.Fatalf("want the added prefix's address detected, got %+v", f.events)
	}
}

// A prefix total survives a reload that moves its prefix to another index
// (a prefix added before it, another hostgroup added), and its attack keeps
// running.
func TestReconfigurePrefixTotalSurvives(t *testing.T) {
	hg := hostgroup(Thresholds{}, Thresholds{}, "203.0.113.0/24")
	hg.IncomingTotal = Thresholds{PPS: 1000}
	f := newFeeder(t, cfgWith(hg))
	for s := range 6 {
		for host := 1; host <= 50; host++ {
			dst := netip.AddrFrom4([4]byte{203, 0, 113, byte(host)}).String()
			f.add(rec("192.0.2.1", dst, 17, 0, 30, 3000, 1, float64(s)+float64(host)/100))
		}
	}
	f.flush()
	started := f.of(AttackStarted)
	if len(started) != 1 || started[0].Scope != ScopePrefix {
		t.Fatalf("want the prefix total detected, got %+v", f.events)
	}
	before, ok := totalRates(t, f.e, "203.0.113.0/24", In)
	if !ok {
		t.Fatal("no total window")
	}
	oldIndex, _ := f.e.table.Load().find(netip.MustParseAddr("203.0.113.1"))

	other := hostgroup(Thresholds{PPS: 10}, Thresholds{}, "198.18.0.0/24")
	other.Name = "first"
	hg.Prefixes = append([]netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, hg.Prefixes...)
	f.reconfigure(cfgWith(other, hg))
	if newIndex, _ := f.e.table.Load().find(netip.MustParseAddr("203.0.113.1")); newIndex == oldIndex {
		t.Fatalf("the prefix kept its index %d: the test proves nothing", oldIndex)
	}
	after, ok := totalRates(t, f.e, "203.0.113.0/24", In)
	if !ok || after != before {
		t.Fatalf("total window %v (kept %v), was %v", after, ok, before)
	}
	// The attack goes on: updates, no end, and the window keeps counting.
	for host := 1; host <= 50; host++ {
		dst := netip.AddrFrom4([4]byte{203, 0, 113, byte(host)}).String()
		f.add(rec("192.0.2.1", dst, 17, 0, 30, 3000, 1, 6+float64(host)/100))
	}
	f.idle(1)
	if n := len(f.of(AttackEnded)); n != 0 {
		t.Fatalf("the total's attack ended: %+v", f.events)
	}
	up := f.of(AttackUpdated)
	if len(up) == 0 || up[len(up)-1].ID != started[0].ID || up[len(up)-1].Target != netip.MustParsePrefix("203.0.113.0/24") {
		t.Fatalf("want updates of attack %d on the prefix, got %+v", started[0].ID, up)
	}
	if st := f.e.Stats(); st.Attacks != 1 {
		t.Errorf("%d attacks, want 1", st.Attacks)
	}
}

func TestReconfigureRefusesAndReports(t *testing.T) {
	hg := hostgroup(Thresholds{PPS: 300}, Thresholds{}, "203.0.113.0/24")
	base := cfgWith(hg)
	dup := hostgroup(Thresholds{}, Thresholds{}, "203.0.113.0/24")
	dup.Name = "dup"
	tests := []struct {
		name    string
		change  func(c *Config)
		restart []string
		err     bool
	}{
		{name: "same", change: func(c *Config) {}},
		{name: "defaults spelled out", change: func(c *Config) { c.QueueSize, c.SampleSize, c.MaxHot = 0, 0, 0 }},
		{name: "window", change: func(c *Config) { c.Window = 10 * time.Second }, restart: []string{"Window"}},
		{name: "sizes", change: func(c *Config) { c.Shards, c.QueueSize, c.SampleSize, c.MaxHot = 3, 7, 9, 11 },
			restart: []string{"Shards", "QueueSize", "SampleSize", "MaxHot"}},
		{name: "live only", change: func(c *Config) { c.Cooldown, c.Hysteresis = time.Second, 0.5 }},
		{name: "duplicate prefix", change: func(c *Config) { c.Hostgroups = append(c.Hostgroups, dup) }, err: true},
		{name: "hysteresis", change: func(c *Config) { c.Hysteresis = 1 }, err: true},
		{name: "fractional window", change: func(c *Config) { c.Window = 1500 * time.Millisecond }, err: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewSync(base, Deps{Logger: quiet()})
			if err != nil {
				t.Fatal(err)
			}
			was := e.table.Load()
			cfg := base
			cfg.Hostgroups = slices.Clone(base.Hostgroups)
			tc.change(&cfg)
			restart, err := e.Reconfigure(cfg)
			if tc.err {
				if !errors.Is(err, ErrConfig) || e.table.Load() != was {
					t.Fatalf("err %v, table replaced %v: want ErrConfig and the running table", err, e.table.Load() != was)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(restart, tc.restart) {
				t.Errorf("restart %v, want %v", restart, tc.restart)
			}
			if e.window != 5 || len(e.shards) != 2 {
				t.Errorf("window %d shards %d changed live", e.window, len(e.shards))
			}
		})
	}
}

// Records routed with a table that a reconfiguration then replaced reach
// their shard late: they are counted under the new table's indexes, or
// dropped when it no longer has their window.
func TestReconfigureStaleSubBatch(t *testing.T) {
	a := hostgroup(Thresholds{PPS: 1 << 30}, Thresholds{}, "203.0.113.0/24")
	b := hostgroup(Thresholds{PPS: 1 << 30}, Thresholds{}, "198.18.0.0/24")
	b.Name = "b"
	b.IncomingTotal = Thresholds{PPS: 1 << 30}
	reg := prometheus.NewRegistry()
	cfg := cfgWith(a, b)
	cfg.Shards = 1
	e, err := NewSync(cfg, Deps{Logger: quiet(), Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	// Route by hand with the first table, as a Consume racing the reload.
	r := e.routers.Get().(*router)
	r.table = e.table.Load()
	for _, dst := range []string{"203.0.113.1", "198.18.0.1", "198.18.0.2"} {
		x := rec("192.0.2.1", dst, 17, 0, 10, 1000, 1, 0)
		e.route(r, r.table, &x, 1)
	}
	sb := r.subs[0]
	if sb.n != 5 { // two addresses' totals
		t.Fatalf("%d items routed, want 5", sb.n)
	}
	// 198.18.0.0/24 now comes first and has no total any more; 203.0.113.0/24 is gone.
	b.IncomingTotal = Thresholds{}
	cfg.Hostgroups = []Hostgroup{b}
	if _, err := e.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	e.shards[0].process(sb)
	for _, dst := range []string{"198.18.0.1", "198.18.0.2"} {
		if r, ok := e.WindowRates(netip.MustParseAddr(dst), In); !ok || r[MetricPPS] != 2 {
			t.Errorf("%s: rates %v (window %v), want 10 packets over 5 s", dst, r, ok)
		}
	}
	if _, ok := e.WindowRates(netip.MustParseAddr("203.0.113.1"), In); ok {
		t.Error("a stale record opened a window for an address no longer protected")
	}
	if st := e.Stats(); st.Tracked != 2 {
		t.Errorf("%d windows, want 2", st.Tracked)
	}
	if got := testutil.MetricValue(t, reg, "kapkan_engine_dropped_records_total", map[string]string{"reason": "reconfigured"}); got != 3 {
		t.Errorf("dropped as reconfigured: %v, want 3", got)
	}
}

// After a reload the hot path still allocates nothing.
func TestReconfigureConsumeAllocatesNothing(t *testing.T) {
	hg := hostgroup(Thresholds{PPS: 1 << 40}, Thresholds{}, "203.0.113.0/16")
	hg.IncomingTotal = Thresholds{PPS: 1 << 40}
	f := newFeeder(t, cfgWith(hg))
	b := flow.DefaultPool.Get()
	for i := range flow.BatchSize {
		r := rec("198.51.100.1", netip.AddrFrom4([4]byte{203, 0, byte(i % 8), byte(i)}).String(), 17, 0, 1, 100, 512, 0.5)
		b.Add(&r)
	}
	template := *b
	f.e.Consume(b)
	hg.Incoming.PPS = 1 << 39
	f.reconfigure(cfgWith(hg))
	allocs := testing.AllocsPerRun(100, func() {
		nb := flow.DefaultPool.Get()
		*nb = template
		f.e.Consume(nb)
	})
	limit := 0.0
	if raceEnabled {
		limit = 2
	}
	if allocs > limit {
		t.Fatalf("Consume allocates %.1f times per batch after a reload", allocs)
	}
}

// Hammer: batches from several goroutines into a live engine while the
// configuration changes under them. Run under -race. At the end every
// prefix is removed: every attack that started must have ended.
func TestReconfigureHammer(t *testing.T) {
	const (
		feeders    = 3
		batches    = 300
		maxReloads = 5000
	)
	base := hostgroup(Thresholds{PPS: 50}, Thresholds{}, "203.0.113.0/24", "198.18.0.0/24")
	base.IncomingTotal = Thresholds{PPS: 200}
	configs := []Config{cfgWith(base)}
	for i := range 3 {
		hg := base
		hg.Incoming.PPS = uint64(20 + 40*i)
		hg.Prefixes = slices.Clone(base.Prefixes)
		if i%2 == 1 {
			hg.Prefixes = hg.Prefixes[1:] // one prefix removed
		}
		if i == 2 {
			hg.Prefixes = append([]netip.Prefix{netip.MustParsePrefix("198.18.0.128/25")}, hg.Prefixes...)
		}
		configs = append(configs, cfgWith(hg))
	}
	e, err := New(configs[0], Deps{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		_ = e.Run(ctx)
	}()
	var mu sync.Mutex
	open := map[uint64]bool{}
	startedN := 0
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for {
			select {
			case <-ctx.Done():
				return
			case c := <-e.Candidates():
				mu.Lock()
				switch c.Kind {
				case AttackStarted:
					open[c.ID] = true
					startedN++
				case AttackEnded:
					delete(open, c.ID)
				}
				mu.Unlock()
			}
		}
	}()

	var wg sync.WaitGroup
	for w := range feeders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			now := time.Now()
			for i := range batches {
				b := flow.DefaultPool.Get()
				for range flow.BatchSize {
					net := [2][3]byte{{203, 0, 113}, {198, 18, 0}}[rng.IntN(2)]
					dst := netip.AddrFrom4([4]byte{net[0], net[1], net[2], byte(rng.IntN(8))}).String()
					r := rec("192.0.2.1", dst, 17, 0, 10, 1000, 1, 0)
					r.Received = now.Add(time.Duration(i) * time.Millisecond).UnixNano()
					b.Add(&r)
				}
				e.Consume(b)
			}
		}()
	}
	fed := make(chan struct{})
	go func() {
		wg.Wait()
		close(fed)
	}()
	// Reload while the feeders run, at most maxReloads times.
	reloads := 0
	for done := false; !done && reloads < maxReloads; reloads++ {
		select {
		case <-fed:
			done = true
		default:
		}
		if _, err := e.Reconfigure(configs[reloads%len(configs)]); err != nil {
			t.Fatal(err)
		}
		runtime.Gosched()
	}
	<-fed
	t.Logf("%d reloads", reloads)
	if _, err := e.Reconfigure(cfgWith()); err != nil {
		t.Fatal(err)
	}
	// The shards move to the empty table at their next tick (250 ms).
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := e.Stats()
		mu.Lock()
		n := len(open)
		mu.Unlock()
		if st.Attacks == 0 && st.Tracked == 0 && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("with no prefix left: stats %+v, %d attacks not ended", st, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	n := startedN
	mu.Unlock()
	if e.Stats().Records == 0 || n == 0 {
		t.Fatalf("%d records reached the shards, %d attacks started: the hammer hit nothing", e.Stats().Records, n)
	}
	cancel()
	<-runDone
	<-collected
}
