package flowspec

import (
	"net/netip"
	"time"
)

// Decision is one change of mitigation a policy (an attack's ladder or a
// code policy) asks for: what policy hands to mitigate, which applies every
// safety check.
type Decision struct {
	AttackID uint64
	Target   netip.Prefix
	Ladder   string
	// Step is the 1-based ladder step.
	Step     int
	Action   Action
	RateMbps float64
	// Vector is the FlowSpec match (FlowSpec actions only).
	Vector Match
	// Withdraw is true when the step's action is being removed.
	Withdraw bool
	// Replaced is true for the withdrawal of a step the next one replaced:
	// it goes at once. Other withdrawals (the attack ended) wait for the
	// action's TTL in mitigate.
	Replaced bool
	At       time.Time
	Reason   string
}
