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
