package mitigate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/flowspec"
)

// Event is a change of the mitigations in force, a refusal, or a change
// the announcer failed to send.
type Event struct {
	// Type is announce, withdraw, renew, refused or failed.
	Type string
	// Op is the change that failed (failed only): announce or withdraw.
	Op     string
	Route  Route
	Action Action
	// AttackID is the attack the change is for (0: manual or the TTL).
	AttackID uint64
	Ladder   string
	Step     int
	DryRun   bool
	At       time.Time
	Reason   string
	// Err says why a request was refused or a change failed.
	Err error
}

// Event types.
const (
	EventAnnounce = "announce"
	EventWithdraw = "withdraw"
	EventRenew    = "renew"
	EventRefused  = "refused"
	// EventFailed: the announcer could not send a change. It is reported
	// once, when it first fails; the change is sent again until it goes
	// through (see Manager.Run and Retry), unless it was rejected.
	EventFailed = "failed"
)

// Operations, as the failure metric and EventFailed name them.
const (
	OpAnnounce = "announce"
	OpWithdraw = "withdraw"
)

// entry is an action in force with what it needs beyond the guard's view.
type entry struct {
	Action
	Match  flowspec.Match
	Ladder string
	Step   int
	// attack is the attack that asked for the action first (0: manual).
	attack uint64
	// owners are the running attacks that want the action. An action with
	// owners is renewed when its TTL runs out; one without is withdrawn.
	owners map[uint64]bool
}

func (e *entry) route() Route {
	return Route{Kind: e.Kind, Target: e.Target, Match: e.Match, RateMbps: e.RateMbps}
}

// Manager owns the mitigations in force: every request passes the Guard,
// what passes is handed to the Announcer (the BGP speaker, or DryRun in
// dry-run) off the detection path, in order, and the state is written to
// a file so that a restart announces it again. A change the announcer
// fails to send is counted, reported and sent again later. It is safe
// for concurrent use.
//
// NewManager starts nothing. Run sends the queued changes and runs the
// TTL clock; without Run (replay, tests), Flush sends them on the
// caller's goroutine and Tick runs the clock.
type Manager struct {
	mu      sync.Mutex
	guard   *Guard
	dryRun  bool
	entries map[key]*entry
	file    string
	log     *slog.Logger
	onEvent func(Event)

	queue              *queue
	tickEvery          time.Duration
	retryMin, retryMax time.Duration

	actions  *prometheus.CounterVec
	active   *prometheus.GaugeVec
	failures *prometheus.CounterVec
	pending  prometheus.Gauge
}

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	Safety Config
	// StateFile keeps the actions in force across restarts ("" for none).
	StateFile string
	// Announcer sends routes; nil sends nothing (replay, or no BGP peer).
	// In dry-run it must be a *DryRun (or nil): dry-run never reaches a
	// router, whatever the caller wires.
	Announcer Announcer
	Log       *slog.Logger
	// OnEvent, when set, is called for every event (instead of a log line
	// of the manager's: the receiver renders it), under the manager's
	// lock: it must not call back into the manager.
	OnEvent func(Event)
	// Registerer, when set, receives the manager's metrics.
	Registerer prometheus.Registerer
	// TickInterval is how often Run runs the TTL clock (default 1s).
	TickInterval time.Duration
	// RetryMin and RetryMax bound the back-off between attempts to send
	// again a change the announcer failed (defaults 1s and 1m); Retry
	// tries at once.
	RetryMin, RetryMax time.Duration
}

// NewManager builds a manager; it starts nothing. Call Restore once before
// the first request when a state file is configured, then Run (or, in
// synchronous use, Flush after requests).
func NewManager(cfg ManagerConfig) (*Manager, error) {
	g, err := NewGuard(cfg.Safety)
	if err != nil {
		return nil, err
	}
	if _, ok := cfg.Announcer.(*DryRun); cfg.Safety.DryRun && cfg.Announcer != nil && !ok {
		return nil, fmt.Errorf("%w: dry-run needs the dry-run announcer, got %T", ErrInvalid, cfg.Announcer)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{guard: g, dryRun: cfg.Safety.DryRun, entries: map[key]*entry{}, file: cfg.StateFile,
		log: log.With("component", "mitigate"), onEvent: cfg.OnEvent,
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_mitigation_events_total",
			Help: "Mitigation events by kind and type (announce, withdraw, renew, refused) and, for refusals, reason.",
		}, []string{"kind", "type", "reason"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kapkan_mitigation_active",
			Help: "Mitigations in force by kind; dry_run=\"true\" ones are not announced.",
		}, []string{"kind", "dry_run"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_mitigation_announce_failures_total",
			Help: "Changes the announcer failed to send, by kind and op (announce, withdraw); every attempt counts.",
		}, []string{"kind", "op"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kapkan_mitigation_pending_routes",
			Help: "Changes that failed and wait to be sent again.",
		}),
		tickEvery: cfg.TickInterval, retryMin: cfg.RetryMin, retryMax: cfg.RetryMax,
	}
	if m.tickEvery <= 0 {
		m.tickEvery = time.Second
	}
	if m.retryMin <= 0 {
		m.retryMin = time.Second
	}
	if m.retryMax < m.retryMin {
		m.retryMax = max(time.Minute, m.retryMin)
	}
	for _, k := range []flowspec.Action{flowspec.Blackhole, flowspec.Discard, flowspec.RateLimit} {
		for _, d := range []string{"true", "false"} {
			m.active.WithLabelValues(k.String(), d)
		}
		for _, op := range []string{OpAnnounce, OpWithdraw} {
			m.failures.WithLabelValues(k.String(), op)
		}
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{m.actions, m.active, m.failures, m.pending} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("mitigate: register metrics: %w", err)
			}
		}
	}
	if cfg.Announcer != nil {
		m.queue = &queue{ann: cfg.Announcer, pending: map[string]*pendingOp{}, wake: make(chan struct{}, 1),
			kick: make(chan struct{}, 1), failed: m.failed, recovered: m.recovered}
	}
	return m, nil
}

// Apply carries out a policy decision. An announcement the guard refuses
// is reported as a refused event and returned as an error.
func (m *Manager) Apply(d flowspec.Decision) error {
	kind := d.Action
	if kind == flowspec.None {
		return fmt.Errorf("%w: a decision without an action", ErrInvalid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := key{kind, d.Target.Masked()}
	if !d.Withdraw {
		req := Request{Kind: kind, Target: d.Target, RateMbps: d.RateMbps, Reason: d.Reason}
		return m.admit(req, d.Vector, d.AttackID, d.Ladder, d.Step, d.At)
	}
	e := m.entries[k]
	if e == nil {
		return nil // refused when it was asked for, or already gone
	}
	if kind != flowspec.Blackhole && (e.Match.String() != d.Vector.String() || e.RateMbps != d.RateMbps) {
		// The route this decision names was replaced by another on the
		// same target and action (a new match: the attack was classified
		// again): the one in force is not this decision's to withdraw.
		return nil
	}
	delete(e.owners, d.AttackID)
	if d.Replaced && len(e.owners) == 0 {
		m.guard.Drop(k.kind, k.target)
		m.withdraw(k, e, d.At, d.Reason)
	}
	// An attack that ended leaves its action to the TTL (Tick).
	m.save()
	return nil
}

// Ban is a manual action (API or `kapkan ban`), with the same checks as
// any other. It is withdrawn when its TTL runs out, or by Unban.
func (m *Manager) Ban(req Request, match flowspec.Match, now time.Time) (Action, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if req.Reason == "" {
		req.Reason = "manual"
	}
	if err := m.admit(req, match, 0, "", 0, now); err != nil {
		return Action{}, err
	}
	return m.entries[key{req.Kind, req.Target.Masked()}].Action, nil
}

// Unban withdraws now every action whose target lies inside target (the
// prefix itself and every narrower one: unbanning a /24 lifts the /32s in
// it), whoever asked for it. It reports how many there were. An action on a
// wider prefix that holds target stays: it was not asked about.
func (m *Manager) Unban(target netip.Prefix, now time.Time, reason string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	target = target.Masked()
	n := 0
	for k, e := range m.entries {
		if k.target.Bits() >= target.Bits() && target.Contains(k.target.Addr()) {
			m.withdraw(k, e, now, reason)
			n++
		}
	}
	m.save()
	return n
}

// admit runs a request through the guard; m.mu is held.
func (m *Manager) admit(req Request, match flowspec.Match, attack uint64, ladder string, step int, now time.Time) error {
	k := key{req.Kind, req.Target.Masked()}
	if req.Kind == flowspec.Blackhole {
		match = flowspec.Match{}
	}
	if e, ok := m.entries[k]; ok {
		if attack != 0 {
			e.owners[attack] = true // already in force: never announced twice
		}
		if e.Match.String() != match.String() || (req.Kind == flowspec.RateLimit && e.RateMbps != req.RateMbps) {
			m.replace(e, match, req.RateMbps, attack, ladder, step, now, req.Reason)
		}
		return nil
	}
	a, err := m.guard.Check(req, now)
	if err != nil {
		reason := RefusalReason(err)
		m.actions.WithLabelValues(req.Kind.String(), EventRefused, reason).Inc()
		m.emit(Event{Type: EventRefused, Route: Route{Kind: req.Kind, Target: req.Target, Match: match, RateMbps: req.RateMbps},
			AttackID: attack, Ladder: ladder, Step: step, DryRun: m.dryRun, At: now, Reason: req.Reason, Err: err})
		return err
	}
	e := &entry{Action: a, Match: match, Ladder: ladder, Step: step, attack: attack, owners: map[uint64]bool{}}
	if attack != 0 {
		e.owners[attack] = true
	}
	m.entries[k] = e
	m.announce(e, attack, now, req.Reason)
	m.save()
	return nil
}

// replace changes the match (or rate) of an action in force on the same
// target: the new route is announced before the old one is withdrawn, so
// the target is never left without one, and the action keeps its place in
// the guard (its TTL, the caps). An attack classified again on a larger
// sample asks for this when its better vector keeps the same action.
func (m *Manager) replace(e *entry, match flowspec.Match, rate float64, attack uint64, ladder string, step int, now time.Time, reason string) {
	old := e.route()
	e.Match, e.Ladder, e.Step = match, ladder, step
	if e.Kind == flowspec.RateLimit {
		e.RateMbps = rate
	}
	r := e.route()
	m.actions.WithLabelValues(e.Kind.String(), EventAnnounce, "").Inc()
	m.actions.WithLabelValues(e.Kind.String(), EventWithdraw, "").Inc()
	if m.queue != nil {
		m.queue.push(op{route: r})
		m.queue.push(op{route: old, withdraw: true})
	}
	m.emit(Event{Type: EventAnnounce, Route: r, Action: e.Action, AttackID: attack, Ladder: ladder, Step: step,
		DryRun: e.DryRun, At: now, Reason: reason})
	m.emit(Event{Type: EventWithdraw, Route: old, Action: e.Action, AttackID: attack, Ladder: ladder, Step: step,
		DryRun: e.DryRun, At: now, Reason: "replaced by " + r.Match.String()})
	m.save()
}

func (m *Manager) announce(e *entry, attack uint64, now time.Time, reason string) {
	r := e.route()
	m.actions.WithLabelValues(e.Kind.String(), EventAnnounce, "").Inc()
	m.active.WithLabelValues(e.Kind.String(), fmt.Sprint(e.DryRun)).Inc()
	if m.queue != nil {
		m.queue.push(op{route: r})
	}
	m.emit(Event{Type: EventAnnounce, Route: r, Action: e.Action, AttackID: attack, Ladder: e.Ladder, Step: e.Step,
		DryRun: e.DryRun, At: now, Reason: reason})
}

// withdraw removes an action (m.mu held); one the guard still has is
// released there, counting for flap damping.
func (m *Manager) withdraw(k key, e *entry, now time.Time, reason string) {
	m.guard.Release(k.kind, k.target, now)
	delete(m.entries, k)
	r := e.route()
	m.actions.WithLabelValues(e.Kind.String(), EventWithdraw, "").Inc()
	m.active.WithLabelValues(e.Kind.String(), fmt.Sprint(e.DryRun)).Dec()
	if m.queue != nil {
		m.queue.push(op{route: r, withdraw: true})
	}
	m.emit(Event{Type: EventWithdraw, Route: r, Action: e.Action, AttackID: e.attack, Ladder: e.Ladder, Step: e.Step, DryRun: e.DryRun, At: now, Reason: reason})
}

func (m *Manager) emit(ev Event) {
	if m.onEvent != nil {
		// Handed on: the daemon's event log renders it.
		m.onEvent(ev)
		return
	}
	switch ev.Type {
	case EventRefused:
		m.log.Warn("mitigation refused", "route", ev.Route.Key(), "attack", ev.AttackID, "err", ev.Err)
	case EventFailed:
		m.log.Error("announcer failed", "op", ev.Op, "route", ev.Route.Key(), "attack", ev.AttackID, "err", ev.Err,
			"then", ev.Reason)
	default:
		m.log.Info("mitigation "+ev.Type, "route", ev.Route.Key(), "attack", ev.AttackID, "dry_run", ev.DryRun,
			"expires", ev.Action.Expires.UTC().Format(time.RFC3339), "reason", ev.Reason)
	}
}

// Tick handles the actions whose TTL ran out at now: withdrawn when no
// running attack wants them any more, renewed otherwise.
func (m *Manager) Tick(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	for _, a := range m.guard.Due(now) {
		k := key{a.Kind, a.Target}
		e := m.entries[k]
		if e == nil {
			m.guard.Release(a.Kind, a.Target, now) // cannot happen; keep the two in step
			continue
		}
		changed = true
		if len(e.owners) == 0 {
			m.withdraw(k, e, now, "TTL passed and the attack is over")
			continue
		}
		e.Action, _ = m.guard.Renew(a.Kind, a.Target, now)
		m.actions.WithLabelValues(e.Kind.String(), EventRenew, "").Inc()
		m.emit(Event{Type: EventRenew, Route: e.route(), Action: e.Action, AttackID: e.attack, Ladder: e.Ladder, Step: e.Step, DryRun: e.DryRun,
			At: now, Reason: "TTL passed while the attack runs on"})
	}
	if changed {
		m.save()
	}
}

// Active returns the actions in force, by target then kind.
func (m *Manager) Active() []ActiveAction {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ActiveAction, 0, len(m.entries))
	for _, e := range m.entries {
		out = append(out, e.view())
	}
	slices.SortFunc(out, func(a, b ActiveAction) int {
		if c := a.Target.Addr().Compare(b.Target.Addr()); c != 0 {
			return c
		}
		return int(a.Kind) - int(b.Kind)
	})
	return out
}

// Run sends the queued changes to the announcer and runs the TTL clock
// (Tick every TickInterval) until ctx ends. A change that failed is sent
// again after a back-off that doubles from RetryMin to RetryMax, or at
// once on Retry. When ctx ends, what is still queued stays queued (Flush
// sends it): the speaker stops with the daemon, and the state file keeps
// the actions for the next start.
func (m *Manager) Run(ctx context.Context) error {
	tick := time.NewTicker(m.tickEvery)
	defer tick.Stop()
	q := m.queue
	var wake, kick <-chan struct{}
	if q != nil {
		wake, kick = q.wake, q.kick
	}
	backoff := m.retryMin
	var retry <-chan time.Time // armed while changes are pending
	for {
		left := -1 // unchanged
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			m.Tick(now)
		case <-wake:
			left = m.drain(false)
		case <-kick:
			backoff, retry = m.retryMin, nil
			left = m.drain(true)
		case <-retry:
			retry = nil
			left = m.drain(true)
			backoff = min(2*backoff, m.retryMax)
		}
		switch {
		case left == 0:
			backoff, retry = m.retryMin, nil
		case left > 0 && retry == nil:
			retry = time.After(backoff)
		}
	}
}

// Retry asks Run to send the pending changes now rather than at the end
// of their back-off: the daemon calls it when a BGP session comes back.
// Without Run, the next Flush sends them.
func (m *Manager) Retry() {
	if m.queue != nil {
		select {
		case m.queue.kick <- struct{}{}:
		default:
		}
	}
}

// Flush sends every queued change to the announcer, and tries the pending
// ones once more, before it returns; it works with or without Run (the
// two never send at the same time).
func (m *Manager) Flush() { m.drain(true) }

// Close sends what is still queued (Flush). Routes stay announced until
// the speaker stops.
func (m *Manager) Close() { m.Flush() }

// Pending returns the changes that failed and wait to be sent again:
// routes to announce, and (Withdraw set) routes to withdraw.
func (m *Manager) Pending() []PendingChange {
	if m.queue == nil {
		return nil
	}
	return m.queue.list()
}

func (m *Manager) drain(retry bool) int {
	if m.queue == nil {
		return 0
	}
	n := m.queue.drain(retry)
	m.pending.Set(float64(n))
	return n
}

// failed reports a change the announcer could not make: counted on every
// attempt, reported (event and log) on the first.
func (m *Manager) failed(o op, err error, attempts int, final bool) {
	name := o.name()
	m.failures.WithLabelValues(o.route.Kind.String(), name).Inc()
	if attempts > 1 {
		m.log.Debug("announcer failed again", "op", name, "route", o.route.Key(), "attempts", attempts, "err", err)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ev := Event{Type: EventFailed, Op: name, Route: o.route, DryRun: m.dryRun, At: time.Now(), Err: err,
		Reason: "sent again when the announcer recovers"}
	if final {
		ev.Reason = "rejected: not sent again"
	}
	if e := m.entries[key{o.route.Kind, o.route.Target.Masked()}]; e != nil && e.route().Key() == o.route.Key() {
		ev.Action, ev.AttackID, ev.Ladder, ev.Step = e.Action, e.attack, e.Ladder, e.Step
	}
	m.emit(ev)
}

func (m *Manager) recovered(o op, attempts int) {
	m.log.Info("announcer recovered: change sent", "op", o.name(), "route", o.route.Key(), "failed_attempts", attempts)
}

// RefusalReason is the label of a refusal of the guard (not_protected,
// allowlisted, …), "invalid" for any other error.
func RefusalReason(err error) string {
	for _, e := range []struct {
		err    error
		reason string
	}{{ErrNotProtected, "not_protected"}, {ErrAllowlisted, "allowlisted"}, {ErrPrefixTooShort, "prefix_too_short"},
		{ErrBlackholeCap, "blackhole_cap"}, {ErrFlowSpecCap, "flowspec_cap"}, {ErrRateLimited, "per_minute_cap"}} {
		if errors.Is(err, e.err) {
			return e.reason
		}
	}
	return "invalid"
}

// op is one change for the announcer.
type op struct {
	route    Route
	withdraw bool
}

func (o op) name() string {
	if o.withdraw {
		return OpWithdraw
	}
	return OpAnnounce
}

// PendingChange is a change that failed and waits to be sent again.
type PendingChange struct {
	Route    Route
	Withdraw bool
	// Attempts is how many times it failed.
	Attempts int
}

type pendingOp struct {
	op
	attempts int
	seq      uint64 // order of first failure
}

// queue hands changes to the announcer in order, off the detection path.
// It is unbounded: nothing is dropped (its length is bounded by the caps
// anyway). A change that fails waits in pending, by route key, until it
// goes through or a later change of the same route replaces it.
type queue struct {
	ann Announcer
	// send is held while changes are sent, so that Run and Flush never
	// send at the same time and changes reach the announcer in order.
	send sync.Mutex
	mu   sync.Mutex // ops, pending, seq
	ops  []op
	// pending is written only with send held too.
	pending map[string]*pendingOp
	seq     uint64
	wake    chan struct{} // new changes
	kick    chan struct{} // Retry
	// failed and recovered are called with send held and mu not held.
	failed    func(o op, err error, attempts int, final bool)
	recovered func(o op, attempts int)
}

func (q *queue) push(o op) {
	q.mu.Lock()
	q.ops = append(q.ops, o)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// drain sends the queued changes, after the pending ones when retry is
// set, and returns how many are pending.
func (q *queue) drain(retry bool) int {
	q.send.Lock()
	defer q.send.Unlock()
	q.mu.Lock()
	batch := q.ops
	q.ops = nil
	var again []*pendingOp
	if retry {
		later := map[string]bool{} // replaced by a queued change: not worth sending
		for _, o := range batch {
			later[o.route.Key()] = true
		}
		for k, p := range q.pending {
			if !later[k] {
				again = append(again, p)
			}
		}
		slices.SortFunc(again, func(a, b *pendingOp) int { return int(a.seq) - int(b.seq) })
	}
	q.mu.Unlock()
	for _, p := range again {
		q.try(p.op, p.attempts, p.seq)
	}
	for _, o := range batch {
		var attempts int
		q.mu.Lock()
		if p := q.pending[o.route.Key()]; p != nil && p.withdraw == o.withdraw {
			attempts = p.attempts // the same change again: keep its count
		}
		q.mu.Unlock()
		q.try(o, attempts, 0)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

func (q *queue) try(o op, attempts int, seq uint64) {
	var err error
	if o.withdraw {
		err = q.ann.Withdraw(o.route)
	} else {
		err = q.ann.Announce(o.route)
	}
	k := o.route.Key()
	if err == nil {
		q.mu.Lock()
		delete(q.pending, k)
		q.mu.Unlock()
		if attempts > 0 {
			q.recovered(o, attempts)
		}
		return
	}
	attempts++
	final := errors.Is(err, ErrRejected)
	q.mu.Lock()
	if final {
		delete(q.pending, k)
	} else {
		if seq == 0 {
			q.seq++
			seq = q.seq
		}
		q.pending[k] = &pendingOp{op: o, attempts: attempts, seq: seq}
	}
	q.mu.Unlock()
	q.failed(o, err, attempts, final)
}

func (q *queue) list() []PendingChange {
	q.mu.Lock()
	ps := make([]*pendingOp, 0, len(q.pending))
	for _, p := range q.pending {
		ps = append(ps, p)
	}
	q.mu.Unlock()
	slices.SortFunc(ps, func(a, b *pendingOp) int { return int(a.seq) - int(b.seq) })
	out := make([]PendingChange, len(ps))
	for i, p := range ps {
		out[i] = PendingChange{Route: p.route, Withdraw: p.withdraw, Attempts: p.attempts}
	}
	return out
}
