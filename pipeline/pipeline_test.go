package pipeline_test

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/builtin"
	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/internal/testutil"
	"github.com/kapkan-io/kapkan/pipeline"
	"github.com/kapkan-io/kapkan/rules"
	"github.com/kapkan-io/kapkan/rules/wasm"
	"github.com/kapkan-io/kapkan/rules/wasm/wasmtest"
)

// recorder is the mitigator and the event sink of a test: it keeps every
// decision and event with when it arrived.
type recorder struct {
	mu        sync.Mutex
	decisions []flowspec.Decision
	firstAt   map[uint64]time.Time
	events    []events.Event
}

func newRecorder() *recorder { return &recorder{firstAt: map[uint64]time.Time{}} }

func (r *recorder) Apply(d flowspec.Decision) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.decisions = append(r.decisions, d)
	if _, ok := r.firstAt[d.AttackID]; !ok {
		r.firstAt[d.AttackID] = time.Now()
	}
	return nil
}

func (r *recorder) Publish(e events.Event) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return uint64(len(r.events))
}

func (r *recorder) kinds(id uint64) []events.Kind {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []events.Kind
	for _, e := range r.events {
		switch {
		case e.Attack != nil && e.Attack.ID == id, e.Mitigation != nil && e.Mitigation.AttackID == id:
			out = append(out, e.Kind)
		}
	}
	return out
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// candidate is a UDP flood on target from source port 53 with a flow
// sample of n records (a DNS amplification the built-in rules label).
func candidate(id uint64, target string, kind engine.CandidateKind, n int, at time.Time) engine.Candidate {
	a := netip.MustParseAddr(target)
	c := engine.Candidate{Kind: kind, ID: id, Target: netip.PrefixFrom(a, a.BitLen()), Hostgroup: "customers",
		Trigger: engine.MetricPPS, Rate: 200_000, Threshold: 50_000, Started: at, At: at}
	c.Rates[engine.MetricPPS] = 200_000
	c.Rates[engine.MetricBPS] = 200_000 * 1400
	for i := range n {
		c.Sample = append(c.Sample, flow.Record{
			Src: netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i%200)}).As16(), Dst: a.As16(),
			SrcPort: 53, DstPort: uint16(1024 + i), Proto: 17, Bytes: 1400, Packets: 1, SamplingRate: 1000,
			Flags: flow.FlagHasIP})
	}
	return c
}

func builtinSet(t *testing.T, host *wasm.Host, dirs ...string) *rules.Set {
	t.Helper()
	var srcs []rules.Source
	for _, d := range dirs {
		srcs = append(srcs, rules.Dir(d))
	}
	srcs = append(srcs, rules.Source{FS: builtin.Classify(), Name: "builtin", Builtin: true})
	set, err := rules.CompileWith(host, srcs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Close() })
	return set
}

// newPipeline builds a pipeline over set whose decisions and events the
// returned recorder keeps.
func newPipeline(t *testing.T, cfg pipeline.Config, set *rules.Set) (*pipeline.Pipeline, *recorder) {
	t.Helper()
	rec := newRecorder()
	pl, err := pipeline.New(cfg, pipeline.Deps{Rules: func() *rules.Set { return set }, Mitigator: rec, Events: rec, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return pl, rec
}

// run runs pl on a channel of candidates until the returned stop is called.
func run(pl *pipeline.Pipeline, queue int) (in chan engine.Candidate, stop func()) {
	in = make(chan engine.Candidate, queue)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pl.Run(ctx, in) }()
	return in, func() { cancel(); <-done }
}

// TestHangingModuleDelaysNoAttack is the case: three rules name a
// module that runs into its 1 s timeout, and ten attacks start at once.
// Every attack is classified (by the expr rules) and its mitigation
// requested within 1 s; the module is suspended and counted.
func TestHangingModuleDelaysNoAttack(t *testing.T) {
	dir := t.TempDir()
	wasmtest.Write(t, "bad/loop", dir, "loop.wasm")
	if err := os.WriteFile(filepath.Join(dir, "ops.yaml"), []byte(`kapkan_rules: 1
rules:
  - {name: hang-a, wasm: loop.wasm, limits: {timeout: 1s}}
  - {name: hang-b, wasm: loop.wasm, limits: {timeout: 1s}}
  - {name: hang-c, wasm: loop.wasm, limits: {timeout: 1s}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	host := wasm.NewHost(quiet())
	hreg := prometheus.NewRegistry()
	hreg.MustRegister(host.Collectors()...)
	set := builtinSet(t, host, dir)
	pl, rec := newPipeline(t, pipeline.Config{}, set)
	in, stop := run(pl, 16)
	const attacks = 10
	now := time.Now()
	sent := time.Now()
	for i := range attacks {
		in <- candidate(uint64(i+1), netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + i)}).String(), engine.AttackStarted, 200, now)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec.mu.Lock()
		n := len(rec.firstAt)
		rec.mu.Unlock()
		if n == attacks || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i := range attacks {
		at, ok := rec.firstAt[uint64(i+1)]
		if !ok {
			t.Errorf("attack %d: no mitigation requested", i+1)
			continue
		}
		if d := at.Sub(sent); d > time.Second {
			t.Errorf("attack %d: mitigation requested %v after detection, want within 1s", i+1, d)
		}
	}
	for _, e := range rec.events {
		if e.Kind == events.AttackStarted && (len(e.Attack.Labels) == 0 || e.Attack.Vector.IsZero()) {
			t.Errorf("attack %d started without labels or vector: %+v", e.Attack.ID, e.Attack)
		}
	}
	var suspended float64
	for _, m := range []string{"hang-a", "hang-b", "hang-c"} {
		suspended += testutil.MetricValue(t, hreg, "kapkan_wasm_suspensions_total", map[string]string{"module": m})
	}
	if suspended < 1 {
		t.Errorf("no module suspension counted")
	}
}

// TestOrderPerAttack: whatever the workers, an attack's events come in its
// order (started, updated, ended) and its ladder's first step after its
// start.
func TestOrderPerAttack(t *testing.T) {
	set := builtinSet(t, wasm.NewHost(quiet()))
	pl, rec := newPipeline(t, pipeline.Config{Workers: 3}, set)
	in, stop := run(pl, 256)
	t0 := time.Unix(1_800_000_000, 0)
	const attacks = 12
	for i := range attacks {
		target := netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + i)}).String()
		in <- candidate(uint64(i+1), target, engine.AttackStarted, 200, t0)
	}
	for s := 1; s <= 3; s++ {
		for i := range attacks {
			target := netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + i)}).String()
			in <- candidate(uint64(i+1), target, engine.AttackUpdated, 200, t0.Add(time.Duration(s)*time.Second))
		}
	}
	for i := range attacks {
		target := netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + i)}).String()
		in <- candidate(uint64(i+1), target, engine.AttackEnded, 200, t0.Add(10*time.Second))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec.mu.Lock()
		n := 0
		for _, e := range rec.events {
			if e.Kind == events.AttackEnded {
				n++
			}
		}
		rec.mu.Unlock()
		if n == attacks || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	for i := range attacks {
		ks := rec.kinds(uint64(i + 1))
		var got []events.Kind
		for _, k := range ks {
			if k != events.MitigationNone {
				got = append(got, k)
			}
		}
		// Rate updates waiting behind another may be coalesced (latest
		// wins): one to three of them.
		ok := len(got) >= 3 && len(got) <= 5 && got[0] == events.AttackStarted && got[len(got)-1] == events.AttackEnded
		for j := 1; ok && j < len(got)-1; j++ {
			ok = got[j] == events.AttackUpdated
		}
		if !ok {
			t.Errorf("attack %d: events %v, want started, updated (1 to 3), ended", i+1, got)
		}
	}
	// Decisions: per attack, an announce before its withdrawal.
	rec.mu.Lock()
	defer rec.mu.Unlock()
	announced := map[uint64]bool{}
	for _, d := range rec.decisions {
		if d.Withdraw && !announced[d.AttackID] {
			t.Errorf("attack %d: withdrawal before any announce", d.AttackID)
		}
		if !d.Withdraw {
			announced[d.AttackID] = true
		}
	}
	if len(announced) != attacks {
		t.Errorf("%d attacks mitigated, want %d", len(announced), attacks)
	}
}

// TestTinySampleClassifiedAgain: an attack detected on four records gets
// no verdict; its updates, whose sample has grown, classify it again, and
// the ladder starts from the better verdict. The attack events say how many
// records each verdict stood on.
func TestTinySampleClassifiedAgain(t *testing.T) {
	set := builtinSet(t, wasm.NewHost(quiet()))
	pl, rec := newPipeline(t, pipeline.Config{Workers: 1}, set)
	t0 := time.Unix(1_800_000_000, 0)
	ctx := context.Background()
	c := candidate(1, "203.0.113.50", engine.AttackStarted, 4, t0)
	pl.Handle(ctx, &c)
	for s := 1; s <= 3; s++ {
		u := candidate(1, "203.0.113.50", engine.AttackUpdated, 50*s, t0.Add(time.Duration(s)*time.Second))
		pl.Handle(ctx, &u)
	}
	var first, last *events.Attack
	for _, e := range rec.events {
		if e.Attack == nil {
			continue
		}
		if first == nil {
			first = e.Attack
		}
		last = e.Attack
	}
	if first == nil || first.SampleRecords != 4 {
		t.Fatalf("start event %+v: want a verdict on 4 records", first)
	}
	if last.SampleRecords <= 4 || len(last.Labels) == 0 || last.Vector.IsZero() {
		t.Fatalf("after updates: %+v, want labels and a vector on more records", last)
	}
	var mitigated bool
	for _, d := range rec.decisions {
		if !d.Withdraw && d.Vector.String() == last.Vector.String() {
			mitigated = true
		}
	}
	if !mitigated {
		t.Errorf("no action on the better vector %v; decisions %+v", last.Vector, rec.decisions)
	}
}

// TestEveryAttackActsOrSaysWhy: with every classifier disabled, a UDP
// flood has no label and no rule's vector; the default ladder still
// mitigates it, on its dominant protocol. A mix of protocols gives no
// vector at all: nothing is announced, and an event says why.
func TestEveryAttackActsOrSaysWhy(t *testing.T) {
	host := wasm.NewHost(quiet())
	all := builtinSet(t, host)
	dir := t.TempDir()
	body := "kapkan_rules: 1\ndisable:\n"
	for _, r := range all.Rules() {
		body += "  - " + r + "\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "off.yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	set := builtinSet(t, host, dir)
	if len(set.Rules()) != 0 {
		t.Fatalf("rules left: %v", set.Rules())
	}
	pl, rec := newPipeline(t, pipeline.Config{Workers: 1}, set)
	t0 := time.Unix(1_800_000_000, 0)
	flood := candidate(1, "203.0.113.60", engine.AttackStarted, 100, t0)
	pl.Handle(context.Background(), &flood)
	if len(rec.decisions) != 1 || rec.decisions[0].Action != flowspec.Discard || rec.decisions[0].Vector.Protocol != "udp" {
		t.Fatalf("UDP flood without a rule: decisions %+v, want a FlowSpec discard of udp", rec.decisions)
	}
	mixed := candidate(2, "203.0.113.61", engine.AttackStarted, 100, t0)
	mixed.Rate, mixed.Rates[engine.MetricPPS], mixed.Rates[engine.MetricBPS] = 60_000, 60_000, 60_000*1400
	for i := range mixed.Sample {
		if i%2 == 0 {
			mixed.Sample[i].Proto = 6
		}
	}
	pl.Handle(context.Background(), &mixed)
	hot := candidate(3, "203.0.113.62", engine.AttackStarted, 100, t0)
	for i := range hot.Sample {
		if i%2 == 0 {
			hot.Sample[i].Proto = 6
		}
	}
	pl.Handle(context.Background(), &hot)
	if len(rec.decisions) != 2 || rec.decisions[1].AttackID != 3 || rec.decisions[1].Action != flowspec.Blackhole {
		t.Fatalf("mixed attacks: decisions %+v, want only a blackhole of the one at 4 times its threshold", rec.decisions[1:])
	}
	if len(rec.decisions) != 2 {
		t.Fatalf("mixed attack: decisions %+v, want none", rec.decisions[1:])
	}
	var why string
	for _, e := range rec.events {
		if e.Kind == events.MitigationNone && e.Mitigation.AttackID == 2 {
			why = e.Mitigation.Reason
		}
	}
	if why == "" {
		t.Fatal("no mitigation_none event for an attack nothing acts on")
	}
	if !strings.Contains(why, "waits for its condition") {
		t.Errorf("reason %q does not say what the ladder waits for", why)
	}
}

// TestSampleSummary: the attack event summarises its flow sample: the
// sources sending most (sampling-corrected), ports and sizes.
func TestSampleSummary(t *testing.T) {
	set := builtinSet(t, wasm.NewHost(quiet()))
	rec := newRecorder()
	pl, err := pipeline.New(pipeline.Config{Workers: 1}, pipeline.Deps{Rules: func() *rules.Set { return set }, Events: rec, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	c := candidate(1, "203.0.113.70", engine.AttackStarted, 100, time.Unix(1_800_000_000, 0))
	for i := range c.Sample {
		c.Sample[i].SamplingRate = 100
		if i < 10 {
			// One source at ten times the rate: half of the packets.
			c.Sample[i].Src = netip.MustParseAddr("192.0.2.99").As16()
			c.Sample[i].SamplingRate = 900
		}
	}
	pl.Handle(context.Background(), &c)
	s := rec.events[0].Attack.Sample
	if s == nil || len(s.TopSources) == 0 {
		t.Fatalf("no sample summary: %+v", rec.events[0].Attack)
	}
	if s.TopSources[0].Value != "192.0.2.99" || s.TopSources[0].Share != 0.5 {
		t.Errorf("top source %+v, want 192.0.2.99 at 0.5", s.TopSources[0])
	}
	if len(s.TopSrcPorts) == 0 || s.TopSrcPorts[0].Value != "53" || s.TopSrcPorts[0].Share != 1 {
		t.Errorf("top source ports %+v, want 53 at 1", s.TopSrcPorts)
	}
	if s.P50PacketSize != 1400 || s.Sources != 91 {
		t.Errorf("sizes/sources %+v", s)
	}
}

// TestEscalationCarriesVerdict: when the ladder moves, the escalation
// event is the whole attack (labels, rules, sample, trip) with the new
// step, so no consumer loses the verdict.
func TestEscalationCarriesVerdict(t *testing.T) {
	set := builtinSet(t, wasm.NewHost(quiet()))
	pl, rec := newPipeline(t, pipeline.Config{Workers: 1}, set)
	t0 := time.Unix(1_800_000_000, 0)
	for _, c := range []engine.Candidate{
		candidate(1, "203.0.113.9", engine.AttackStarted, 200, t0),
		candidate(1, "203.0.113.9", engine.AttackUpdated, 200, t0.Add(61*time.Second)),
	} {
		pl.Handle(t.Context(), &c)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var esc *events.Attack
	var kinds []events.Kind
	for _, e := range rec.events {
		kinds = append(kinds, e.Kind)
		if e.Kind == events.AttackEscalated {
			esc = e.Attack
		}
	}
	if esc == nil {
		t.Fatalf("no escalation a minute into a 4× attack; events %v", kinds)
	}
	if esc.Step != 2 || esc.Action != flowspec.Blackhole {
		t.Errorf("escalation to step %d %v, want step 2 blackhole", esc.Step, esc.Action)
	}
	if len(esc.Labels) == 0 || len(esc.Rules) == 0 || esc.Sample == nil || esc.Threshold != 50_000 || esc.SampleRecords == 0 {
		t.Errorf("the escalation event lost the verdict or the trip: %+v", esc)
	}
}
