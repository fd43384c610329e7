package mitigate

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/kapkan-io/kapkan/rules"
)

// Route is what a speaker announces for an action: a blackhole of one
// address, or a FlowSpec rule on the target with the vector's match and a
// discard or rate-limit action.
type Route struct {
	Kind   Kind
	Target netip.Prefix
	// Match is the FlowSpec match besides the destination (FlowSpec only).
	Match rules.Vector
	// RateMbps is the rate limit (FlowSpecRateLimit only).
	RateMbps float64
}

// Key identifies a route: two routes with equal keys are the same
// announcement.
func (r Route) Key() string {
	k := r.Kind.String() + " " + r.Target.String()
	if r.Kind != Blackhole {
		k += " " + MatchString(r.Match)
	}
	if r.Kind == FlowSpecRateLimit {
		k += " rate " + formatRate(r.RateMbps)
	}
	return k
}

// Announcer sends routes to the routers. A speaker keeps what it announced
// and gives it again to a router whose session comes back.
type Announcer interface {
	Announce(Route) error
	Withdraw(Route) error
}

// MatchString writes a FlowSpec match the way logs and keys show it:
// "proto udp src-port 53 len >=512".
func MatchString(v rules.Vector) string {
	var parts []string
	if v.Protocol != "" {
		parts = append(parts, "proto "+v.Protocol)
	}
	if len(v.SrcPorts) > 0 {
		parts = append(parts, "src-port "+strings.Join(v.SrcPorts, ","))
	}
	if len(v.DstPorts) > 0 {
		parts = append(parts, "dst-port "+strings.Join(v.DstPorts, ","))
	}
	if v.PacketLength != "" {
		parts = append(parts, "len "+v.PacketLength)
	}
	if v.TCPFlags != "" {
		parts = append(parts, "tcp-flags "+v.TCPFlags)
	}
	if v.Fragment != "" {
		parts = append(parts, "fragment "+v.Fragment)
	}
	if len(parts) == 0 {
		return "any"
	}
	return strings.Join(parts, " ")
}

func formatRate(mbps float64) string { return strconv.FormatFloat(mbps, 'f', -1, 64) + "Mbps" }
