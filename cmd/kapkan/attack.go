package main

import (
	"time"

	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flowspec"
)

// attackJSON is how replay prints an attack event.
type attackJSON struct {
	Type       string             `json:"type"`
	ID         uint64             `json:"id"`
	Target     string             `json:"target"`
	Scope      string             `json:"scope"`
	Direction  string             `json:"direction"`
	Hostgroup  string             `json:"hostgroup"`
	DetectedAt string             `json:"detected_at"`
	EndedAt    string             `json:"ended_at,omitempty"`
	Trigger    string             `json:"trigger"`
	Rate       float64            `json:"rate"`
	Threshold  float64            `json:"threshold"`
	Rates      map[string]float64 `json:"rates"`
	Peak       map[string]float64 `json:"peak,omitempty"`
	Sample     int                `json:"sample_records"`
	Labels     []string           `json:"labels,omitempty"`
	Vector     *flowspec.Match    `json:"vector,omitempty"`
	Rules      []string           `json:"rules,omitempty"`
}

// newAttackJSON renders an attack event as replay's line: "attack" when it
// started, "attack_end" when it ended.
func newAttackJSON(kind events.Kind, a *events.Attack) attackJSON {
	j := attackJSON{
		Type:       "attack",
		ID:         a.ID,
		Target:     a.Target.String(),
		Scope:      a.Scope,
		Direction:  a.Direction,
		Hostgroup:  a.Hostgroup,
		DetectedAt: a.Started.Format(time.RFC3339Nano),
		Trigger:    a.Trigger,
		Rate:       a.Rate,
		Threshold:  a.Threshold,
		Rates:      a.Rates,
		Sample:     a.SampleRecords,
		Labels:     a.Labels,
		Rules:      a.Rules,
	}
	if !a.Vector.IsZero() {
		v := a.Vector
		j.Vector = &v
	}
	if kind == events.AttackEnded {
		j.Type = "attack_end"
		j.EndedAt = a.Ended.Format(time.RFC3339)
		j.Peak = a.Peak
	}
	return j
}

// mitigationJSON is how replay prints a mitigation event, and what the API
// returns for one.
type mitigationJSON struct {
	Type     string          `json:"type"`
	ID       uint64          `json:"id,omitempty"`
	Event    string          `json:"event"` // announce, withdraw, renew or refused
	Target   string          `json:"target"`
	Ladder   string          `json:"ladder,omitempty"`
	Step     int             `json:"step,omitempty"`
	Action   string          `json:"action"`
	RateMbps float64         `json:"rate_mbps,omitempty"`
	Match    *flowspec.Match `json:"match,omitempty"`
	At       string          `json:"at"`
	Expires  string          `json:"expires,omitempty"`
	Reason   string          `json:"reason"`
	Error    string          `json:"error,omitempty"`
	DryRun   bool            `json:"dry_run"`
}

// mitigationEventNames are replay's words for the mitigation events.
var mitigationEventNames = map[events.Kind]string{
	events.MitigationAnnounced: "announce", events.MitigationWithdrawn: "withdraw", events.MitigationRenewed: "renew",
	events.MitigationRefused: "refused", events.MitigationFailed: "failed", events.MitigationNone: "none",
}

func newMitigationJSON(ev *events.Event) mitigationJSON {
	e := ev.Mitigation
	j := mitigationJSON{Type: "mitigation", ID: e.AttackID, Event: mitigationEventNames[ev.Kind], Target: e.Target.String(),
		Ladder: e.Ladder, Step: e.Step, Action: e.Action.String(), RateMbps: e.RateMbps,
		At: ev.At.UTC().Format(time.RFC3339Nano), Reason: e.Reason, Error: e.Err, DryRun: e.DryRun}
	if !e.Match.IsZero() {
		v := e.Match
		j.Match = &v
	}
	if !e.Expires.IsZero() {
		j.Expires = e.Expires.UTC().Format(time.RFC3339Nano)
	}
	return j
}
