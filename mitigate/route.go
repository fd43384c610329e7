package mitigate

import (
	"errors"
	"net/netip"
	"strconv"

	"github.com/kapkan-io/kapkan/flowspec"
)

// Route is what a speaker announces for an action: a blackhole of one
// address, or a FlowSpec rule on the target with the vector's match and a
// discard or rate-limit action.
type Route struct {
	Kind   flowspec.Action
	Target netip.Prefix
	// Match is the FlowSpec match besides the destination (FlowSpec only).
	Match flowspec.Match
	// RateMbps is the rate limit (flowspec.RateLimit only).
	RateMbps float64
}

// Key identifies a route: two routes with equal keys are the same
// announcement.
func (r Route) Key() string {
	k := r.Kind.String() + " " + r.Target.String()
	if r.Kind != flowspec.Blackhole {
		k += " " + r.Match.String()
	}
	if r.Kind == flowspec.RateLimit {
		k += " rate " + formatRate(r.RateMbps)
	}
	return k
}

// Announcer sends routes to the routers. A speaker keeps what it announced
// and gives it again to a router whose session comes back. Announcing a
// route in force, or withdrawing one that is not, does nothing.
//
// An error means the change was not made. The Manager counts it, reports
// it (EventFailed) and tries the change again later, unless the error
// wraps ErrRejected: such a route can never be sent, and trying again
// would only repeat the error.
type Announcer interface {
	Announce(Route) error
	Withdraw(Route) error
}

// ErrRejected marks an announcer's error as final: the route itself is
// wrong for it (a match it cannot encode, a family it does not carry).
var ErrRejected = errors.New("route rejected")

func formatRate(mbps float64) string { return strconv.FormatFloat(mbps, 'f', -1, 64) + "Mbps" }
