package incident

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/ingest"
	"github.com/kapkan-io/kapkan/ingest/demo"
)

var (
	victim = netip.MustParseAddr("203.0.113.9")
	other  = netip.MustParseAddr("203.0.113.77")
)

// traffic is 30 s of sFlow: background to 20 hosts, a flood on victim
// from 10 s to 20 s and one on other from 12 s.
func traffic(t *testing.T) []ingest.Datagram {
	t.Helper()
	s := demo.Scenario{Format: flow.FormatSFlow5, SamplingRate: 100, Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
		Hosts: 20, BackgroundPPS: 2000, Agent: netip.MustParseAddr("192.0.2.1"), Seed: 3, Duration: 30 * time.Second,
		Attacks: []demo.Attack{
			{Kind: demo.UDPFlood, Target: victim, PPS: 50_000, Start: 10 * time.Second, Duration: 10 * time.Second},
			{Kind: demo.SYNFlood, Target: other, PPS: 50_000, Start: 12 * time.Second, Duration: 10 * time.Second},
		}}
	dgs, err := s.Generate()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]ingest.Datagram, len(dgs))
	for i, d := range dgs {
		out[i] = ingest.Datagram{Time: demo.CaptureStart.Add(d.At), Src: netip.AddrPortFrom(s.Agent, 0), Payload: d.Payload}
	}
	return out
}

// targets returns the destinations of the records of a datagram.
func targets(t *testing.T, d ingest.Datagram) map[netip.Addr]bool {
	t.Helper()
	got := map[netip.Addr]bool{}
	b := ingest.NewBatcher(nil, flow.SinkFunc(func(b *flow.Batch) {
		for i := range b.Valid() {
			got[b.Records[i].DstAddr()] = true
		}
		flow.DefaultPool.Put(b)
	}))
	if _, err := ingest.New(ingest.Options{}, ingest.Deps{}).Decode(d.Payload, d.Src.Addr(), d.Time, b); err != nil {
		t.Fatal(err)
	}
	b.Flush()
	return got
}

func started(id uint64, target netip.Addr, at time.Time) *events.Event {
	return &events.Event{Kind: events.AttackStarted, At: at, Attack: &events.Attack{ID: id, Target: netip.PrefixFrom(target, 32),
		Direction: "incoming", Hostgroup: "customers", Labels: []string{"udp-flood"}}}
}

// play writes the datagrams into a ring, ticking rec at every second and
// calling at(second) before each tick.
func play(dgs []ingest.Datagram, ring *ingest.FlightRing, rec *Recorder, at func(sec int, now time.Time)) {
	next := demo.CaptureStart.Add(time.Second)
	sec := 1
	for _, d := range dgs {
		for !d.Time.Before(next) {
			at(sec, next)
			rec.Tick(next)
			next = next.Add(time.Second)
			sec++
		}
		ring.Begin()
		ring.Add(d.Src.Addr(), d.Time, d.Payload)
		ring.End()
	}
}

func TestRecorder(t *testing.T) {
	dgs := traffic(t)
	fl := ingest.NewFlight(64 << 20)
	ring := fl.Ring()
	reg := prometheus.NewRegistry()
	rec, err := New(Config{Before: 3 * time.Second, After: 5 * time.Second, MaxBytes: 64 << 20, Keep: 1},
		Deps{Flight: fl, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	detected := demo.CaptureStart.Add(12 * time.Second)
	play(dgs, ring, rec, func(sec int, now time.Time) {
		switch sec {
		case 12:
			rec.Observe(started(1, victim, now))
			// Keep is 1 and the first is still recording: no room.
			rec.Observe(started(2, other, now))
		case 14:
			rec.Observe(&events.Event{Kind: events.MitigationAnnounced, Mitigation: &events.Mitigation{AttackID: 1,
				Action: 2}})
		}
	})
	if _, err := rec.Incident(2, dgs[len(dgs)-1].Time); !errors.Is(err, ErrNotFound) {
		t.Errorf("incident of the attack with no room: %v, want ErrNotFound", err)
	}
	in, err := rec.Incident(1, dgs[len(dgs)-1].Time)
	if err != nil {
		t.Fatal(err)
	}
	if in.Recording || in.Full || in.Lost != 0 {
		t.Errorf("recording %v full %v lost %d, want a finished whole incident", in.Recording, in.Full, in.Lost)
	}
	if in.Action == "" {
		t.Error("the first action was not noted")
	}
	from, to := detected.Add(-3*time.Second), detected.Add(5*time.Second)
	want := 0
	for _, d := range dgs {
		if !d.Time.Before(from) && d.Time.Before(to) && targets(t, d)[victim] {
			want++
		}
	}
	if len(in.Datagrams) != want || want == 0 {
		t.Errorf("%d datagrams recorded, want the %d to the victim from 3 s before detection to 5 s after", len(in.Datagrams), want)
	}
	for _, d := range in.Datagrams {
		if d.Time.Before(from) || !d.Time.Before(to) || !targets(t, d)[victim] {
			t.Fatalf("recorded a datagram at %s carrying %v", d.Time.Sub(demo.CaptureStart), targets(t, d))
		}
	}
	for outcome, n := range map[string]float64{"started": 1, "done": 1, "dropped": 1} {
		if got := testutil.ToFloat64(rec.incidents.WithLabelValues(outcome)); got != n {
			t.Errorf("kapkan_incident_recordings_total{outcome=%q} = %v, want %v", outcome, got, n)
		}
	}
}

// TestRecorderBounds: max_bytes stops a recording, and a finished incident
// makes room for a new one.
func TestRecorderBounds(t *testing.T) {
	dgs := traffic(t)
	fl := ingest.NewFlight(64 << 20)
	ring := fl.Ring()
	rec, err := New(Config{Before: time.Second, After: 3 * time.Second, MaxBytes: 64 << 10, Keep: 1}, Deps{Flight: fl})
	if err != nil {
		t.Fatal(err)
	}
	play(dgs, ring, rec, func(sec int, now time.Time) {
		switch sec {
		case 11:
			rec.Observe(started(1, victim, now))
		case 20: // the first is done (full): it makes room
			rec.Observe(started(2, other, now))
		}
	})
	if _, err := rec.Incident(1, dgs[len(dgs)-1].Time); !errors.Is(err, ErrNotFound) {
		t.Errorf("the first incident should have been evicted: %v", err)
	}
	in, err := rec.Incident(2, dgs[len(dgs)-1].Time)
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for _, d := range in.Datagrams {
		size += len(d.Payload)
	}
	if !in.Full || size > 64<<10 || size == 0 {
		t.Errorf("full %v with %d bytes, want stopped at 65536", in.Full, size)
	}
}

func netipPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
