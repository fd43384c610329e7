// Package flowspec is the contract between the stages that decide a
// mitigation and the ones that carry it out: the action (FlowSpec rate
// limit, FlowSpec discard, blackhole) as a type, and the FlowSpec match an
// attack vector becomes (RFC 8955/8956, besides the destination, which is
// the target). Rules propose a Match, policies pick an Action, mitigate and
// its BGP speaker act on both; none of them parses the other's strings.
// It is a leaf: it imports nothing of the module.
package flowspec

import (
	"fmt"
	"strings"
)

// Action is what a mitigation does to the traffic of its target.
type Action uint8

// Actions. None is the zero value: no action (a policy that wants nothing
// in force).
const (
	None Action = iota
	RateLimit
	Discard
	Blackhole
)

// Actions lists every action but None, from the mildest.
var Actions = []Action{RateLimit, Discard, Blackhole}

// names are the actions as written in rule files, the API and logs.
var names = [...]string{None: "", RateLimit: "flowspec-ratelimit", Discard: "flowspec-discard", Blackhole: "blackhole"}

func (a Action) String() string {
	if int(a) < len(names) {
		return names[a]
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// IsFlowSpec reports whether the action is a FlowSpec rule (and so takes a
// Match).
func (a Action) IsFlowSpec() bool { return a == RateLimit || a == Discard }

// ParseAction reads an action by its name; "" is None.
func ParseAction(s string) (Action, error) {
	for a, n := range names {
		if n == s {
			return Action(a), nil
		}
	}
	return None, fmt.Errorf("action %q (want flowspec-ratelimit, flowspec-discard or blackhole)", s)
}

// MarshalText writes the action's name.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText reads an action's name.
func (a *Action) UnmarshalText(b []byte) error {
	v, err := ParseAction(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Match is the traffic a FlowSpec rule acts on, besides the destination.
// The zero Match is all traffic to the target.
type Match struct {
	// Protocol is tcp, udp, icmp, icmpv6, or an IP protocol number.
	Protocol string `yaml:"protocol,omitempty" json:"protocol,omitempty"`
	// SrcPorts and DstPorts are ports or ranges ("53", "1024-65535"). In a
	// rule file they may also be "top": the sample's most used port, when
	// it carries most packets (rules resolve it before anything else sees
	// the match).
	SrcPorts []string `yaml:"src_ports,omitempty" json:"src_ports,omitempty"`
	DstPorts []string `yaml:"dst_ports,omitempty" json:"dst_ports,omitempty"`
	// PacketLength is a length or range of IP packet lengths: "512-65535",
	// ">=512", "<=128", "60".
	PacketLength string `yaml:"packet_length,omitempty" json:"packet_length,omitempty"`
	// TCPFlags is a FlowSpec flag match: flags joined by & and |, ! for
	// not-set: "syn&!ack", "rst", "ack&!syn&!rst&!fin".
	TCPFlags string `yaml:"tcp_flags,omitempty" json:"tcp_flags,omitempty"`
	// Fragment is is-fragment, first-fragment, last-fragment or
	// dont-fragment.
	Fragment string `yaml:"fragment,omitempty" json:"fragment,omitempty"`
}

// IsZero reports whether the match is all traffic.
func (m Match) IsZero() bool {
	return m.Protocol == "" && len(m.SrcPorts) == 0 && len(m.DstPorts) == 0 && m.PacketLength == "" && m.TCPFlags == "" && m.Fragment == ""
}

// String writes the match the way logs and route keys show it:
// "proto udp src-port 53 len >=512", or "any".
func (m Match) String() string {
	var parts []string
	if m.Protocol != "" {
		parts = append(parts, "proto "+m.Protocol)
	}
	if len(m.SrcPorts) > 0 {
		parts = append(parts, "src-port "+strings.Join(m.SrcPorts, ","))
	}
	if len(m.DstPorts) > 0 {
		parts = append(parts, "dst-port "+strings.Join(m.DstPorts, ","))
	}
	if m.PacketLength != "" {
		parts = append(parts, "len "+m.PacketLength)
	}
	if m.TCPFlags != "" {
		parts = append(parts, "tcp-flags "+m.TCPFlags)
	}
	if m.Fragment != "" {
		parts = append(parts, "fragment "+m.Fragment)
	}
	if len(parts) == 0 {
		return "any"
	}
	return strings.Join(parts, " ")
}
