package main

import (
	"encoding/json"
	"log/slog"
	"math"
	"time"

	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/rules"
)

// attackJSON is how replay prints an attack, and what the daemon logs.
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

// classifyInto adds the verdict of set on c to j, and returns it with the
// features it was computed from.
func classifyInto(j *attackJSON, set *rules.Set, c *engine.Candidate) (rules.Verdict, rules.Features, error) {
	f := rules.Compute(c)
	v, err := set.Classify(&f)
	if err != nil {
		return v, f, err
	}
	j.Labels, j.Rules = v.Labels, v.Rules
	if !v.Vector.IsZero() {
		j.Vector = &v.Vector
	}
	return v, f, nil
}

// metricValue converts a rate into the unit thresholds use (Mbps for
// byte metrics), rounded to a thousandth.
func metricValue(m engine.Metric, v uint64) float64 {
	if m.IsBytes() {
		return math.Round(engine.Mbps(v)*1000) / 1000
	}
	return float64(v)
}

func ratesMap(r engine.Rates) map[string]float64 {
	out := make(map[string]float64, engine.NumMetrics)
	for m := range engine.NumMetrics {
		if r[m] != 0 || m < 3 {
			out[m.String()] = metricValue(m, r[m])
		}
	}
	return out
}

func newAttackJSON(c *engine.Candidate) attackJSON {
	j := attackJSON{
		Type:       "attack",
		ID:         c.ID,
		Target:     c.Target.String(),
		Scope:      c.Scope.String(),
		Direction:  c.Direction.String(),
		Hostgroup:  c.Hostgroup,
		DetectedAt: c.Started.Format(time.RFC3339Nano),
		Trigger:    c.Trigger.String(),
		Rate:       metricValue(c.Trigger, c.Rate),
		Threshold:  metricValue(c.Trigger, c.Threshold),
		Rates:      ratesMap(c.Rates),
		Sample:     len(c.Sample),
	}
	if c.Kind == engine.AttackEnded {
		j.Type = "attack_end"
		j.EndedAt = c.At.Format(time.RFC3339)
		j.Peak = ratesMap(c.Peak)
	}
	return j
}

// logCandidate writes the log lines that are the detection contract until
// the API exists: "attack detected" and "attack ended" at INFO.
func logCandidate(log *slog.Logger, c *engine.Candidate, v *rules.Verdict) {
	var vector string
	if v != nil && !v.Vector.IsZero() {
		b, _ := json.Marshal(v.Vector)
		vector = string(b)
	}
	switch c.Kind {
	case engine.AttackStarted:
		log.Info("attack detected", "labels", v.Labels, "vector", vector,
			"id", c.ID, "target", c.Target.String(), "scope", c.Scope.String(),
			"direction", c.Direction.String(), "hostgroup", c.Hostgroup,
			"trigger", c.Trigger.String(), "rate", metricValue(c.Trigger, c.Rate),
			"threshold", metricValue(c.Trigger, c.Threshold),
			"pps", c.Rates[engine.MetricPPS], "mbps", metricValue(engine.MetricBPS, c.Rates[engine.MetricBPS]),
			"fps", c.Rates[engine.MetricFPS], "sample_records", len(c.Sample))
	case engine.AttackEnded:
		log.Info("attack ended", "labels", v.Labels,
			"id", c.ID, "target", c.Target.String(), "direction", c.Direction.String(),
			"hostgroup", c.Hostgroup, "duration", c.At.Sub(c.Started).String(),
			"peak_pps", c.Peak[engine.MetricPPS], "peak_mbps", metricValue(engine.MetricBPS, c.Peak[engine.MetricBPS]))
	case engine.AttackCooling:
		log.Debug("attack cooling down", "id", c.ID, "target", c.Target.String())
	}
}
