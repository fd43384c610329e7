package demo

import (
	"fmt"
	"net/netip"

	fg "github.com/kapkan-io/kapkan/ingest/flowgen"
)

// PortRange is an inclusive range of ports; Lo == Hi is one port.
type PortRange struct{ Lo, Hi uint16 }

// Fragments says which IP fragments an attack's packets are.
type Fragments uint8

// Fragment kinds of a Shape.
const (
	// NotFragments: whole packets.
	NotFragments Fragments = iota
	// FirstFragments: offset 0 with more-fragments set; the transport
	// header, so the ports, are there.
	FirstFragments
	// NonFirstFragments: offset above 0 with more-fragments set (middle
	// fragments: NetFlow v9 and IPFIX templates that carry fragment flags
	// but no offset could not tell a last fragment from a whole packet):
	// no transport header, so no ports.
	NonFirstFragments
)

// Shape is what an attack's packets look like, for traffic no Kind
// describes (the generated traffic of rule tests: a new reflection, a
// protocol no built-in rule knows).
type Shape struct {
	// Proto is the IP protocol (IPv6 next header). ICMP packets are echo
	// requests (ICMPv6 towards an IPv6 target).
	Proto uint8
	// SrcPorts and DstPorts, for TCP and UDP: each packet's port is drawn
	// at random over the ranges' ports. Empty: random source ports from
	// 1024, random destination ports from 1.
	SrcPorts, DstPorts []PortRange
	// TCPFlags of every TCP packet.
	TCPFlags uint8
	// SizeMin and SizeMax bound the packet length in bytes, drawn at
	// random in between (equal: a fixed size).
	SizeMin, SizeMax uint32
	Fragments        Fragments
	// Reflectors: the sources are a pool of 512 reflectors in
	// 198.18.0.0/15 (IPv4 targets), not random spoofed addresses.
	Reflectors bool
}

// validate reports what is wrong with a shape.
func (s *Shape) validate() error {
	if s.SizeMin == 0 || s.SizeMin > s.SizeMax {
		return fmt.Errorf("packet size %d-%d (want 1 or more, the smaller first)", s.SizeMin, s.SizeMax)
	}
	if s.SizeMax > 65535 {
		return fmt.Errorf("packet size %d (want at most 65535)", s.SizeMax)
	}
	for _, rs := range [][]PortRange{s.SrcPorts, s.DstPorts} {
		for _, r := range rs {
			if r.Lo > r.Hi {
				return fmt.Errorf("port range %d-%d (want the smaller first)", r.Lo, r.Hi)
			}
		}
	}
	return nil
}

// pickPort draws a port over ranges, each port equally likely; none: def.
func (g *Generator) pickPort(ranges []PortRange, lo, n int) uint16 {
	if len(ranges) == 0 {
		return uint16(lo + g.rng.IntN(n))
	}
	if len(ranges) == 1 && ranges[0].Lo == ranges[0].Hi {
		return ranges[0].Lo
	}
	total := 0
	for _, r := range ranges {
		total += int(r.Hi-r.Lo) + 1
	}
	k := g.rng.IntN(total)
	for _, r := range ranges {
		w := int(r.Hi-r.Lo) + 1
		if k < w {
			return r.Lo + uint16(k)
		}
		k -= w
	}
	return ranges[len(ranges)-1].Hi
}

// shaped is one packet of an attack described by a Shape.
func (g *Generator) shaped(a *Attack, sh *Shape) fg.Flow {
	rng := g.rng
	dst := a.Target
	if a.Carpet.IsValid() {
		dst = randomIn(rng, a.Carpet)
	}
	f := fg.Flow{Dst: dst, Proto: sh.Proto, TCPFlags: sh.TCPFlags, Packets: 1,
		FrameLen: sh.SizeMin + uint32(rng.IntN(int(sh.SizeMax-sh.SizeMin)+1))}
	switch {
	case dst.Is6():
		f.Src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 12: byte(rng.IntN(256)), 15: byte(1 + rng.IntN(254))})
	case sh.Reflectors:
		f.Src = g.reflectors[rng.IntN(len(g.reflectors))]
	default:
		f.Src = netip.AddrFrom4([4]byte{byte(1 + rng.IntN(223)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(1 + rng.IntN(254))})
	}
	if f.Proto != fg.ProtoTCP {
		f.TCPFlags = 0
	}
	switch f.Proto {
	case fg.ProtoICMP, fg.ProtoICMPv6:
		f.Proto, f.DstPort = fg.ProtoICMP, 8<<8 // echo request
		if dst.Is6() {
			f.Proto, f.DstPort = fg.ProtoICMPv6, 128<<8
		}
	case fg.ProtoTCP, fg.ProtoUDP:
		if sh.Fragments != NonFirstFragments {
			f.SrcPort = g.pickPort(sh.SrcPorts, 1024, 64512)
			f.DstPort = g.pickPort(sh.DstPorts, 1, 65535)
		}
	}
	switch sh.Fragments {
	case FirstFragments:
		f.Fragment = true
	case NonFirstFragments:
		f.Fragment = true
		f.FragmentOffset = uint16(185 * (1 + rng.IntN(4)))
	}
	return f
}
