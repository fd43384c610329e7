// Package policy owns the escalation state of each attack: which step of
// its ladder it is on and since when. It turns attack lifecycle events into
// mitigation decisions; every safety check happens downstream, in mitigate.
package policy

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/rules"
)

type state struct {
	ladder *rules.Ladder
	labels []string
	step   int // index into ladder.Steps; -1 before the first (ladders of steps)
	// What a code policy (ladder.Policy) put in force, and how many
	// changes it made.
	action   flowspec.Action
	rate     float64
	changes  int
	since    time.Time
	target   netip.Prefix
	vector   flowspec.Match
	features rules.Features
	// carried is an action still in force from before a re-classification
	// whose new ladder had nothing in force yet.
	carried *flowspec.Decision
}

// Tracker follows the ladders of every active attack. It is used by one
// goroutine.
type Tracker struct {
	attacks map[uint64]*state
}

// New returns an empty tracker.
func New() *Tracker { return &Tracker{attacks: map[uint64]*state{}} }

// usable reports whether step i can act on this attack: FlowSpec needs a
// vector to match.
func (s *state) usable(i int) bool {
	a := s.ladder.Steps[i].Action
	return a == flowspec.Blackhole || !s.vector.IsZero()
}

func (s *state) decision(id uint64, withdraw bool, at time.Time, reason string) flowspec.Decision {
	st := s.ladder.Steps[s.step]
	d := flowspec.Decision{AttackID: id, Target: s.target, Ladder: s.ladder.Name, Step: s.step + 1, Action: st.Action,
		RateMbps: st.RateMbps, Withdraw: withdraw, At: at, Reason: reason}
	if st.Action != flowspec.Blackhole {
		d.Vector = s.vector
	}
	return d
}

// Start begins following an attack on its ladder: the first step that can
// act and whose condition holds is announced.
func (t *Tracker) Start(c *engine.Candidate, v rules.Verdict, l *rules.Ladder, f rules.Features) ([]flowspec.Decision, error) {
	return t.start(c.ID, c.Target, v, l, f, c.Started, "attack detected")
}

func (t *Tracker) start(id uint64, target netip.Prefix, v rules.Verdict, l *rules.Ladder, f rules.Features, at time.Time, reason string) ([]flowspec.Decision, error) {
	if l == nil {
		return nil, nil
	}
	s := &state{ladder: l, labels: v.Labels, step: -1, target: target, vector: v.Vector, features: f, since: at}
	t.attacks[id] = s
	if l.Policy != nil {
		return t.decide(id, s, at)
	}
	return t.stepUp(id, s, at, reason)
}

// Reclassify follows an attack from a better verdict (one that stood on a
// larger flow sample): its ladder starts again from the new verdict, and
// what was in force under the old one is withdrawn once the new action is
// announced, unless the new action is the same. Hold times start again.
func (t *Tracker) Reclassify(c *engine.Candidate, v rules.Verdict, l *rules.Ladder, f rules.Features) ([]flowspec.Decision, error) {
	var old *flowspec.Decision
	if s := t.attacks[c.ID]; s != nil {
		old = s.inForce(c.ID, c.At)
		f.SetRates(c.Trigger, c.Threshold, c.Rates)
	}
	delete(t.attacks, c.ID)
	ds, err := t.start(c.ID, c.Target, v, l, f, c.At, "attack classified again")
	if err != nil || old == nil {
		return ds, err
	}
	if len(ds) > 0 && sameAction(&ds[0], old) {
		// The same action stays in force: nothing to send. Keep the step
		// numbering of the new ladder.
		return ds[1:], nil
	}
	if len(ds) == 0 {
		// Nothing applies yet under the new verdict: the old action stays
		// until the attack ends rather than leave a gap.
		t.keep(c.ID, old)
		return nil, nil
	}
	old.Withdraw, old.Replaced, old.At, old.Reason = true, true, c.At, "attack classified again"
	return append(ds, *old), nil
}

func sameAction(a, b *flowspec.Decision) bool {
	return a.Action == b.Action && a.RateMbps == b.RateMbps && a.Target == b.Target && a.Vector.String() == b.Vector.String()
}

// inForce returns the decision that put the attack's current action in
// force, or nil.
func (s *state) inForce(id uint64, at time.Time) *flowspec.Decision {
	switch {
	case s.ladder.Policy != nil && s.action != flowspec.None:
		d := s.policyDecision(id, s.action, s.rate, false, at, "")
		return &d
	case s.ladder.Policy == nil && s.step >= 0:
		d := s.decision(id, false, at, "")
		return &d
	}
	return nil
}

// keep remembers, for an attack whose new ladder has nothing in force yet,
// the action still in force from before, so that its end withdraws it.
func (t *Tracker) keep(id uint64, d *flowspec.Decision) {
	if s := t.attacks[id]; s != nil {
		s.carried = d
		return
	}
	t.attacks[id] = &state{carried: d, step: -1}
}

// Why says why an attack has no action in force ("" when it has one): no
// ladder applies, or what its next step waits for.
func (t *Tracker) Why(id uint64) string {
	s := t.attacks[id]
	switch {
	case s == nil || s.ladder == nil:
		return "no ladder applies to the attack's hostgroup and labels"
	case s.carried != nil || s.inForce(id, time.Time{}) != nil:
		return ""
	case s.ladder.Policy != nil:
		return "policy " + s.ladder.Name + " decided no action"
	}
	for i := s.step + 1; i < len(s.ladder.Steps); i++ {
		st := &s.ladder.Steps[i]
		if !s.usable(i) {
			continue
		}
		if st.When != "" {
			return fmt.Sprintf("ladder %s: step %d (%s) waits for its condition %q", s.ladder.Name, i+1, st.Action, st.When)
		}
	}
	return fmt.Sprintf("ladder %s: no step can act (its FlowSpec steps need a vector, and the attack has none)", s.ladder.Name)
}

// stepUp moves to the next step that can act and whose condition holds,
// announcing it before withdrawing the previous one so there is no gap.
func (t *Tracker) stepUp(id uint64, s *state, at time.Time, reason string) ([]flowspec.Decision, error) {
	for next := s.step + 1; next < len(s.ladder.Steps); next++ {
		if !s.usable(next) {
			continue
		}
		ok, err := s.ladder.Steps[next].Ready(&s.features)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, nil // wait: its condition may hold later
		}
		var out []flowspec.Decision
		prev := s.step
		s.step, s.since = next, at
		out = append(out, s.decision(id, false, at, reason))
		if prev >= 0 {
			cur := s.step
			s.step = prev
			w := s.decision(id, true, at, "replaced by step "+strconv.Itoa(cur+1))
			w.Replaced = true
			out = append(out, w)
			s.step = cur
		}
		return out, nil
	}
	return nil, nil
}

// Update feeds the live rates of an attack: once the current step's hold
// time has passed, the next step follows if its condition holds.
func (t *Tracker) Update(c *engine.Candidate) ([]flowspec.Decision, error) {
	s := t.attacks[c.ID]
	if s == nil || s.ladder == nil {
		return nil, nil
	}
	s.features.SetRates(c.Trigger, c.Threshold, c.Rates)
	ds, err := t.update(c, s)
	if s.carried != nil && len(ds) > 0 && !ds[0].Withdraw {
		// The new ladder acts: what was carried over from before the
		// attack was classified again goes.
		d := *s.carried
		d.Withdraw, d.Replaced, d.At, d.Reason = true, true, c.At, "replaced by step "+strconv.Itoa(ds[0].Step)
		s.carried = nil
		ds = append(ds, d)
	}
	return ds, err
}

func (t *Tracker) update(c *engine.Candidate, s *state) ([]flowspec.Decision, error) {
	if s.ladder.Policy != nil {
		return t.decide(c.ID, s, c.At)
	}
	if s.step >= 0 && c.At.Sub(s.since) < s.ladder.Steps[s.step].Hold {
		return nil, nil
	}
	if s.step == -1 || s.step < len(s.ladder.Steps)-1 {
		return t.stepUp(c.ID, s, c.At, "hold time passed")
	}
	return nil, nil
}

// End withdraws whatever step an attack is on.
func (t *Tracker) End(c *engine.Candidate) []flowspec.Decision {
	s := t.attacks[c.ID]
	delete(t.attacks, c.ID)
	if s == nil {
		return nil
	}
	if s.carried != nil {
		d := *s.carried
		d.Withdraw, d.At, d.Reason = true, c.At, "attack ended"
		if s.ladder == nil || s.inForce(c.ID, c.At) == nil {
			return []flowspec.Decision{d}
		}
		return append(t.endState(c, s), d)
	}
	return t.endState(c, s)
}

func (t *Tracker) endState(c *engine.Candidate, s *state) []flowspec.Decision {
	if s.ladder == nil {
		return nil
	}
	if s.ladder.Policy != nil {
		if s.action == flowspec.None {
			return nil
		}
		return []flowspec.Decision{s.policyDecision(c.ID, s.action, s.rate, true, c.At, "attack ended")}
	}
	if s.step < 0 {
		return nil
	}
	return []flowspec.Decision{s.decision(c.ID, true, c.At, "attack ended")}
}

// decide asks a code policy which action the attack should be under and
// turns a change into decisions: the new action announced before the old
// one is withdrawn. An error leaves the attack as it is.
func (t *Tracker) decide(id uint64, s *state, at time.Time) ([]flowspec.Decision, error) {
	in := rules.PolicyInput{Features: &s.features, Labels: s.labels, Vector: s.vector,
		Current: s.action, RateMbps: s.rate, Since: at.Sub(s.since)}
	d, err := s.ladder.Policy.Decide(in)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", s.ladder.Name, err)
	}
	if err := rules.CheckAction(d.Action, d.RateMbps, true); err != nil {
		return nil, fmt.Errorf("policy %s: %w", s.ladder.Name, err)
	}
	// A FlowSpec action without a vector matches all traffic to the
	// target: a policy may ask for that explicitly (ladders of steps skip
	// FlowSpec steps instead).
	if d.Action == s.action && d.RateMbps == s.rate {
		return nil, nil
	}
	reason := d.Reason
	if reason == "" {
		reason = "policy " + s.ladder.Name
	}
	var out []flowspec.Decision
	prevAction, prevRate := s.action, s.rate
	s.changes++
	if d.Action != flowspec.None {
		out = append(out, s.policyDecision(id, d.Action, d.RateMbps, false, at, reason))
	}
	if prevAction != flowspec.None {
		w := s.policyDecision(id, prevAction, prevRate, true, at, reason)
		w.Replaced = true
		out = append(out, w)
	}
	s.action, s.rate, s.since = d.Action, d.RateMbps, at
	return out, nil
}

func (s *state) policyDecision(id uint64, action flowspec.Action, rate float64, withdraw bool, at time.Time, reason string) flowspec.Decision {
	d := flowspec.Decision{AttackID: id, Target: s.target, Ladder: s.ladder.Name, Step: s.changes, Action: action,
		RateMbps: rate, Withdraw: withdraw, At: at, Reason: reason}
	if action != flowspec.Blackhole {
		d.Vector = s.vector
	}
	return d
}
