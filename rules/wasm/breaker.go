package wasm

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrSuspended is the error of a call to a module suspended after
// repeated failures: the call returns at once, without running the module.
var ErrSuspended = errors.New("wasm module suspended after repeated failures")

// ErrNoBudget is the error of a call whose caller's deadline (an attack's
// classification budget) had passed before it started: the module is not
// run.
var ErrNoBudget = errors.New("no time left in the caller's budget")

// Why a call was not made (the reason label of kapkan_wasm_skipped_calls_total).
const (
	SkipSuspended = "suspended"
	SkipBudget    = "budget"
)

// Breaker says when a failing module is suspended. A suspended module's
// calls return ErrSuspended at once, so that a module that hangs costs the
// attacks of the next minutes nothing rather than its timeout each. The
// zero value of a field means its default.
type Breaker struct {
	// Failures is how many failed calls in a row suspend a module.
	Failures int
	// Backoff is how long the first suspension lasts; each further one,
	// after a trial call that failed again, lasts twice the previous, up to
	// MaxBackoff. A successful call brings it back to Backoff.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Now is the clock suspensions are measured with (tests give a fake
	// one).
	Now func() time.Time
}

// Defaults of Breaker.
const (
	DefaultBreakerFailures = 3
	DefaultBackoff         = 30 * time.Second
	DefaultMaxBackoff      = 10 * time.Minute
)

// WithDefaults fills the fields left at zero.
func (b Breaker) WithDefaults() Breaker {
	if b.Failures <= 0 {
		b.Failures = DefaultBreakerFailures
	}
	if b.Backoff <= 0 {
		b.Backoff = DefaultBackoff
	}
	if b.MaxBackoff < b.Backoff {
		b.MaxBackoff = max(DefaultMaxBackoff, b.Backoff)
	}
	if b.Now == nil {
		b.Now = time.Now
	}
	return b
}

// breaker is one module's failure record. Calls are per attack, not per
// flow record, so a mutex is cheap enough.
//
// States: closed (calls run; failures counted), suspended (calls refused
// until the back-off ends), then on probation: one trial call runs while
// the others are still refused; its success closes the breaker again, its
// failure suspends the module for twice as long.
type breaker struct {
	cfg    Breaker
	log    *slog.Logger
	module string
	gauge  prometheus.Gauge
	count  prometheus.Counter

	mu        sync.Mutex
	failures  int       // consecutive, while closed
	suspended bool      // suspended or on probation
	until     time.Time // end of the suspension
	trial     bool      // a trial call is running
	backoff   time.Duration
	off       chan struct{} // closed when the module is suspended, for calls waiting for an instance
}

func newBreaker(cfg Breaker, log *slog.Logger, module string, gauge prometheus.Gauge, count prometheus.Counter) *breaker {
	gauge.Set(0)
	return &breaker{cfg: cfg, log: log, module: module, gauge: gauge, count: count, backoff: cfg.Backoff, off: make(chan struct{})}
}

// allow says whether a call may run now; trial is true for the one call
// that tries a module whose suspension has ended. A trial call must be
// followed by done.
func (b *breaker) allow() (ok, trial bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.suspended {
		return true, false
	}
	if b.trial || b.cfg.Now().Before(b.until) {
		return false, false
	}
	b.trial = true
	return true, true
}

// suspendedCh is closed once the module is suspended: a call waiting for an
// instance gives up then.
func (b *breaker) suspendedCh() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.off
}

// done records how a call that allow let through ended: failed says
// whether it counts against the module (trial says whether it was the
// trial call).
func (b *breaker) done(trial, failed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case trial && !failed:
		b.suspended, b.trial, b.failures, b.backoff = false, false, 0, b.cfg.Backoff
		b.off = make(chan struct{})
		b.gauge.Set(0)
		b.log.Info("wasm module answers again, suspension lifted", "module", b.module)
	case trial:
		b.trial = false
		b.backoff = min(2*b.backoff, b.cfg.MaxBackoff)
		b.until = b.cfg.Now().Add(b.backoff)
		b.count.Inc()
		b.log.Warn("wasm module still failing, suspended again", "module", b.module, "backoff", b.backoff.String())
	case b.suspended:
		// A call started before the suspension: its outcome says nothing
		// the trial call will not.
	case !failed:
		b.failures, b.backoff = 0, b.cfg.Backoff
	default:
		b.failures++
		if b.failures < b.cfg.Failures {
			return
		}
		b.suspended, b.until = true, b.cfg.Now().Add(b.backoff)
		close(b.off)
		b.gauge.Set(1)
		b.count.Inc()
		b.log.Warn("wasm module suspended after repeated failures, its rules are skipped until it is tried again",
			"module", b.module, "failures", b.failures, "backoff", b.backoff.String())
	}
}

// state is for tests: suspended, and the current back-off.
func (b *breaker) state() (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.suspended, b.backoff
}
