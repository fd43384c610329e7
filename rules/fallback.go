package rules

import (
	"strconv"

	"github.com/kapkan-io/kapkan/flowspec"
)

// What the verdict path says of an attack no rule described.
const (
	// FallbackLabel is the label of an attack no rule labelled: an
	// operator always sees a kind, the least of which is "a flood of IP
	// packets", whose protocol the vector names.
	FallbackLabel = "ip-flood"
	// FallbackDecider is the Decider of a vector taken from the attack's
	// dominant protocol.
	FallbackDecider = "dominant-protocol"
	// DominantShare is the share of packets from which one protocol is the
	// vector of an attack no rule gave one.
	DominantShare = 0.9
)

// Fallback completes the verdict of an attack the rules left without a
// label or a vector. Without a label it gets FallbackLabel; without a
// vector, its dominant protocol when one carries DominantShare of its
// packets: by name (tcp, udp, icmp, icmpv6) or by number (gre is 47). A
// FlowSpec rule on the protocol spares the target's other traffic, where a
// blackhole would not. Protocol 0 is never a vector: exporters write it for
// packets whose protocol they did not read (softflowd's IPv6 fragments), so
// a rule on it would not match the attack's packets.
func Fallback(f *Features, v *Verdict) {
	if len(v.Labels) == 0 {
		v.Labels = []string{FallbackLabel}
	}
	if !v.Vector.IsZero() || f.Samples == 0 {
		return
	}
	p, share := f.DominantProtocol()
	if share < DominantShare || p == 0 {
		return
	}
	v.Vector, v.Decider = flowspec.Match{Protocol: protocolName(p, f.IPv6)}, FallbackDecider
}

// protocolName is how a vector names IP protocol p.
func protocolName(p uint8, ipv6 bool) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 1, 58:
		if ipv6 {
			return "icmpv6"
		}
		return "icmp"
	}
	return strconv.Itoa(int(p))
}
