package api

import (
	"time"

	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/mitigate"
)

// TrafficView is GET /api/v1/traffic.
type TrafficView struct {
	At            time.Time       `json:"at"`
	WindowSeconds int             `json:"window_seconds"`
	Top           TopView         `json:"top"`
	Hostgroups    []HostgroupView `json:"hostgroups"`
}

// TopView are the busiest targets per direction.
type TopView struct {
	Incoming []TargetView `json:"incoming"`
	Outgoing []TargetView `json:"outgoing"`
}

// TargetView is one target's rates now.
type TargetView struct {
	Target    string  `json:"target"`
	Hostgroup string  `json:"hostgroup"`
	PPS       float64 `json:"pps"`
	Mbps      float64 `json:"mbps"`
	FPS       float64 `json:"fps"`
}

// RatesView are rates in their units.
type RatesView struct {
	PPS  float64 `json:"pps"`
	Mbps float64 `json:"mbps"`
	FPS  float64 `json:"fps"`
}

// HostgroupView is a hostgroup's total rates per direction.
type HostgroupView struct {
	Name     string    `json:"name"`
	Incoming RatesView `json:"incoming"`
	Outgoing RatesView `json:"outgoing"`
}

// ExporterView is the telemetry self-check of one exporter.
type ExporterView struct {
	Address              string         `json:"address"`
	Formats              []string       `json:"formats"`
	RecordsPerSecond     float64        `json:"records_per_second"`
	DatagramsTotal       uint64         `json:"datagrams_total"`
	RecordsTotal         uint64         `json:"records_total"`
	Sampling             []SamplingView `json:"sampling"`
	SequenceGaps         uint64         `json:"sequence_gaps"`
	DecodeErrors         uint64         `json:"decode_errors"`
	ActiveTimeoutWarning bool           `json:"active_timeout_warning"`
	LastSeen             time.Time      `json:"last_seen"`
}

// SamplingView is a sampling rate seen and where it came from ("sample",
// "template", "override", "default").
type SamplingView struct {
	Rate   uint32 `json:"rate"`
	Source string `json:"source"`
}

// SessionView is one BGP session.
type SessionView struct {
	Peer       string    `json:"peer"`
	State      string    `json:"state"`
	Since      time.Time `json:"since"`
	RoutesSent int       `json:"routes_sent"`
	// Sent are the routes advertised to the peer now, each as its family
	// and NLRI (at most 256; RoutesSent counts them all).
	Sent []string `json:"sent"`
}

// RulesView is the rule set running.
type RulesView struct {
	Version    string     `json:"version"`
	Rules      []string   `json:"rules"`
	Ladders    []string   `json:"ladders"`
	Modules    []string   `json:"modules"`
	Disabled   []string   `json:"disabled"`
	LastReload ReloadView `json:"last_reload"`
}

// ReloadView is the outcome of a reload.
type ReloadView struct {
	OK      bool      `json:"ok"`
	At      time.Time `json:"at"`
	Trigger string    `json:"trigger"`
	Errors  []string  `json:"errors"`
}

// ReadyView is GET /readyz: checks by name ("listeners", "rules", "bgp"),
// each "ok", "n/a" or what is wrong.
type ReadyView struct {
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"`
}

// AttackView is an attack with its mitigation history.
type AttackView struct {
	*events.Attack
	Active bool `json:"active"`
	// Action is the action in force for the attack now (the last one
	// announced and not withdrawn; "" for none): it shadows the attack
	// event's own action, which escalation events alone carry.
	Action      string            `json:"action,omitempty"`
	Mitigations []MitigationEvent `json:"mitigations"`
	// Series are the attack's rates over time (GET /api/v1/attacks/{id}
	// of an attack the live index holds; absent otherwise).
	Series []RatePoint `json:"series,omitempty"`
}

// MitigationEvent is one mitigation event of an attack.
type MitigationEvent struct {
	Kind events.Kind `json:"kind"`
	At   time.Time   `json:"at"`
	*events.Mitigation
}

// ActionView is a mitigation in force.
type ActionView struct {
	mitigate.ActiveAction
	TTLLeftSeconds int64 `json:"ttl_left_seconds"`
}

func actionView(a mitigate.ActiveAction, now time.Time) ActionView {
	left := max(a.Expires.Sub(now), 0)
	return ActionView{ActiveAction: a, TTLLeftSeconds: int64(left.Round(time.Second) / time.Second)}
}
