package store_test

import (
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/store"
)

// TestApplyEscalation: an escalation event (the whole attack with its new
// step, as the pipeline publishes it) keeps the attack's trip and verdict.
func TestApplyEscalation(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var a store.Attack
	a.Apply(&events.Event{Kind: events.AttackStarted, At: at, Attack: &events.Attack{ID: 1, Started: at, Trigger: "pps",
		Rate: 90000, Threshold: 50000, Labels: []string{"udp-flood"}, Rules: []string{"udp-flood"}, Decider: "udp-flood"}})
	a.Apply(&events.Event{Kind: events.AttackEscalated, At: at.Add(time.Minute), Attack: &events.Attack{ID: 1, Started: at,
		Trigger: "pps", Rate: 90000, Threshold: 50000, Labels: []string{"udp-flood"}, Rules: []string{"udp-flood"}, Decider: "udp-flood",
		Ladder: "default", Step: 2}})
	if a.Rate != 90000 || a.Threshold != 50000 || len(a.Labels) != 1 || len(a.Rules) != 1 || a.Decider != "udp-flood" {
		t.Errorf("after an escalation: %+v", a)
	}
}
