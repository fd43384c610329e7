package api

import (
	"testing"

	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flowspec"
)

// TestAttackActionInForce: an attack's view says which action is in force
// now, from its mitigation history: the step that replaced another, none
// once everything was withdrawn.
func TestAttackActionInForce(t *testing.T) {
	udp := flowspec.Match{Protocol: "udp"}
	m := func(kind events.Kind, a flowspec.Action, match flowspec.Match) MitigationEvent {
		return MitigationEvent{Kind: kind, Mitigation: &events.Mitigation{AttackID: 1, Action: a, Match: match}}
	}
	for _, tc := range []struct {
		mits []MitigationEvent
		want string
	}{
		{nil, ""},
		{[]MitigationEvent{m(events.MitigationAnnounced, flowspec.Discard, udp)}, "flowspec-discard"},
		{[]MitigationEvent{m(events.MitigationAnnounced, flowspec.Discard, udp), m(events.MitigationAnnounced, flowspec.Blackhole, flowspec.Match{}),
			m(events.MitigationWithdrawn, flowspec.Discard, udp)}, "blackhole"},
		{[]MitigationEvent{m(events.MitigationAnnounced, flowspec.Discard, udp), m(events.MitigationWithdrawn, flowspec.Discard, udp)}, ""},
		{[]MitigationEvent{m(events.MitigationRefused, flowspec.Blackhole, flowspec.Match{})}, ""},
	} {
		if got := inForce(tc.mits); got != tc.want {
			t.Errorf("%d events: %q, want %q", len(tc.mits), got, tc.want)
		}
	}
}
