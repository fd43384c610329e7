package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kapkan-io/kapkan/events"
)

// attackExplain is an ended attack as `kapkan replay --explain` prints it:
// its final verdict and what decided it. Replay's JSON output leaves it out.
type attackExplain struct {
	kind events.Kind // attack_started or attack_ended
	a    *events.Attack
}

// write prints the explanation: a line naming the attack, then body.
func (x attackExplain) write(w io.Writer, body string) {
	a := x.a
	when := "detected " + a.Started.UTC().Format(time.RFC3339Nano)
	if x.kind == events.AttackEnded {
		when = "ended " + a.Ended.UTC().Format(time.RFC3339Nano) + ", its verdict or step changed since detection"
	}
	fmt.Fprintf(w, "attack %d %s %s, hostgroup %s, %s\n%s", a.ID, a.Target, a.Direction, a.Hostgroup, when, body)
}

// key is what --explain compares to print an ended attack again: its
// verdict and the step in force.
func (x attackExplain) key() string {
	a := x.a
	k := fmt.Sprint(a.Labels, a.Vector.String(), a.Decider)
	if e := a.Explain; e != nil {
		k += fmt.Sprint(e.Ladder, e.Step, e.Action)
	}
	return k
}

// body is the explanation as indented text, one fact a line.
func (x attackExplain) body() string {
	a := x.a
	w := &strings.Builder{}
	e := a.Explain
	if e == nil {
		e = &events.Explain{}
	}
	window := e.Window
	if window == "" {
		window = "the window"
	}
	fmt.Fprintf(w, "  counters: %s %g over threshold %g in %s (sample of %d records)\n", a.Trigger, a.Rate, a.Threshold, window, a.SampleRecords)
	vector, _ := json.Marshal(a.Vector)
	fmt.Fprintf(w, "  verdict: labels [%s] vector %s\n", strings.Join(a.Labels, " "), vector)
	switch {
	case e.Decider != "":
		fmt.Fprintf(w, "  decided by: %s\n", e.Decider)
	default:
		fmt.Fprintln(w, "  decided by: no rule (nothing gave a vector)")
	}
	if len(e.Matched) > 0 {
		fmt.Fprintf(w, "  matched: %s\n", strings.Join(e.Matched, ", "))
	} else {
		fmt.Fprintln(w, "  matched: none")
	}
	if m := e.Miss; m != nil {
		fmt.Fprintf(w, "  closest miss: %s (%d of %d parts held)\n", m.Rule, m.Held, m.Parts)
		for _, f := range m.Failed {
			fmt.Fprintf(w, "    failed: %s\n", f)
		}
		if len(m.Values) > 0 {
			fmt.Fprintf(w, "    compared: %s\n", strings.Join(m.Values, " "))
		}
	} else {
		fmt.Fprintln(w, "  closest miss: none (every rule matched)")
	}
	if len(e.Seen) > 0 {
		fmt.Fprintf(w, "  features: %s\n", strings.Join(e.Seen, " "))
	}
	switch {
	case e.Ladder != "":
		fmt.Fprintf(w, "  ladder: %s step %d %s (%s)\n", e.Ladder, e.Step, e.Action, e.Why)
	case e.Why != "":
		fmt.Fprintf(w, "  ladder: no action (%s)\n", e.Why)
	}
	return w.String()
}
