package notify

import (
	"net/netip"
	"time"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flowspec"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func attackEvent(kind events.Kind, id uint64) events.Event {
	return events.Event{Seq: 7, Kind: kind, At: t0, Attack: &events.Attack{
		ID: id, Target: netip.MustParsePrefix("203.0.113.7/32"), Scope: "address", Direction: "incoming",
		Hostgroup: "customers", Started: t0, Trigger: "pps", Rate: 1.2e6, Threshold: 1e5,
		Rates:  map[string]float64{"pps": 1.2e6, "mbps": 950.5},
		Labels: []string{"syn-flood"}, Vector: flowspec.Match{Protocol: "tcp", TCPFlags: "syn&!ack"},
		Decider: "syn-flood", Ladder: "default", Step: 1, Action: flowspec.Blackhole, SampleRecords: 2000,
	}}
}

func mitigationEvent(kind events.Kind, id uint64, action flowspec.Action, dryRun bool) events.Event {
	return events.Event{Seq: 8, Kind: kind, At: t0, Mitigation: &events.Mitigation{
		AttackID: id, Target: netip.MustParsePrefix("203.0.113.7/32"), Action: action,
		Match: flowspec.Match{Protocol: "udp", SrcPorts: []string{"53"}}, Ladder: "default", Step: 1,
		Expires: t0.Add(10 * time.Minute), Reason: "syn & ack flood", DryRun: dryRun,
	}}
}

// notifierConfig returns a notify item with the defaults and the given
// name and type, without a rate limit (a test that wants one sets it).
func notifierConfig(name, typ string) config.Notifier {
	c := config.DefaultNotifier()
	c.Name, c.Type = name, typ
	c.RatePerMinute = 0
	return c
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}
