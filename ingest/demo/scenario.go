// Package demo generates flow telemetry from a scripted scenario: benign
// background traffic spread over many protected addresses plus attacks of
// every kind Kapkan labels, sampled and exported as real sFlow v5 or NetFlow
// v9 datagrams. It is seeded, so a scenario always produces the same bytes.
// `make run` sends it to the daemon's own listener, and tests write it into
// captures.
package demo

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"
	"time"

	"github.com/kapkan-io/kapkan/flow"
	fg "github.com/kapkan-io/kapkan/ingest/flowgen"
)

// Kind is an attack kind.
type Kind string

// Attack kinds.
const (
	UDPFlood      Kind = "udp-flood"
	SYNFlood      Kind = "syn-flood"
	ICMPFlood     Kind = "icmp-flood"
	FragFlood     Kind = "frag-flood"
	DNSAmp        Kind = "dns-amplification"
	NTPAmp        Kind = "ntp-amplification"
	MemcachedAmp  Kind = "memcached-amplification"
	SSDPAmp       Kind = "ssdp-amplification"
	CLDAPAmp      Kind = "cldap-amplification"
	ChargenAmp    Kind = "chargen-amplification"
	reflectorPool      = 512
)

// Kinds lists every attack kind.
var Kinds = []Kind{UDPFlood, SYNFlood, ICMPFlood, FragFlood, DNSAmp, NTPAmp, MemcachedAmp, SSDPAmp, CLDAPAmp, ChargenAmp}

// shape is what the packets of an attack look like.
type shape struct {
	proto    uint8
	srcPort  uint16 // 0: random
	dstPort  uint16 // 0: random
	flags    uint8
	size     uint32
	fragment bool
	reflect  bool // sources are a pool of reflectors, not random spoofed addresses
}

var shapes = map[Kind]shape{
	UDPFlood:     {proto: fg.ProtoUDP, size: 512},
	SYNFlood:     {proto: fg.ProtoTCP, dstPort: 443, flags: fg.TCPSyn, size: 60},
	ICMPFlood:    {proto: fg.ProtoICMP, dstPort: 8 << 8, size: 1000},
	FragFlood:    {proto: fg.ProtoUDP, size: 1500, fragment: true},
	DNSAmp:       {proto: fg.ProtoUDP, srcPort: 53, size: 1450, reflect: true},
	NTPAmp:       {proto: fg.ProtoUDP, srcPort: 123, size: 468, reflect: true},
	MemcachedAmp: {proto: fg.ProtoUDP, srcPort: 11211, size: 1428, reflect: true},
	SSDPAmp:      {proto: fg.ProtoUDP, srcPort: 1900, size: 320, reflect: true},
	CLDAPAmp:     {proto: fg.ProtoUDP, srcPort: 389, size: 1480, reflect: true},
	ChargenAmp:   {proto: fg.ProtoUDP, srcPort: 19, size: 1024, reflect: true},
}

// Attack is one scripted attack.
type Attack struct {
	Kind   Kind
	Target netip.Addr
	// PPS is the attack's real packet rate, before sampling.
	PPS int
	// Start and Duration place it in the scenario.
	Start, Duration time.Duration
}

// Scenario describes the traffic to generate.
type Scenario struct {
	// Format is flow.FormatSFlow5 or flow.FormatNetFlow9.
	Format flow.Format
	// SamplingRate is 1 in N, sent as each format carries it (sFlow per
	// sample, NetFlow v9 in sampler options data).
	SamplingRate uint32
	// Prefixes hold the background destinations; Hosts of their addresses
	// receive BackgroundPPS packets per second in all.
	Prefixes      []netip.Prefix
	Hosts         int
	BackgroundPPS int
	Attacks       []Attack
	Duration      time.Duration
	// Agent is the exporter's address written in sFlow datagrams.
	Agent netip.Addr
	Seed  uint64
}

// Datagram is one export datagram, At after the scenario's start.
type Datagram struct {
	At      time.Duration
	Payload []byte
}

// Validate reports what is wrong with a scenario.
func (s *Scenario) Validate() error {
	if s.Format != flow.FormatSFlow5 && s.Format != flow.FormatNetFlow9 {
		return fmt.Errorf("format %s: the generator writes sflow5 or netflow9", s.Format)
	}
	if s.SamplingRate == 0 {
		return fmt.Errorf("sampling rate 0 (want 1 or more)")
	}
	if s.Hosts > 0 && len(s.Prefixes) == 0 {
		return fmt.Errorf("%d background hosts but no prefix to draw them from", s.Hosts)
	}
	for i, a := range s.Attacks {
		if _, ok := shapes[a.Kind]; !ok {
			return fmt.Errorf("attack %d: unknown kind %q", i, a.Kind)
		}
		if !a.Target.IsValid() {
			return fmt.Errorf("attack %d: no target", i)
		}
	}
	return nil
}

// packet is one sampled packet.
type packet struct {
	at time.Duration
	f  fg.Flow
}

// tick is the generator's time step.
const tick = 10 * time.Millisecond

// Generate returns every datagram of the scenario in time order.
func (s *Scenario) Generate() ([]Datagram, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(s.Seed, s.Seed^0x5eed))
	hosts := s.hosts(rng)
	reflectors := make([]netip.Addr, reflectorPool)
	for i := range reflectors {
		reflectors[i] = netip.AddrFrom4([4]byte{198, 18 + byte(i>>8&1), byte(rng.IntN(256)), byte(1 + rng.IntN(254))})
	}
	var pkts []packet
	// Expected samples per tick, with the fraction carried so rates are exact.
	emit := func(pps int, from, to time.Duration, mk func() fg.Flow) {
		per := float64(pps) * tick.Seconds() / float64(s.SamplingRate)
		acc := 0.0
		for t := from; t < to; t += tick {
			acc += per
			n := int(acc)
			acc -= float64(n)
			for range n {
				f := mk()
				pkts = append(pkts, packet{at: t + time.Duration(rng.Int64N(int64(tick))), f: f})
			}
		}
	}
	if s.BackgroundPPS > 0 && len(hosts) > 0 {
		emit(s.BackgroundPPS, 0, s.Duration, func() fg.Flow {
			dst := hosts[rng.IntN(len(hosts))]
			src := netip.AddrFrom4([4]byte{100, byte(64 + rng.IntN(64)), byte(rng.IntN(256)), byte(1 + rng.IntN(254))})
			if rng.IntN(2) == 0 {
				return fg.Flow{Src: src, Dst: dst, Proto: fg.ProtoTCP, SrcPort: 443, DstPort: uint16(1024 + rng.IntN(60000)),
					TCPFlags: fg.TCPAck, FrameLen: uint32(64 + rng.IntN(1400))}
			}
			return fg.Flow{Src: src, Dst: dst, Proto: fg.ProtoUDP, SrcPort: 53, DstPort: uint16(1024 + rng.IntN(60000)),
				FrameLen: uint32(80 + rng.IntN(400))}
		})
	}
	for _, a := range s.Attacks {
		sh := shapes[a.Kind]
		emit(a.PPS, a.Start, a.Start+a.Duration, func() fg.Flow {
			f := fg.Flow{Dst: a.Target, Proto: sh.proto, SrcPort: sh.srcPort, DstPort: sh.dstPort, TCPFlags: sh.flags,
				FrameLen: sh.size + uint32(rng.IntN(16)), Fragment: sh.fragment}
			if sh.reflect {
				f.Src = reflectors[rng.IntN(len(reflectors))]
			} else {
				f.Src = netip.AddrFrom4([4]byte{byte(1 + rng.IntN(223)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(1 + rng.IntN(254))})
			}
			if a.Target.Is6() {
				f.Src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 12: byte(rng.IntN(256)), 15: byte(1 + rng.IntN(254))})
			}
			if f.SrcPort == 0 && sh.proto != fg.ProtoICMP {
				f.SrcPort = uint16(1024 + rng.IntN(60000))
			}
			if f.DstPort == 0 {
				f.DstPort = uint16(1 + rng.IntN(65534))
			}
			if sh.fragment {
				f.FragmentOffset = uint16(185 * (1 + rng.IntN(4))) // non-first fragments
			}
			return f
		})
	}
	sort.SliceStable(pkts, func(i, j int) bool { return pkts[i].at < pkts[j].at })
	switch s.Format {
	case flow.FormatSFlow5:
		return s.sflow(pkts), nil
	default:
		return s.netflow9(pkts)
	}
}

func (s *Scenario) hosts(rng *rand.Rand) []netip.Addr {
	out := make([]netip.Addr, 0, s.Hosts)
	for i := range s.Hosts {
		p := s.Prefixes[i%len(s.Prefixes)]
		b := p.Addr().As16()
		bits := p.Bits()
		if p.Addr().Is4() {
			bits += 96
		}
		// Random host bits below the prefix.
		for bit := bits; bit < 128; bit++ {
			if rng.IntN(2) == 1 {
				b[bit/8] |= 0x80 >> (bit % 8)
			}
		}
		a := netip.AddrFrom16(b)
		if p.Addr().Is4() {
			a = a.Unmap()
		}
		out = append(out, a)
	}
	return out
}

// samplesPerDatagram keeps sFlow datagrams under a 1500-byte MTU.
const samplesPerDatagram = 7

func (s *Scenario) sflow(pkts []packet) []Datagram {
	var out []Datagram
	var seq, sampleSeq uint32
	samples := make([]fg.SFlowSample, 0, samplesPerDatagram)
	flush := func(at time.Duration) {
		if len(samples) == 0 {
			return
		}
		seq++
		payload := fg.AppendSFlow(nil, fg.SFlowHeader{Agent: s.Agent, Sequence: seq, Uptime: time.Hour + at}, samples)
		out = append(out, Datagram{At: at, Payload: payload})
		samples = samples[:0]
	}
	for _, p := range pkts {
		sampleSeq++
		samples = append(samples, fg.SFlowSample{Sequence: sampleSeq, SourceIndex: 1, SamplingRate: s.SamplingRate,
			SamplePool: sampleSeq * s.SamplingRate, Input: 1, Output: 2, Flow: p.f})
		if len(samples) == samplesPerDatagram {
			flush(p.at)
		}
	}
	if len(pkts) > 0 {
		flush(pkts[len(pkts)-1].at)
	}
	return out
}

// NetFlow v9 export: the flow cache is flushed once a second; templates and
// sampler options are sent every 10 seconds (and first).
func (s *Scenario) netflow9(pkts []packet) ([]Datagram, error) {
	type key struct {
		src, dst     netip.Addr
		sport, dport uint16
		proto        uint8
		fragment     bool
	}
	tpl := fg.Template{ID: 256, Fields: fg.FlowFields(fg.VersionNetFlow9, fg.IPv4, fg.TimesSysUpTime,
		fg.Field{ID: fg.IESamplerID, Len: 1}, fg.Field{ID: fg.IEFragmentFlags, Len: 1})}
	tpl6 := fg.Template{ID: 257, Fields: fg.FlowFields(fg.VersionNetFlow9, fg.IPv6, fg.TimesSysUpTime,
		fg.Field{ID: fg.IESamplerID, Len: 1}, fg.Field{ID: fg.IEFragmentFlags, Len: 1})}
	opt := fg.V9SamplerOptions(258, true)
	base := time.Unix(1_700_000_000, 0)
	e := &fg.Exporter{Version: fg.VersionNetFlow9, DomainID: 1, Boot: base.Add(-time.Hour)}
	var out []Datagram
	i := 0
	for sec := time.Duration(0); i < len(pkts) || sec == 0; sec += time.Second {
		cache := map[key]*fg.Flow{}
		var order []key
		for ; i < len(pkts) && pkts[i].at < sec+time.Second; i++ {
			p := pkts[i]
			k := key{p.f.Src, p.f.Dst, p.f.SrcPort, p.f.DstPort, p.f.Proto, p.f.Fragment}
			f, ok := cache[k]
			if !ok {
				g := p.f
				g.Packets, g.Bytes = 0, 0
				g.Start = base.Add(p.at)
				g.SamplerID = 1
				f = &g
				cache[k] = f
				order = append(order, k)
			}
			f.Packets++
			f.Bytes += uint64(p.f.FrameLen)
			f.End = base.Add(p.at)
		}
		at := sec + time.Second
		e.Now = base.Add(at)
		if sec%(10*time.Second) == 0 {
			payload, err := e.AppendDatagram(nil, fg.TemplateSet(tpl, tpl6, opt),
				fg.OptionsDataSet(opt, fg.Options{Scope: 1, SamplerID: 1, SamplerMode: fg.SamplingRandom, SamplingRate: s.SamplingRate}))
			if err != nil {
				return nil, err
			}
			out = append(out, Datagram{At: at, Payload: payload})
		}
		const perDatagram = 24
		var v4, v6 []fg.Flow
		for _, k := range order {
			if k.dst.Is6() {
				v6 = append(v6, *cache[k])
			} else {
				v4 = append(v4, *cache[k])
			}
		}
		for _, part := range []struct {
			t     fg.Template
			flows []fg.Flow
		}{{tpl, v4}, {tpl6, v6}} {
			for j := 0; j < len(part.flows); j += perDatagram {
				payload, err := e.AppendDatagram(nil, fg.DataSet(part.t, part.flows[j:min(j+perDatagram, len(part.flows))]...))
				if err != nil {
					return nil, err
				}
				out = append(out, Datagram{At: at, Payload: payload})
			}
		}
		if sec > s.Duration+time.Second {
			break
		}
	}
	return out, nil
}
