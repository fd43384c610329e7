// Package store is Kapkan's history: attacks (with their verdict, rates
// over time and flow sample summary), the mitigation actions and their
// lifecycle, reloads, and per-hostgroup traffic series. It is written by a
// reader of the event ring, never on the detection path, and read by the
// API and the dashboard. Two implementations pass one conformance suite
// (store/storetest): an embedded store on by default, and ClickHouse.
package store

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flowspec"
)

// ErrNotFound is returned for an attack the store does not hold.
var ErrNotFound = errors.New("not found")

// ErrUnavailable marks a write that failed because the store cannot take
// writes for now (its server is down or unreachable, its disk is full),
// not because of what was written. The Writer keeps such a batch and tries
// it again until the store is back: the event ring is then the buffer, and
// what the ring overwrites meanwhile is counted as lost.
var ErrUnavailable = errors.New("history store unavailable")

// Attack is one attack as the store keeps it: the latest of what its
// events said, with its rates over time. Attack ids are unique across
// restarts (the daemon's engine starts its ids from the time it starts).
type Attack struct {
	ID        uint64       `json:"id"`
	Target    netip.Prefix `json:"target"`
	Scope     string       `json:"scope"`
	Direction string       `json:"direction"`
	Hostgroup string       `json:"hostgroup"`
	Started   time.Time    `json:"started"`
	// Ended is zero while the attack runs (or when the daemon stopped
	// before it ended).
	Ended     time.Time          `json:"ended,omitzero"`
	Trigger   string             `json:"trigger"`
	Rate      float64            `json:"rate"`
	Threshold float64            `json:"threshold"`
	Peak      map[string]float64 `json:"peak,omitempty"`
	Labels    []string           `json:"labels"`
	Vector    flowspec.Match     `json:"vector,omitzero"`
	Rules     []string           `json:"rules,omitempty"`
	Decider   string             `json:"decider,omitempty"`
	// SampleRecords and Sample describe the flow sample the verdict stood
	// on.
	SampleRecords int                   `json:"sample_records"`
	Sample        *events.SampleSummary `json:"sample,omitempty"`
	// Rates are the attack's rates now, one point per update (a second),
	// oldest first; a store may thin the points of old attacks.
	Rates []RatePoint `json:"rates,omitempty"`
}

// RatePoint is an attack's rates at one moment.
type RatePoint struct {
	At   time.Time `json:"at"`
	PPS  float64   `json:"pps"`
	Mbps float64   `json:"mbps"`
	FPS  float64   `json:"fps"`
}

// Mitigation is one change of the mitigations in force (or a refusal), as
// its event told it.
type Mitigation struct {
	At time.Time `json:"at"`
	// Kind is the event kind: mitigation_announced, _withdrawn, _renewed,
	// _refused, _failed or _none.
	Kind     events.Kind     `json:"kind"`
	AttackID uint64          `json:"attack_id,omitempty"`
	Target   netip.Prefix    `json:"target"`
	Action   flowspec.Action `json:"action"`
	Match    flowspec.Match  `json:"match,omitzero"`
	RateMbps float64         `json:"rate_mbps,omitempty"`
	Ladder   string          `json:"ladder,omitempty"`
	Step     int             `json:"step,omitempty"`
	Expires  time.Time       `json:"expires,omitzero"`
	Reason   string          `json:"reason,omitempty"`
	Err      string          `json:"error,omitempty"`
	DryRun   bool            `json:"dry_run"`
}

// Reload is one rules or configuration reload.
type Reload struct {
	At      time.Time `json:"at"`
	What    string    `json:"what"` // rules or config
	OK      bool      `json:"ok"`
	Trigger string    `json:"trigger,omitempty"`
	Errors  []string  `json:"errors,omitempty"`
}

// TrafficPoint is a hostgroup's total traffic in one direction at one
// second (or, for older data, the mean over a coarser step).
type TrafficPoint struct {
	At        time.Time `json:"at"`
	Hostgroup string    `json:"hostgroup"`
	Direction string    `json:"direction"` // incoming or outgoing
	PPS       float64   `json:"pps"`
	Mbps      float64   `json:"mbps"`
	FPS       float64   `json:"fps"`
}

// AttackFilter selects attacks: those that overlap [From, To) (zero:
// unbounded), on a target inside Target (zero: any), with the label, in the
// hostgroup and decided by or matching the rule when set; newest first, at
// most Limit (0: 100).
type AttackFilter struct {
	From, To  time.Time
	Target    netip.Prefix
	Label     string
	Hostgroup string
	Rule      string
	Limit     int
}

// Store is the history. Writes come from one goroutine (the Writer);
// reads from any.
type Store interface {
	// PutEvents records what the events say: attack started / updated /
	// escalated / ended (the attack row and a rate point), mitigation
	// events, reloads. Other kinds are ignored. It is idempotent for an
	// event already written (a Writer retrying a batch).
	PutEvents(ctx context.Context, evs []events.Event) error
	// PutTraffic records hostgroup traffic points.
	PutTraffic(ctx context.Context, pts []TrafficPoint) error

	// Attacks lists the attacks the filter selects, newest first.
	Attacks(ctx context.Context, f AttackFilter) ([]Attack, error)
	// Attack returns one attack with its mitigation events, oldest first,
	// or ErrNotFound.
	Attack(ctx context.Context, id uint64) (Attack, []Mitigation, error)
	// Mitigations lists the mitigation events in [from, to), oldest first.
	Mitigations(ctx context.Context, from, to time.Time) ([]Mitigation, error)
	// Reloads lists the reloads in [from, to), oldest first.
	Reloads(ctx context.Context, from, to time.Time) ([]Reload, error)
	// Traffic returns a hostgroup's points in [from, to) for a direction,
	// averaged over step (0: as stored), oldest first.
	Traffic(ctx context.Context, hostgroup, direction string, from, to time.Time, step time.Duration) ([]TrafficPoint, error)

	// Prune drops what is older than before (retention by age).
	Prune(ctx context.Context, before time.Time) error
	Close() error
}

// Apply merges an attack event into the attack's stored row, by the rules
// the conformance suite (store/storetest) holds every store to: the
// identity, start, trigger, rate and threshold always; the labels, vector,
// rules, deciding rule, sample summary, sample size and peak only when the
// event carries them (an end may carry less than the start did); the end
// when the event has one, or the event's time for the attack's end.
func (a *Attack) Apply(e *events.Event) {
	x := e.Attack
	a.ID, a.Target, a.Scope, a.Direction, a.Hostgroup = x.ID, x.Target, x.Scope, x.Direction, x.Hostgroup
	a.Started, a.Trigger, a.Rate, a.Threshold = x.Started.UTC(), x.Trigger, x.Rate, x.Threshold
	if len(x.Labels) > 0 {
		a.Labels = x.Labels
	}
	if !x.Vector.IsZero() {
		a.Vector = x.Vector
	}
	if len(x.Rules) > 0 {
		a.Rules = x.Rules
	}
	if x.Decider != "" {
		a.Decider = x.Decider
	}
	if x.Sample != nil {
		a.Sample = x.Sample
	}
	if x.SampleRecords != 0 {
		a.SampleRecords = x.SampleRecords
	}
	if len(x.Peak) > 0 {
		a.Peak = x.Peak
	}
	switch {
	case !x.Ended.IsZero():
		a.Ended = x.Ended.UTC()
	case e.Kind == events.AttackEnded:
		a.Ended = e.At.UTC()
	}
}
