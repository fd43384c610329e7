package rules

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/kapkan-io/kapkan/flowspec"
)

// Ladder is a compiled escalation ladder.
type Ladder struct {
	Name       string
	File       string
	Hostgroups []string
	Labels     []string
	Steps      []Step
	// Policy, when set, decides the attack's action in code (a WASM
	// module's decide export) instead of Steps, which is then empty.
	Policy Policy
}

// Policy is an escalation policy written as code rather than as steps. The
// policy tracker calls Decide when an attack starts and on each of its
// updates; an error leaves the attack's current action as it is.
type Policy interface {
	Decide(in PolicyInput) (PolicyDecision, error)
}

// PolicyInput is what a policy sees of a live attack.
type PolicyInput struct {
	// Features are the attack's classification features with live rates.
	Features *Features
	// Labels and Vector are the attack's verdict.
	Labels []string
	Vector flowspec.Match
	// Current is the action in force (None for none) with its rate, and how
	// long it has been in force.
	Current  flowspec.Action
	RateMbps float64
	Since    time.Duration
}

// CheckAction checks an action and its rate as a ladder step or a policy
// may give them: flowspec-ratelimit needs a rate, the others take none;
// None is accepted only when allowNone is set (policies).
func CheckAction(action flowspec.Action, rateMbps float64, allowNone bool) error {
	switch action {
	case flowspec.RateLimit:
		if rateMbps <= 0 {
			return fmt.Errorf("flowspec-ratelimit needs rate_mbps > 0, got %v", rateMbps)
		}
	case flowspec.Discard, flowspec.Blackhole:
		if rateMbps != 0 {
			return fmt.Errorf("rate_mbps applies to flowspec-ratelimit only, got %v with %s", rateMbps, action)
		}
	case flowspec.None:
		if !allowNone {
			return fmt.Errorf(`no action (want flowspec-ratelimit, flowspec-discard or blackhole)`)
		}
		if rateMbps != 0 {
			return fmt.Errorf("rate_mbps %v without an action", rateMbps)
		}
	default:
		return fmt.Errorf("unknown %v", action)
	}
	return nil
}

// errActionName is a wrong action name (as opposed to a wrong rate).
type errActionName struct{ msg string }

func (e *errActionName) Error() string { return e.msg }

// parseAction reads an action as a rule file or a module writes it and
// checks it with its rate.
func parseAction(name string, rateMbps float64, allowNone bool) (flowspec.Action, error) {
	a, err := flowspec.ParseAction(name)
	if err != nil || (a == flowspec.None && !allowNone && name != "") {
		want := "flowspec-ratelimit, flowspec-discard or blackhole"
		if allowNone {
			want = `"", ` + want
		}
		return flowspec.None, &errActionName{fmt.Sprintf("action %q (want %s)", name, want)}
	}
	return a, CheckAction(a, rateMbps, allowNone)
}

// PolicyDecision is the action a policy wants in force (None for none).
type PolicyDecision struct {
	Action   flowspec.Action
	RateMbps float64
	Reason   string
}

// Step is one compiled ladder step.
type Step struct {
	Action   flowspec.Action
	RateMbps float64
	Hold     time.Duration
	When     string
	when     *vm.Program
}

// Applies reports whether the ladder is for an attack of hostgroup with
// these labels.
func (l *Ladder) Applies(hostgroup string, labels []string) bool {
	if len(l.Hostgroups) > 0 && !slices.Contains(l.Hostgroups, hostgroup) {
		return false
	}
	if len(l.Labels) == 0 {
		return true
	}
	for _, x := range labels {
		if slices.Contains(l.Labels, x) {
			return true
		}
	}
	return false
}

// Ready reports whether the step's condition holds for the live attack
// (true when it has none).
func (s *Step) Ready(f *Features) (bool, error) {
	if s.when == nil {
		return true, nil
	}
	out, err := expr.Run(s.when, NewEnv(f))
	return out == true, err
}

// Ladder returns the first ladder (operator ones first, then built-in)
// that applies to an attack, or nil.
func (s *Set) Ladder(hostgroup string, labels []string) *Ladder {
	for i := range s.ladders {
		if s.ladders[i].Applies(hostgroup, labels) {
			return &s.ladders[i]
		}
	}
	return nil
}

// Ladders returns the names of the ladders, in the order they are tried.
func (s *Set) Ladders() []string {
	out := make([]string, len(s.ladders))
	for i, l := range s.ladders {
		out[i] = l.Name
	}
	return out
}

// compileLadder compiles a ladder's conditions.
func compileLadder(fileName string, spec LadderSpec) (Ladder, Errors) {
	l := Ladder{Name: spec.Name, File: fileName, Hostgroups: spec.Hostgroups, Labels: spec.Labels}
	var errs Errors
	for j, st := range spec.Steps {
		action, _ := flowspec.ParseAction(st.Action) // checked by parseFile
		step := Step{Action: action, RateMbps: st.RateMbps, When: st.When}
		if st.Hold != "" {
			step.Hold, _ = time.ParseDuration(st.Hold) // checked by parseFile
		}
		if st.When != "" {
			p, err := expr.Compile(st.When, expr.Env(Env{}), expr.AsBool())
			if err != nil {
				e := exprError(fileName, spec.Name, nil, err)
				e.Msg = "step " + strconv.Itoa(j+1) + " when: " + e.Msg[len("match: "):]
				errs = append(errs, e)
				continue
			}
			step.when = p
		}
		l.Steps = append(l.Steps, step)
	}
	return l, errs
}
