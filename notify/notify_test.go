package notify

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flowspec"
)

// recorder is a Notifier that records what it was sent and when.
type recorder struct {
	mu      sync.Mutex
	got     []events.Event
	at      []time.Time
	block   chan struct{} // when set, Notify waits for it
	entered chan struct{}
	fail    func(n int) (bool, error) // the answer to call n (0-based)
}

func (r *recorder) Notify(ctx context.Context, e *events.Event) (bool, error) {
	if r.entered != nil {
		select {
		case r.entered <- struct{}{}:
		default:
		}
	}
	if r.block != nil {
		select {
		case <-r.block:
		case <-ctx.Done():
			return true, ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.at)
	r.at = append(r.at, time.Now())
	if r.fail != nil {
		if retry, err := r.fail(n); err != nil {
			return retry, err
		}
	}
	r.got = append(r.got, *e)
	return false, nil
}

func (r *recorder) kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.got {
		k := string(e.Kind)
		if e.Mitigation != nil && e.Mitigation.DryRun {
			k += "(dry-run)"
		}
		out = append(out, k)
	}
	return out
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func run(t *testing.T, d *Dispatcher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

// TestDispatcherSlowAndFailing: one endpoint answers after the timeout,
// one answers 500; the third delivers every event on time, and the
// metrics count the timeouts, the failures and the retries.
func TestDispatcherSlowAndFailing(t *testing.T) {
	var goodAt []time.Duration
	var mu sync.Mutex
	var published time.Time
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		goodAt = append(goodAt, time.Since(published))
		mu.Unlock()
	}))
	defer good.Close()
	var slowHits, failHits atomic.Int32
	quit := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slowHits.Add(1)
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		case <-quit:
		}
	}))
	defer slow.Close()
	defer close(quit) // before Close, which waits for the handlers
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		failHits.Add(1)
		http.Error(w, "internal error", http.StatusInternalServerError)
	}))
	defer failing.Close()

	cfg := []config.Notifier{notifierConfig("good", "webhook"), notifierConfig("slow", "webhook"), notifierConfig("failing", "slack")}
	cfg[0].URL, cfg[1].URL, cfg[2].URL = good.URL, slow.URL, failing.URL
	cfg[1].Timeout = config.Duration{Duration: 200 * time.Millisecond}
	cfg[1].Retries, cfg[2].Retries = 1, 2
	ring := events.NewRing(64, nil)
	reg := prometheus.NewRegistry()
	d, err := New(cfg, Deps{Events: ring, Registerer: reg, RetryBase: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, d)
	defer stop()

	mu.Lock()
	published = time.Now()
	mu.Unlock()
	for i := range 3 {
		ring.Publish(attackEvent(events.AttackStarted, uint64(i+1)))
	}
	eventually(t, "the good channel", func() bool { mu.Lock(); defer mu.Unlock(); return len(goodAt) == 3 })
	mu.Lock()
	for i, at := range goodAt {
		// The slow channel alone takes 3 × (2 × 200 ms + 20 ms).
		if at > 500*time.Millisecond {
			t.Errorf("good channel: event %d delivered after %s", i+1, at)
		}
	}
	mu.Unlock()
	eventually(t, "the slow and failing channels to give up", func() bool {
		return testutil.ToFloat64(d.m.failed.WithLabelValues("slow", "timeout")) == 3 &&
			testutil.ToFloat64(d.m.failed.WithLabelValues("failing", "transient")) == 3
	})
	t.Logf("all given up after %s", time.Since(published))
	for _, c := range []struct {
		name string
		c    prometheus.Collector
		want float64
	}{
		{"sent good", d.m.sent.WithLabelValues("good"), 3},
		{"sent slow", d.m.sent.WithLabelValues("slow"), 0},
		{"sent failing", d.m.sent.WithLabelValues("failing"), 0},
		{"retries good", d.m.retries.WithLabelValues("good"), 0},
		{"retries slow", d.m.retries.WithLabelValues("slow"), 3},       // 1 each
		{"retries failing", d.m.retries.WithLabelValues("failing"), 6}, // 2 each
		{"failed good", d.m.failed.WithLabelValues("good", "timeout"), 0},
		{"failed failing permanent", d.m.failed.WithLabelValues("failing", "permanent"), 0},
		{"dropped slow", d.m.dropped.WithLabelValues("slow", "queue_full"), 0},
	} {
		if got := testutil.ToFloat64(c.c); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	if slowHits.Load() != 6 || failHits.Load() != 9 {
		t.Errorf("slow endpoint hit %d times (want 6), failing %d (want 9)", slowHits.Load(), failHits.Load())
	}
	if n := testutil.CollectAndCount(reg, "kapkan_notify_duration_seconds"); n != 3 {
		t.Errorf("duration histograms: %d series, want 3", n)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", problems, err)
	}
}

// TestDispatcherQueueFull: a channel whose delivery hangs keeps one event
// in flight and queue_size more; the rest are dropped and counted, and
// another channel gets all of them.
func TestDispatcherQueueFull(t *testing.T) {
	stuck := &recorder{block: make(chan struct{}), entered: make(chan struct{}, 1)}
	free := &recorder{}
	a, b := notifierConfig("stuck", "webhook"), notifierConfig("free", "webhook")
	a.QueueSize = 2
	ring := events.NewRing(64, nil)
	d := newDispatcher([]spec{{a, stuck}, {b, free}}, Deps{Events: ring})
	stop := run(t, d)
	defer stop()
	ring.Publish(attackEvent(events.AttackStarted, 1))
	<-stuck.entered
	for i := range 5 {
		ring.Publish(attackEvent(events.AttackEnded, uint64(i+2)))
	}
	eventually(t, "the free channel", func() bool { return free.count() == 6 })
	dropped := d.m.dropped.WithLabelValues("stuck", "queue_full")
	eventually(t, "3 drops", func() bool { return testutil.ToFloat64(dropped) == 3 })
	close(stuck.block)
	eventually(t, "the stuck channel", func() bool { return stuck.count() == 3 })
	if got := testutil.ToFloat64(d.m.dropped.WithLabelValues("free", "queue_full")); got != 0 {
		t.Errorf("free channel dropped %v", got)
	}
}

// TestDispatcherFilter: each channel gets the kinds its events name, and
// dry-run mitigations only with dry_run: true.
func TestDispatcherFilter(t *testing.T) {
	type ch struct {
		events []string
		dryRun bool
		want   []string
	}
	cases := map[string]ch{
		"default": {config.DefaultNotifier().Events, false,
			[]string{"attack_started", "attack_escalated", "mitigation_announced", "mitigation_refused", "mitigation_withdrawn", "attack_ended"}},
		"dry-run": {config.DefaultNotifier().Events, true,
			[]string{"attack_started", "attack_escalated", "mitigation_announced(dry-run)", "mitigation_announced", "mitigation_refused", "mitigation_withdrawn", "attack_ended"}},
		"ends":     {[]string{"attack_ended"}, true, []string{"attack_ended"}},
		"refusals": {[]string{"mitigation_refused", "mitigation_failed"}, false, []string{"mitigation_refused"}},
	}
	var specs []spec
	recs := map[string]*recorder{}
	for name, c := range cases {
		cfg := notifierConfig(name, "webhook")
		cfg.Events, cfg.DryRun = c.events, c.dryRun
		recs[name] = &recorder{}
		specs = append(specs, spec{cfg, recs[name]})
	}
	ring := events.NewRing(64, nil)
	d := newDispatcher(specs, Deps{Events: ring})
	stop := run(t, d)
	defer stop()
	for _, e := range []events.Event{
		attackEvent(events.AttackStarted, 1),
		attackEvent(events.AttackUpdated, 1),
		attackEvent(events.AttackEscalated, 1),
		mitigationEvent(events.MitigationAnnounced, 1, flowspec.Blackhole, true),
		mitigationEvent(events.MitigationAnnounced, 1, flowspec.Discard, false),
		mitigationEvent(events.MitigationRenewed, 1, flowspec.Discard, false),
		mitigationEvent(events.MitigationRefused, 1, flowspec.Blackhole, false),
		mitigationEvent(events.MitigationWithdrawn, 1, flowspec.Discard, false),
		attackEvent(events.AttackEnded, 1),
	} {
		ring.Publish(e)
	}
	last := ring.Publish(events.Event{Kind: events.BGPSessionUp, BGP: &events.BGPSession{Peer: "192.0.2.1", State: "established"}})
	_ = last
	for name, c := range cases {
		eventually(t, name, func() bool { return recs[name].count() >= len(c.want) })
	}
	time.Sleep(50 * time.Millisecond) // nothing more arrives
	for name, c := range cases {
		if got := recs[name].kinds(); !equalStrings(got, c.want) {
			t.Errorf("%s got %v, want %v", name, got, c.want)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestDispatcherRateLimitAndBackoff runs on a virtual clock: 8 events at
// once to a channel limited to 60 a minute go out 5 at once (the burst)
// then one a second; a failure that says "retry after 7s" is retried 7 s
// later, one without a delay after the backoff.
func TestDispatcherRateLimitAndBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		limited := &recorder{}
		flaky := &recorder{fail: func(n int) (bool, error) {
			switch n {
			case 0:
				return true, &RetryAfterError{After: 7 * time.Second, Err: errors.New("429")}
			case 1:
				return true, errors.New("503")
			}
			return false, nil
		}}
		a, b := notifierConfig("limited", "webhook"), notifierConfig("flaky", "webhook")
		a.RatePerMinute = 60
		b.RatePerMinute = 0
		ring := events.NewRing(64, nil)
		d := newDispatcher([]spec{{a, limited}, {b, flaky}}, Deps{Events: ring, RetryBase: 2 * time.Second})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- d.Run(ctx) }()
		start := time.Now()
		ring.Publish(attackEvent(events.AttackStarted, 1))
		for i := range 7 {
			ring.Publish(attackEvent(events.AttackEnded, uint64(i+2)))
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		var got []time.Duration
		for _, at := range limited.at {
			got = append(got, at.Sub(start))
		}
		want := []time.Duration{0, 0, 0, 0, 0, time.Second, 2 * time.Second, 3 * time.Second}
		if len(got) != len(want) {
			t.Fatalf("limited channel: sent at %v, want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("limited channel: sent at %v, want %v", got, want)
				break
			}
		}
		// flaky: the first event at 0 (429, retry after 7s), 7s (503,
		// backoff 2s doubled once: 4s), 11s delivered; then the other 7.
		if len(flaky.at) != 10 || flaky.at[0].Sub(start) != 0 || flaky.at[1].Sub(start) != 7*time.Second || flaky.at[2].Sub(start) != 11*time.Second {
			t.Errorf("flaky channel: attempts at %v", flaky.at)
		}
		if got := testutil.ToFloat64(d.m.retries.WithLabelValues("flaky")); got != 2 {
			t.Errorf("retries = %v, want 2", got)
		}
		if got := testutil.ToFloat64(d.m.sent.WithLabelValues("flaky")); got != 8 {
			t.Errorf("sent = %v, want 8", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestKinds: every event name config accepts stands for some kinds.
func TestKinds(t *testing.T) {
	for _, n := range config.NotifierEvents {
		if len(Kinds([]string{n})) == 0 {
			t.Errorf("%s maps to no kind", n)
		}
	}
	if k := Kinds([]string{"mitigation"}); len(k) != 4 || k[events.MitigationRenewed] || k[events.MitigationNone] {
		t.Errorf("mitigation = %v", k)
	}
}
