package pipeline_test

import (
	"context"
	"math"
	"net/netip"
	"testing"
	"testing/fstest"
	"time"

	"github.com/kapkan-io/kapkan/builtin"
	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/pipeline"
	"github.com/kapkan-io/kapkan/rules"
)

// TestLadderSeesReportedRate pins issue #20 (point 2) end to end: a ladder
// step `when: "pps > 90000"` must fire on a steady 100 000 pps attack
// (sampled records, 5 s window), because the rate a ladder condition sees
// is the rate the attack events report — and that rate is the attack's.
// The engine once reported the window's average over a second too many, so
// a steady 100 000 pps read about 80 000 and only `pps > 79000` fired.
func TestLadderSeesReportedRate(t *testing.T) {
	const (
		pps      = 100_000
		sampling = 100 // one record per 100 packets: 1000 records a second
		secs     = 20
	)
	set, err := rules.Compile(
		rules.Source{Name: "ops", FS: fstest.MapFS{"ladder.yaml": {Data: []byte(`kapkan_rules: 1
ladders:
  - name: above-90k
    steps:
      - {action: flowspec-discard, when: "pps > 90000"}
`)}}},
		rules.Source{FS: builtin.Classify(), Name: "builtin", Builtin: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Close() })

	cfg := engine.DefaultConfig()
	cfg.Shards = 1
	cfg.Window = 5 * time.Second
	cfg.Hostgroups = []engine.Hostgroup{{Name: "customers",
		Incoming: engine.Thresholds{PPS: 50_000},
		Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}}
	eng, err := engine.NewSync(cfg, engine.Deps{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	pl, err := pipeline.New(pipeline.Config{Workers: 1}, pipeline.Deps{Rules: func() *rules.Set { return set },
		Mitigator: rec, Events: rec, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	handle := func() {
		for _, c := range eng.Drain() {
			pl.Handle(context.Background(), &c)
		}
	}

	// A UDP flood from many sources, each record standing for `sampling`
	// packets, evenly spaced: the true rate is exactly pps.
	start := time.Unix(1_700_000_000, 0)
	dst := netip.MustParseAddr("203.0.113.10").As16()
	perSec := pps / sampling
	var b *flow.Batch
	flush := func() {
		if b != nil && b.N > 0 {
			eng.Consume(b)
		}
		b = nil
		handle()
	}
	for s := range secs {
		for i := range perSec {
			at := start.Add(time.Duration(s)*time.Second + time.Duration(i)*time.Second/time.Duration(perSec))
			r := flow.Record{Received: at.UnixNano(), Dst: dst,
				Src:     netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i%200)}).As16(),
				SrcPort: uint16(1024 + i%50000), DstPort: 443, Proto: 17,
				Packets: 1, Bytes: 512, SamplingRate: sampling,
				Flags: flow.FlagHasIP, Format: flow.FormatSFlow5}
			if b == nil {
				b = flow.DefaultPool.Get()
			}
			if b.Add(&r) {
				flush()
			}
		}
		flush()
		eng.Tick(start.Add(time.Duration(s+1) * time.Second))
		handle()
	}

	announced := false
	for _, d := range rec.decisions {
		if !d.Withdraw && d.Action == flowspec.Discard {
			announced = true
		}
	}
	if !announced {
		t.Errorf("the step `pps > 90000` was never announced on a steady %d pps attack (decisions: %+v)", pps, rec.decisions)
	}
	n := 0
	for _, e := range rec.events {
		if e.Attack == nil || (e.Kind != events.AttackStarted && e.Kind != events.AttackUpdated) {
			continue
		}
		t.Logf("%s at +%s: %.0f pps", e.Kind, e.At.Sub(start), e.Attack.Rates["pps"])
		if e.At.Before(start.Add(cfg.Window)) {
			continue // the window is not full yet: the rate is still ramping up
		}
		n++
		if got := e.Attack.Rates["pps"]; math.Abs(got-pps) > 0.05*pps {
			t.Errorf("%s at %s reports %.0f pps, want %d ± 5%%", e.Kind, "+"+e.At.Sub(start).String(), got, pps)
		}
	}
	if n == 0 {
		t.Fatal("no attack event once the window was full")
	}
}
