// Package pipeline is the stage after the engine, written once: it takes
// the engine's attack candidates, computes what classifiers see, classifies
// each attack with the running rule set (again while the verdict stood on a
// small flow sample), follows it on its ladder or code policy, hands the
// decisions to mitigate and publishes what happened as events. `kapkan
// run`, `kapkan replay` and `kapkan test` all use it: none keeps a copy.
//
// Attacks are handled concurrently, up to a bound: each attack has its own
// queue, drained in order by one goroutine at a time, so an attack's events
// keep their order (started → updated → ended, a ladder step never before
// its attack's start) while a slow classification holds up no other attack,
// and its own only for the classification budget.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/mitigate"
	"github.com/kapkan-io/kapkan/policy"
	"github.com/kapkan-io/kapkan/rules"
)

// Publisher receives what the pipeline decided (events.Ring).
type Publisher interface {
	Publish(events.Event) uint64
}

// Mitigator carries out decisions (mitigate.Manager): it applies the safety
// model and reports refusals itself, as events.
type Mitigator interface {
	Apply(flowspec.Decision) error
}

// Config tunes the stage.
type Config struct {
	// Workers is how many attacks are handled at once (default 64): the
	// bound on concurrent classifications. WASM modules are bounded again
	// by their instances, and waiting for one counts in the budget.
	Workers int
	// Budget bounds the classification of one attack, every module call
	// included (default 500ms). Expr rules answer even when it is spent.
	Budget time.Duration
	// MinSample is the number of flow records from which a verdict is
	// final (default 64). Below it, the attack is classified again with
	// each update (whose sample has grown) until the verdict holds twice in
	// a row or the sample is large enough.
	MinSample int
	// QueueSize is how many candidates may wait per attack (default 16).
	// Beyond it the oldest waiting rate update is dropped (counted): a
	// later one carries newer rates. Starts and ends are never dropped.
	QueueSize int
	// Window is the engine's detection window, named in each verdict's
	// explanation (0: not named).
	Window time.Duration
}

// OfflineBudget is the classification budget of replay and rule tests,
// which are clocked by their data and judged on their verdicts: long
// enough that a busy machine never changes a verdict (a module over the
// live budget is reported by the daemon, not by a replay).
const OfflineBudget = 30 * time.Second

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = 64
	}
	if c.Budget <= 0 {
		c.Budget = 500 * time.Millisecond
	}
	if c.MinSample <= 0 {
		c.MinSample = 64
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 16
	}
}

// Deps are the stage's collaborators.
type Deps struct {
	// Rules returns the running rule set (it changes on reload).
	Rules func() *rules.Set
	// Mitigator, when set, receives every decision; without one decisions
	// are only published.
	Mitigator Mitigator
	// Events receives every event; required.
	Events Publisher
	// Log gets errors that are not events (nil: discarded).
	Log *slog.Logger
	// Registerer receives the stage's metrics (nil: not registered).
	Registerer prometheus.Registerer
	// OnSample, when set, is handed each attack's raw flow sample at its
	// start and its end (the history keeps them for forensics); it must
	// not block, and must not change the records.
	OnSample func(attackID uint64, taken time.Time, recs []flow.Record)
	// Shadow, when set, returns the shadow rule set (nil while there is
	// none): every attack is classified with it too and followed on its
	// ladder against a mitigation manager of its own that announces
	// nothing. What it says and would do is recorded in the attack's
	// events (Attack.Shadow) and metrics; no decision of it reaches
	// Mitigator, and it publishes no event of its own.
	Shadow func() *rules.Set
	// ShadowSafety is the safety model the shadow's would-be mitigations
	// are checked against (the active one's, so that a refusal shows).
	ShadowSafety mitigate.Config
}

// Pipeline is the verdict path.
type Pipeline struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	sem  chan struct{} // one slot per attack being handled

	mu      sync.Mutex
	attacks map[uint64]*attack

	candidates   *prometheus.CounterVec
	errorsTotal  *prometheus.CounterVec
	dropped      prometheus.Counter
	reclassified prometheus.Counter
	noAction     prometheus.Counter
	classifySecs prometheus.Histogram

	// shadowMgr records the shadow set's would-be mitigations: it has no
	// announcer, no state file and no event sink.
	shadowMgr      *mitigate.Manager
	shadowVerdicts *prometheus.CounterVec
	shadowWould    *prometheus.CounterVec
}

// attack is what the pipeline keeps of a running attack. Its candidates
// are handled by one goroutine at a time.
type attack struct {
	// queue and running are guarded by Pipeline.mu.
	queue   []engine.Candidate
	running bool

	tracker *policy.Tracker
	verdict rules.Verdict
	// records is the size of the sample the verdict stood on, sample its
	// summary.
	records int
	sample  *events.SampleSummary
	// final: the verdict is not made again.
	final bool
	// unmitigated is the reason published for having no action in force
	// ("" while one is).
	unmitigated string

	// trace explains the verdict, step the ladder step in force (Action
	// None for none) with why it was taken or why there is none.
	trace rules.Trace
	step  events.Explain
	// shadow is the shadow rule set's view of the attack (nil without one).
	shadow *shadowState
	id     uint64
	window string // the detection window, for the explanation
}

// New builds the stage; it starts nothing.
func New(cfg Config, deps Deps) (*Pipeline, error) {
	cfg.defaults()
	if deps.Rules == nil || deps.Events == nil {
		return nil, errors.New("pipeline: Rules and Events are required")
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{cfg: cfg, deps: deps, log: log.With("component", "pipeline"),
		candidates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_pipeline_candidates_total",
			Help: "Attack candidates handled, by kind (started, updated, cooling, ended).",
		}, []string{"kind"}),
		errorsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_pipeline_errors_total",
			Help: "Errors of the verdict path by stage (classify, policy); the attack goes on with what the other rules said.",
		}, []string{"stage"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kapkan_pipeline_dropped_updates_total",
			Help: "Rate updates dropped because their worker's queue was full (starts and ends are never dropped).",
		}),
		reclassified: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kapkan_pipeline_reclassified_total",
			Help: "Verdicts that changed when an attack was classified again on a larger flow sample.",
		}),
		noAction: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kapkan_pipeline_unmitigated_total",
			Help: "Attacks detected with no action in force, each with its reason as an event.",
		}),
		classifySecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kapkan_pipeline_classify_seconds",
			Help:    "Time to classify one attack, every rule and module included.",
			Buckets: []float64{0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2},
		}),
	}
	for _, k := range []string{"started", "updated", "cooling", "ended"} {
		p.candidates.WithLabelValues(k)
	}
	for _, s := range []string{"classify", "policy", "shadow"} {
		p.errorsTotal.WithLabelValues(s)
	}
	collectors := []prometheus.Collector{p.candidates, p.errorsTotal, p.dropped, p.reclassified, p.noAction, p.classifySecs}
	if deps.Shadow != nil {
		if err := p.newShadow(); err != nil {
			return nil, err
		}
		collectors = append(collectors, p.shadowVerdicts, p.shadowWould)
	}
	if r := deps.Registerer; r != nil {
		for _, c := range collectors {
			if err := r.Register(c); err != nil {
				return nil, err
			}
		}
	}
	p.sem = make(chan struct{}, cfg.Workers)
	p.attacks = map[uint64]*attack{}
	return p, nil
}

// Handle runs one candidate through the stage in the caller's goroutine
// (replay and rule tests, which are clocked by their data). Do not mix it
// with Run.
func (p *Pipeline) Handle(ctx context.Context, c *engine.Candidate) {
	p.handle(ctx, p.attackOf(c), c)
}

// attackOf returns the state of c's attack, made at its start.
func (p *Pipeline) attackOf(c *engine.Candidate) *attack {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.attacks[c.ID]
	if a == nil {
		a = &attack{tracker: policy.New(), id: c.ID}
		if p.cfg.Window > 0 {
			a.window = p.cfg.Window.String()
		}
		p.attacks[c.ID] = a
	}
	return a
}

// Run handles the candidates of in until ctx ends or in is closed.
func (p *Pipeline) Run(ctx context.Context, in <-chan engine.Candidate) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case c, ok := <-in:
			if !ok {
				return nil
			}
			p.dispatch(ctx, &wg, c)
		}
	}
}

// dispatch queues a candidate on its attack and starts the attack's
// goroutine when none runs. A rate update replaces one still waiting.
func (p *Pipeline) dispatch(ctx context.Context, wg *sync.WaitGroup, c engine.Candidate) {
	a := p.attackOf(&c)
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(a.queue); c.Kind == engine.AttackUpdated && n > 0 && a.queue[n-1].Kind == engine.AttackUpdated {
		a.queue[n-1] = c // latest wins
		p.dropped.Inc()
	} else if n >= p.cfg.QueueSize && c.Kind == engine.AttackUpdated {
		p.dropped.Inc()
	} else {
		a.queue = append(a.queue, c)
	}
	if a.running {
		return
	}
	a.running = true
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.drain(ctx, a)
	}()
}

// drain handles an attack's queue, holding one of the Workers slots.
func (p *Pipeline) drain(ctx context.Context, a *attack) {
	select {
	case p.sem <- struct{}{}:
		defer func() { <-p.sem }()
	case <-ctx.Done():
		p.mu.Lock()
		a.running = false
		p.mu.Unlock()
		return
	}
	for {
		p.mu.Lock()
		if len(a.queue) == 0 || ctx.Err() != nil {
			a.running = false
			p.mu.Unlock()
			return
		}
		c := a.queue[0]
		a.queue = a.queue[1:]
		p.mu.Unlock()
		p.handle(ctx, a, &c)
	}
}

func (p *Pipeline) handle(ctx context.Context, a *attack, c *engine.Candidate) {
	p.candidates.WithLabelValues(c.Kind.String()).Inc()
	switch c.Kind {
	case engine.AttackStarted:
		set := p.deps.Rules()
		f := p.classify(ctx, set, c, a)
		a.final = a.records >= p.cfg.MinSample
		// The ladder's first step is decided before the start is published
		// so that the start explains it; it is applied after.
		ds, err := a.tracker.Start(c, a.verdict, set.Ladder(c.Hostgroup, a.verdict.Labels), f)
		a.noteSteps(c.ID, ds)
		p.shadowStart(ctx, c, a, &f)
		p.publish(attackEvent(events.AttackStarted, c, a))
		p.sample(c)
		p.apply(c, a, ds, err)
		p.sayWhy(c, a)
	case engine.AttackUpdated:
		if !a.final && len(c.Sample) > a.records {
			p.reclassify(ctx, c, a)
		}
		ds, err := a.tracker.Update(c)
		a.noteSteps(c.ID, ds)
		p.shadowUpdate(c, a)
		p.publish(attackEvent(events.AttackUpdated, c, a))
		p.apply(c, a, ds, err)
		p.sayWhy(c, a)
	case engine.AttackEnded:
		p.mu.Lock()
		delete(p.attacks, c.ID)
		p.mu.Unlock()
		if !a.final && len(c.Sample) > a.records {
			// The end's sample is the largest the attack had.
			f := p.classify(ctx, p.deps.Rules(), c, a)
			p.shadowClassify(ctx, c, a, &f)
		}
		p.shadowEnd(c, a)
		p.publish(attackEvent(events.AttackEnded, c, a))
		p.sample(c)
		p.apply(c, a, a.tracker.End(c), nil)
	}
}

// reclassify classifies a running attack again on its grown sample; a
// better verdict restarts its ladder.
func (p *Pipeline) reclassify(ctx context.Context, c *engine.Candidate, a *attack) {
	before := a.verdict
	set := p.deps.Rules()
	f := p.classify(ctx, set, c, a)
	p.shadowReclassify(ctx, c, a, &f)
	same := sameVerdict(&before, &a.verdict)
	if same || a.records >= p.cfg.MinSample {
		a.final = true
	}
	if same {
		return
	}
	p.reclassified.Inc()
	ds, err := a.tracker.Reclassify(c, a.verdict, set.Ladder(c.Hostgroup, a.verdict.Labels), f)
	a.noteSteps(c.ID, ds)
	p.apply(c, a, ds, err)
}

// classify computes the features of c and classifies them within the
// budget, filling a's verdict. An error counts; the verdict is what the
// rules that answered said.
func (p *Pipeline) classify(ctx context.Context, set *rules.Set, c *engine.Candidate, a *attack) rules.Features {
	f := rules.Compute(c)
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Budget)
	defer cancel()
	start := time.Now()
	v, err := set.ClassifyContext(ctx, &f)
	p.classifySecs.Observe(time.Since(start).Seconds())
	if err != nil {
		p.errorsTotal.WithLabelValues("classify").Inc()
		p.log.Error("classification failed; the attack goes on with what the other rules said", "id", c.ID, "target", c.Target.String(), "err", err)
	}
	rules.Fallback(&f, &v) // every attack has a label, and a vector when one protocol dominates
	a.verdict, a.records = v, len(c.Sample)
	a.sample = sampleSummary(c, &f)
	// Once per verdict: about one more evaluation of the expr rules
	// (BenchmarkClassify/explain), a hundredth of computing the features.
	a.trace = set.Explain(&f, &a.verdict)
	return f
}

// apply hands decisions to the mitigator; the mitigator publishes what it
// did (announce, withdraw, refusal). A policy error leaves the attack's
// mitigation as it is.
func (p *Pipeline) apply(c *engine.Candidate, a *attack, ds []flowspec.Decision, err error) {
	if err != nil {
		p.errorsTotal.WithLabelValues("policy").Inc()
		p.log.Error("escalation policy failed; the attack keeps its current mitigation", "id", c.ID, "target", c.Target.String(), "err", err)
	}
	for _, d := range ds {
		if !d.Withdraw && !d.Replaced && d.Step > 1 {
			p.publish(escalationEvent(c, &d, a))
		}
		if p.deps.Mitigator != nil {
			_ = p.deps.Mitigator.Apply(d) // refusals are the mitigator's events
		}
	}
}

// sayWhy publishes, once per reason, why an attack has no action in force.
func (p *Pipeline) sayWhy(c *engine.Candidate, a *attack) {
	why := a.tracker.Why(c.ID)
	if why != "" {
		a.step.Why = why
	}
	if why == "" || why == a.unmitigated {
		if why == "" {
			a.unmitigated = ""
		}
		return
	}
	if a.unmitigated == "" {
		p.noAction.Inc()
	}
	a.unmitigated = why
	p.publish(events.Event{Kind: events.MitigationNone, At: c.At,
		Mitigation: &events.Mitigation{AttackID: c.ID, Target: c.Target, Reason: why}})
}

func (p *Pipeline) publish(e events.Event) { p.deps.Events.Publish(e) }

// sample hands the candidate's raw flow sample (a copy the engine made for
// it) to OnSample.
func (p *Pipeline) sample(c *engine.Candidate) {
	if p.deps.OnSample != nil && len(c.Sample) > 0 {
		p.deps.OnSample(c.ID, c.At, c.Sample)
	}
}

// MetricValue is a rate in the unit thresholds use (Mbps for byte metrics),
// rounded to a thousandth.
func MetricValue(m engine.Metric, v uint64) float64 {
	if m.IsBytes() {
		return math.Round(engine.Mbps(v)*1000) / 1000
	}
	return float64(v)
}

// RatesMap is rates by metric name, the totals always and the
// per-protocol ones when not zero.
func RatesMap(r engine.Rates) map[string]float64 {
	out := make(map[string]float64, engine.NumMetrics)
	for m := range engine.NumMetrics {
		if r[m] != 0 || m < 3 {
			out[m.String()] = MetricValue(m, r[m])
		}
	}
	return out
}

func attackEvent(kind events.Kind, c *engine.Candidate, a *attack) events.Event {
	v := &a.verdict
	e := &events.Attack{
		ID: c.ID, Target: c.Target, Scope: c.Scope.String(), Direction: c.Direction.String(), Hostgroup: c.Hostgroup,
		Started: c.Started, Trigger: c.Trigger.String(), Rate: MetricValue(c.Trigger, c.Rate),
		Threshold: MetricValue(c.Trigger, c.Threshold), Rates: RatesMap(c.Rates), SampleRecords: a.records,
		Labels: v.Labels, Vector: v.Vector, Rules: v.Rules, Decider: v.Decider, Sample: a.sample,
		Explain: a.explain(), Shadow: a.shadowView(),
	}
	for _, u := range v.Unanswered {
		e.Skipped = append(e.Skipped, u.Rule+" ("+u.Reason+")")
	}
	if kind == events.AttackEnded {
		e.Ended = c.At
		e.Peak = RatesMap(c.Peak)
	}
	return events.Event{Kind: kind, At: c.At, Attack: e}
}

// escalationEvent is the attack as attackEvent tells it, with the step
// the ladder or policy moved to: every consumer (the API's index, the
// store, notifiers) sees the whole attack, verdict included.
func escalationEvent(c *engine.Candidate, d *flowspec.Decision, a *attack) events.Event {
	e := attackEvent(events.AttackEscalated, c, a)
	e.At = d.At
	x := e.Attack
	x.Ladder, x.Step, x.Action, x.Vector, x.Reason = d.Ladder, d.Step, d.Action, d.Vector, fmt.Sprint(d.Reason)
	return e
}
