// Package events owns what the daemon tells the world happened: attacks
// starting, changing and ending, mitigations announced, withdrawn, refused
// or failed, BGP sessions going up and down, rules and config reloaded. The
// stages write typed events into a Ring, a bounded buffer whose writer never
// waits; every consumer (the log, replay's JSON lines, the API's stream, the
// store, the notifiers) follows it with a Reader of its own, and one that
// falls behind loses the oldest events, counted, instead of slowing the
// stages down. The log lines and JSON lines are rendered here from the
// events, so every consumer shows the same thing.
//
// It is a leaf: it imports nothing of the module but flowspec.
package events

import (
	"bytes"
	"encoding/json"
	"io"
	"net/netip"
	"strconv"
	"time"

	"github.com/kapkan-io/kapkan/flowspec"
)

// Kind says what happened; it is also the event's name in JSON and the
// label of kapkan_events_published_total.
type Kind string

// Kinds of events.
const (
	AttackStarted Kind = "attack_started"
	// AttackUpdated carries the rates of a running attack (about once a
	// second) and its re-classification.
	AttackUpdated Kind = "attack_updated"
	// AttackEscalated: the attack's ladder moved to another step, or its
	// policy changed the action.
	AttackEscalated Kind = "attack_escalated"
	AttackEnded     Kind = "attack_ended"

	MitigationAnnounced Kind = "mitigation_announced"
	MitigationWithdrawn Kind = "mitigation_withdrawn"
	MitigationRenewed   Kind = "mitigation_renewed"
	// MitigationRefused: the safety guard said no (Mitigation.Reason is the
	// refusal's name, Mitigation.Err its text).
	MitigationRefused Kind = "mitigation_refused"
	// MitigationFailed: a speaker could not send an announce or withdraw.
	MitigationFailed Kind = "mitigation_failed"
	// MitigationNone: an attack for which no action is taken, with the
	// reason.
	MitigationNone Kind = "mitigation_none"

	BGPSessionUp   Kind = "bgp_session_up"
	BGPSessionDown Kind = "bgp_session_down"

	// RulesReloaded and ConfigReloaded report a reload that worked or
	// failed (Reload.OK, Reload.Err).
	RulesReloaded  Kind = "rules_reloaded"
	ConfigReloaded Kind = "config_reloaded"
)

// Kinds lists every kind, in the order above.
var Kinds = []Kind{
	AttackStarted, AttackUpdated, AttackEscalated, AttackEnded,
	MitigationAnnounced, MitigationWithdrawn, MitigationRenewed, MitigationRefused, MitigationFailed, MitigationNone,
	BGPSessionUp, BGPSessionDown, RulesReloaded, ConfigReloaded,
}

// Event is one thing that happened. One of its payloads is set, the one
// its kind calls for (MitigationNone may carry the Attack instead of a
// Mitigation).
//
// An event is immutable once published: readers get copies of the Event
// that share the payloads, so the writer must hand over fresh payloads
// (and fresh maps and slices in them) and never change them afterwards,
// and readers must not change them either.
type Event struct {
	// Seq is set by Ring.Publish: 1-based, strictly increasing.
	Seq  uint64 `json:"seq"`
	Kind Kind   `json:"kind"`
	// At is the time of the data (the capture's time in replay); Publish
	// sets the wall clock when it is zero.
	At time.Time `json:"at"`

	Attack     *Attack     `json:"attack,omitempty"`
	Mitigation *Mitigation `json:"mitigation,omitempty"`
	BGP        *BGPSession `json:"bgp,omitempty"`
	Reload     *Reload     `json:"reload,omitempty"`
}

// Attack is an attack as detected, classified and mitigated so far.
type Attack struct {
	ID     uint64       `json:"id"`
	Target netip.Prefix `json:"target"`
	// Scope is "address" or "prefix"; Direction "incoming" or "outgoing".
	Scope     string    `json:"scope"`
	Direction string    `json:"direction"`
	Hostgroup string    `json:"hostgroup"`
	Started   time.Time `json:"started"`
	// Ended is zero until the attack ended.
	Ended time.Time `json:"ended,omitzero"`
	// Trigger is the metric that tripped ("pps"); Rate and Threshold are
	// in its unit (Mbps for byte metrics).
	Trigger   string  `json:"trigger"`
	Rate      float64 `json:"rate"`
	Threshold float64 `json:"threshold"`
	// Rates is the rate now by metric name ("pps", "mbps", "fps",
	// "tcp_pps", …), Peak the highest seen (set when the attack ends).
	Rates map[string]float64 `json:"rates"`
	Peak  map[string]float64 `json:"peak,omitempty"`
	// SampleRecords is the number of records in the flow sample the
	// verdict stood on.
	SampleRecords int      `json:"sample_records"`
	Labels        []string `json:"labels,omitempty"`
	// Vector is the FlowSpec match the rules proposed (an object in JSON,
	// left out when it is all traffic).
	Vector flowspec.Match `json:"vector,omitzero"`
	// Rules are the rules that matched; Decider is the one that gave the
	// vector (the first matching rule with one), "" if none.
	Rules   []string `json:"rules,omitempty"`
	Decider string   `json:"decider,omitempty"`
	// Skipped are the classifier modules that did not answer (suspended,
	// over budget, failed).
	Skipped []string `json:"skipped,omitempty"`
	// Sample summarises the flow sample the verdict stood on (nil when
	// there was none): who sends, from and to which ports, what sizes.
	Sample *SampleSummary `json:"sample,omitempty"`
	// Ladder, Step and Action are the mitigation step in force, if any.
	Ladder string          `json:"ladder,omitempty"`
	Step   int             `json:"step,omitempty"`
	Action flowspec.Action `json:"action,omitzero"`
	// Reason explains the event (why no action is taken, why the ladder
	// moved).
	Reason string `json:"reason,omitempty"`
	// Explain is what decided the verdict and the action (nil before the
	// first verdict).
	Explain *Explain `json:"explain,omitempty"`
	// Shadow is what the shadow rule set said of the attack and would
	// have done, never acted on (nil without a shadow rule set).
	Shadow *Shadow `json:"shadow,omitempty"`
}

// Explain is the trace of an attack's verdict: what the rules saw, which
// matched, which came closest without matching and why, and which step
// of which ladder is in force and why.
type Explain struct {
	// Window is the detection window the rates were measured over ("5s").
	Window string `json:"window,omitempty"`
	// Seen are the features the deciding rule and the closest miss read,
	// as "name=value", by name.
	Seen []string `json:"seen,omitempty"`
	// Matched are the rules that matched in evaluation order, Decider the
	// one that gave the vector.
	Matched []string `json:"matched,omitempty"`
	Decider string   `json:"decider,omitempty"`
	// Miss is the rule that came closest to matching without matching.
	Miss *ExplainMiss `json:"closest_miss,omitempty"`
	// Ladder, Step and Action are the step in force, Why the reason it
	// was taken or, with no step in force, why there is none.
	Ladder string          `json:"ladder,omitempty"`
	Step   int             `json:"step,omitempty"`
	Action flowspec.Action `json:"action,omitzero"`
	Why    string          `json:"why,omitempty"`
}

// ExplainMiss is a rule that did not match: Held of its Parts top-level
// parts held, and Failed are those that did not.
type ExplainMiss struct {
	Rule   string   `json:"rule"`
	Held   int      `json:"held"`
	Parts  int      `json:"parts"`
	Failed []string `json:"failed"`
	// Values are what the failed parts compared ("src_port_share(53)=0").
	Values []string `json:"values,omitempty"`
}

// Shadow is the verdict of the shadow rule set and the mitigation its
// ladder would have put in force. Nothing of it is announced, notified
// or banned.
type Shadow struct {
	Labels  []string       `json:"labels,omitempty"`
	Vector  flowspec.Match `json:"vector,omitzero"`
	Rules   []string       `json:"rules,omitempty"`
	Decider string         `json:"decider,omitempty"`
	// Ladder, Step and Action are the would-be mitigation in force
	// (Action absent for none); Refused is the safety guard's reason when
	// it would have refused it, Why why there would be none.
	Ladder  string          `json:"ladder,omitempty"`
	Step    int             `json:"step,omitempty"`
	Action  flowspec.Action `json:"action,omitzero"`
	Refused string          `json:"refused,omitempty"`
	Why     string          `json:"why,omitempty"`
	// Differs says whether the shadow verdict (labels, vector) or its
	// would-be action differs from the active one.
	Differs bool `json:"differs"`
}

// SampleSummary is what an attack's flow sample shows, in shares of its
// sampling-corrected packets (0 to 1).
type SampleSummary struct {
	// TopSources are the sources sending most, most first (at most 5).
	TopSources []Share `json:"top_sources,omitempty"`
	// Sources is the number of distinct sources in the sample.
	Sources     int     `json:"sources"`
	TopSrcPorts []Share `json:"top_src_ports,omitempty"`
	TopDstPorts []Share `json:"top_dst_ports,omitempty"`
	// Packet sizes in bytes: mean and percentiles over packets.
	MeanPacketSize float64 `json:"mean_packet_size"`
	P10PacketSize  float64 `json:"p10_packet_size"`
	P50PacketSize  float64 `json:"p50_packet_size"`
	P90PacketSize  float64 `json:"p90_packet_size"`
}

// Share is a source address or a port, with its share of the packets.
type Share struct {
	Value string  `json:"value"`
	Share float64 `json:"share"`
}

// Mitigation is an action on a target's traffic, as the mitigation manager
// handled it.
type Mitigation struct {
	// AttackID is 0 for a manual ban, and for a TTL running out.
	AttackID uint64          `json:"attack_id,omitempty"`
	Target   netip.Prefix    `json:"target"`
	Action   flowspec.Action `json:"action"`
	Match    flowspec.Match  `json:"match,omitzero"`
	RateMbps float64         `json:"rate_mbps,omitempty"`
	Ladder   string          `json:"ladder,omitempty"`
	Step     int             `json:"step,omitempty"`
	Expires  time.Time       `json:"expires,omitzero"`
	// Reason says why: the ladder's reason, or the name of the guard's
	// refusal ("allowlisted").
	Reason string `json:"reason,omitempty"`
	// Err is the text of the refusal or failure.
	Err    string `json:"error,omitempty"`
	DryRun bool   `json:"dry_run"`
}

// BGPSession is a change of state of a BGP session.
type BGPSession struct {
	Peer  string `json:"peer"`
	State string `json:"state"`
	Err   string `json:"error,omitempty"`
}

// Reload is the outcome of a rules or config reload.
type Reload struct {
	// What is "rules" or "config".
	What string `json:"what"`
	OK   bool   `json:"ok"`
	// Err is the failure; Errors its parts, one per problem (positioned
	// errors of a rule or config file).
	Err    string   `json:"error,omitempty"`
	Errors []string `json:"errors,omitempty"`
	// Applied are the config sections changed live; NeedsRestart the
	// changes that wait for a restart.
	Applied      []string `json:"applied,omitempty"`
	NeedsRestart []string `json:"needs_restart,omitempty"`
	// Trigger is what asked for the reload: "SIGHUP", "file change",
	// "API".
	Trigger string `json:"trigger,omitempty"`
	// Rules, WASMModules and Disabled count the rule set now running
	// (rules reloads).
	Rules       int `json:"rules,omitempty"`
	WASMModules int `json:"wasm_modules,omitempty"`
	Disabled    int `json:"disabled,omitempty"`
}

// AppendJSON appends e as one JSON object, without a newline, to dst. It
// does not escape &, < and > (json.Marshal would write "syn\u0026!ack").
// An event that cannot be encoded (a NaN rate) is written as its seq,
// kind and time with the error under "render_error", so the output stays
// one valid object per event.
func AppendJSON(dst []byte, e *Event) []byte {
	b := bytes.NewBuffer(dst)
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		// Encode writes nothing when it fails.
		dst = append(dst, `{"seq":`...)
		dst = strconv.AppendUint(dst, e.Seq, 10)
		dst = append(dst, `,"kind":`...)
		dst = appendJSONString(dst, string(e.Kind))
		dst = append(dst, `,"at":`...)
		dst = appendJSONString(dst, e.At.Format(time.RFC3339Nano))
		dst = append(dst, `,"render_error":`...)
		dst = appendJSONString(dst, err.Error())
		return append(dst, '}')
	}
	out := b.Bytes()
	return out[:len(out)-1] // Encode ends with a newline
}

// appendJSONString appends s as a JSON string (json.Marshal never fails on a
// string; strconv.Quote is Go syntax, not JSON).
func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s)
	return append(dst, b...)
}

// WriteJSON writes e to w as one JSON line (AppendJSON and a newline).
func WriteJSON(w io.Writer, e *Event) error {
	_, err := w.Write(append(AppendJSON(nil, e), '\n'))
	return err
}
