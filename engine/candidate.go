package engine

import (
	"net/netip"
	"time"

	"github.com/kapkan-io/kapkan/flow"
)

// Direction of traffic relative to the protected address.
type Direction uint8

// Directions.
const (
	In  Direction = 0 // to the protected address
	Out Direction = 1 // from the protected address
)

// String returns "incoming" or "outgoing".
func (d Direction) String() string {
	if d == Out {
		return "outgoing"
	}
	return "incoming"
}

// Scope says whether an attack targets one address or a whole prefix.
type Scope uint8

// Scopes.
const (
	ScopeAddress Scope = iota // one address: per-address thresholds tripped
	ScopePrefix               // a protected prefix: its total tripped (carpet bombing)
)

// String returns "address" or "prefix".
func (s Scope) String() string {
	if s == ScopePrefix {
		return "prefix"
	}
	return "address"
}

// CandidateKind is the lifecycle step a Candidate reports.
type CandidateKind uint8

// Candidate kinds.
const (
	AttackStarted CandidateKind = iota // detected
	AttackUpdated                      // still active: new rates (coalesced, latest wins)
	AttackCooling                      // rates fell below the threshold; cool-down running
	AttackEnded                        // below the threshold for the whole cool-down
)

var kindNames = [...]string{"started", "updated", "cooling", "ended"}

// String returns started, updated, cooling or ended.
func (k CandidateKind) String() string {
	if int(k) >= len(kindNames) {
		return "unknown"
	}
	return kindNames[k]
}

// Candidate is what the engine tells the next stage about an attack.
type Candidate struct {
	Kind      CandidateKind
	ID        uint64
	Target    netip.Prefix // /32 or /128 for an address; the protected prefix for carpet bombing
	Scope     Scope
	Direction Direction
	Hostgroup string
	// Trigger is the metric that tripped first, with its rate and threshold
	// (per second, bytes in bytes/s).
	Trigger   Metric
	Rate      uint64
	Threshold uint64
	// Rates are the current window rates, Peak the highest seen.
	Rates, Peak Rates
	Started     time.Time // detection time (data time: capture time in replay)
	At          time.Time // when this candidate was produced (data time)
	// Sample is a copy of the target's recent flow records (Started and
	// Ended only), at most Config.SampleSize.
	Sample []flow.Record
	// Unprotected is set on an Ended candidate when the attack ended because
	// a reconfiguration removed its target from the protected prefixes,
	// whatever its rates.
	Unprotected bool
}
