// Package demo generates flow telemetry from a scripted scenario: benign
// background traffic spread over many protected addresses plus attacks of
// every kind Kapkan labels, sampled and exported as real sFlow v5 or NetFlow
// v9 datagrams. It is seeded, so a scenario always produces the same bytes.
// `make run` sends it to the daemon's own listener, and tests write it into
// captures.
package demo

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
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
	ACKFlood      Kind = "tcp-ack-flood"
	RSTFlood      Kind = "tcp-rst-flood"
	TCPFlood      Kind = "tcp-flood" // data segments (PSH+ACK)
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
var Kinds = []Kind{UDPFlood, SYNFlood, ACKFlood, RSTFlood, TCPFlood, ICMPFlood, FragFlood, DNSAmp, NTPAmp, MemcachedAmp, SSDPAmp, CLDAPAmp, ChargenAmp}

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
	ACKFlood:     {proto: fg.ProtoTCP, flags: fg.TCPAck, size: 60},
	RSTFlood:     {proto: fg.ProtoTCP, flags: fg.TCPRst, size: 60},
	TCPFlood:     {proto: fg.ProtoTCP, dstPort: 80, flags: fg.TCPPsh | fg.TCPAck, size: 1000},
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
	// Kind is what its packets look like, unless Shape says it.
	Kind Kind
	// Shape, when set, describes the packets instead of Kind.
	Shape *Shape
	// Target is the attacked address, unless Carpet is set.
	Target netip.Addr
	// Carpet, when set, spreads the attack over random addresses of this
	// prefix (carpet bombing): each address may stay under its own
	// thresholds while the prefix as a whole is flooded.
	Carpet netip.Prefix
	// PPS is the attack's real packet rate, before sampling.
	PPS int
	// Start and Duration place it in the scenario.
	Start, Duration time.Duration
}

// Scenario describes the traffic to generate.
type Scenario struct {
	// Format is the telemetry format: sflow5, netflow5, netflow9 or ipfix.
	Format flow.Format
	// SamplingRate is 1 in N, sent as each format carries it: sFlow per
	// sample, NetFlow v5 in its header (at most 16383), NetFlow v9 and IPFIX
	// in sampler options data.
	SamplingRate uint32
	// Prefixes hold the background destinations; Hosts of their addresses
	// receive BackgroundPPS packets per second in all (real packets, before
	// sampling).
	Prefixes      []netip.Prefix
	Hosts         int
	BackgroundPPS int
	// DistinctHosts makes the Hosts exactly that many distinct addresses,
	// placed by a seeded bijection over each prefix (a prefix smaller than
	// its share of hosts repeats addresses) and visited in turn, so each
	// gets the same share of the background. Without it, Hosts addresses
	// are drawn at random from the prefixes into a table, where they may
	// repeat, and each record picks one of them at random: the table costs
	// 24 bytes a host and, past a few hundred thousand hosts, a cache miss
	// per record.
	DistinctHosts bool
	Attacks       []Attack
	Duration      time.Duration
	// Agent is the exporter's address written in sFlow datagrams.
	Agent netip.Addr
	// Base is the wall-clock time of the scenario's start, written in
	// NetFlow/IPFIX headers and record times (zero: CaptureStart).
	Base time.Time
	Seed uint64
}

// Datagram is one export datagram, At after the scenario's start.
type Datagram struct {
	At      time.Duration
	Payload []byte
}

// maxNetFlow5Interval is the largest rate the 14-bit v5 header field holds.
const maxNetFlow5Interval = 1<<14 - 1

// Validate reports what is wrong with a scenario.
func (s *Scenario) Validate() error {
	switch s.Format {
	case flow.FormatSFlow5, flow.FormatNetFlow9, flow.FormatIPFIX:
	case flow.FormatNetFlow5:
		if s.SamplingRate > maxNetFlow5Interval {
			return fmt.Errorf("sampling rate %d does not fit NetFlow v5's 14-bit field (at most %d)", s.SamplingRate, maxNetFlow5Interval)
		}
		for _, p := range s.Prefixes {
			if p.Addr().Is6() {
				return fmt.Errorf("prefix %s: NetFlow v5 carries IPv4 only", p)
			}
		}
		for _, a := range s.Attacks {
			if a.Target.Is6() || a.Carpet.Addr().Is6() {
				return fmt.Errorf("attack target %s: NetFlow v5 carries IPv4 only", a.Where())
			}
		}
	default:
		return fmt.Errorf("format %s: want sflow5, netflow5, netflow9 or ipfix", s.Format)
	}
	if s.SamplingRate == 0 {
		return fmt.Errorf("sampling rate 0 (want 1 or more)")
	}
	if s.Hosts > 0 && len(s.Prefixes) == 0 {
		return fmt.Errorf("%d background hosts but no prefix to draw them from", s.Hosts)
	}
	if s.BackgroundPPS < 0 {
		return fmt.Errorf("negative background rate")
	}
	for i, a := range s.Attacks {
		if a.Shape != nil {
			if err := a.Shape.validate(); err != nil {
				return fmt.Errorf("attack %d: %w", i, err)
			}
		} else if _, ok := shapes[a.Kind]; !ok {
			return fmt.Errorf("attack %d: unknown kind %q (want one of %v)", i, a.Kind, Kinds)
		}
		if a.Target.IsValid() == a.Carpet.IsValid() {
			return fmt.Errorf("attack %d: want a target address or a carpet prefix, one of the two", i)
		}
		if a.PPS <= 0 || a.Duration <= 0 {
			return fmt.Errorf("attack %d: rate and duration must be positive", i)
		}
	}
	return nil
}

// tick is the generator's time step.
const tick = 10 * time.Millisecond

// Generator produces a scenario's datagrams tick by tick, reusing its
// buffers: it is fast enough to load a collector, and its memory does not
// grow with the scenario's length.
type Generator struct {
	s          Scenario
	rng        *rand.Rand
	hosts      []netip.Addr
	space      hostSpace // with DistinctHosts
	nextHost   uint64
	reflectors []netip.Addr
	t          time.Duration
	bgAcc      float64
	atAcc      []float64
	// FirstSample is, per attack, the time of the tick that carried its
	// first sampled record; -1 until then.
	FirstSample []time.Duration
	// Records counts the flow records (samples) generated so far.
	Records int64

	flows                       []fg.Flow
	v4, v6                      []fg.Flow
	samples                     []fg.SFlowSample
	arena                       []byte
	out                         [][]byte
	sflowSeq, sampleSeq, nf5Seq uint32
	exp                         *fg.Exporter
	tpl4, tpl6, opt             fg.Template

	// Background frame lengths: TCP and UDP from lo up to lo+span-1.
	tcpLo, tcpSpan, udpLo, udpSpan int
}

// NewGenerator checks a scenario and prepares its generator.
func NewGenerator(s Scenario) (*Generator, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.Base.IsZero() {
		s.Base = CaptureStart
	}
	g := &Generator{s: s, rng: rand.New(rand.NewPCG(s.Seed, s.Seed^0x5eed))}
	if s.DistinctHosts {
		g.space = newHostSpace(&s)
	} else {
		g.hosts = s.hosts(g.rng)
	}
	g.tcpLo, g.tcpSpan, g.udpLo, g.udpSpan = 64, 1400, 80, 400
	g.reflectors = make([]netip.Addr, reflectorPool)
	for i := range g.reflectors {
		g.reflectors[i] = netip.AddrFrom4([4]byte{198, 18 + byte(i>>8&1), byte(g.rng.IntN(256)), byte(1 + g.rng.IntN(254))})
	}
	g.atAcc = make([]float64, len(s.Attacks))
	g.FirstSample = make([]time.Duration, len(s.Attacks))
	for i := range g.FirstSample {
		g.FirstSample[i] = -1
	}
	if s.Format == flow.FormatNetFlow9 || s.Format == flow.FormatIPFIX {
		v := uint16(fg.VersionNetFlow9)
		if s.Format == flow.FormatIPFIX {
			v = fg.VersionIPFIX
		}
		var extra []fg.Field
		if v == fg.VersionNetFlow9 {
			extra = append(extra, fg.Field{ID: fg.IESamplerID, Len: 1})
			g.opt = fg.V9SamplerOptions(258, true)
		} else {
			g.opt = fg.SamplingOptions(v, 258)
		}
		extra = append(extra, fg.Field{ID: fg.IEFragmentFlags, Len: 1})
		g.tpl4 = fg.Template{ID: 256, Fields: fg.FlowFields(v, fg.IPv4, fg.TimesDefault, extra...)}
		g.tpl6 = fg.Template{ID: 257, Fields: fg.FlowFields(v, fg.IPv6, fg.TimesDefault, extra...)}
		g.exp = &fg.Exporter{Version: v, DomainID: 1, Boot: s.Base.Add(-time.Hour)}
	}
	return g, nil
}

// Next returns the datagrams of the next tick and the tick's time, or false
// when the scenario is over. The datagrams are valid until the next call.
func (g *Generator) Next() (time.Duration, [][]byte, bool) {
	if g.t >= g.s.Duration {
		return 0, nil, false
	}
	at := g.t
	g.t += tick
	g.flows = g.flows[:0]
	s := &g.s
	if s.BackgroundPPS > 0 && s.Hosts > 0 {
		g.bgAcc += float64(s.BackgroundPPS) * tick.Seconds() / float64(s.SamplingRate)
		n := int(g.bgAcc)
		g.bgAcc -= float64(n)
		for range n {
			g.flows = append(g.flows, g.background())
		}
	}
	for i := range s.Attacks {
		a := &s.Attacks[i]
		if at < a.Start || at >= a.Start+a.Duration {
			continue
		}
		g.atAcc[i] += float64(a.PPS) * tick.Seconds() / float64(s.SamplingRate)
		n := int(g.atAcc[i])
		g.atAcc[i] -= float64(n)
		if n > 0 && g.FirstSample[i] < 0 {
			g.FirstSample[i] = at
		}
		if a.Shape != nil {
			for range n {
				g.flows = append(g.flows, g.shaped(a, a.Shape))
			}
			continue
		}
		sh := shapes[a.Kind]
		for range n {
			g.flows = append(g.flows, g.attack(a, &sh))
		}
	}
	g.Records += int64(len(g.flows))
	g.arena = g.arena[:0]
	g.out = g.out[:0]
	switch s.Format {
	case flow.FormatSFlow5:
		g.encodeSFlow(at)
	case flow.FormatNetFlow5:
		g.encodeNetFlow5(at)
	default:
		g.encodeNetFlow(at)
	}
	return at, g.out, true
}

// emit records the datagram just appended to the arena from index start.
func (g *Generator) emit(start int) {
	g.out = append(g.out, g.arena[start:len(g.arena):len(g.arena)])
}

func (g *Generator) background() fg.Flow {
	rng := g.rng
	var dst netip.Addr
	if g.s.DistinctHosts {
		dst = g.space.addr(g.nextHost)
		if g.nextHost++; g.nextHost == g.space.n {
			g.nextHost = 0
		}
	} else {
		dst = g.hosts[rng.IntN(len(g.hosts))]
	}
	var src netip.Addr
	if dst.Is6() {
		src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xfe, 12: byte(rng.IntN(256)), 15: byte(1 + rng.IntN(254))})
	} else {
		src = netip.AddrFrom4([4]byte{100, byte(64 + rng.IntN(64)), byte(rng.IntN(256)), byte(1 + rng.IntN(254))})
	}
	if rng.IntN(2) == 0 {
		return fg.Flow{Src: src, Dst: dst, Proto: fg.ProtoTCP, SrcPort: 443, DstPort: uint16(1024 + rng.IntN(60000)),
			TCPFlags: fg.TCPAck, FrameLen: uint32(g.tcpLo + rng.IntN(g.tcpSpan)), Packets: 1}
	}
	return fg.Flow{Src: src, Dst: dst, Proto: fg.ProtoUDP, SrcPort: 53, DstPort: uint16(1024 + rng.IntN(60000)),
		FrameLen: uint32(g.udpLo + rng.IntN(g.udpSpan)), Packets: 1}
}

// Where is the attack's target address, or its carpet prefix.
func (a *Attack) Where() string {
	if a.Carpet.IsValid() {
		return a.Carpet.String()
	}
	return a.Target.String()
}

func (g *Generator) attack(a *Attack, sh *shape) fg.Flow {
	rng := g.rng
	dst := a.Target
	if a.Carpet.IsValid() {
		dst = randomIn(rng, a.Carpet)
	}
	f := fg.Flow{Dst: dst, Proto: sh.proto, SrcPort: sh.srcPort, DstPort: sh.dstPort, TCPFlags: sh.flags,
		FrameLen: sh.size + uint32(rng.IntN(16)), Fragment: sh.fragment, Packets: 1}
	switch {
	case dst.Is6():
		f.Src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 12: byte(rng.IntN(256)), 15: byte(1 + rng.IntN(254))})
	case sh.reflect:
		f.Src = g.reflectors[rng.IntN(len(g.reflectors))]
	default:
		f.Src = netip.AddrFrom4([4]byte{byte(1 + rng.IntN(223)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(1 + rng.IntN(254))})
	}
	if f.Proto == fg.ProtoICMP && dst.Is6() {
		f.Proto, f.DstPort = fg.ProtoICMPv6, 128<<8 // echo request
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
}

// samplesPerDatagram keeps sFlow datagrams under a 1500-byte MTU.
const samplesPerDatagram = 7

func (g *Generator) encodeSFlow(at time.Duration) {
	for i := 0; i < len(g.flows); i += samplesPerDatagram {
		g.samples = g.samples[:0]
		for _, f := range g.flows[i:min(i+samplesPerDatagram, len(g.flows))] {
			g.sampleSeq++
			g.samples = append(g.samples, fg.SFlowSample{Sequence: g.sampleSeq, SourceIndex: 1, SamplingRate: g.s.SamplingRate,
				SamplePool: g.sampleSeq * g.s.SamplingRate, Input: 1, Output: 2, Flow: f})
		}
		g.sflowSeq++
		start := len(g.arena)
		g.arena = fg.AppendSFlow(g.arena, fg.SFlowHeader{Agent: g.s.Agent, Sequence: g.sflowSeq, Uptime: time.Hour + at}, g.samples)
		g.emit(start)
	}
}

func (g *Generator) encodeNetFlow5(at time.Duration) {
	now := g.s.Base.Add(at)
	for i := range g.flows {
		g.flows[i].Start, g.flows[i].End = now, now
		g.flows[i].Bytes = uint64(g.flows[i].FrameLen)
	}
	for i := 0; i < len(g.flows); i += fg.MaxNetFlow5Records {
		part := g.flows[i:min(i+fg.MaxNetFlow5Records, len(g.flows))]
		start := len(g.arena)
		var err error
		g.arena, err = fg.AppendNetFlow5(g.arena, fg.NetFlow5Header{Uptime: time.Hour + at, Time: now, Sequence: g.nf5Seq,
			SamplingMode: 2, SamplingInterval: uint16(g.s.SamplingRate)}, part)
		if err != nil {
			continue // Validate rules out what AppendNetFlow5 refuses
		}
		g.nf5Seq += uint32(len(part))
		g.emit(start)
	}
}

// netflowPerDatagram keeps NetFlow v9 / IPFIX datagrams under 1500 bytes.
const netflowPerDatagram = 20

func (g *Generator) encodeNetFlow(at time.Duration) {
	now := g.s.Base.Add(at)
	g.exp.Now = now
	// Templates and sampling options first, then every 10 seconds.
	if at%(10*time.Second) == 0 {
		start := len(g.arena)
		var err error
		g.arena, err = g.exp.AppendDatagram(g.arena, fg.TemplateSet(g.tpl4, g.tpl6, g.opt),
			fg.OptionsDataSet(g.opt, fg.Options{Scope: 1, SamplerID: 1, SamplerMode: fg.SamplingRandom, SamplingRate: g.s.SamplingRate}))
		if err == nil {
			g.emit(start)
		}
	}
	v4, v6 := g.v4[:0], g.v6[:0]
	for i := range g.flows {
		f := &g.flows[i]
		f.Start, f.End = now, now
		f.Bytes, f.SamplerID = uint64(f.FrameLen), 1
		if f.Dst.Is6() {
			v6 = append(v6, *f)
		} else {
			v4 = append(v4, *f)
		}
	}
	g.v4, g.v6 = v4, v6
	for _, part := range []struct {
		t     *fg.Template
		flows []fg.Flow
	}{{&g.tpl4, v4}, {&g.tpl6, v6}} {
		for j := 0; j < len(part.flows); j += netflowPerDatagram {
			start := len(g.arena)
			var err error
			g.arena, err = g.exp.AppendDatagram(g.arena, fg.DataSet(*part.t, part.flows[j:min(j+netflowPerDatagram, len(part.flows))]...))
			if err == nil {
				g.emit(start)
			}
		}
	}
}

// Generate returns every datagram of the scenario, with a tick's datagrams
// spread evenly over the tick.
func (s *Scenario) Generate() ([]Datagram, error) {
	g, err := NewGenerator(*s)
	if err != nil {
		return nil, err
	}
	var out []Datagram
	for {
		at, dgs, ok := g.Next()
		if !ok {
			return out, nil
		}
		for i, d := range dgs {
			out = append(out, Datagram{At: at + time.Duration(i)*tick/time.Duration(len(dgs)), Payload: bytes.Clone(d)})
		}
	}
}

func (s *Scenario) hosts(rng *rand.Rand) []netip.Addr {
	out := make([]netip.Addr, 0, s.Hosts)
	for i := range s.Hosts {
		out = append(out, randomIn(rng, s.Prefixes[i%len(s.Prefixes)]))
	}
	return out
}

// randomIn draws an address of prefix p.
func randomIn(rng *rand.Rand, p netip.Prefix) netip.Addr {
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
	return a
}
