package bgp

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"

	"github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/mitigate"
)

// Extended-community AS of the traffic-rate action: RFC 8955 lets it be 0.
const trafficRateAS = 0

// nlriAndAttrs builds the BGP form of a route: its NLRI and path
// attributes. Blackholes carry the speaker's next hop, communities and
// local-pref (per-peer changes are made by the export policy); FlowSpec
// rules carry their traffic-rate action.
func (s *Speaker) nlriAndAttrs(r mitigate.Route) (bgp.AddrPrefixInterface, []bgp.PathAttributeInterface, error) {
	t := r.Target.Masked()
	v4 := t.Addr().Is4()
	origin := bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)
	switch r.Kind {
	case flowspec.Blackhole:
		attrs := []bgp.PathAttributeInterface{origin}
		var nlri bgp.AddrPrefixInterface
		if v4 {
			nlri = bgp.NewIPAddrPrefix(uint8(t.Bits()), t.Addr().String())
			attrs = append(attrs, bgp.NewPathAttributeNextHop(s.cfg.NextHopIPv4.String()))
		} else {
			nlri = bgp.NewIPv6AddrPrefix(uint8(t.Bits()), t.Addr().String())
			attrs = append(attrs, bgp.NewPathAttributeMpReachNLRI(s.cfg.NextHopIPv6.String(), []bgp.AddrPrefixInterface{nlri}))
		}
		if len(s.cfg.Communities) > 0 {
			attrs = append(attrs, bgp.NewPathAttributeCommunities(s.cfg.Communities))
		}
		if s.cfg.LocalPref > 0 {
			attrs = append(attrs, bgp.NewPathAttributeLocalPref(s.cfg.LocalPref))
		}
		return nlri, attrs, nil
	case flowspec.Discard, flowspec.RateLimit:
		comps, err := FlowSpecComponents(t, r.Match)
		if err != nil {
			return nil, nil, err
		}
		rate := float32(0) // discard
		if r.Kind == flowspec.RateLimit {
			rate = rateBytes(r.RateMbps)
		}
		ext := bgp.NewPathAttributeExtendedCommunities([]bgp.ExtendedCommunityInterface{bgp.NewTrafficRateExtended(trafficRateAS, rate)})
		if v4 {
			nlri := bgp.NewFlowSpecIPv4Unicast(comps)
			return nlri, []bgp.PathAttributeInterface{origin, bgp.NewPathAttributeMpReachNLRI("0.0.0.0", []bgp.AddrPrefixInterface{nlri}), ext}, nil
		}
		nlri := bgp.NewFlowSpecIPv6Unicast(comps)
		return nlri, []bgp.PathAttributeInterface{origin, bgp.NewPathAttributeMpReachNLRI("::", []bgp.AddrPrefixInterface{nlri}), ext}, nil
	}
	return nil, nil, fmt.Errorf("route kind %v", r.Kind)
}

// FlowSpec component operators (RFC 8955 section 4.2.1).
const (
	opEQ    = 0x01
	opGT    = 0x02
	opLT    = 0x04
	opAND   = 0x40
	opEND   = 0x80
	opMatch = 0x01 // bitmask: all bits set
	opNot   = 0x02 // bitmask: negate
)

var tcpFlagBits = map[string]uint64{"fin": 0x01, "syn": 0x02, "rst": 0x04, "psh": 0x08, "ack": 0x10, "urg": 0x20, "ece": 0x40, "cwr": 0x80}

var fragmentBits = map[string]uint64{"dont-fragment": 0x01, "is-fragment": 0x02, "first-fragment": 0x04, "last-fragment": 0x08}

// FlowSpecComponents turns a destination and a vector into FlowSpec match
// components, in the order RFC 8955 requires (by type).
func FlowSpecComponents(dst netip.Prefix, v flowspec.Match) ([]bgp.FlowSpecComponentInterface, error) {
	var out []bgp.FlowSpecComponentInterface
	if dst.Addr().Is4() {
		out = append(out, bgp.NewFlowSpecDestinationPrefix(bgp.NewIPAddrPrefix(uint8(dst.Bits()), dst.Addr().String())))
	} else {
		out = append(out, bgp.NewFlowSpecDestinationPrefix6(bgp.NewIPv6AddrPrefix(uint8(dst.Bits()), dst.Addr().String()), 0))
	}
	if v.Protocol != "" {
		p, err := protocolNumber(v.Protocol)
		if err != nil {
			return nil, err
		}
		out = append(out, component(bgp.FLOW_SPEC_TYPE_IP_PROTO, item(opEQ, p)))
	}
	for _, pc := range []struct {
		typ   bgp.BGPFlowSpecType
		ports []string
	}{{bgp.FLOW_SPEC_TYPE_DST_PORT, v.DstPorts}, {bgp.FLOW_SPEC_TYPE_SRC_PORT, v.SrcPorts}} {
		if len(pc.ports) == 0 {
			continue
		}
		var items []*bgp.FlowSpecComponentItem
		for _, p := range pc.ports {
			its, err := numericRange(p)
			if err != nil {
				return nil, fmt.Errorf("port %w", err)
			}
			items = append(items, its...)
		}
		out = append(out, component(pc.typ, items...))
	}
	if v.TCPFlags != "" {
		items, err := tcpFlags(v.TCPFlags)
		if err != nil {
			return nil, err
		}
		out = append(out, component(bgp.FLOW_SPEC_TYPE_TCP_FLAG, items...))
	}
	if v.PacketLength != "" {
		items, err := packetLength(v.PacketLength)
		if err != nil {
			return nil, err
		}
		out = append(out, component(bgp.FLOW_SPEC_TYPE_PKT_LEN, items...))
	}
	if v.Fragment != "" {
		bit, ok := fragmentBits[v.Fragment]
		if !ok {
			return nil, fmt.Errorf("fragment %q (want is-fragment, first-fragment, last-fragment or dont-fragment)", v.Fragment)
		}
		out = append(out, component(bgp.FLOW_SPEC_TYPE_FRAGMENT, item(opMatch, bit)))
	}
	return out, nil
}

func item(op uint8, v uint64) *bgp.FlowSpecComponentItem { return bgp.NewFlowSpecComponentItem(op, v) }

// component marks the last item with the end-of-list bit.
func component(typ bgp.BGPFlowSpecType, items ...*bgp.FlowSpecComponentItem) *bgp.FlowSpecComponent {
	items[len(items)-1].Op |= opEND
	return bgp.NewFlowSpecComponent(typ, items)
}

func protocolNumber(p string) (uint64, error) {
	switch p {
	case "tcp":
		return 6, nil
	case "udp":
		return 17, nil
	case "icmp":
		return 1, nil
	case "icmpv6":
		return 58, nil
	}
	n, err := strconv.ParseUint(p, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("protocol %q (want tcp, udp, icmp, icmpv6 or a number 0-255)", p)
	}
	return n, nil
}

// numericRange reads "53" or "1024-65535" (ORed with what precedes it).
// Its errors read after a noun: "port 99999 is out of range 0-65535".
func numericRange(s string) ([]*bgp.FlowSpecComponentItem, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := number16(lo)
	if err != nil {
		return nil, err
	}
	if !isRange {
		return []*bgp.FlowSpecComponentItem{item(opEQ, a)}, nil
	}
	b, err := number16(hi)
	if err != nil {
		return nil, err
	}
	if b < a {
		return nil, fmt.Errorf("range %q ends before it starts (want LOW-HIGH, like 1024-65535)", s)
	}
	return []*bgp.FlowSpecComponentItem{item(opGT|opEQ, a), item(opAND|opLT|opEQ, b)}, nil
}

// number16 reads a number from 0 to 65535.
func number16(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	switch {
	case err != nil && errors.Is(err, strconv.ErrRange), err == nil && n > 65535:
		return 0, fmt.Errorf("%s is out of range 0-65535", s)
	case err != nil:
		return 0, fmt.Errorf("%q is not a number (want 0-65535, or a range like 1024-65535)", s)
	}
	return n, nil
}

// packetLength reads "60", "512-1500", ">=512", "<=128", ">512", "<128".
func packetLength(s string) ([]*bgp.FlowSpecComponentItem, error) {
	ops := []struct {
		prefix string
		op     uint8
	}{{">=", opGT | opEQ}, {"<=", opLT | opEQ}, {">", opGT}, {"<", opLT}}
	for _, o := range ops {
		if rest, ok := strings.CutPrefix(s, o.prefix); ok {
			n, err := strconv.ParseUint(rest, 10, 16)
			if err != nil {
				return nil, fmt.Errorf("packet length %q (want a length 0-65535, a range like 512-1500, or >=512)", s)
			}
			return []*bgp.FlowSpecComponentItem{item(o.op, n)}, nil
		}
	}
	items, err := numericRange(s)
	if err != nil {
		return nil, fmt.Errorf("packet length %w", err)
	}
	return items, nil
}

// tcpFlags reads "syn&!ack", "rst", "syn|fin": & binds terms that must all
// hold, | starts another alternative.
func tcpFlags(s string) ([]*bgp.FlowSpecComponentItem, error) {
	var items []*bgp.FlowSpecComponentItem
	for _, alt := range strings.Split(s, "|") {
		for j, term := range strings.Split(alt, "&") {
			not := strings.HasPrefix(term, "!")
			bit, ok := tcpFlagBits[strings.TrimPrefix(term, "!")]
			if !ok {
				return nil, fmt.Errorf("tcp flag %q (want fin, syn, rst, psh, ack, urg, ece or cwr, joined by & or |, ! for not set)", term)
			}
			var op uint8 = opMatch // (flags & bit) == bit
			if not {
				op = opNot // not ((flags & bit) != 0)
			}
			if j > 0 {
				op |= opAND
			}
			items = append(items, item(op, bit))
		}
	}
	return items, nil
}

// rateBytes converts Mbps to the traffic-rate float (bytes per second),
// bounded to what a float32 holds.
func rateBytes(mbps float64) float32 {
	return float32(math.Min(mbps*1e6/8, math.MaxFloat32))
}
