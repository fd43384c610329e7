// Package storetest is the conformance suite every store.Store passes: it
// feeds fixed events and traffic points and checks every read. The rules it
// holds a store to, beyond the comments of store.Store, are written here.
//
// Attack rows. Every attack event (started, updated, escalated, ended)
// carries the attack as it stands, so a row is made by the first event the
// store sees for an id, whichever kind (a started event lost in a lapped
// ring does not lose the attack). The events of one attack are applied in
// the order they are given, which for a daemon is the order of their times;
// the suite always gives them with increasing At, so a store may order by
// (At, order of arrival) instead. Each event overwrites:
//   - Target, Scope, Direction, Hostgroup, Started, Trigger, Rate and
//     Threshold, always;
//   - Labels, Vector, Rules, Decider, Sample, SampleRecords and Peak only
//     when the event has them (non-empty slice, non-zero match, non-empty
//     string, non-nil pointer or map, non-zero count): an AttackEnded
//     event that says nothing of the verdict keeps the verdict from before;
//   - Ended: the event's Attack.Ended when set, else the event's At for an
//     AttackEnded event.
//
// Rate points. An attack event whose Attack.Rates is non-empty adds the
// point {At: event At, PPS: Rates["pps"], Mbps: Rates["mbps"], FPS:
// Rates["fps"]}; a point at the same At replaces the earlier one. Attack
// returns them oldest first; Attacks leaves Rates nil (a list does not need
// them).
//
// Mitigations. Every mitigation_* event is one Mitigation, its fields
// copied from event.Mitigation. A mitigation_none event that carries the
// Attack instead gives {AttackID, Target, Action: none, Ladder, Step,
// Reason} from it. An event is identified by (Kind, At, Seq): writing it
// again changes nothing. Lists are ordered by (At, Seq).
//
// Reloads. rules_reloaded is What "rules", config_reloaded What "config";
// Errors is the event's Errors, or [Err] when it has only Err.
//
// Ranges. [from, to) with a zero bound unbounded, for Mitigations, Reloads
// and Traffic as for AttackFilter. An attack overlaps [From, To) when it
// started before To and ended at or after From; one still running has not
// ended. Target selects the attacks whose target prefix lies inside it (a
// /32 inside its /24, not the reverse). Rule matches Rules or Decider.
// Attacks are ordered by Started, newest first, then by ID, highest first.
//
// Traffic with a step. The points in range are grouped in buckets aligned
// on multiples of step since the Unix epoch; a bucket's At is its start and
// its rates are the means of its points (seconds without a point do not
// count as zero); buckets without points are left out.
//
// Prune(before). An attack is dropped, with its rate points and every
// mitigation event naming it, when its newest event is older than before:
// for an ended attack its end, for one whose end never came (the daemon
// stopped) its last update; a running attack is kept whole. Other
// mitigation events (manual, or of an attack the store never saw),
// reloads and traffic points are dropped when their At is before it.
//
// Times come back in any location; the suite compares instants.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/store"
)

// Options are what the suite needs to know beyond how to open a store.
type Options struct {
	// Reopen, when set, closes s and opens the same store again: the suite
	// then checks that everything written survives. Leave it nil for a
	// store that does not persist.
	Reopen func(t *testing.T, s store.Store) store.Store
}

// T0 is the time the fixture starts at: a round minute, so that steps of
// a few seconds and of a minute align on it.
var T0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return T0.Add(time.Duration(sec) * time.Second) }

// Run runs the whole suite; open returns a fresh, empty store for each
// subtest (and closes it with t.Cleanup).
func Run(t *testing.T, open func(t *testing.T) store.Store, opts ...Options) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	cases := []struct {
		name string
		run  func(t *testing.T, s store.Store)
	}{
		{"FinalRow", testFinalRow},
		{"AttackNotFound", testNotFound},
		{"AttackWithoutStart", testWithoutStart},
		{"Rates", testRates},
		{"AttackMitigations", testAttackMitigations},
		{"Filters", testFilters},
		{"Mitigations", testMitigations},
		{"Reloads", testReloads},
		{"Traffic", testTraffic},
		{"TrafficStep", testTrafficStep},
		{"PruneEnded", testPruneEnded},
		{"PruneKeepsRunning", testPruneKeepsRunning},
		{"PruneOrphan", testPruneOrphan},
		{"Idempotent", testIdempotent},
		{"Empty", testEmpty},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, open(t)) })
	}
	if o.Reopen != nil {
		t.Run("Reopen", func(t *testing.T) {
			s := open(t)
			feed(t, s)
			want := dump(t, s)
			s = o.Reopen(t, s)
			if got := dump(t, s); !reflect.DeepEqual(got, want) {
				t.Errorf("after reopen:\n got %s\nwant %s", js(got), js(want))
			}
			// And it still takes writes.
			put(t, s, events.Event{Seq: 900, Kind: events.RulesReloaded, At: at(900), Reload: &events.Reload{What: "rules", OK: true}})
			rl, err := s.Reloads(context.Background(), at(900), at(901))
			if err != nil || len(rl) != 1 {
				t.Errorf("reload written after reopen: %v, %v", rl, err)
			}
		})
	}
}

// The fixture. Attack 101 is a UDP flood re-classified as DNS
// amplification, escalated, mitigated and ended; 102 a SYN flood on a /24
// still running; 103 an outgoing IPv6 attack refused by the guard; 104 an
// attack whose started event was lost.

var (
	dnsVector = flowspec.Match{Protocol: "udp", SrcPorts: []string{"53"}, PacketLength: ">=512"}
	dnsSample = &events.SampleSummary{
		TopSources:     []events.Share{{Value: "203.0.113.7", Share: 0.4}, {Value: "203.0.113.8", Share: 0.3}},
		Sources:        12,
		TopSrcPorts:    []events.Share{{Value: "53", Share: 0.98}},
		MeanPacketSize: 1200, P10PacketSize: 900, P50PacketSize: 1300, P90PacketSize: 1450,
	}
)

func a101(kind events.Kind, sec int) events.Event {
	a := &events.Attack{
		ID: 101, Target: netip.MustParsePrefix("192.0.2.10/32"), Scope: "address", Direction: "incoming",
		Hostgroup: "web", Started: at(0), Trigger: "pps", Threshold: 50000,
	}
	switch {
	case kind == events.AttackEnded:
		// An end says less: no verdict, no rates, only the peak.
		a.Ended = at(sec)
		a.Rate = 1200
		a.Peak = map[string]float64{"pps": 95000, "mbps": 900, "fps": 400}
		return events.Event{Kind: kind, At: at(sec), Attack: a}
	case sec < 2:
		a.Labels = []string{"udp-flood"}
		a.Rules = []string{"udp-generic"}
		a.Decider = "udp-generic"
		a.Vector = flowspec.Match{Protocol: "udp"}
		a.SampleRecords = 40
	default:
		a.Labels = []string{"dns-amplification", "udp-flood"}
		a.Rules = []string{"dns-amp", "udp-generic"}
		a.Decider = "dns-amp"
		a.Vector = dnsVector
		a.SampleRecords = 300
		a.Sample = dnsSample
	}
	a.Rate = 60000 + float64(sec)*5000
	a.Rates = map[string]float64{"pps": a.Rate, "mbps": 500 + float64(sec), "fps": 100 + float64(sec), "udp_pps": a.Rate}
	if kind == events.AttackEscalated {
		a.Ladder, a.Step, a.Action = "default", 2, flowspec.Discard
	}
	return events.Event{Kind: kind, At: at(sec), Attack: a}
}

func a102(kind events.Kind, sec int) events.Event {
	a := &events.Attack{
		ID: 102, Target: netip.MustParsePrefix("198.51.100.0/24"), Scope: "prefix", Direction: "incoming",
		Hostgroup: "dc", Started: at(20), Trigger: "pps", Rate: 80000 + float64(sec), Threshold: 70000,
		Rates:         map[string]float64{"pps": 80000 + float64(sec), "mbps": 40, "fps": 70000},
		Labels:        []string{"syn-flood"},
		Vector:        flowspec.Match{Protocol: "tcp", TCPFlags: "syn&!ack"},
		Rules:         []string{"tcp-syn", "generic-tcp"},
		Decider:       "tcp-syn",
		SampleRecords: 64,
	}
	return events.Event{Kind: kind, At: at(sec), Attack: a}
}

func a103(kind events.Kind, sec int) events.Event {
	a := &events.Attack{
		ID: 103, Target: netip.MustParsePrefix("2001:db8::5/128"), Scope: "address", Direction: "outgoing",
		Hostgroup: "web", Started: at(100), Trigger: "mbps", Rate: 300, Threshold: 200,
		Rates:   map[string]float64{"pps": 30000, "mbps": 300, "fps": 10},
		Labels:  []string{"udp-flood"},
		Rules:   []string{"udp-generic"},
		Decider: "udp-generic",
	}
	if kind == events.AttackEnded {
		a.Ended = at(sec)
		a.Rates = nil
		a.Peak = map[string]float64{"mbps": 310}
	}
	return events.Event{Kind: kind, At: at(sec), Attack: a}
}

func a104(kind events.Kind, sec int) events.Event {
	a := &events.Attack{
		ID: 104, Target: netip.MustParsePrefix("198.51.100.7/32"), Scope: "address", Direction: "incoming",
		Hostgroup: "dc", Started: at(195), Trigger: "fps", Rate: 9000, Threshold: 5000,
		Rates:   map[string]float64{"pps": 20000, "mbps": 10, "fps": 9000},
		Labels:  []string{"random-ports"},
		Decider: "random-dst-ports", // a decider not among Rules: the filter still finds it
	}
	return events.Event{Kind: kind, At: at(sec), Attack: a}
}

func mit(kind events.Kind, sec int, m events.Mitigation) events.Event {
	return events.Event{Kind: kind, At: at(sec), Mitigation: &m}
}

// batches returns the fixture as the writer would hand it over, in three
// batches, with Seq set as a ring would.
func batches() [][]events.Event {
	b1 := []events.Event{
		a101(events.AttackStarted, 0),
		a101(events.AttackUpdated, 1),
		a101(events.AttackUpdated, 2),
		a101(events.AttackEscalated, 3),
		mit(events.MitigationAnnounced, 4, events.Mitigation{
			AttackID: 101, Target: netip.MustParsePrefix("192.0.2.10/32"), Action: flowspec.Discard,
			Match: dnsVector, Ladder: "default", Step: 2, Expires: at(604), Reason: "step 2", DryRun: true,
		}),
		{Kind: events.BGPSessionUp, At: at(4), BGP: &events.BGPSession{Peer: "192.0.2.254", State: "established"}},
		a101(events.AttackUpdated, 5),
		{Kind: events.Kind("something_new"), At: at(5), Attack: &events.Attack{ID: 999, Started: at(5)}},
		a101(events.AttackUpdated, 6),
		a101(events.AttackEnded, 10),
	}
	b2 := []events.Event{
		mit(events.MitigationWithdrawn, 12, events.Mitigation{
			AttackID: 101, Target: netip.MustParsePrefix("192.0.2.10/32"), Action: flowspec.Discard,
			Match: dnsVector, Reason: "attack ended", DryRun: true,
		}),
		a102(events.AttackStarted, 20),
		{Kind: events.MitigationNone, At: at(21), Attack: &events.Attack{
			ID: 102, Target: netip.MustParsePrefix("198.51.100.0/24"), Started: at(20), Ladder: "observe", Step: 1, Reason: "ladder observes",
		}},
		a102(events.AttackUpdated, 21),
		a102(events.AttackUpdated, 22),
		a102(events.AttackUpdated, 25),
		{Kind: events.RulesReloaded, At: at(50), Reload: &events.Reload{What: "rules", OK: true, Trigger: "SIGHUP", Rules: 30}},
		{Kind: events.ConfigReloaded, At: at(60), Reload: &events.Reload{What: "config", OK: false, Trigger: "API",
			Err: "2 errors", Errors: []string{"kapkan.yaml:3:5: bad", "kapkan.yaml:9:1: worse"}}},
		{Kind: events.BGPSessionDown, At: at(70), BGP: &events.BGPSession{Peer: "192.0.2.254", State: "idle"}},
	}
	b3 := []events.Event{
		a103(events.AttackStarted, 100),
		mit(events.MitigationRefused, 101, events.Mitigation{
			AttackID: 103, Target: netip.MustParsePrefix("2001:db8::5/128"), Action: flowspec.Blackhole,
			Reason: "allowlisted", Err: "2001:db8::5 is allow-listed",
		}),
		a103(events.AttackUpdated, 101),
		a103(events.AttackEnded, 130),
		{Kind: events.RulesReloaded, At: at(150), Reload: &events.Reload{What: "rules", OK: false, Err: "rules.yaml:1:1: broken"}},
		a104(events.AttackUpdated, 200),
		a104(events.AttackUpdated, 201),
		mit(events.MitigationAnnounced, 300, events.Mitigation{
			Target: netip.MustParsePrefix("203.0.113.0/24"), Action: flowspec.Blackhole, Expires: at(900), Reason: "manual",
		}),
	}
	seq := uint64(1)
	for _, b := range [][]events.Event{b1, b2, b3} {
		for i := range b {
			b[i].Seq = seq
			seq++
		}
	}
	return [][]events.Event{b1, b2, b3}
}

func put(t *testing.T, s store.Store, evs ...events.Event) {
	t.Helper()
	if err := s.PutEvents(context.Background(), evs); err != nil {
		t.Fatalf("PutEvents: %v", err)
	}
}

// feed writes the whole fixture and the traffic points.
func feed(t *testing.T, s store.Store) {
	t.Helper()
	for _, b := range batches() {
		put(t, s, b...)
	}
	if err := s.PutTraffic(context.Background(), trafficPoints()); err != nil {
		t.Fatalf("PutTraffic: %v", err)
	}
}

// trafficPoints: web incoming at 0..9 s (pps 100·i), web outgoing and dc
// incoming at the same seconds with other values, in two batches' order
// mixed up.
func trafficPoints() []store.TrafficPoint {
	var pts []store.TrafficPoint
	for i := 9; i >= 0; i-- {
		f := float64(i)
		pts = append(pts,
			store.TrafficPoint{At: at(i), Hostgroup: "web", Direction: "incoming", PPS: 100 * f, Mbps: f, FPS: 10 * f},
			store.TrafficPoint{At: at(i), Hostgroup: "web", Direction: "outgoing", PPS: 7, Mbps: 7, FPS: 7},
			store.TrafficPoint{At: at(i), Hostgroup: "dc", Direction: "incoming", PPS: 5, Mbps: 5, FPS: 5},
		)
	}
	return pts
}

// want101 is attack 101's row after it ended, as the rules above make it.
func want101(withRates bool) store.Attack {
	a := store.Attack{
		ID: 101, Target: netip.MustParsePrefix("192.0.2.10/32"), Scope: "address", Direction: "incoming",
		Hostgroup: "web", Started: at(0), Ended: at(10), Trigger: "pps",
		Rate: 1200, Threshold: 50000, // the end's rate
		Peak:          map[string]float64{"pps": 95000, "mbps": 900, "fps": 400},
		Labels:        []string{"dns-amplification", "udp-flood"}, // kept from the last update
		Vector:        dnsVector,
		Rules:         []string{"dns-amp", "udp-generic"},
		Decider:       "dns-amp",
		SampleRecords: 300,
		Sample:        dnsSample,
	}
	if withRates {
		for _, s := range []int{0, 1, 2, 3, 5, 6} {
			r := 60000 + float64(s)*5000
			a.Rates = append(a.Rates, store.RatePoint{At: at(s), PPS: r, Mbps: 500 + float64(s), FPS: 100 + float64(s)})
		}
	}
	return a
}

func testFinalRow(t *testing.T, s store.Store) {
	feed(t, s)
	a, _, err := s.Attack(context.Background(), 101)
	if err != nil {
		t.Fatalf("Attack(101): %v", err)
	}
	same(t, "attack 101", norm(a), norm(want101(true)))

	a, _, err = s.Attack(context.Background(), 103)
	if err != nil {
		t.Fatalf("Attack(103): %v", err)
	}
	want := store.Attack{
		ID: 103, Target: netip.MustParsePrefix("2001:db8::5/128"), Scope: "address", Direction: "outgoing",
		Hostgroup: "web", Started: at(100), Ended: at(130), Trigger: "mbps", Rate: 300, Threshold: 200,
		Peak: map[string]float64{"mbps": 310}, Labels: []string{"udp-flood"}, Rules: []string{"udp-generic"}, Decider: "udp-generic",
		Rates: []store.RatePoint{{At: at(100), PPS: 30000, Mbps: 300, FPS: 10}, {At: at(101), PPS: 30000, Mbps: 300, FPS: 10}},
	}
	same(t, "attack 103", norm(a), norm(want))

	// An AttackEnded event without Ended: the event's time is the end.
	e := a101(events.AttackEnded, 10)
	e.Attack.ID, e.Attack.Ended, e.At, e.Seq = 555, time.Time{}, at(44), 500
	put(t, s, e)
	a, _, err = s.Attack(context.Background(), 555)
	if err != nil || !a.Ended.Equal(at(44)) {
		t.Errorf("ended without Ended: got %v, %v; want ended at %v", a.Ended, err, at(44))
	}
}

func testNotFound(t *testing.T, s store.Store) {
	if _, _, err := s.Attack(context.Background(), 101); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("empty store: Attack(101) = %v, want ErrNotFound", err)
	}
	feed(t, s)
	for _, id := range []uint64{0, 999, 100, 105} { // 999 came in an unknown kind
		if _, _, err := s.Attack(context.Background(), id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Attack(%d) = %v, want ErrNotFound", id, err)
		}
	}
}

func testWithoutStart(t *testing.T, s store.Store) {
	feed(t, s)
	a, _, err := s.Attack(context.Background(), 104)
	if err != nil {
		t.Fatalf("Attack(104): %v", err)
	}
	want := store.Attack{
		ID: 104, Target: netip.MustParsePrefix("198.51.100.7/32"), Scope: "address", Direction: "incoming",
		Hostgroup: "dc", Started: at(195), Trigger: "fps", Rate: 9000, Threshold: 5000, Labels: []string{"random-ports"}, Decider: "random-dst-ports",
		Rates: []store.RatePoint{{At: at(200), PPS: 20000, Mbps: 10, FPS: 9000}, {At: at(201), PPS: 20000, Mbps: 10, FPS: 9000}},
	}
	same(t, "attack 104", norm(a), norm(want))
}

func testRates(t *testing.T, s store.Store) {
	// Given out of order across batches, and a point rewritten at the
	// same time: oldest first, the later write wins.
	put(t, s, a102(events.AttackUpdated, 25))
	put(t, s, a102(events.AttackStarted, 20), a102(events.AttackUpdated, 22))
	e := a102(events.AttackUpdated, 22)
	e.Attack.Rates = map[string]float64{"pps": 1, "mbps": 2, "fps": 3}
	put(t, s, e)
	a, _, err := s.Attack(context.Background(), 102)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.RatePoint{
		{At: at(20), PPS: 80020, Mbps: 40, FPS: 70000},
		{At: at(22), PPS: 1, Mbps: 2, FPS: 3},
		{At: at(25), PPS: 80025, Mbps: 40, FPS: 70000},
	}
	same(t, "rates", normRates(a.Rates), normRates(want))
}

func mits() map[string]store.Mitigation {
	return map[string]store.Mitigation{
		"announced": {At: at(4), Kind: events.MitigationAnnounced, AttackID: 101, Target: netip.MustParsePrefix("192.0.2.10/32"),
			Action: flowspec.Discard, Match: dnsVector, Ladder: "default", Step: 2, Expires: at(604), Reason: "step 2", DryRun: true},
		"withdrawn": {At: at(12), Kind: events.MitigationWithdrawn, AttackID: 101, Target: netip.MustParsePrefix("192.0.2.10/32"),
			Action: flowspec.Discard, Match: dnsVector, Reason: "attack ended", DryRun: true},
		"none": {At: at(21), Kind: events.MitigationNone, AttackID: 102, Target: netip.MustParsePrefix("198.51.100.0/24"),
			Ladder: "observe", Step: 1, Reason: "ladder observes"},
		"refused": {At: at(101), Kind: events.MitigationRefused, AttackID: 103, Target: netip.MustParsePrefix("2001:db8::5/128"),
			Action: flowspec.Blackhole, Reason: "allowlisted", Err: "2001:db8::5 is allow-listed"},
		"manual": {At: at(300), Kind: events.MitigationAnnounced, Target: netip.MustParsePrefix("203.0.113.0/24"),
			Action: flowspec.Blackhole, Expires: at(900), Reason: "manual"},
	}
}

func pick(m map[string]store.Mitigation, names ...string) []store.Mitigation {
	out := []store.Mitigation{}
	for _, n := range names {
		out = append(out, m[n])
	}
	return out
}

func testAttackMitigations(t *testing.T, s store.Store) {
	feed(t, s)
	m := mits()
	for _, c := range []struct {
		id   uint64
		want []store.Mitigation
	}{
		{101, pick(m, "announced", "withdrawn")},
		{102, pick(m, "none")},
		{103, pick(m, "refused")},
		{104, pick(m)},
	} {
		_, got, err := s.Attack(context.Background(), c.id)
		if err != nil {
			t.Fatalf("Attack(%d): %v", c.id, err)
		}
		same(t, "mitigations of attack", normMits(got), normMits(c.want))
	}
}

func testMitigations(t *testing.T, s store.Store) {
	feed(t, s)
	m := mits()
	for _, c := range []struct {
		name     string
		from, to time.Time
		want     []store.Mitigation
	}{
		{"all", time.Time{}, time.Time{}, pick(m, "announced", "withdrawn", "none", "refused", "manual")},
		{"from inclusive", at(12), time.Time{}, pick(m, "withdrawn", "none", "refused", "manual")},
		{"to exclusive", time.Time{}, at(101), pick(m, "announced", "withdrawn", "none")},
		{"window", at(5), at(200), pick(m, "withdrawn", "none", "refused")},
		{"nothing", at(400), at(500), pick(m)},
	} {
		got, err := s.Mitigations(context.Background(), c.from, c.to)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		same(t, c.name, normMits(got), normMits(c.want))
	}
}

func testReloads(t *testing.T, s store.Store) {
	feed(t, s)
	r50 := store.Reload{At: at(50), What: "rules", OK: true, Trigger: "SIGHUP"}
	r60 := store.Reload{At: at(60), What: "config", OK: false, Trigger: "API", Errors: []string{"kapkan.yaml:3:5: bad", "kapkan.yaml:9:1: worse"}}
	r150 := store.Reload{At: at(150), What: "rules", OK: false, Errors: []string{"rules.yaml:1:1: broken"}}
	for _, c := range []struct {
		name     string
		from, to time.Time
		want     []store.Reload
	}{
		{"all", time.Time{}, time.Time{}, []store.Reload{r50, r60, r150}},
		{"window", at(50), at(150), []store.Reload{r50, r60}},
		{"after", at(51), time.Time{}, []store.Reload{r60, r150}},
	} {
		got, err := s.Reloads(context.Background(), c.from, c.to)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		same(t, c.name, normReloads(got), normReloads(c.want))
	}
}

func ids(as []store.Attack) []uint64 {
	out := []uint64{}
	for _, a := range as {
		out = append(out, a.ID)
	}
	return out
}

func testFilters(t *testing.T, s store.Store) {
	feed(t, s)
	for _, c := range []struct {
		name string
		f    store.AttackFilter
		want []uint64
	}{
		{"all newest first", store.AttackFilter{}, []uint64{104, 103, 102, 101}},
		{"limit", store.AttackFilter{Limit: 2}, []uint64{104, 103}},
		{"from after 101 ended", store.AttackFilter{From: at(11)}, []uint64{104, 103, 102}},
		{"from at 101's end", store.AttackFilter{From: at(10)}, []uint64{104, 103, 102, 101}},
		{"to before 102 started", store.AttackFilter{To: at(20)}, []uint64{101}},
		{"to just after 102's start", store.AttackFilter{To: at(21)}, []uint64{102, 101}},
		// 102 never ended: it overlaps any later window.
		{"window long after, running", store.AttackFilter{From: at(5000), To: at(6000)}, []uint64{104, 102}},
		{"window between", store.AttackFilter{From: at(131), To: at(190)}, []uint64{102}},
		{"target /24", store.AttackFilter{Target: netip.MustParsePrefix("198.51.100.0/24")}, []uint64{104, 102}},
		{"target /25 holds the /32, not the /24", store.AttackFilter{Target: netip.MustParsePrefix("198.51.100.0/25")}, []uint64{104}},
		{"target address", store.AttackFilter{Target: netip.MustParsePrefix("192.0.2.10/32")}, []uint64{101}},
		{"target v6", store.AttackFilter{Target: netip.MustParsePrefix("2001:db8::/32")}, []uint64{103}},
		{"target elsewhere", store.AttackFilter{Target: netip.MustParsePrefix("10.0.0.0/8")}, []uint64{}},
		{"label", store.AttackFilter{Label: "udp-flood"}, []uint64{103, 101}},
		{"label of the re-classification", store.AttackFilter{Label: "dns-amplification"}, []uint64{101}},
		{"label none", store.AttackFilter{Label: "udp"}, []uint64{}},
		{"hostgroup", store.AttackFilter{Hostgroup: "dc"}, []uint64{104, 102}},
		{"rule in rules", store.AttackFilter{Rule: "generic-tcp"}, []uint64{102}},
		{"rule decider", store.AttackFilter{Rule: "dns-amp"}, []uint64{101}},
		{"rule only as decider", store.AttackFilter{Rule: "random-dst-ports"}, []uint64{104}},
		{"rule both", store.AttackFilter{Rule: "udp-generic"}, []uint64{103, 101}},
		{"all fields", store.AttackFilter{From: at(0), To: at(1000), Target: netip.MustParsePrefix("0.0.0.0/0"),
			Label: "udp-flood", Hostgroup: "web", Rule: "dns-amp", Limit: 10}, []uint64{101}},
	} {
		got, err := s.Attacks(context.Background(), c.f)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if g := ids(got); !reflect.DeepEqual(g, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, g, c.want)
		}
	}
	// The rows listed are the full rows, without rates.
	got, err := s.Attacks(context.Background(), store.AttackFilter{Hostgroup: "web", Label: "dns-amplification"})
	if err != nil || len(got) != 1 {
		t.Fatalf("attack 101 listed: %v, %v", got, err)
	}
	same(t, "listed row", norm(got[0]), norm(want101(false)))

	// The default limit is 100.
	var evs []events.Event
	for i := range 120 {
		e := a104(events.AttackStarted, 1000+i)
		e.Attack.ID, e.Attack.Started, e.Seq = uint64(2000+i), at(1000+i), uint64(1000+i)
		evs = append(evs, e)
	}
	put(t, s, evs...)
	got, err = s.Attacks(context.Background(), store.AttackFilter{})
	if err != nil || len(got) != 100 || got[0].ID != 2119 || got[99].ID != 2020 {
		t.Errorf("default limit: %d attacks (%v), first %v", len(got), err, ids(got[:min(len(got), 3)]))
	}
}

func testTraffic(t *testing.T, s store.Store) {
	feed(t, s)
	got, err := s.Traffic(context.Background(), "web", "incoming", at(2), at(8), 0)
	if err != nil {
		t.Fatal(err)
	}
	var want []store.TrafficPoint
	for i := 2; i < 8; i++ {
		f := float64(i)
		want = append(want, store.TrafficPoint{At: at(i), Hostgroup: "web", Direction: "incoming", PPS: 100 * f, Mbps: f, FPS: 10 * f})
	}
	same(t, "web incoming [2, 8)", normTraffic(got), normTraffic(want))

	got, err = s.Traffic(context.Background(), "dc", "incoming", time.Time{}, time.Time{}, 0)
	if err != nil || len(got) != 10 || got[0].PPS != 5 || !got[0].At.Equal(at(0)) {
		t.Errorf("dc incoming, unbounded: %v, %v", got, err)
	}
	got, err = s.Traffic(context.Background(), "dc", "outgoing", time.Time{}, time.Time{}, 0)
	if err != nil || len(got) != 0 {
		t.Errorf("dc outgoing: %v, %v; want nothing", got, err)
	}
	got, err = s.Traffic(context.Background(), "nowhere", "incoming", time.Time{}, time.Time{}, 0)
	if err != nil || len(got) != 0 {
		t.Errorf("unknown hostgroup: %v, %v; want nothing", got, err)
	}
	// Rewriting a point replaces it.
	if err := s.PutTraffic(context.Background(), []store.TrafficPoint{{At: at(3), Hostgroup: "web", Direction: "incoming", PPS: 1, Mbps: 1, FPS: 1}}); err != nil {
		t.Fatal(err)
	}
	got, err = s.Traffic(context.Background(), "web", "incoming", at(3), at(4), 0)
	if err != nil || len(got) != 1 || got[0].PPS != 1 {
		t.Errorf("rewritten point: %v, %v", got, err)
	}
}

func testTrafficStep(t *testing.T, s store.Store) {
	feed(t, s)
	tp := func(sec int, pps, mbps, fps float64) store.TrafficPoint {
		return store.TrafficPoint{At: at(sec), Hostgroup: "web", Direction: "incoming", PPS: pps, Mbps: mbps, FPS: fps}
	}
	for _, c := range []struct {
		name     string
		from, to time.Time
		step     time.Duration
		want     []store.TrafficPoint
	}{
		{"5s", time.Time{}, time.Time{}, 5 * time.Second, []store.TrafficPoint{tp(0, 200, 2, 20), tp(5, 700, 7, 70)}},
		// Only the points in range are averaged: 2,3,4 and 5,6,7.
		{"5s in [2, 8)", at(2), at(8), 5 * time.Second, []store.TrafficPoint{tp(0, 300, 3, 30), tp(5, 600, 6, 60)}},
		{"1m", time.Time{}, time.Time{}, time.Minute, []store.TrafficPoint{tp(0, 450, 4.5, 45)}},
		{"3s", at(0), at(10), 3 * time.Second, []store.TrafficPoint{tp(0, 100, 1, 10), tp(3, 400, 4, 40), tp(6, 700, 7, 70), tp(9, 900, 9, 90)}},
	} {
		got, err := s.Traffic(context.Background(), "web", "incoming", c.from, c.to, c.step)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		same(t, c.name, normTraffic(got), normTraffic(c.want))
	}
	// Buckets without points are left out.
	if err := s.PutTraffic(context.Background(), []store.TrafficPoint{tp(125, 10, 10, 10)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Traffic(context.Background(), "web", "incoming", time.Time{}, time.Time{}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "gap", normTraffic(got), normTraffic([]store.TrafficPoint{tp(0, 450, 4.5, 45), tp(120, 10, 10, 10)}))
}

func testPruneEnded(t *testing.T, s store.Store) {
	feed(t, s)
	ctx := context.Background()
	if err := s.Prune(ctx, at(15)); err != nil {
		t.Fatalf("Prune: %v", err)
	}
	if _, _, err := s.Attack(ctx, 101); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("attack 101 (ended at 10) after Prune(15): %v, want ErrNotFound", err)
	}
	got, err := s.Attacks(ctx, store.AttackFilter{})
	if err != nil || !reflect.DeepEqual(ids(got), []uint64{104, 103, 102}) {
		t.Errorf("attacks after Prune(15): %v, %v", ids(got), err)
	}
	// 101's withdrawal at 12 goes with it though it is after the cut.
	ms, err := s.Mitigations(ctx, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	m := mits()
	same(t, "mitigations after Prune(15)", normMits(ms), normMits(pick(m, "none", "refused", "manual")))
	tr, err := s.Traffic(ctx, "web", "incoming", time.Time{}, time.Time{}, 0)
	if err != nil || len(tr) != 0 {
		t.Errorf("traffic before 15 kept: %v, %v", tr, err)
	}
	rl, err := s.Reloads(ctx, time.Time{}, time.Time{})
	if err != nil || len(rl) != 3 {
		t.Errorf("reloads after Prune(15): %v, %v", rl, err)
	}

	if err := s.Prune(ctx, at(140)); err != nil {
		t.Fatal(err)
	}
	// 103 ended at 130; 102's last update was at 25 and it never ended:
	// the daemon stopped, it goes too. 104 (last at 201) stays.
	got, err = s.Attacks(ctx, store.AttackFilter{})
	if err != nil || !reflect.DeepEqual(ids(got), []uint64{104}) {
		t.Errorf("attacks after Prune(140): %v, %v", ids(got), err)
	}
	ms, err = s.Mitigations(ctx, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	same(t, "mitigations after Prune(140)", normMits(ms), normMits(pick(m, "manual")))
	rl, err = s.Reloads(ctx, time.Time{}, time.Time{})
	if err != nil || len(rl) != 1 || !rl[0].At.Equal(at(150)) {
		t.Errorf("reloads after Prune(140): %v, %v", rl, err)
	}
}

func testPruneKeepsRunning(t *testing.T, s store.Store) {
	feed(t, s)
	ctx := context.Background()
	// 102 started at 20, last seen at 25: running, kept whole.
	if err := s.Prune(ctx, at(24)); err != nil {
		t.Fatal(err)
	}
	a, ms, err := s.Attack(ctx, 102)
	if err != nil {
		t.Fatalf("running attack 102 after Prune(24): %v", err)
	}
	if len(a.Rates) != 4 || len(ms) != 1 {
		t.Errorf("running attack 102 after Prune(24): %d rate points, %d mitigations; want 4 and 1", len(a.Rates), len(ms))
	}
	got, err := s.Attacks(ctx, store.AttackFilter{From: at(24)})
	if err != nil || !reflect.DeepEqual(ids(got), []uint64{104, 103, 102}) {
		t.Errorf("attacks after Prune(24): %v, %v", ids(got), err)
	}
}

func testPruneOrphan(t *testing.T, s store.Store) {
	// A mitigation of an attack the store never saw goes by its own time.
	ctx := context.Background()
	put(t, s,
		mit(events.MitigationFailed, 10, events.Mitigation{AttackID: 77, Target: netip.MustParsePrefix("192.0.2.1/32"), Action: flowspec.Discard, Err: "peer down"}),
		mit(events.MitigationFailed, 30, events.Mitigation{AttackID: 77, Target: netip.MustParsePrefix("192.0.2.1/32"), Action: flowspec.Discard, Err: "peer down"}),
	)
	if err := s.Prune(ctx, at(20)); err != nil {
		t.Fatal(err)
	}
	ms, err := s.Mitigations(ctx, time.Time{}, time.Time{})
	if err != nil || len(ms) != 1 || !ms[0].At.Equal(at(30)) || ms[0].Kind != events.MitigationFailed {
		t.Errorf("after Prune(20): %v, %v; want the failure at 30", ms, err)
	}
}

func testIdempotent(t *testing.T, s store.Store) {
	feed(t, s)
	once := dump(t, s)
	feed(t, s) // a writer retrying everything
	for _, b := range batches() {
		put(t, s, b...)
	}
	if twice := dump(t, s); !reflect.DeepEqual(twice, once) {
		t.Errorf("written twice:\n got %s\nwant %s", js(twice), js(once))
	}
}

func testEmpty(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.PutEvents(ctx, nil); err != nil {
		t.Errorf("PutEvents(nil): %v", err)
	}
	if err := s.PutTraffic(ctx, nil); err != nil {
		t.Errorf("PutTraffic(nil): %v", err)
	}
	if err := s.Prune(ctx, at(0)); err != nil {
		t.Errorf("Prune on empty: %v", err)
	}
	d := dump(t, s)
	if len(d.Attacks) != 0 || len(d.Mitigations) != 0 || len(d.Reloads) != 0 || len(d.Traffic) != 0 {
		t.Errorf("empty store holds %s", js(d))
	}
}

// contents is everything a store holds, as its reads show it.
type contents struct {
	Attacks     []store.Attack
	AttackMits  map[uint64][]store.Mitigation
	Mitigations []store.Mitigation
	Reloads     []store.Reload
	Traffic     map[string][]store.TrafficPoint
}

func dump(t *testing.T, s store.Store) contents {
	t.Helper()
	ctx := context.Background()
	var c contents
	as, err := s.Attacks(ctx, store.AttackFilter{Limit: 10000})
	if err != nil {
		t.Fatalf("Attacks: %v", err)
	}
	c.AttackMits = map[uint64][]store.Mitigation{}
	for _, a := range as {
		full, ms, err := s.Attack(ctx, a.ID)
		if err != nil {
			t.Fatalf("Attack(%d): %v", a.ID, err)
		}
		c.Attacks = append(c.Attacks, norm(full))
		c.AttackMits[a.ID] = normMits(ms)
	}
	ms, err := s.Mitigations(ctx, time.Time{}, time.Time{})
	if err != nil {
		t.Fatalf("Mitigations: %v", err)
	}
	c.Mitigations = normMits(ms)
	rl, err := s.Reloads(ctx, time.Time{}, time.Time{})
	if err != nil {
		t.Fatalf("Reloads: %v", err)
	}
	c.Reloads = normReloads(rl)
	c.Traffic = map[string][]store.TrafficPoint{}
	for _, hg := range []string{"web", "dc"} {
		for _, dir := range []string{"incoming", "outgoing"} {
			tr, err := s.Traffic(ctx, hg, dir, time.Time{}, time.Time{}, 0)
			if err != nil {
				t.Fatalf("Traffic: %v", err)
			}
			if len(tr) > 0 {
				c.Traffic[hg+"/"+dir] = normTraffic(tr)
			}
		}
	}
	return c
}

// Normalising: times in UTC, empty slices and maps as nil, so that
// DeepEqual compares what the rules above define.

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

func norm(a store.Attack) store.Attack {
	a.Started, a.Ended = utc(a.Started), utc(a.Ended)
	if len(a.Peak) == 0 {
		a.Peak = nil
	}
	if len(a.Labels) == 0 {
		a.Labels = nil
	}
	if len(a.Rules) == 0 {
		a.Rules = nil
	}
	if len(a.Vector.SrcPorts) == 0 {
		a.Vector.SrcPorts = nil
	}
	if len(a.Vector.DstPorts) == 0 {
		a.Vector.DstPorts = nil
	}
	a.Rates = normRates(a.Rates)
	return a
}

func normRates(rs []store.RatePoint) []store.RatePoint {
	if len(rs) == 0 {
		return nil
	}
	out := make([]store.RatePoint, len(rs))
	for i, r := range rs {
		r.At = utc(r.At)
		out[i] = r
	}
	return out
}

func normMits(ms []store.Mitigation) []store.Mitigation {
	if len(ms) == 0 {
		return nil
	}
	out := make([]store.Mitigation, len(ms))
	for i, m := range ms {
		m.At, m.Expires = utc(m.At), utc(m.Expires)
		if len(m.Match.SrcPorts) == 0 {
			m.Match.SrcPorts = nil
		}
		if len(m.Match.DstPorts) == 0 {
			m.Match.DstPorts = nil
		}
		out[i] = m
	}
	return out
}

func normReloads(rs []store.Reload) []store.Reload {
	if len(rs) == 0 {
		return nil
	}
	out := make([]store.Reload, len(rs))
	for i, r := range rs {
		r.At = utc(r.At)
		if len(r.Errors) == 0 {
			r.Errors = nil
		}
		out[i] = r
	}
	return out
}

func normTraffic(ps []store.TrafficPoint) []store.TrafficPoint {
	if len(ps) == 0 {
		return nil
	}
	out := make([]store.TrafficPoint, len(ps))
	for i, p := range ps {
		p.At = utc(p.At)
		out[i] = p
	}
	return out
}

func same[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, js(got), js(want))
	}
}

func js(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
