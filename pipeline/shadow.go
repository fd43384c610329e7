package pipeline

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/mitigate"
	"github.com/kapkan-io/kapkan/policy"
	"github.com/kapkan-io/kapkan/rules"
)

// shadowState is the shadow rule set's view of one attack: its verdict,
// its own ladder state, and the would-be action its ladder put in force.
// Nothing of it is acted on.
type shadowState struct {
	tracker *policy.Tracker
	verdict rules.Verdict
	// set is the shadow set the verdict came from.
	set *rules.Set
	// ladder, step and action are the would-be step in force (action
	// None for none), refused the guard's reason when it refused it.
	ladder  string
	step    int
	action  flowspec.Action
	refused string
}

// newShadow builds the shadow's recording manager and metrics.
func (p *Pipeline) newShadow() error {
	mgr, err := mitigate.NewManager(mitigate.ManagerConfig{Safety: p.deps.ShadowSafety, Log: slog.New(slog.DiscardHandler),
		// No announcer, no state file, no registerer: it records. Its
		// events go nowhere (without OnEvent it would log them as if they
		// were real).
		OnEvent: func(mitigate.Event) {}})
	if err != nil {
		return err
	}
	p.shadowMgr = mgr
	p.shadowVerdicts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kapkan_shadow_verdicts_total",
		Help: "Verdicts of the shadow rule set, by agreement with the active set's (same, different labels or vector).",
	}, []string{"agreement"})
	p.shadowWould = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kapkan_shadow_would_mitigate_total",
		Help: "Mitigations the shadow rule set's ladders would have put in force (never announced), by action and outcome (admitted, or refused by the safety guard).",
	}, []string{"action", "outcome"})
	for _, a := range []string{"same", "different"} {
		p.shadowVerdicts.WithLabelValues(a)
	}
	for _, a := range []flowspec.Action{flowspec.RateLimit, flowspec.Discard, flowspec.Blackhole} {
		for _, o := range []string{"admitted", "refused"} {
			p.shadowWould.WithLabelValues(a.String(), o)
		}
	}
	return nil
}

// ReconfigureShadow gives the shadow's recording manager new safety
// limits (a configuration reload); without a shadow it does nothing.
func (p *Pipeline) ReconfigureShadow(c mitigate.Config, now time.Time) error {
	if p.shadowMgr == nil {
		return nil
	}
	return p.shadowMgr.Reconfigure(c, now)
}

// shadowSet is the running shadow rule set, or nil.
func (p *Pipeline) shadowSet() *rules.Set {
	if p.deps.Shadow == nil {
		return nil
	}
	return p.deps.Shadow()
}

// shadowStart classifies a new attack with the shadow set and starts its
// would-be ladder.
func (p *Pipeline) shadowStart(ctx context.Context, c *engine.Candidate, a *attack, f *rules.Features) {
	set := p.shadowSet()
	if set == nil {
		return
	}
	a.shadow = &shadowState{tracker: policy.New()}
	p.shadowMgr.Tick(c.At)
	p.shadowClassify(ctx, c, a, f)
	s := a.shadow
	ds, err := s.tracker.Start(c, s.verdict, s.set.Ladder(c.Hostgroup, s.verdict.Labels), *f)
	p.shadowApply(c, s, ds, err)
}

// shadowClassify classifies the attack with the running shadow set (the
// features are the active verdict's: computed once).
func (p *Pipeline) shadowClassify(ctx context.Context, c *engine.Candidate, a *attack, f *rules.Features) {
	set := p.shadowSet()
	if set == nil || a.shadow == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Budget)
	defer cancel()
	v, err := set.ClassifyContext(ctx, f)
	if err != nil {
		p.errorsTotal.WithLabelValues("shadow").Inc()
		p.log.Error("shadow classification failed", "id", c.ID, "target", c.Target.String(), "err", err)
	}
	rules.Fallback(f, &v) // as the active verdict: a label, and a vector when one protocol dominates
	a.shadow.verdict, a.shadow.set = v, set
	agreement := "same"
	if !sameVerdict(&v, &a.verdict) {
		agreement = "different"
	}
	p.shadowVerdicts.WithLabelValues(agreement).Inc()
}

// shadowReclassify follows the active verdict's re-classification.
func (p *Pipeline) shadowReclassify(ctx context.Context, c *engine.Candidate, a *attack, f *rules.Features) {
	s := a.shadow
	if s == nil || p.shadowSet() == nil {
		return
	}
	p.shadowMgr.Tick(c.At)
	before := s.verdict
	p.shadowClassify(ctx, c, a, f)
	if sameVerdict(&before, &s.verdict) {
		return
	}
	ds, err := s.tracker.Reclassify(c, s.verdict, s.set.Ladder(c.Hostgroup, s.verdict.Labels), *f)
	p.shadowApply(c, s, ds, err)
}

func (p *Pipeline) shadowUpdate(c *engine.Candidate, a *attack) {
	if s := a.shadow; s != nil {
		p.shadowMgr.Tick(c.At)
		ds, err := s.tracker.Update(c)
		p.shadowApply(c, s, ds, err)
	}
}

// shadowEnd ends the would-be ladder; the would-be action is kept in the
// attack's record.
func (p *Pipeline) shadowEnd(c *engine.Candidate, a *attack) {
	if s := a.shadow; s != nil {
		p.shadowMgr.Tick(c.At)
		for _, d := range s.tracker.End(c) {
			_ = p.shadowMgr.Apply(d)
		}
	}
}

// shadowApply hands the shadow's decisions to its recording manager and
// keeps what it would have put in force.
func (p *Pipeline) shadowApply(c *engine.Candidate, s *shadowState, ds []flowspec.Decision, err error) {
	if err != nil {
		p.errorsTotal.WithLabelValues("shadow").Inc()
		p.log.Error("shadow escalation policy failed", "id", c.ID, "target", c.Target.String(), "err", err)
	}
	for _, d := range ds {
		err := p.shadowMgr.Apply(d)
		if d.Withdraw {
			continue
		}
		outcome := "admitted"
		s.ladder, s.step, s.action, s.refused = d.Ladder, d.Step, d.Action, ""
		if err != nil {
			outcome, s.refused = "refused", mitigate.RefusalReason(err)
		}
		p.shadowWould.WithLabelValues(d.Action.String(), outcome).Inc()
	}
}

// shadowView is the shadow's record as the attack's events carry it (a
// fresh value each time), or nil.
func (a *attack) shadowView() *events.Shadow {
	s := a.shadow
	if s == nil {
		return nil
	}
	v := &events.Shadow{Labels: s.verdict.Labels, Vector: s.verdict.Vector, Rules: s.verdict.Rules, Decider: s.verdict.Decider,
		Ladder: s.ladder, Step: s.step, Action: s.action, Refused: s.refused}
	if s.action == flowspec.None {
		v.Why = s.tracker.Why(a.id)
	}
	v.Differs = !sameVerdict(&s.verdict, &a.verdict) || s.action != a.step.Action
	return v
}

func sameVerdict(a, b *rules.Verdict) bool {
	return slices.Equal(a.Labels, b.Labels) && a.Vector.String() == b.Vector.String()
}
