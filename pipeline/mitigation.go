package pipeline

import (
	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/mitigate"
)

// mitigationKinds maps the manager's event types to event kinds.
var mitigationKinds = map[string]events.Kind{
	mitigate.EventAnnounce: events.MitigationAnnounced,
	mitigate.EventWithdraw: events.MitigationWithdrawn,
	mitigate.EventRenew:    events.MitigationRenewed,
	mitigate.EventRefused:  events.MitigationRefused,
	mitigate.EventFailed:   events.MitigationFailed,
}

// MitigationEvent is a change the mitigation manager made (or refused) as
// an event.
func MitigationEvent(e *mitigate.Event) events.Event {
	kind, ok := mitigationKinds[e.Type]
	if !ok {
		kind = events.Kind("mitigation_" + e.Type)
	}
	m := &events.Mitigation{AttackID: e.AttackID, Target: e.Route.Target, Action: e.Route.Kind, Match: e.Route.Match,
		RateMbps: e.Route.RateMbps, Ladder: e.Ladder, Step: e.Step, Expires: e.Action.Expires, Reason: e.Reason, DryRun: e.DryRun}
	if e.Err != nil {
		m.Err = e.Err.Error()
	}
	return events.Event{Kind: kind, At: e.At, Mitigation: m}
}
