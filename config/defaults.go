package config

import (
	"net/netip"
	"time"

	"gopkg.in/yaml.v3"
)

// Default ports of the flow listeners: the IANA sFlow port and the customary
// NetFlow port.
const (
	DefaultSFlowListen   = ":6343"
	DefaultNetFlowListen = ":2055"
	// DefaultReadBuffer is the default socket receive buffer, 32 MiB: about
	// a second of a busy exporter, so that a short stall drops nothing.
	DefaultReadBuffer = 32 << 20
	// DefaultAPIListen keeps the API on loopback until an operator opens it.
	DefaultAPIListen = "127.0.0.1:8080"
)

// Default returns the configuration an empty file gives: dry-run on, both
// listeners on their usual ports, a five-second window, no hostgroups.
func Default() *Config {
	return &Config{
		DryRun:     true,
		Log:        DefaultLog(),
		Ingest:     DefaultIngest(),
		Detection:  DefaultDetection(),
		Rules:      DefaultRules(),
		API:        DefaultAPI(),
		Mitigation: DefaultMitigation(),
		Store:      DefaultStore(),
		Incidents:  DefaultIncidents(),
	}
}

// DefaultIncidents returns the default flight recorder: a 4 MiB ring per
// listener worker, 10 s before detection to 60 s after, at most 8 MiB per
// incident and 16 incidents held.
func DefaultIncidents() Incidents {
	return Incidents{RingBytes: 4 << 20, Before: Duration{10 * time.Second}, After: Duration{time.Minute},
		MaxBytes: 8 << 20, Keep: 16}
}

// DefaultStore returns the default history settings: the embedded store
// in /var/lib/kapkan, 90 days kept, no size bound, no ClickHouse.
func DefaultStore() Store {
	return Store{Path: DefaultStorePath, Retention: Duration{90 * 24 * time.Hour}}
}

// DefaultStorePath is the directory of the embedded history store.
const DefaultStorePath = "/var/lib/kapkan"

// DefaultMitigation returns the default mitigation section: at most 100
// blackholes and 100 FlowSpec rules at once, 20 new actions a minute, a
// 10-minute TTL (24 h at most) doubled for targets that come back within
// an hour, state kept in /var/lib/kapkan, and no BGP peer.
func DefaultMitigation() Mitigation {
	return Mitigation{
		MaxActiveBlackholes: 100,
		MaxActiveFlowSpec:   100,
		MaxNewPerMinute:     20,
		TTL:                 Duration{10 * time.Minute},
		MaxTTL:              Duration{24 * time.Hour},
		FlapWindow:          Duration{time.Hour},
		FlapMultiplier:      2,
		StateFile:           DefaultStateFile,
		BGP:                 DefaultBGP(),
	}
}

// DefaultStateFile is where the actions in force are kept across restarts.
const DefaultStateFile = "/var/lib/kapkan/mitigations.json"

// DefaultBGP returns the default BGP speaker settings: no listener, the
// discard next hops of RFC 5737 and RFC 6666, the BLACKHOLE community (RFC
// 7999) with NO_EXPORT, no peer.
func DefaultBGP() BGP {
	return BGP{
		ListenPort:  -1,
		NextHopIPv4: netip.MustParseAddr("192.0.2.1"),
		NextHopIPv6: netip.MustParseAddr("100::1"),
		Communities: []string{"blackhole", "no-export"},
	}
}

// DefaultLog returns the default log section: info level, text format.
func DefaultLog() Log {
	return Log{Level: "info", Format: "text"}
}

// DefaultIngest returns the default ingest section: both listeners enabled,
// telemetry without a sampling rate taken as unsampled, no overrides.
func DefaultIngest() Ingest {
	return Ingest{
		SFlow:               DefaultSFlow(),
		NetFlow:             DefaultNetFlow(),
		DefaultSamplingRate: 1,
		MaxExporters:        10_000,
		MaxTemplates:        8192,
		MaxPendingBytes:     16 << 20,
	}
}

// DefaultSFlow returns the default sFlow listener.
func DefaultSFlow() Listener {
	return Listener{Listen: DefaultSFlowListen, ReadBuffer: DefaultReadBuffer}
}

// DefaultNetFlow returns the default NetFlow / IPFIX listener.
func DefaultNetFlow() Listener {
	return Listener{Listen: DefaultNetFlowListen, ReadBuffer: DefaultReadBuffer}
}

// DefaultDetection returns the default detection section: a 5 s window, a
// 30 s cool-down with a 10 % hysteresis margin, 2000-record flow samples for
// at most 1024 addresses at once.
func DefaultDetection() Detection {
	return Detection{
		Window:            Duration{5 * time.Second},
		Cooldown:          Duration{30 * time.Second},
		HysteresisPercent: 10,
		QueueSize:         1024,
		SampleSize:        2000,
		MaxHot:            1024,
	}
}

// DefaultAPI returns the default API section.
func DefaultAPI() API {
	return API{Listen: DefaultAPIListen}
}

// DefaultRules returns the default rules section: no operator directory,
// checked for changes every 2 seconds.
func DefaultRules() Rules {
	return Rules{PollInterval: Duration{2 * time.Second}}
}

// Notifier types, and the event names a notifier's events may list.
var (
	NotifierTypes  = []string{"telegram", "slack", "email", "webhook", "exec"}
	NotifierModes  = []string{"fastnetmon", "json"}
	NotifierEvents = []string{"attack_started", "attack_escalated", "attack_ended", "mitigation",
		"mitigation_announced", "mitigation_withdrawn", "mitigation_refused", "mitigation_failed"}
)

// DefaultNotifier returns the defaults of a notify list item: attacks
// started, escalated and ended and mitigations; no dry-run mitigations;
// 10 s per attempt, 3 retries, 20 messages a minute (Telegram's limit for
// a group), 100 waiting; STARTTLS required.
func DefaultNotifier() Notifier {
	return Notifier{
		Events:        []string{"attack_started", "attack_escalated", "mitigation", "attack_ended"},
		Timeout:       Duration{10 * time.Second},
		RatePerMinute: 20,
		QueueSize:     100,
		Retries:       3,
		StartTLS:      true,
	}
}

// setDefaults is called by the decoder on each new notify item before the
// file's keys are decoded into it.
func (n *Notifier) setDefaults() { *n = DefaultNotifier() }

// UnmarshalYAML applies the item's defaults before its keys, so that a
// plain yaml.v3 decode agrees with Parse.
func (n *Notifier) UnmarshalYAML(node *yaml.Node) error {
	type plain Notifier // without this method
	p := plain(DefaultNotifier())
	if err := node.Decode(&p); err != nil {
		return err
	}
	*n = Notifier(p)
	return nil
}

// DefaultPeer returns the defaults of a mitigation.bgp.peers item: graceful
// restart offered, with a restart time of 120 s, and no long-lived
// graceful restart (a blackhole kept for hours by a router while Kapkan is
// down would outlive the TTL it was given).
func DefaultPeer() Peer {
	return Peer{GracefulRestart: true, GracefulRestartTime: Duration{120 * time.Second}}
}

// setDefaults is called by the decoder on each new peer before the file's
// keys are decoded into it.
func (p *Peer) setDefaults() { *p = DefaultPeer() }

// UnmarshalYAML applies the peer's defaults before its keys, so that a
// plain yaml.v3 decode agrees with Parse.
func (p *Peer) UnmarshalYAML(node *yaml.Node) error {
	type plain Peer // without this method
	q := plain(DefaultPeer())
	if err := node.Decode(&q); err != nil {
		return err
	}
	*p = Peer(q)
	return nil
}
