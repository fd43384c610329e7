package clickhouse_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/store"
	"github.com/kapkan-io/kapkan/store/clickhouse"
)

var t0 = time.Date(2026, 3, 10, 12, 0, 0, 123456789, time.UTC)

func same(t *testing.T, what string, got, want any) {
	t.Helper()
	g, _ := json.MarshalIndent(got, "", " ")
	w, _ := json.MarshalIndent(want, "", " ")
	if string(g) != string(w) {
		t.Errorf("%s:\ngot  %s\nwant %s", what, g, w)
	}
}

// attackEvent is an attack event of id at t0+sec seconds.
func attackEvent(kind events.Kind, id uint64, target string, sec int, a events.Attack) events.Event {
	a.ID = id
	a.Target = netip.MustParsePrefix(target)
	if a.Started.IsZero() {
		a.Started = t0
	}
	if a.Rates == nil {
		a.Rates = map[string]float64{"pps": float64(1000 * (sec + 1)), "mbps": float64(sec + 1), "fps": 10}
	}
	return events.Event{Kind: kind, At: t0.Add(time.Duration(sec) * time.Second), Attack: &a}
}

// history is two attacks (one on IPv4 that ended, one on IPv6 still
// running), mitigation events and reloads.
func history() []events.Event {
	vec := flowspec.Match{Protocol: "udp", SrcPorts: []string{"53"}, PacketLength: ">=512"}
	sample := &events.SampleSummary{Sources: 3, TopSources: []events.Share{{Value: "198.51.100.7", Share: 0.5}}, MeanPacketSize: 1200, P50PacketSize: 1400}
	base := events.Attack{Scope: "address", Direction: "incoming", Hostgroup: "web", Trigger: "pps", Rate: 1000, Threshold: 500}
	upd := base
	upd.Labels, upd.Vector, upd.Rules, upd.Decider, upd.SampleRecords, upd.Sample = []string{"dns-amplification"}, vec, []string{"dns-amp"}, "dns-amp", 42, sample
	end := upd
	end.Ended, end.Peak = t0.Add(3*time.Second), map[string]float64{"pps": 4000, "mbps": 4}
	v6 := base
	v6.Hostgroup, v6.Labels, v6.Started = "dns", []string{"syn-flood"}, t0.Add(10*time.Second)
	return []events.Event{
		attackEvent(events.AttackStarted, 1, "203.0.113.66/32", 0, base),
		attackEvent(events.AttackUpdated, 1, "203.0.113.66/32", 1, upd),
		{Kind: events.MitigationAnnounced, At: t0.Add(1 * time.Second), Mitigation: &events.Mitigation{AttackID: 1, Target: netip.MustParsePrefix("203.0.113.66/32"),
			Action: flowspec.Discard, Match: vec, Ladder: "default", Step: 1, Expires: t0.Add(time.Hour), Reason: "dns amplification", DryRun: true}},
		attackEvent(events.AttackUpdated, 1, "203.0.113.66/32", 2, upd),
		attackEvent(events.AttackEnded, 1, "203.0.113.66/32", 3, end),
		{Kind: events.MitigationWithdrawn, At: t0.Add(4 * time.Second), Mitigation: &events.Mitigation{AttackID: 1, Target: netip.MustParsePrefix("203.0.113.66/32"),
			Action: flowspec.Discard, Match: vec, Reason: "attack ended"}},
		{Kind: events.RulesReloaded, At: t0.Add(5 * time.Second), Reload: &events.Reload{What: "rules", OK: true, Trigger: "SIGHUP", Rules: 12}},
		{Kind: events.ConfigReloaded, At: t0.Add(6 * time.Second), Reload: &events.Reload{What: "config", OK: false, Trigger: "API", Err: "bad", Errors: []string{"a.yaml:1:2: x", "a.yaml:3:4: y"}}},
		{Kind: events.BGPSessionUp, At: t0.Add(7 * time.Second), BGP: &events.BGPSession{Peer: "192.0.2.1", State: "established"}},
		attackEvent(events.AttackStarted, 2, "2001:db8::1/128", 10, v6),
		{Kind: events.MitigationRefused, At: t0.Add(11 * time.Second), Mitigation: &events.Mitigation{AttackID: 2, Target: netip.MustParsePrefix("2001:db8::1/128"),
			Action: flowspec.Blackhole, Reason: "allowlisted", Err: "2001:db8::/32 is allow-listed"}},
	}
}

func wantAttack1() store.Attack {
	evs := history()
	a := evs[4].Attack
	return store.Attack{ID: 1, Target: a.Target, Scope: "address", Direction: "incoming", Hostgroup: "web", Started: t0, Ended: t0.Add(3 * time.Second),
		Trigger: "pps", Rate: 1000, Threshold: 500, Peak: a.Peak, Labels: a.Labels, Vector: a.Vector, Rules: a.Rules, Decider: "dns-amp",
		SampleRecords: 42, Sample: a.Sample, Rates: []store.RatePoint{
			{At: t0, PPS: 1000, Mbps: 1, FPS: 10}, {At: t0.Add(time.Second), PPS: 2000, Mbps: 2, FPS: 10},
			{At: t0.Add(2 * time.Second), PPS: 3000, Mbps: 3, FPS: 10}, {At: t0.Add(3 * time.Second), PPS: 4000, Mbps: 4, FPS: 10}}}
}

func wantAttack2() store.Attack {
	return store.Attack{ID: 2, Target: netip.MustParsePrefix("2001:db8::1/128"), Scope: "address", Direction: "incoming", Hostgroup: "dns",
		Started: t0.Add(10 * time.Second), Trigger: "pps", Rate: 1000, Threshold: 500, Labels: []string{"syn-flood"},
		Rates: []store.RatePoint{{At: t0.Add(10 * time.Second), PPS: 11000, Mbps: 11, FPS: 10}}}
}

func mitigations() []store.Mitigation {
	var out []store.Mitigation
	for _, e := range history() {
		if m := e.Mitigation; m != nil {
			out = append(out, store.Mitigation{At: e.At, Kind: e.Kind, AttackID: m.AttackID, Target: m.Target, Action: m.Action, Match: m.Match,
				RateMbps: m.RateMbps, Ladder: m.Ladder, Step: m.Step, Expires: m.Expires, Reason: m.Reason, Err: m.Err, DryRun: m.DryRun})
		}
	}
	return out
}

// TestReadBack writes a history (twice, and in pieces, as a retrying
// writer would) and reads it through every read method.
func TestReadBack(t *testing.T) {
	s := open(t)
	c := ctx(t)
	evs := history()
	// In pieces: the attack row is rewritten by later batches; the whole
	// again: nothing doubles.
	for _, part := range [][]events.Event{evs[:2], evs[2:5], evs[5:], evs} {
		if err := s.PutEvents(c, part); err != nil {
			t.Fatal(err)
		}
	}

	got, mits, err := s.Attack(c, 1)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "attack 1", got, wantAttack1())
	same(t, "attack 1 mitigations", mits, mitigations()[:2])
	if _, _, err := s.Attack(c, 99); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("attack 99: err %v, want ErrNotFound", err)
	}

	// A list leaves the rate points out.
	a1, a2 := wantAttack1(), wantAttack2()
	a1.Rates, a2.Rates = nil, nil
	all := []store.Attack{a2, a1}
	for _, tc := range []struct {
		name string
		f    store.AttackFilter
		want []store.Attack
	}{
		{"all, newest first", store.AttackFilter{}, all},
		{"limit", store.AttackFilter{Limit: 1}, all[:1]},
		{"target inside v4 /24", store.AttackFilter{Target: netip.MustParsePrefix("203.0.113.0/24")}, all[1:]},
		{"target v6 /32", store.AttackFilter{Target: netip.MustParsePrefix("2001:db8::/32")}, all[:1]},
		{"target elsewhere", store.AttackFilter{Target: netip.MustParsePrefix("198.51.100.0/24")}, nil},
		{"target exact", store.AttackFilter{Target: netip.MustParsePrefix("203.0.113.66/32")}, all[1:]},
		{"label", store.AttackFilter{Label: "dns-amplification"}, all[1:]},
		{"hostgroup", store.AttackFilter{Hostgroup: "dns"}, all[:1]},
		{"rule", store.AttackFilter{Rule: "dns-amp"}, all[1:]},
		{"after the first ended", store.AttackFilter{From: t0.Add(5 * time.Second)}, all[:1]},
		{"before the second started", store.AttackFilter{To: t0.Add(10 * time.Second)}, all[1:]},
		{"window of both", store.AttackFilter{From: t0.Add(2 * time.Second), To: t0.Add(11 * time.Second)}, all},
		{"label and hostgroup disagree", store.AttackFilter{Label: "syn-flood", Hostgroup: "web"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Attacks(c, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			same(t, "attacks", got, tc.want)
		})
	}

	ms, err := s.Mitigations(c, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	same(t, "mitigations", ms, mitigations())
	ms, err = s.Mitigations(c, t0.Add(2*time.Second), t0.Add(11*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	same(t, "mitigations in [2 s, 11 s)", ms, mitigations()[1:2])

	rs, err := s.Reloads(c, t0, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	same(t, "reloads", rs, []store.Reload{
		{At: t0.Add(5 * time.Second), What: "rules", OK: true, Trigger: "SIGHUP"},
		{At: t0.Add(6 * time.Second), What: "config", Trigger: "API", Errors: []string{"a.yaml:1:2: x", "a.yaml:3:4: y"}},
	})
}

func TestTraffic(t *testing.T) {
	s := open(t)
	c := ctx(t)
	var pts []store.TrafficPoint
	for i := range 10 {
		at := t0.Truncate(time.Minute).Add(time.Duration(i) * time.Second)
		pts = append(pts,
			store.TrafficPoint{At: at, Hostgroup: "web", Direction: "incoming", PPS: float64(i), Mbps: float64(2 * i), FPS: 1},
			store.TrafficPoint{At: at, Hostgroup: "web", Direction: "outgoing", PPS: 100},
			store.TrafficPoint{At: at, Hostgroup: "dns", Direction: "incoming", PPS: 200})
	}
	for range 2 { // written twice, read once
		if err := s.PutTraffic(c, pts); err != nil {
			t.Fatal(err)
		}
	}
	base := t0.Truncate(time.Minute)
	got, err := s.Traffic(c, "web", "incoming", base.Add(2*time.Second), base.Add(5*time.Second), 0)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "as stored", got, []store.TrafficPoint{pts[6], pts[9], pts[12]})
	got, err = s.Traffic(c, "web", "incoming", time.Time{}, time.Time{}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "5 s means", got, []store.TrafficPoint{
		{At: base, Hostgroup: "web", Direction: "incoming", PPS: 2, Mbps: 4, FPS: 1},
		{At: base.Add(5 * time.Second), Hostgroup: "web", Direction: "incoming", PPS: 7, Mbps: 14, FPS: 1},
	})
}

func TestPrune(t *testing.T) {
	s := open(t)
	c := ctx(t)
	old := t0.AddDate(0, -2, 0) // a partition of its own, dropped whole
	evs := []events.Event{
		attackEvent(events.AttackStarted, 1, "203.0.113.1/32", 0, events.Attack{Started: old}),
		attackEvent(events.AttackStarted, 2, "203.0.113.2/32", 0, events.Attack{}),
		attackEvent(events.AttackStarted, 3, "203.0.113.3/32", 60, events.Attack{Started: t0.Add(time.Minute)}),
		{Kind: events.MitigationAnnounced, At: old, Mitigation: &events.Mitigation{AttackID: 1, Action: flowspec.Discard}},
		{Kind: events.MitigationAnnounced, At: t0, Mitigation: &events.Mitigation{AttackID: 2, Action: flowspec.Discard}},
		{Kind: events.MitigationAnnounced, At: t0.Add(time.Minute), Mitigation: &events.Mitigation{AttackID: 3, Action: flowspec.Discard}},
		{Kind: events.RulesReloaded, At: t0, Reload: &events.Reload{What: "rules", OK: true}},
	}
	evs[0].At = old
	if err := s.PutEvents(c, evs); err != nil {
		t.Fatal(err)
	}
	if err := s.PutTraffic(c, []store.TrafficPoint{{At: old, Hostgroup: "h", Direction: "incoming"}, {At: t0, Hostgroup: "h", Direction: "incoming"}, {At: t0.Add(time.Minute), Hostgroup: "h", Direction: "incoming"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSample(c, 1, old, []flow.Record{{Packets: 1}}); err != nil {
		t.Fatal(err)
	}
	// Attack 2 and the t0 rows share a day with what stays: a delete, not
	// a partition drop.
	if err := s.Prune(c, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	as, err := s.Attacks(c, store.AttackFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || as[0].ID != 3 {
		t.Errorf("attacks after prune: %+v, want only 3", as)
	}
	ms, _ := s.Mitigations(c, time.Time{}, time.Time{})
	if len(ms) != 1 || ms[0].AttackID != 3 {
		t.Errorf("mitigations after prune: %+v", ms)
	}
	if rs, _ := s.Reloads(c, time.Time{}, time.Time{}); len(rs) != 0 {
		t.Errorf("reloads after prune: %+v", rs)
	}
	if tp, _ := s.Traffic(c, "h", "incoming", time.Time{}, time.Time{}, 0); len(tp) != 1 {
		t.Errorf("traffic after prune: %+v", tp)
	}
	if recs, _ := s.Sample(c, 1); len(recs) != 0 {
		t.Errorf("sample after prune: %+v", recs)
	}
}

func TestSample(t *testing.T) {
	s := open(t)
	c := ctx(t)
	v4 := netip.MustParseAddr("198.51.100.7").As16()
	v6 := netip.MustParseAddr("2001:db8::7").As16()
	dst := netip.MustParseAddr("203.0.113.66").As16()
	recs := []flow.Record{
		{Received: t0.UnixNano(), Bytes: 1500, Packets: 1, Exporter: v4, Src: v4, Dst: dst, SamplingRate: 1000, SrcPort: 53, DstPort: 40000, Proto: 17, Flags: flow.FlagHasIP, Format: 1, Sampling: 1},
		{Received: t0.UnixNano() + 1, Start: 5, End: 6, Bytes: 60, Packets: 1, Src: v6, Dst: v6, SrcPort: 1234, DstPort: 80, Proto: 6, TCPFlags: 2, Flags: flow.FlagHasIP},
		{}, // a record with no address at all
	}
	for range 2 {
		if err := s.PutSample(c, 7, t0, recs); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Sample(c, 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recs) {
		t.Fatalf("got %d records, want %d", len(got), len(recs))
	}
	for i := range recs {
		if got[i] != recs[i] {
			t.Errorf("record %d:\ngot  %+v\nwant %+v", i, got[i], recs[i])
		}
	}
}

// TestSchema opens a database twice (the second finds the schema current)
// and checks what 18.16 is told: the server version is read at connect.
func TestSchema(t *testing.T) {
	srv := server(t)
	db := dbFor(t)
	for range 2 {
		s, err := clickhouse.Open(context.Background(), srv.DSN(db), clickhouse.Deps{Registry: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		if v := s.ServerVersion(); v == "" {
			t.Error("no server version")
		}
		s.Close()
	}
	if clickhouse.SchemaVersion() < 1 {
		t.Errorf("schema version %d", clickhouse.SchemaVersion())
	}
}

func TestOpenErrors(t *testing.T) {
	for _, tc := range []struct{ name, dsn string }{
		{"bad database name", "clickhouse://127.0.0.1:1/kap-kan"},
		{"nobody listening", "clickhouse://127.0.0.1:1/kapkan"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if s, err := clickhouse.Open(c, tc.dsn, clickhouse.Deps{}); err == nil {
				s.Close()
				t.Fatal("opened")
			}
		})
	}
}
