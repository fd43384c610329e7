package policy_test

import (
	"errors"
	"net/netip"
	"testing"
	"testing/fstest"
	"time"

	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/policy"
	"github.com/kapkan-io/kapkan/rules"
)

const ladderFile = `kapkan_rules: 1
ladders:
  - name: three-steps
    steps:
      - {action: flowspec-ratelimit, rate_mbps: 100, hold: 10s}
      - {action: flowspec-discard, hold: 10s, when: "pps > 50000"}
      - {action: blackhole}
`

func set(t *testing.T) *rules.Set {
	t.Helper()
	s, err := rules.Compile(rules.Source{FS: fstest.MapFS{"l.yaml": {Data: []byte(ladderFile)}}, Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func cand(kind engine.CandidateKind, at time.Time, pps uint64) *engine.Candidate {
	c := &engine.Candidate{Kind: kind, ID: 7, Target: netip.MustParsePrefix("203.0.113.5/32"), Started: at, At: at}
	c.Rates[engine.MetricPPS] = pps
	return c
}

func TestLadderEscalation(t *testing.T) {
	s := set(t)
	l := s.Ladder("any", nil)
	if l == nil || l.Name != "three-steps" {
		t.Fatalf("ladder %v", l)
	}
	tr := policy.New()
	t0 := time.Unix(1_800_000_000, 0)
	v := rules.Verdict{Vector: flowspec.Match{Protocol: "udp", SrcPorts: []string{"53"}}}
	ds, err := tr.Start(cand(engine.AttackStarted, t0, 100_000), v, l, rules.Features{PPS: 100_000})
	if err != nil || len(ds) != 1 || ds[0].Action != flowspec.RateLimit || ds[0].RateMbps != 100 || ds[0].Withdraw || ds[0].Vector.Protocol != "udp" {
		t.Fatalf("start: %+v %v", ds, err)
	}
	// Within the hold time nothing changes.
	if ds, _ := tr.Update(cand(engine.AttackUpdated, t0.Add(5*time.Second), 100_000)); len(ds) != 0 {
		t.Fatalf("stepped up during the hold: %+v", ds)
	}
	// Hold passed but the evidence says the attack is smaller: stay.
	if ds, _ := tr.Update(cand(engine.AttackUpdated, t0.Add(11*time.Second), 20_000)); len(ds) != 0 {
		t.Fatalf("stepped up while the condition did not hold: %+v", ds)
	}
	// Hold passed and the condition holds: discard announced, then the rate
	// limit withdrawn, in that order.
	ds, _ = tr.Update(cand(engine.AttackUpdated, t0.Add(12*time.Second), 80_000))
	if len(ds) != 2 || ds[0].Action != flowspec.Discard || ds[0].Withdraw || ds[1].Action != flowspec.RateLimit || !ds[1].Withdraw || !ds[1].Replaced {
		t.Fatalf("escalation: %+v", ds)
	}
	ds, _ = tr.Update(cand(engine.AttackUpdated, t0.Add(23*time.Second), 80_000))
	if len(ds) != 2 || ds[0].Action != flowspec.Blackhole || !ds[0].Vector.IsZero() || ds[0].Step != 3 {
		t.Fatalf("blackhole: %+v", ds)
	}
	if ds, _ := tr.Update(cand(engine.AttackUpdated, t0.Add(60*time.Second), 80_000)); len(ds) != 0 {
		t.Fatalf("past the last step: %+v", ds)
	}
	ds = tr.End(cand(engine.AttackEnded, t0.Add(90*time.Second), 0))
	if len(ds) != 1 || ds[0].Action != flowspec.Blackhole || !ds[0].Withdraw || ds[0].Replaced {
		t.Fatalf("end: %+v", ds)
	}
}

func TestFlowSpecStepsNeedAVector(t *testing.T) {
	s := set(t)
	tr := policy.New()
	t0 := time.Unix(1_800_000_000, 0)
	// No vector: both FlowSpec steps are skipped, the blackhole applies.
	ds, err := tr.Start(cand(engine.AttackStarted, t0, 100_000), rules.Verdict{}, s.Ladder("any", nil), rules.Features{PPS: 100_000})
	if err != nil || len(ds) != 1 || ds[0].Action != flowspec.Blackhole {
		t.Fatalf("%+v %v", ds, err)
	}
}

func TestBrokenLadderIsRefused(t *testing.T) {
	bad := `kapkan_rules: 1
ladders:
  - name: Bad_Name
    steps:
      - {action: flowspec-ratelimit}
      - {action: nuke, hold: soon}
      - {action: blackhole, when: "pps >"}
`
	_, err := rules.Compile(rules.Source{FS: fstest.MapFS{"l.yaml": {Data: []byte(bad)}}, Name: "test"})
	if err == nil {
		t.Fatal("accepted")
	}
	es := err.(rules.Errors)
	if len(es) < 5 {
		t.Errorf("want every problem at once, got %d:\n%v", len(es), err)
	}
}

// bigGoesBlackhole is a code policy: a rate limit below 1000 Mbps, a
// blackhole above; it fails when told to.
type bigGoesBlackhole struct{ fail bool }

func (p *bigGoesBlackhole) Decide(in rules.PolicyInput) (rules.PolicyDecision, error) {
	if p.fail {
		return rules.PolicyDecision{}, errors.New("trap")
	}
	if in.Features.Mbps > 1000 {
		return rules.PolicyDecision{Action: flowspec.Blackhole, Reason: "above 1 Gbps"}, nil
	}
	return rules.PolicyDecision{Action: flowspec.RateLimit, RateMbps: 50}, nil
}

func TestCodePolicy(t *testing.T) {
	pol := &bigGoesBlackhole{}
	l := &rules.Ladder{Name: "code", Policy: pol}
	tr := policy.New()
	t0 := time.Unix(1_800_000_000, 0)
	v := rules.Verdict{Vector: flowspec.Match{Protocol: "udp"}}
	ds, err := tr.Start(cand(engine.AttackStarted, t0, 100_000), v, l, rules.Features{Mbps: 200})
	if err != nil || len(ds) != 1 || ds[0].Action != flowspec.RateLimit || ds[0].RateMbps != 50 || ds[0].Vector.Protocol != "udp" {
		t.Fatalf("start: %+v %v", ds, err)
	}
	// Same answer: nothing changes.
	if ds, _ := tr.Update(cand(engine.AttackUpdated, t0.Add(time.Second), 100_000)); len(ds) != 0 {
		t.Fatalf("no change expected: %+v", ds)
	}
	// A failing call leaves the attack as it is.
	pol.fail = true
	if ds, err := tr.Update(cand(engine.AttackUpdated, t0.Add(2*time.Second), 100_000)); err == nil || len(ds) != 0 {
		t.Fatalf("failing policy: %+v %v", ds, err)
	}
	pol.fail = false
	c := cand(engine.AttackUpdated, t0.Add(3*time.Second), 100_000)
	c.Rates[engine.MetricBPS] = 250_000_000 // bytes per second: 2 Gbps
	ds, err = tr.Update(c)
	if err != nil || len(ds) != 2 || ds[0].Action != flowspec.Blackhole || ds[0].Withdraw || !ds[0].Vector.IsZero() ||
		ds[1].Action != flowspec.RateLimit || !ds[1].Withdraw || !ds[1].Replaced || ds[0].Reason != "above 1 Gbps" {
		t.Fatalf("escalation: %+v %v", ds, err)
	}
	ds = tr.End(cand(engine.AttackEnded, t0.Add(9*time.Second), 0))
	if len(ds) != 1 || ds[0].Action != flowspec.Blackhole || !ds[0].Withdraw || ds[0].Replaced {
		t.Fatalf("end: %+v", ds)
	}
	// Without a vector a policy's FlowSpec rule matches all traffic to the
	// target.
	c = cand(engine.AttackStarted, t0, 100_000)
	c.ID = 8
	ds, err = tr.Start(c, rules.Verdict{}, l, rules.Features{Mbps: 200})
	if err != nil || len(ds) != 1 || ds[0].Action != flowspec.RateLimit || !ds[0].Vector.IsZero() {
		t.Fatalf("no vector: %+v %v", ds, err)
	}
}

type policyFunc func(rules.PolicyInput) (rules.PolicyDecision, error)

func (f policyFunc) Decide(in rules.PolicyInput) (rules.PolicyDecision, error) { return f(in) }

// TestCodePolicyDecisionsChecked: a code policy's answer is checked like a
// ladder step (rules.CheckAction) before anything is decided.
func TestCodePolicyDecisionsChecked(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	for i, bad := range []rules.PolicyDecision{
		{Action: flowspec.Action(99)}, {Action: flowspec.RateLimit}, {Action: flowspec.Blackhole, RateMbps: 5}, {RateMbps: 5},
	} {
		l := &rules.Ladder{Name: "bad", Policy: policyFunc(func(rules.PolicyInput) (rules.PolicyDecision, error) { return bad, nil })}
		c := cand(engine.AttackStarted, t0, 100_000)
		c.ID = uint64(100 + i)
		if ds, err := policy.New().Start(c, rules.Verdict{}, l, rules.Features{}); err == nil || len(ds) != 0 {
			t.Errorf("%+v: %+v %v", bad, ds, err)
		}
	}
}
