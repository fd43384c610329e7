package daemon

import (
	"log/slog"
	"net/netip"
	"strings"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/incident"
	"github.com/kapkan-io/kapkan/ingest"
)

// IngestOptions derives the decoder's options from the configuration.
func IngestOptions(cfg *config.Config) ingest.Options {
	o := ingest.Options{
		DefaultSamplingRate: cfg.Ingest.DefaultSamplingRate,
		Window:              cfg.Detection.Window.Duration,
		Limits: ingest.Limits{MaxExporters: cfg.Ingest.MaxExporters, MaxTemplates: cfg.Ingest.MaxTemplates,
			MaxPendingBytes: cfg.Ingest.MaxPendingBytes},
	}
	if len(cfg.Ingest.Exporters) > 0 {
		o.Exporters = make(map[netip.Addr]ingest.ExporterOptions, len(cfg.Ingest.Exporters))
		for _, e := range cfg.Ingest.Exporters {
			o.Exporters[e.Address.Unmap()] = ingest.ExporterOptions{Name: e.Name, SamplingRate: e.SamplingRate}
		}
	}
	return o
}

// EngineConfig derives the engine's configuration.
func EngineConfig(cfg *config.Config) engine.Config {
	d := cfg.Detection
	ec := engine.Config{
		Window:     d.Window.Duration,
		Cooldown:   d.Cooldown.Duration,
		Hysteresis: float64(d.HysteresisPercent) / 100,
		Shards:     d.Shards,
		QueueSize:  d.QueueSize,
		SampleSize: d.SampleSize,
		MaxHot:     d.MaxHot,
	}
	for _, hg := range cfg.Hostgroups {
		e := engine.Hostgroup{Name: hg.Name, Prefixes: hg.Prefixes, IgnoreSources: hg.IgnoreSources}
		if !hg.Thresholds.Disabled {
			e.Incoming = thresholds(hg.Thresholds.Incoming)
			e.Outgoing = thresholds(hg.Thresholds.Outgoing)
			e.IncomingTotal = thresholds(hg.Thresholds.IncomingTotal)
			e.OutgoingTotal = thresholds(hg.Thresholds.OutgoingTotal)
		}
		ec.Hostgroups = append(ec.Hostgroups, e)
	}
	return ec
}

func thresholds(t config.ThresholdSet) engine.Thresholds {
	return engine.Thresholds{
		PPS: t.PPS, Mbps: t.Mbps, FPS: t.FPS,
		TCPPPS: t.TCPPPS, UDPPPS: t.UDPPPS, ICMPPPS: t.ICMPPPS, SYNPPS: t.SYNPPS, FragPPS: t.FragPPS,
		TCPMbps: t.TCPMbps, UDPMbps: t.UDPMbps, ICMPMbps: t.ICMPMbps, SYNMbps: t.SYNMbps, FragMbps: t.FragMbps,
	}
}

// warnNoThresholds logs the configuration's warnings (hostgroups that
// cannot report an attack), the ones `kapkan check` prints.
func warnNoThresholds(log *slog.Logger, cfg *config.Config) {
	for _, w := range cfg.Warnings() {
		log.Warn("hostgroup cannot report an attack", "problem", w.Error())
	}
}

// ParseLevel reads a log level (info when unknown: config validation
// refuses those).
func ParseLevel(level string) slog.Level {
	switch strings.ToLower(level) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// IncidentConfig is the flight recorder's read side of cfg.
func IncidentConfig(cfg *config.Config) incident.Config {
	in := cfg.Incidents
	return incident.Config{Before: in.Before.Duration, After: in.After.Duration, MaxBytes: in.MaxBytes, Keep: in.Keep}
}

// IncidentSetup gives, for an attack, what a rule test needs of cfg to see
// it as the daemon did: its hostgroup's name, prefixes and incoming pps and
// Mbps thresholds, and the detection window.
func IncidentSetup(cfg *config.Config) func(a *events.Attack) incident.Setup {
	ec := EngineConfig(cfg)
	return func(a *events.Attack) incident.Setup {
		for _, hg := range ec.Hostgroups {
			if hg.Name == a.Hostgroup {
				return incident.Setup{Hostgroup: hg.Name, Prefixes: hg.Prefixes, PPS: hg.Incoming.PPS, Mbps: hg.Incoming.Mbps,
					Window: ec.Window}
			}
		}
		return incident.Setup{Hostgroup: a.Hostgroup, Window: ec.Window}
	}
}
