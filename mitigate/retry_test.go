package mitigate

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/internal/testutil"
)

// flaky is an announcer that fails while down and otherwise records, with
// the speaker's rules, what it sends (a DryRun inside).
type flaky struct {
	sent   *DryRun
	mu     sync.Mutex
	err    error // nil: up
	called int
}

func (f *flaky) Announce(r Route) error { return f.do(r, f.sent.Announce) }
func (f *flaky) Withdraw(r Route) error { return f.do(r, f.sent.Withdraw) }
func (f *flaky) do(r Route, send func(Route) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.called++
	if f.err != nil {
		return f.err
	}
	return send(r)
}
func (f *flaky) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}
func (f *flaky) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.called
}

// runFixture is a manager run by Run in a synctest bubble, with a flaky
// announcer.
type runFixture struct {
	m   *Manager
	ann *flaky
	reg *prometheus.Registry
	mu  sync.Mutex
	evs []Event
}

func newRunFixture(t *testing.T) *runFixture {
	t.Helper()
	f := &runFixture{ann: &flaky{sent: NewDryRun()}, reg: prometheus.NewRegistry()}
	cfg := Config{Protected: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
		MaxBlackholes: 10, MaxFlowSpec: 10, MaxNewPerMinute: 100, TTL: 10 * time.Minute, MaxTTL: time.Hour}
	m, err := NewManager(ManagerConfig{Safety: cfg, Announcer: f.ann, Registerer: f.reg,
		RetryMin: time.Second, RetryMax: 4 * time.Second,
		OnEvent: func(e Event) { f.mu.Lock(); f.evs = append(f.evs, e); f.mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	f.m = m
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return f
}

// events returns the events of type typ.
func (f *runFixture) events(typ string) []Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Event
	for _, e := range f.evs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func (f *runFixture) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	return testutil.MetricValue(t, f.reg, name, labels)
}

func (f *runFixture) sent() []string {
	var out []string
	for _, o := range f.ann.sent.Ops() {
		out = append(out, map[bool]string{false: "announce ", true: "withdraw "}[o.Withdraw]+o.Route.Key())
	}
	return out
}

var errDown = errors.New("speaker down")

// TestFailedAnnounceIsRetried: an announce the announcer fails is counted
// on every attempt, reported once (EventFailed, with the attack), kept
// pending and sent again with a doubling back-off until it goes through.
func TestFailedAnnounceIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newRunFixture(t)
		f.ann.fail(errDown)
		if err := f.m.Apply(decision(7, flowspec.Blackhole, time.Now(), false, false)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		failures := map[string]string{"kind": "blackhole", "op": OpAnnounce}
		if n := f.metric(t, "kapkan_mitigation_announce_failures_total", failures); n != 1 {
			t.Fatalf("failures %v, want 1", n)
		}
		ev := f.events(EventFailed)
		if len(ev) != 1 || ev[0].Op != OpAnnounce || ev[0].AttackID != 7 || ev[0].Route.Key() != bhKey || !errors.Is(ev[0].Err, errDown) {
			t.Fatalf("failed events %+v", ev)
		}
		if p := f.m.Pending(); len(p) != 1 || p[0].Withdraw || p[0].Attempts != 1 || f.metric(t, "kapkan_mitigation_pending_routes", nil) != 1 {
			t.Fatalf("pending %+v", p)
		}

		// Still down: tried again after 1 s, then 2 s; counted, not reported again.
		time.Sleep(time.Second + time.Millisecond)
		synctest.Wait()
		if n := f.metric(t, "kapkan_mitigation_announce_failures_total", failures); n != 2 {
			t.Fatalf("failures after 1 s: %v, want 2", n)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := f.metric(t, "kapkan_mitigation_announce_failures_total", failures); n != 2 {
			t.Fatalf("failures after 2 s: %v, want 2 (the back-off doubled)", n)
		}
		f.ann.fail(nil)
		time.Sleep(time.Second)
		synctest.Wait()
		want(t, f.sent(), "announce "+bhKey)
		if len(f.events(EventFailed)) != 1 || len(f.m.Pending()) != 0 || f.metric(t, "kapkan_mitigation_pending_routes", nil) != 0 {
			t.Fatalf("after recovery: failed events %d, pending %+v", len(f.events(EventFailed)), f.m.Pending())
		}
		// Nothing pending: no more attempts, however long we wait.
		calls := f.ann.calls()
		time.Sleep(time.Minute)
		synctest.Wait()
		if f.ann.calls() != calls {
			t.Fatalf("%d calls to the announcer with nothing pending", f.ann.calls()-calls)
		}
	})
}

// TestRetryNow: Retry (a BGP session came back) sends what is pending at
// once, without waiting for the back-off; a withdrawal queued after a
// failed announce replaces it, so the route is never sent.
func TestRetryNow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newRunFixture(t)
		f.ann.fail(errDown)
		now := time.Now()
		for _, ip := range []string{"203.0.113.1/32", "203.0.113.2/32"} {
			if _, err := f.m.Ban(Request{Kind: flowspec.Blackhole, Target: netip.MustParsePrefix(ip)}, flowspec.Match{}, now); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		f.m.Unban(netip.MustParsePrefix("203.0.113.2/32"), now, "manual unban")
		synctest.Wait()
		if p := f.m.Pending(); len(p) != 2 || p[1].Route.Target.String() != "203.0.113.2/32" || !p[1].Withdraw {
			t.Fatalf("pending %+v, want the announce of .1 and the withdrawal of .2", p)
		}
		f.ann.fail(nil)
		f.m.Retry()
		synctest.Wait()
		if d := time.Since(now); d != 0 {
			t.Fatalf("Retry waited %s", d)
		}
		want(t, f.sent(), "announce blackhole 203.0.113.1/32")
		if len(f.m.Pending()) != 0 {
			t.Fatalf("pending %+v", f.m.Pending())
		}
		if ev := f.events(EventFailed); len(ev) != 3 || ev[2].Op != OpWithdraw {
			t.Fatalf("failed events %+v, want two announces and a withdrawal", ev)
		}
	})
}

// TestRejectedIsNotRetried: an error wrapping ErrRejected is reported and
// dropped: trying again would only repeat it.
func TestRejectedIsNotRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newRunFixture(t)
		f.ann.fail(fmt.Errorf("no family for it: %w", ErrRejected))
		if err := f.m.Apply(decision(1, flowspec.Discard, time.Now(), false, false)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		time.Sleep(time.Hour)
		synctest.Wait()
		if f.ann.calls() != 1 || len(f.m.Pending()) != 0 || len(f.events(EventFailed)) != 1 {
			t.Fatalf("calls %d, pending %+v, failed events %d", f.ann.calls(), f.m.Pending(), len(f.events(EventFailed)))
		}
		if n := f.metric(t, "kapkan_mitigation_announce_failures_total", map[string]string{"kind": "flowspec-discard", "op": OpAnnounce}); n != 1 {
			t.Fatalf("failures %v", n)
		}
	})
}

// TestRunTicksTheTTL: Run withdraws an action whose attack is over when
// its TTL passes, on the wall clock.
func TestRunTicksTheTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newRunFixture(t)
		start := time.Now()
		f.apply(t, decision(1, flowspec.Blackhole, start, false, false), decision(1, flowspec.Blackhole, start, true, false))
		time.Sleep(10*time.Minute - time.Second)
		synctest.Wait()
		want(t, f.sent(), "announce "+bhKey)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		want(t, f.sent(), "announce "+bhKey, "withdraw "+bhKey)
	})
}

func (f *runFixture) apply(t *testing.T, ds ...flowspec.Decision) {
	t.Helper()
	for _, d := range ds {
		if err := f.m.Apply(d); err != nil {
			t.Fatal(err)
		}
	}
}
