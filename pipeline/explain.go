package pipeline

import (
	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flowspec"
)

// noteSteps keeps, for the explanation, the step the ladder put in force
// with its reason, or why none is.
func (a *attack) noteSteps(id uint64, ds []flowspec.Decision) {
	for _, d := range ds {
		if d.Withdraw {
			continue
		}
		a.step.Ladder, a.step.Step, a.step.Action, a.step.Why = d.Ladder, d.Step, d.Action, d.Reason
	}
	if why := a.tracker.Why(id); why != "" {
		a.step = events.Explain{Why: why}
	}
}

// explain is the attack's explanation as its events carry it: a fresh
// value each time, since published events are never changed.
func (a *attack) explain() *events.Explain {
	e := a.step
	e.Window = a.window
	e.Matched, e.Decider = a.trace.Matched, a.trace.Decider
	if a.verdict.Decider != "" && e.Decider == "" {
		e.Decider = a.verdict.Decider // the dominant-protocol fallback
	}
	for _, s := range a.trace.Seen {
		e.Seen = append(e.Seen, s.Name+"="+s.Value)
	}
	if m := a.trace.Miss; m != nil {
		e.Miss = &events.ExplainMiss{Rule: m.Rule, Held: m.Held, Parts: m.Parts, Failed: m.Failed, Values: m.Values}
	}
	return &e
}
