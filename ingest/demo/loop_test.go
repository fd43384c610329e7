package demo

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/kapkan-io/kapkan/flow"
)

// TestHostPermIsABijection: every offset of a prefix comes out exactly once,
// for every width up to 20 bits and several seeds.
func TestHostPermIsABijection(t *testing.T) {
	for bits := 0; bits <= 20; bits++ {
		for seed := range uint64(3) {
			p := newHostPerm(bits, seed)
			n := uint64(1) << bits
			seen := make([]bool, n)
			for i := range n {
				off := p.at(i)
				if off >= n || seen[off] {
					t.Fatalf("bits %d seed %d: host %d at offset %d (out of range or twice)", bits, seed, i, off)
				}
				seen[off] = true
			}
		}
	}
	// Wider than 20 bits: no repeats among the first million.
	p := newHostPerm(64, 1)
	seen := map[uint64]bool{}
	for i := range uint64(1 << 20) {
		if off := p.at(i); seen[off] {
			t.Fatalf("64 bits: host %d repeats offset %d", i, off)
		} else {
			seen[off] = true
		}
	}
}

// TestDistinctHosts: a million hosts in a /12 are a million distinct
// addresses inside it (a table of random draws would hold about 645 000),
// spread over several prefixes of both families.
func TestDistinctHosts(t *testing.T) {
	for _, c := range []struct {
		name     string
		prefixes []string
		hosts    int
	}{
		{"one /12", []string{"10.0.0.0/12"}, 1_000_000},
		{"a full /24", []string{"203.0.113.0/24"}, 256},
		{"v4 and v6", []string{"203.0.113.0/24", "2001:db8:1::/48", "198.51.100.0/25"}, 3 * 128},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := Scenario{Hosts: c.hosts, Seed: 9}
			for _, p := range c.prefixes {
				s.Prefixes = append(s.Prefixes, netip.MustParsePrefix(p))
			}
			hs := newHostSpace(&s)
			seen := make(map[netip.Addr]bool, c.hosts)
			for i := range uint64(c.hosts) {
				a := hs.addr(i)
				if want := s.Prefixes[i%uint64(len(s.Prefixes))]; !want.Contains(a) {
					t.Fatalf("host %d: %s is not in %s", i, a, want)
				}
				if seen[a] {
					t.Fatalf("host %d: %s twice", i, a)
				}
				seen[a] = true
			}
		})
	}
}

// loopScenario has background over more hosts than one second of it holds,
// and an attack across a loop boundary.
func loopScenario(f flow.Format) Scenario {
	return Scenario{Format: f, SamplingRate: 100, Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/12")},
		Hosts: 3000, BackgroundPPS: 200_000, Duration: 4500 * time.Millisecond, Agent: netip.MustParseAddr("192.0.2.9"), Seed: 4,
		Attacks: []Attack{{Kind: SYNFlood, Target: netip.MustParseAddr("10.15.255.1"), PPS: 50_000, Start: 1500 * time.Millisecond, Duration: 1500 * time.Millisecond}}}
}

// TestLoopDecodes: replayed background decodes through ingest to exactly
// the records the Loop counts, the same count the Generator makes; every
// host is seen; attacks arrive as scripted; record times follow the send
// time, not the time the background was built; sequence numbers never
// restart.
func TestLoopDecodes(t *testing.T) {
	for _, f := range []flow.Format{flow.FormatSFlow5, flow.FormatNetFlow9} {
		t.Run(f.String(), func(t *testing.T) {
			s := loopScenario(f)
			l, err := NewLoop(s, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if l.Period() != 2*time.Second { // 3000 hosts at 2000 records/s
				t.Errorf("period %s, want 2s (every host once)", l.Period())
			}
			var dgs []Datagram
			for {
				at, out, ok := l.Next()
				if !ok {
					break
				}
				for _, d := range out {
					dgs = append(dgs, Datagram{At: at, Payload: bytes.Clone(d)})
				}
			}
			if f == flow.FormatNetFlow9 && binary.BigEndian.Uint16(dgs[0].Payload[20:]) >= 256 {
				t.Fatal("the first datagram is not the templates: a collector cannot decode what comes before them")
			}
			recs := decodeAll(t, dgs, s.Agent)
			if int64(len(recs)) != l.Records {
				t.Fatalf("decoded %d records, the loop counts %d", len(recs), l.Records)
			}
			g, _ := NewGenerator(s)
			for {
				if _, _, ok := g.Next(); !ok {
					break
				}
			}
			if g.Records != l.Records {
				t.Errorf("loop sent %d records, the generator makes %d", l.Records, g.Records)
			}
			hosts := map[netip.Addr]bool{}
			attack, late := 0, 0
			for _, r := range recs {
				if f == flow.FormatNetFlow9 && time.Unix(0, r.End).Sub(CaptureStart) >= l.Period() {
					late++
				}
				if r.DstAddr() == s.Attacks[0].Target {
					attack++
					continue
				}
				hosts[r.DstAddr()] = true
			}
			if f == flow.FormatNetFlow9 {
				// Records sent after the first period carry the times they
				// were sent at, not the times they were built at.
				want := 0
				for _, d := range dgs {
					if d.At >= l.Period() && binary.BigEndian.Uint16(d.Payload[20:]) >= 256 {
						want += int(binary.BigEndian.Uint16(d.Payload[2:]))
					}
				}
				if late != want || want == 0 {
					t.Errorf("%d records end after the first period, want %d", late, want)
				}
			}
			if len(hosts) != s.Hosts {
				t.Errorf("%d distinct destinations, want %d", len(hosts), s.Hosts)
			}
			if want := 50_000 * 15 / 10 / 100; attack < want*99/100 || attack > want*101/100 {
				t.Errorf("%d attack records, want %d", attack, want)
			}
			if l.FirstSample[0] != s.Attacks[0].Start {
				t.Errorf("first attack sample at %s, want %s", l.FirstSample[0], s.Attacks[0].Start)
			}
			checkSequences(t, f, dgs)
		})
	}
	if _, err := NewLoop(Scenario{Format: flow.FormatIPFIX, SamplingRate: 1}, time.Second); err == nil {
		t.Error("IPFIX accepted")
	}
}

// checkSequences: sFlow datagram sequence numbers go 1, 2, 3… and sample
// sequence numbers too, with pools at sequence × rate; NetFlow v9 package
// sequence numbers go 0, 1, 2… and the header's unix_secs and sysUpTime
// follow the send time.
func checkSequences(t *testing.T, f flow.Format, dgs []Datagram) {
	t.Helper()
	be := binary.BigEndian
	sample := uint32(0)
	for i, d := range dgs {
		p := d.Payload
		if f == flow.FormatSFlow5 {
			if seq := be.Uint32(p[16:]); seq != uint32(i+1) {
				t.Fatalf("datagram %d: sequence %d", i, seq)
			}
			if up := be.Uint32(p[20:]); up != uint32((time.Hour + d.At).Milliseconds()) {
				t.Fatalf("datagram %d at %s: uptime %d", i, d.At, up)
			}
			n := int(be.Uint32(p[24:]))
			for q := 28; n > 0; n-- {
				sample++
				if seq, pool := be.Uint32(p[q+8:]), be.Uint32(p[q+20:]); seq != sample || pool != sample*be.Uint32(p[q+16:]) {
					t.Fatalf("datagram %d: sample sequence %d pool %d, want %d", i, seq, pool, sample)
				}
				q += 8 + int(be.Uint32(p[q+4:]))
			}
			continue
		}
		if seq := be.Uint32(p[12:]); seq != uint32(i) {
			t.Fatalf("datagram %d: sequence %d", i, seq)
		}
		export := time.Unix(CaptureStart.Add(d.At).Unix(), 0)
		if secs, up := be.Uint32(p[8:]), be.Uint32(p[4:]); secs != uint32(export.Unix()) || up != uint32(export.Sub(CaptureStart.Add(-time.Hour)).Milliseconds()) {
			t.Fatalf("datagram %d at %s: unix_secs %d sysUpTime %d", i, d.At, secs, up)
		}
	}
}

// TestLoopDatagramsHaveOneLength: a tick's background datagrams are one
// length but the last and lie end to end, which is what a GSO send needs.
func TestLoopDatagramsHaveOneLength(t *testing.T) {
	for _, f := range []flow.Format{flow.FormatSFlow5, flow.FormatNetFlow9} {
		s := loopScenario(f)
		s.Attacks = nil
		l, err := NewLoop(s, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for range 50 {
			_, out, _ := l.Next()
			if f == flow.FormatNetFlow9 && binary.BigEndian.Uint16(out[0][20:]) < 256 {
				out = out[1:] // templates
			}
			for i := 1; i < len(out)-1; i++ {
				if len(out[i]) != len(out[0]) ||
					unsafe.Add(unsafe.Pointer(unsafe.SliceData(out[i-1])), len(out[i-1])) != unsafe.Pointer(unsafe.SliceData(out[i])) {
					t.Fatalf("%s: datagram %d of a tick: %d bytes (first %d) or not next to the one before", f, i, len(out[i]), len(out[0]))
				}
			}
		}
	}
}

// TestLoopAllocs: replaying costs no allocation.
func TestLoopAllocs(t *testing.T) {
	s := loopScenario(flow.FormatSFlow5)
	s.Duration = time.Hour
	l, err := NewLoop(s, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	l.Next()
	if n := testing.AllocsPerRun(200, func() { l.Next() }); n != 0 {
		t.Errorf("%v allocations per tick", n)
	}
}
