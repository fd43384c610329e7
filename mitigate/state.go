package mitigate

import (
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

// Event is a change of the mitigations in force, or a refusal.
type Event struct {
	// Type is announce, withdraw, renew or refused.
	Type   string
	Route  Route
	Action Action
	// AttackID is the attack the change is for (0: manual or the TTL).
	AttackID uint64
	Ladder   string
	Step     int
	DryRun   bool
	At       time.Time
	Reason   string
	// Err says why a request was refused.
	Err error
}

// Event types.
const (
	EventAnnounce = "announce"
	EventWithdraw = "withdraw"
	EventRenew    = "renew"
	EventRefused  = "refused"
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
// what passes is announced through the Announcer (unless in dry-run) by a
// worker off the detection path, in order, and the state is written to a
// file so that a restart announces it again. It is safe for concurrent use.
type Manager struct {
	mu      sync.Mutex
	guard   *Guard
	dryRun  bool
	entries map[key]*entry
	file    string
	log     *slog.Logger
	onEvent func(Event)

	queue *queue

	actions *prometheus.CounterVec
	active  *prometheus.GaugeVec
}

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	Safety Config
	// StateFile keeps the actions in force across restarts ("" for none).
	StateFile string
	// Announcer sends routes; nil sends nothing (replay, or no BGP peer).
	Announcer Announcer
	Log       *slog.Logger
	// OnEvent, when set, is called for every event, under the manager's
	// lock: it must not call back into the manager.
	OnEvent func(Event)
	// Registerer, when set, receives the manager's metrics.
	Registerer prometheus.Registerer
}

// NewManager builds a manager. Call Restore once before the first request
// when a state file is configured, and Close at the end.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	g, err := NewGuard(cfg.Safety)
	if err != nil {
		return nil, err
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
	}
	for _, k := range []flowspec.Action{flowspec.Blackhole, flowspec.Discard, flowspec.RateLimit} {
		for _, d := range []string{"true", "false"} {
			m.active.WithLabelValues(k.String(), d)
		}
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(m.actions); err != nil {
			return nil, err
		}
		if err := cfg.Registerer.Register(m.active); err != nil {
			return nil, err
		}
	}
	if cfg.Announcer != nil {
		m.queue = newQueue(cfg.Announcer, m.log)
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

// Unban withdraws every action on target now, whoever asked for it. It
// reports how many there were.
func (m *Manager) Unban(target netip.Prefix, now time.Time, reason string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k, e := range m.entries {
		if k.target == target.Masked() {
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
	if e, ok := m.entries[k]; ok {
		if attack != 0 {
			e.owners[attack] = true // already in force: never announced twice
		}
		return nil
	}
	if req.Kind == flowspec.Blackhole {
		match = flowspec.Match{}
	}
	a, err := m.guard.Check(req, now)
	if err != nil {
		reason := refusalReason(err)
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

func (m *Manager) announce(e *entry, attack uint64, now time.Time, reason string) {
	r := e.route()
	m.actions.WithLabelValues(e.Kind.String(), EventAnnounce, "").Inc()
	m.active.WithLabelValues(e.Kind.String(), fmt.Sprint(e.DryRun)).Inc()
	if !e.DryRun && m.queue != nil {
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
	if !e.DryRun && m.queue != nil {
		m.queue.push(op{route: r, withdraw: true})
	}
	m.emit(Event{Type: EventWithdraw, Route: r, Action: e.Action, AttackID: e.attack, Ladder: e.Ladder, Step: e.Step, DryRun: e.DryRun, At: now, Reason: reason})
}

func (m *Manager) emit(ev Event) {
	if ev.Type == EventRefused {
		m.log.Warn("mitigation refused", "route", ev.Route.Key(), "attack", ev.AttackID, "err", ev.Err)
	} else {
		m.log.Info("mitigation "+ev.Type, "route", ev.Route.Key(), "attack", ev.AttackID, "dry_run", ev.DryRun,
			"expires", ev.Action.Expires.UTC().Format(time.RFC3339), "reason", ev.Reason)
	}
	if m.onEvent != nil {
		m.onEvent(ev)
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

// Flush waits until every queued announcement and withdrawal was handed to
// the announcer.
func (m *Manager) Flush() {
	if m.queue != nil {
		m.queue.flush()
	}
}

// Close flushes the queue and stops its worker. Routes stay announced
// until the speaker stops.
func (m *Manager) Close() {
	if m.queue != nil {
		m.queue.close()
	}
}

func refusalReason(err error) string {
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

// queue hands changes to the announcer from one worker, in order, so that
// a slow BGP speaker never holds up detection. It is unbounded: nothing is
// dropped (its length is bounded by the caps anyway).
type queue struct {
	ann  Announcer
	log  *slog.Logger
	mu   sync.Mutex
	cond *sync.Cond
	ops  []op
	busy bool
	done bool
	wg   sync.WaitGroup
}

func newQueue(a Announcer, log *slog.Logger) *queue {
	q := &queue{ann: a, log: log}
	q.cond = sync.NewCond(&q.mu)
	q.wg.Add(1)
	go q.run()
	return q
}

func (q *queue) push(o op) {
	q.mu.Lock()
	q.ops = append(q.ops, o)
	q.mu.Unlock()
	q.cond.Broadcast()
}

func (q *queue) run() {
	defer q.wg.Done()
	q.mu.Lock()
	for {
		for len(q.ops) == 0 && !q.done {
			q.cond.Wait()
		}
		if len(q.ops) == 0 && q.done {
			q.mu.Unlock()
			return
		}
		batch := q.ops
		q.ops = nil
		q.busy = true
		q.mu.Unlock()
		for _, o := range batch {
			var err error
			if o.withdraw {
				err = q.ann.Withdraw(o.route)
			} else {
				err = q.ann.Announce(o.route)
			}
			if err != nil {
				q.log.Error("announcer", "route", o.route.Key(), "withdraw", o.withdraw, "err", err)
			}
		}
		q.mu.Lock()
		q.busy = false
		q.cond.Broadcast()
	}
}

func (q *queue) flush() {
	q.mu.Lock()
	for len(q.ops) > 0 || q.busy {
		q.cond.Wait()
	}
	q.mu.Unlock()
}

func (q *queue) close() {
	q.mu.Lock()
	q.done = true
	q.mu.Unlock()
	q.cond.Broadcast()
	q.wg.Wait()
}
