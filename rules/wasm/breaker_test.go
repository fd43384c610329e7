package wasm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kapkan-io/kapkan/rules/wasm/wasmtest"
)

func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// badPayload makes the conformance guest fail the call (a guest_error):
// attack.samples does not match the sample sent.
func badPayload() *Payload {
	p := payload(5)
	p.Sample = p.Sample[:3]
	return p
}

func suspensions(h *Host, module string) float64 {
	return testutil.ToFloat64(h.suspensions.WithLabelValues(module))
}

func skippedCalls(h *Host, module, reason string) float64 {
	return testutil.ToFloat64(h.skipped.WithLabelValues(module, "classify", reason))
}

// TestBreakerBackoff walks one module through failures, a suspension,
// trial calls that fail (each suspension twice as long, up to the
// maximum) and one that succeeds, on a fake clock.
func TestBreakerBackoff(t *testing.T) {
	logs := &syncBuffer{}
	clock := newFakeClock()
	h := NewHostWith(newLogger(logs), Breaker{Failures: 3, Backoff: 30 * time.Second, MaxBackoff: 2 * time.Minute, Now: clock.Now})
	m := load(t, h, wasmtest.One(t, "conformance"), Options{Name: "flaky", Role: RoleClassify})

	const (
		ok        = "ok"
		fails     = "fails"     // runs and fails
		suspended = "suspended" // refused without running
	)
	for i, tc := range []struct {
		advance     time.Duration
		good        bool // a payload the guest accepts
		want        string
		suspended   bool
		backoff     time.Duration
		suspensions float64
	}{
		{0, false, fails, false, 30 * time.Second, 0},
		{0, false, fails, false, 30 * time.Second, 0},
		{0, true, ok, false, 30 * time.Second, 0}, // a success starts the count again
		{0, false, fails, false, 30 * time.Second, 0},
		{0, false, fails, false, 30 * time.Second, 0},
		{0, false, fails, true, 30 * time.Second, 1}, // the third in a row
		{0, true, suspended, true, 30 * time.Second, 1},
		{29 * time.Second, true, suspended, true, 30 * time.Second, 1},
		{time.Second, false, fails, true, time.Minute, 2}, // the trial fails: twice as long
		{59 * time.Second, true, suspended, true, time.Minute, 2},
		{time.Second, false, fails, true, 2 * time.Minute, 3},
		{2 * time.Minute, false, fails, true, 2 * time.Minute, 4}, // capped
		{time.Minute, true, suspended, true, 2 * time.Minute, 4},
		{time.Minute, true, ok, false, 30 * time.Second, 4}, // the trial succeeds: lifted, back-off reset
		{0, false, fails, false, 30 * time.Second, 4},
		{0, false, fails, false, 30 * time.Second, 4},
		{0, false, fails, true, 30 * time.Second, 5},
		{0, true, suspended, true, 30 * time.Second, 5},
	} {
		mark := fmt.Sprintf("step %d", i+1)
		clock.Advance(tc.advance)
		p := badPayload()
		if tc.good {
			p = payload(5)
		}
		start := time.Now()
		_, err := m.Classify(p, nil)
		var ce *CallError
		got := ""
		switch {
		case err == nil:
			got = ok
		case errors.As(err, &ce) && ce.Result == ResultGuestError:
			got = fails
		case errors.Is(err, ErrSuspended):
			got = suspended
			if d := time.Since(start); d > 50*time.Millisecond {
				t.Errorf("%s: a refused call took %s", mark, d)
			}
		default:
			t.Fatalf("%s: unexpected error %v", mark, err)
		}
		if got != tc.want {
			t.Errorf("%s: call %s (%v), want %s", mark, got, err, tc.want)
		}
		s, b := m.c.brk.state()
		if s != tc.suspended || b != tc.backoff {
			t.Errorf("%s: suspended %v back-off %s, want %v %s", mark, s, b, tc.suspended, tc.backoff)
		}
		if n := suspensions(h, "flaky"); n != tc.suspensions {
			t.Errorf("%s: %v suspensions counted, want %v", mark, n, tc.suspensions)
		}
		gauge := testutil.ToFloat64(h.suspended.WithLabelValues("flaky"))
		if want := map[bool]float64{true: 1, false: 0}[tc.suspended]; gauge != want {
			t.Errorf("%s: kapkan_wasm_module_suspended %v, want %v", mark, gauge, want)
		}
	}
	if n := skippedCalls(h, "flaky", SkipSuspended); n != 5 {
		t.Errorf("%v skipped calls counted, want 5", n)
	}
	// Failed calls are still counted as what they are, refused ones are not
	// calls.
	if n := calls(h, "flaky", "classify", ResultGuestError); n != 11 {
		t.Errorf("%v guest errors counted, want 11", n)
	}
	out := logs.String()
	for line, want := range map[string]int{
		"wasm module suspended after repeated failures": 2,
		"wasm module still failing, suspended again":    3,
		"wasm module answers again, suspension lifted":  1,
	} {
		if n := strings.Count(out, line); n != want {
			t.Errorf("%q logged %d times, want %d:\n%s", line, n, want, out)
		}
	}
	if !strings.Contains(out, "level=WARN msg=\"wasm module suspended after repeated failures, its rules are skipped until it is tried again\" component=wasm module=flaky failures=3 backoff=30s") {
		t.Errorf("suspension log line:\n%s", out)
	}
}

// TestBreakerOneTrial: a call waiting for an instance when the module is
// suspended gives up at once; while the trial call after the back-off
// runs, other calls are still refused at once.
func TestBreakerOneTrial(t *testing.T) {
	clock := newFakeClock()
	h := NewHostWith(newLogger(&syncBuffer{}), Breaker{Failures: 1, Backoff: time.Minute, Now: clock.Now})
	m := load(t, h, wasmtest.One(t, "bad/loop"), Options{Name: "loop", Role: RoleClassify,
		Limits: Limits{Timeout: 5 * time.Second, Instances: 1}})
	budget := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}

	// One call runs until its caller's deadline, another (without one)
	// waits for the instance: the first one's failure suspends the module
	// and frees the second long before the module's 5 s timeout.
	errs := make(chan error, 2)
	start := time.Now()
	go func() { _, err := m.ClassifyContext(budget(), payload(1), nil); errs <- err }()
	waitFor(t, func() bool { return len(m.c.idle) == 0 })
	go func() { _, err := m.Classify(payload(1), nil); errs <- err }()
	var timeouts, refused int
	for range 2 {
		err := <-errs
		var ce *CallError
		switch {
		case errors.As(err, &ce) && ce.Result == ResultTimeout:
			timeouts++
		case errors.Is(err, ErrSuspended):
			refused++
		default:
			t.Errorf("call: %v", err)
		}
	}
	if timeouts != 1 || refused != 1 {
		t.Errorf("%d timeouts, %d refused, want 1 and 1", timeouts, refused)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("both calls took %s, want about 200ms", d)
	}

	// The trial call runs; the calls made meanwhile are refused at once.
	clock.Advance(time.Minute)
	waitIdle(t, m)
	trial := make(chan error, 1)
	go func() { _, err := m.ClassifyContext(budget(), payload(1), nil); trial <- err }()
	waitFor(t, func() bool { m.c.brk.mu.Lock(); defer m.c.brk.mu.Unlock(); return m.c.brk.trial })
	for range 3 {
		if _, err := m.Classify(payload(1), nil); !errors.Is(err, ErrSuspended) {
			t.Errorf("call during the trial: %v, want ErrSuspended", err)
		}
	}
	var ce *CallError
	if err := <-trial; !errors.As(err, &ce) || ce.Result != ResultTimeout {
		t.Errorf("trial: %v, want a timeout", err)
	}
	if s, b := m.c.brk.state(); !s || b != 2*time.Minute {
		t.Errorf("after the failed trial: suspended %v for %s, want true for 2m0s", s, b)
	}
}

// TestCallBudget: a call ends at the caller's deadline when it comes
// before the module's timeout, and is not made when it has passed.
func TestCallBudget(t *testing.T) {
	h := NewHostWith(newLogger(&syncBuffer{}), Breaker{Now: newFakeClock().Now})
	m := load(t, h, wasmtest.One(t, "bad/loop"), Options{Name: "loop", Role: RoleClassify,
		Limits: Limits{Timeout: 5 * time.Second, Instances: 1}})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := m.ClassifyContext(ctx, payload(1), nil)
	var ce *CallError
	if !errors.As(err, &ce) || ce.Result != ResultTimeout {
		t.Errorf("call: %v, want a timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the call took %s, want about the caller's 200ms", d)
	}
	_, err = m.ClassifyContext(ctx, payload(1), nil)
	if !errors.Is(err, ErrNoBudget) {
		t.Errorf("call after the deadline: %v, want ErrNoBudget", err)
	}
	if n := skippedCalls(h, "loop", SkipBudget); n != 1 {
		t.Errorf("%v budget skips counted, want 1", n)
	}
	if n := calls(h, "loop", "classify", ResultTimeout); n != 1 {
		t.Errorf("%v timeouts counted, want 1 (a skipped call is not a call)", n)
	}
}

// TestBreakerHammer: goroutines call one module with good and bad payloads
// while the clock moves; every call ends as ok, a guest error or refused,
// and each is counted once (run with -race).
func TestBreakerHammer(t *testing.T) {
	clock := newFakeClock()
	h := NewHostWith(newLogger(&syncBuffer{}), Breaker{Failures: 2, Backoff: time.Second, MaxBackoff: 4 * time.Second, Now: clock.Now})
	m := load(t, h, wasmtest.One(t, "conformance"), Options{Name: "hammer", Role: RoleClassify, Limits: Limits{Instances: 2, Timeout: 10 * time.Second}})
	const workers, each = 6, 30
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				p := payload(3)
				if (w+i)%3 == 0 {
					p = badPayload()
				}
				if i%5 == 0 {
					clock.Advance(700 * time.Millisecond)
				}
				_, err := m.ClassifyContext(context.Background(), p, nil)
				var ce *CallError
				if err != nil && !errors.Is(err, ErrSuspended) && (!errors.As(err, &ce) || ce.Result != ResultGuestError) {
					t.Errorf("call: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	total := calls(h, "hammer", "classify", ResultOK) + calls(h, "hammer", "classify", ResultGuestError) + skippedCalls(h, "hammer", SkipSuspended)
	if total != workers*each {
		t.Errorf("%v calls counted, want %d", total, workers*each)
	}
	if suspensions(h, "hammer") == 0 || skippedCalls(h, "hammer", SkipSuspended) == 0 {
		t.Errorf("the hammer never suspended the module: the test proves nothing")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}
