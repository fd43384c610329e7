// Package notify owns telling people and their tools what Kapkan saw and
// did: attacks started, escalated and ended, mitigations announced,
// withdrawn, refused or failed. Each channel (Telegram, Slack, email, a
// generic webhook, a program to run) is one small Notifier; one Dispatcher
// reads the event ring and owns everything around a delivery: which events
// a channel is sent, a bounded queue and a goroutine per channel (so a slow
// or failing channel never holds up detection or another channel), the
// per-attempt timeout, retries with backoff, the rate limit and the
// metrics.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/events"
)

// Notifier delivers one event to one channel. retry says whether a failed
// delivery may work if tried again (a server error, a timeout, HTTP 429);
// the dispatcher decides whether and when. ctx carries the attempt's
// deadline. The dispatcher calls Notify from one goroutine per channel.
type Notifier interface {
	Notify(ctx context.Context, e *events.Event) (retry bool, err error)
}

// observer is a Notifier that keeps state from every event, delivered or
// not (the fastnetmon script needs the pps of the attack a mitigation is
// for). Observe is called from the dispatcher's reader goroutine.
type observer interface {
	Observe(e *events.Event)
}

// kindFilter is a Notifier that is sent some kinds only, whatever its
// events say.
type kindFilter interface {
	Handles(k events.Kind) bool
}

// RetryAfterError is a retryable failure that says when to try again
// (HTTP 429 with Retry-After, Telegram's retry_after).
type RetryAfterError struct {
	After time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }
func (e *RetryAfterError) Unwrap() error { return e.Err }

// Deps are what a Dispatcher needs from the rest of the daemon.
type Deps struct {
	// Events is the ring the dispatcher reads, from the events published
	// after New.
	Events *events.Ring
	// Logger gets the failures (one line per message given up); nil
	// discards.
	Logger *slog.Logger
	// Registerer gets the metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// Getenv and ReadFile read the secrets; nil means os.Getenv and
	// os.ReadFile.
	Getenv   func(string) string
	ReadFile func(string) ([]byte, error)
	// HTTPClient posts for the HTTP channels; nil means a client of its
	// own (each attempt is bounded by the channel's timeout).
	HTTPClient *http.Client
	// RetryBase is the first backoff; 0 means 1s. Each retry doubles it,
	// up to a minute.
	RetryBase time.Duration
}

// Burst is how many messages a rate-limited channel may send at once
// before rate_per_minute paces it.
const Burst = 5

const (
	maxBackoff    = time.Minute
	maxRetryAfter = 5 * time.Minute
)

// Dispatcher fans the events of the ring out to the channels.
type Dispatcher struct {
	rd       *events.Reader
	channels []*channel
	logger   *slog.Logger
	m        *metrics
	base     time.Duration
}

type channel struct {
	name    string
	n       Notifier
	kinds   map[events.Kind]bool
	dryRun  bool
	timeout time.Duration
	retries int
	queue   chan events.Event
	bucket  *bucket // nil: no limit

	sent, retried prometheus.Counter
	duration      prometheus.Observer
}

// New builds a dispatcher for the channels of cfg: it reads their secret
// files and environment variables and checks their commands, and fails on
// the first channel it cannot build. It starts nothing.
func New(cfg []config.Notifier, deps Deps) (*Dispatcher, error) {
	if deps.Events == nil {
		return nil, errors.New("build notifiers: no event ring")
	}
	specs := make([]spec, 0, len(cfg))
	for _, c := range cfg {
		n, err := build(c, &deps)
		if err != nil {
			return nil, fmt.Errorf("build notifier %s: %w", c.Name, err)
		}
		specs = append(specs, spec{cfg: c, n: n})
	}
	return newDispatcher(specs, deps), nil
}

// Check builds every channel of cfg as New would (secret files and
// variables read, commands found and executable) and returns every
// problem, joined: for kapkan check and the daemon's preflight.
func Check(cfg []config.Notifier, deps Deps) error {
	var errs []error
	for _, c := range cfg {
		if _, err := build(c, &deps); err != nil {
			errs = append(errs, fmt.Errorf("notifier %s: %w", c.Name, err))
		}
	}
	return errors.Join(errs...)
}

// spec is a channel's config with its built notifier.
type spec struct {
	cfg config.Notifier
	n   Notifier
}

func newDispatcher(specs []spec, deps Deps) *Dispatcher {
	d := &Dispatcher{logger: deps.Logger, m: newMetrics(deps.Registerer), base: deps.RetryBase}
	if d.logger == nil {
		d.logger = slog.New(slog.DiscardHandler)
	}
	d.logger = d.logger.With("component", "notify")
	if d.base <= 0 {
		d.base = time.Second
	}
	for _, s := range specs {
		ch := &channel{
			name:     s.cfg.Name,
			n:        s.n,
			kinds:    Kinds(s.cfg.Events),
			dryRun:   s.cfg.DryRun,
			timeout:  s.cfg.Timeout.Duration,
			retries:  s.cfg.Retries,
			queue:    make(chan events.Event, max(1, s.cfg.QueueSize)),
			sent:     d.m.sent.WithLabelValues(s.cfg.Name),
			retried:  d.m.retries.WithLabelValues(s.cfg.Name),
			duration: d.m.duration.WithLabelValues(s.cfg.Name),
		}
		if ch.timeout <= 0 {
			ch.timeout = config.DefaultNotifier().Timeout.Duration
		}
		if s.cfg.RatePerMinute > 0 {
			ch.bucket = newBucket(s.cfg.RatePerMinute, Burst)
		}
		if f, ok := s.n.(kindFilter); ok {
			for k := range ch.kinds {
				if !f.Handles(k) {
					delete(ch.kinds, k)
				}
			}
		}
		// Make every label pair exist from the start, at 0.
		d.m.dropped.WithLabelValues(ch.name, "queue_full")
		for _, r := range failReasons {
			d.m.failed.WithLabelValues(ch.name, r)
		}
		d.channels = append(d.channels, ch)
	}
	d.rd = deps.Events.NewReader("notify", deps.Events.Last()+1)
	return d
}

// Kinds maps the event names of a notifier's events to the kinds they
// stand for: "mitigation" is announced, withdrawn, refused and failed
// (renewals and "no mitigation" are not sent: one a TTL period per action
// and one per attack would be noise); the others are the kind of that
// name. Unknown names are left out (config validation refuses them).
func Kinds(names []string) map[events.Kind]bool {
	out := make(map[events.Kind]bool)
	for _, n := range names {
		switch n {
		case "mitigation":
			for _, k := range []events.Kind{events.MitigationAnnounced, events.MitigationWithdrawn, events.MitigationRefused, events.MitigationFailed} {
				out[k] = true
			}
		case "attack_started", "attack_escalated", "attack_ended",
			"mitigation_announced", "mitigation_withdrawn", "mitigation_refused", "mitigation_failed":
			out[events.Kind(n)] = true
		}
	}
	return out
}

// wants reports whether the channel is sent e.
func (ch *channel) wants(e *events.Event) bool {
	if !ch.kinds[e.Kind] {
		return false
	}
	if e.Mitigation != nil && e.Mitigation.DryRun && !ch.dryRun {
		return false
	}
	return true
}

// Run reads the ring and delivers until ctx ends. Messages still queued
// then are dropped (counted, reason "shutdown").
func (d *Dispatcher) Run(ctx context.Context) error {
	defer d.rd.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // before wg.Wait: the workers stop with Run, whatever ends it
	for _, ch := range d.channels {
		wg.Go(func() { d.work(ctx, ch) })
	}
	var observers []observer
	for _, ch := range d.channels {
		if o, ok := ch.n.(observer); ok {
			observers = append(observers, o)
		}
	}
	for {
		e, err := d.rd.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, events.ErrClosed) {
				return nil
			}
			return fmt.Errorf("read events: %w", err)
		}
		if n := d.rd.LostBefore(); n > 0 {
			d.logger.Warn("notifier fell behind the event ring, events lost", "lost", n, "lost_total", d.rd.Lost())
		}
		for _, o := range observers {
			o.Observe(&e)
		}
		for _, ch := range d.channels {
			if !ch.wants(&e) {
				continue
			}
			select {
			case ch.queue <- e:
			default:
				d.m.dropped.WithLabelValues(ch.name, "queue_full").Inc()
			}
		}
	}
}

// work delivers a channel's queue, in order, until ctx ends.
func (d *Dispatcher) work(ctx context.Context, ch *channel) {
	for {
		select {
		case <-ctx.Done():
			if n := len(ch.queue); n > 0 {
				d.m.dropped.WithLabelValues(ch.name, "shutdown").Add(float64(n))
			}
			return
		case e := <-ch.queue:
			if ch.bucket != nil && !ch.bucket.wait(ctx) {
				d.m.dropped.WithLabelValues(ch.name, "shutdown").Add(float64(len(ch.queue) + 1))
				return
			}
			d.deliver(ctx, ch, &e)
		}
	}
}

// Reasons of kapkan_notify_failed_total: the last attempt timed out; it
// failed for a reason that may pass but the retries ran out; or it failed
// for good (HTTP 4xx, a script's exit status, a refused login).
var failReasons = []string{"timeout", "transient", "permanent"}

// deliver tries to send e until it works, fails for good, runs out of
// retries or ctx ends.
func (d *Dispatcher) deliver(ctx context.Context, ch *channel, e *events.Event) {
	backoff := d.base
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, ch.timeout)
		start := time.Now()
		retry, err := ch.n.Notify(actx, e)
		ch.duration.Observe(time.Since(start).Seconds())
		timedOut := actx.Err() != nil && ctx.Err() == nil
		cancel()
		if err == nil {
			ch.sent.Inc()
			return
		}
		if ctx.Err() != nil {
			d.m.dropped.WithLabelValues(ch.name, "shutdown").Inc()
			return
		}
		if !retry || attempt >= ch.retries {
			reason := "permanent"
			switch {
			case timedOut:
				reason = "timeout"
			case retry:
				reason = "transient"
			}
			d.m.failed.WithLabelValues(ch.name, reason).Inc()
			d.logger.Warn("notification failed", "channel", ch.name, "event", string(e.Kind), "seq", e.Seq,
				"attempts", attempt+1, "reason", reason, "err", err)
			return
		}
		wait := backoff
		if ra, ok := errors.AsType[*RetryAfterError](err); ok && ra.After > 0 {
			wait = min(ra.After, maxRetryAfter)
		}
		backoff = min(2*backoff, maxBackoff)
		ch.retried.Inc()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			d.m.dropped.WithLabelValues(ch.name, "shutdown").Inc()
			return
		case <-t.C:
		}
	}
}

type metrics struct {
	sent, retries   *prometheus.CounterVec
	failed, dropped *prometheus.CounterVec
	duration        *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_notify_sent_total",
			Help: "Notifications delivered, by channel.",
		}, []string{"channel"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_notify_failed_total",
			Help: "Notifications given up after their last attempt failed, by channel and reason (timeout, transient, permanent).",
		}, []string{"channel", "reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_notify_dropped_total",
			Help: "Notifications never attempted, by channel and reason (queue_full, shutdown).",
		}, []string{"channel", "reason"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_notify_retries_total",
			Help: "Delivery attempts made again after a failure, by channel.",
		}, []string{"channel"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kapkan_notify_duration_seconds",
			Help:    "Time of one delivery attempt, by channel.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"channel"}),
	}
	if reg != nil {
		reg.MustRegister(m.sent, m.failed, m.dropped, m.retries, m.duration)
	}
	return m
}

// bucket is a token bucket: up to burst tokens, one more every
// minute/perMinute.
type bucket struct {
	every  time.Duration
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(perMinute, burst int) *bucket {
	b := float64(min(burst, perMinute))
	return &bucket{every: time.Minute / time.Duration(perMinute), burst: b, tokens: b}
}

// wait takes a token, waiting for one if need be; false when ctx ended
// first.
func (b *bucket) wait(ctx context.Context) bool {
	now := time.Now()
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+float64(now.Sub(b.last))/float64(b.every))
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	need := time.Duration((1 - b.tokens) * float64(b.every))
	t := time.NewTimer(need)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	}
	b.tokens = 0
	b.last = b.last.Add(need)
	return true
}

// secret reads a secret from a file (whitespace around it trimmed) or an
// environment variable; "" with no error when neither is named.
func secret(deps *Deps, what, file, env string) (string, error) {
	switch {
	case file != "":
		read := deps.ReadFile
		if read == nil {
			read = os.ReadFile
		}
		b, err := read(file)
		if err != nil {
			return "", fmt.Errorf("read %s: %w", what, err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("read %s: %s is empty", what, file)
		}
		return s, nil
	case env != "":
		get := deps.Getenv
		if get == nil {
			get = os.Getenv
		}
		s := strings.TrimSpace(get(env))
		if s == "" {
			return "", fmt.Errorf("read %s: environment variable %s is not set or empty", what, env)
		}
		return s, nil
	}
	return "", nil
}

// build makes the notifier of one channel.
func build(c config.Notifier, deps *Deps) (Notifier, error) {
	client := deps.HTTPClient
	if client == nil {
		client = &http.Client{}
	}
	switch c.Type {
	case "telegram":
		return newTelegram(c, deps, client)
	case "slack":
		return newSlack(c, deps, client)
	case "webhook":
		return newWebhook(c, deps, client)
	case "email":
		return newEmail(c, deps)
	case "exec":
		return newExec(c)
	}
	return nil, fmt.Errorf("unknown type %q", c.Type)
}
