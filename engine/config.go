package engine

import (
	"net/netip"
	"time"
)

// Config is the engine's part of the configuration.
type Config struct {
	// Window is the sliding window rates are averaged over (whole seconds).
	Window time.Duration
	// Cooldown is how long every rate must stay below its threshold (by the
	// hysteresis margin) before an attack ends. Traffic that comes back
	// within it continues the same attack.
	Cooldown time.Duration
	// Hysteresis is the fraction below a threshold a rate must fall to count
	// as "below" (0.1: under 90 % of the threshold).
	Hysteresis float64
	// Shards is the number of window shards, each owned by one goroutine;
	// 0 means one per CPU.
	Shards int
	// QueueSize is the number of sub-batches each shard's queue holds.
	QueueSize int
	// SampleSize bounds the flow sample kept per hot address or attack.
	SampleSize int
	// MaxHot bounds how many addresses keep per-protocol detail and a flow
	// sample at once.
	MaxHot int
	// Hostgroups are the protected prefixes and their thresholds.
	Hostgroups []Hostgroup
}

// Hostgroup is a named set of protected prefixes sharing thresholds.
type Hostgroup struct {
	Name     string
	Prefixes []netip.Prefix
	// IgnoreSources are remote prefixes whose traffic does not count toward
	// this hostgroup's thresholds (speed-test servers, CDNs, backup peers):
	// the source of incoming and the destination of outgoing traffic.
	IgnoreSources []netip.Prefix
	// Incoming and Outgoing apply to each address of the hostgroup.
	Incoming, Outgoing Thresholds
	// IncomingTotal and OutgoingTotal apply to the sum over each protected
	// prefix: an attack spread over many addresses (carpet bombing).
	IncomingTotal, OutgoingTotal Thresholds
}

// Thresholds are per-second limits; 0 turns a check off.
type Thresholds struct {
	PPS, Mbps, FPS                                uint64
	TCPPPS, UDPPPS, ICMPPPS, SYNPPS, FragPPS      uint64
	TCPMbps, UDPMbps, ICMPMbps, SYNMbps, FragMbps uint64
}

// DefaultConfig returns the engine defaults.
func DefaultConfig() Config {
	return Config{
		Window:     5 * time.Second,
		Cooldown:   30 * time.Second,
		Hysteresis: 0.1,
		QueueSize:  1024,
		SampleSize: 2000,
		MaxHot:     1024,
	}
}
