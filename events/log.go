package events

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/kapkan-io/kapkan/flowspec"
)

// Message returns the log message of an event: "attack detected",
// "mitigation refused", "rules reload failed, keeping the running rules"…
func Message(e *Event) string {
	switch e.Kind {
	case AttackStarted:
		return "attack detected"
	case AttackUpdated:
		return "attack updated"
	case AttackEscalated:
		return "attack escalated"
	case AttackEnded:
		return "attack ended"
	case MitigationAnnounced:
		return "mitigation announced"
	case MitigationWithdrawn:
		return "mitigation withdrawn"
	case MitigationRenewed:
		return "mitigation renewed"
	case MitigationRefused:
		return "mitigation refused"
	case MitigationFailed:
		return "mitigation failed"
	case MitigationNone:
		return "no mitigation"
	case BGPSessionUp:
		return "bgp session up"
	case BGPSessionDown:
		return "bgp session down"
	case RulesReloaded:
		if e.Reload != nil && !e.Reload.OK {
			return "rules reload failed, keeping the running rules"
		}
		return "rules reloaded"
	case ConfigReloaded:
		if e.Reload != nil && !e.Reload.OK {
			return "config reload failed, keeping the running config"
		}
		return "config reloaded"
	}
	return "event " + string(e.Kind)
}

// Level returns the log level of an event: DEBUG for the rates of a
// running attack (one line a second per attack would drown the rest),
// WARN for a refusal, a session down and a reload that needs a restart,
// ERROR for a failed mitigation or reload, INFO otherwise.
func Level(e *Event) slog.Level {
	switch e.Kind {
	case AttackUpdated:
		return slog.LevelDebug
	case MitigationRefused, BGPSessionDown:
		return slog.LevelWarn
	case MitigationFailed:
		return slog.LevelError
	case RulesReloaded, ConfigReloaded:
		switch {
		case e.Reload == nil:
		case !e.Reload.OK:
			return slog.LevelError
		case len(e.Reload.NeedsRestart) > 0:
			return slog.LevelWarn
		}
	}
	return slog.LevelInfo
}

// Log writes e as one line to logger, at Level(e) with Message(e) and
// LogAttrs(e). The line's time is when it is logged; the event's own time
// is in its attributes where it matters (started, expires).
func Log(logger *slog.Logger, e *Event) {
	ctx := context.Background()
	lv := Level(e)
	if !logger.Enabled(ctx, lv) {
		return
	}
	logger.LogAttrs(ctx, lv, Message(e), LogAttrs(e)...)
}

// LogAttrs returns the attributes of an event's log line. Keys are
// snake_case; the vector, the match and the rates are groups, so that the
// JSON handler writes objects ("vector":{"protocol":"udp"}) and the text
// handler vector.protocol=udp.
func LogAttrs(e *Event) []slog.Attr {
	switch e.Kind {
	case AttackStarted, AttackUpdated, AttackEscalated, AttackEnded:
		if e.Attack != nil {
			return attackAttrs(e.Kind, e.Attack)
		}
	case MitigationAnnounced, MitigationWithdrawn, MitigationRenewed, MitigationRefused, MitigationFailed, MitigationNone:
		if e.Mitigation != nil {
			return mitigationAttrs(e.Kind, e.Mitigation)
		}
		if e.Attack != nil {
			return attackAttrs(e.Kind, e.Attack)
		}
	case BGPSessionUp, BGPSessionDown:
		if e.BGP != nil {
			return bgpAttrs(e.BGP)
		}
	case RulesReloaded, ConfigReloaded:
		if e.Reload != nil {
			return reloadAttrs(e.Reload)
		}
	}
	// A kind this version does not know, or a payload missing: show what
	// there is.
	var out []slog.Attr
	if e.Attack != nil {
		out = append(out, attackAttrs(e.Kind, e.Attack)...)
	}
	if e.Mitigation != nil {
		out = append(out, mitigationAttrs(e.Kind, e.Mitigation)...)
	}
	if e.BGP != nil {
		out = append(out, bgpAttrs(e.BGP)...)
	}
	if e.Reload != nil {
		out = append(out, reloadAttrs(e.Reload)...)
	}
	return out
}

func attackAttrs(k Kind, a *Attack) []slog.Attr {
	out := make([]slog.Attr, 0, 20)
	out = append(out, slog.Uint64("id", a.ID), slog.String("target", a.Target.String()))
	switch k {
	case AttackStarted:
		out = append(out,
			slog.String("scope", a.Scope), slog.String("direction", a.Direction), slog.String("hostgroup", a.Hostgroup),
			slog.String("trigger", a.Trigger), slog.Float64("rate", a.Rate), slog.Float64("threshold", a.Threshold))
		out = appendRates(out, "rates", a.Rates)
		out = append(out, slog.Int("sample_records", a.SampleRecords), slog.Any("labels", labels(a.Labels)))
		out = appendMatch(out, "vector", a.Vector)
		out = appendStrings(out, "rules", a.Rules)
		out = appendString(out, "decider", a.Decider)
		out = appendStrings(out, "skipped", a.Skipped)
	case AttackUpdated:
		out = append(out, slog.String("direction", a.Direction), slog.String("hostgroup", a.Hostgroup))
		out = appendRates(out, "rates", a.Rates)
		out = append(out, slog.Int("sample_records", a.SampleRecords), slog.Any("labels", labels(a.Labels)))
		out = appendMatch(out, "vector", a.Vector)
		out = appendString(out, "decider", a.Decider)
		out = appendStrings(out, "skipped", a.Skipped)
	case AttackEnded:
		out = append(out, slog.String("direction", a.Direction), slog.String("hostgroup", a.Hostgroup))
		if !a.Ended.IsZero() && !a.Started.IsZero() {
			out = append(out, slog.String("duration", roundDuration(a.Ended.Sub(a.Started)).String()))
		}
		out = appendRates(out, "peak", a.Peak)
		out = append(out, slog.Any("labels", labels(a.Labels)))
	default: // escalated, and mitigation kinds carrying the attack
		out = append(out, slog.String("hostgroup", a.Hostgroup), slog.Any("labels", labels(a.Labels)))
	}
	if a.Ladder != "" {
		out = append(out, slog.String("ladder", a.Ladder), slog.Int("step", a.Step))
	}
	if a.Action != flowspec.None {
		out = append(out, slog.String("action", a.Action.String()))
	}
	return appendString(out, "reason", a.Reason)
}

func mitigationAttrs(k Kind, m *Mitigation) []slog.Attr {
	out := make([]slog.Attr, 0, 12)
	if m.AttackID != 0 {
		out = append(out, slog.Uint64("attack", m.AttackID))
	}
	out = append(out, slog.String("target", m.Target.String()), slog.String("action", m.Action.String()))
	if m.Action != flowspec.Blackhole {
		out = appendMatch(out, "match", m.Match)
	}
	if m.RateMbps != 0 {
		out = append(out, slog.Float64("rate_mbps", m.RateMbps))
	}
	if m.Ladder != "" {
		out = append(out, slog.String("ladder", m.Ladder), slog.Int("step", m.Step))
	}
	if !m.Expires.IsZero() && k != MitigationWithdrawn {
		out = append(out, slog.String("expires", m.Expires.UTC().Format(time.RFC3339)))
	}
	out = appendString(out, "reason", m.Reason)
	out = appendString(out, "err", m.Err)
	return append(out, slog.Bool("dry_run", m.DryRun))
}

func bgpAttrs(b *BGPSession) []slog.Attr {
	out := []slog.Attr{slog.String("peer", b.Peer), slog.String("state", b.State)}
	return appendString(out, "err", b.Err)
}

func reloadAttrs(r *Reload) []slog.Attr {
	out := make([]slog.Attr, 0, 8)
	out = appendString(out, "trigger", r.Trigger)
	if r.OK {
		if r.What == "rules" || r.Rules != 0 {
			out = append(out, slog.Int("rules", r.Rules), slog.Int("wasm_modules", r.WASMModules), slog.Int("disabled", r.Disabled))
		}
		out = appendStrings(out, "applied", r.Applied)
		return appendStrings(out, "needs_restart", r.NeedsRestart)
	}
	out = appendString(out, "err", r.Err)
	return appendStrings(out, "errors", r.Errors)
}

// labels shows "no labels" as [] rather than a missing key: an attack no
// rule labelled is worth seeing.
func labels(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func appendString(out []slog.Attr, key, v string) []slog.Attr {
	if v == "" {
		return out
	}
	return append(out, slog.String(key, v))
}

func appendStrings(out []slog.Attr, key string, v []string) []slog.Attr {
	if len(v) == 0 {
		return out
	}
	return append(out, slog.Any(key, v))
}

// appendRates adds the rates as a group, by metric name in order.
func appendRates(out []slog.Attr, key string, rates map[string]float64) []slog.Attr {
	if len(rates) == 0 {
		return out
	}
	names := make([]string, 0, len(rates))
	for n := range rates {
		names = append(names, n)
	}
	slices.Sort(names)
	g := make([]slog.Attr, len(names))
	for i, n := range names {
		g[i] = slog.Float64(n, rates[n])
	}
	return append(out, slog.Attr{Key: key, Value: slog.GroupValue(g...)})
}

// appendMatch adds a FlowSpec match as a group of its set fields.
func appendMatch(out []slog.Attr, key string, m flowspec.Match) []slog.Attr {
	if m.IsZero() {
		return out
	}
	g := make([]slog.Attr, 0, 6)
	g = appendString(g, "protocol", m.Protocol)
	g = appendStrings(g, "src_ports", m.SrcPorts)
	g = appendStrings(g, "dst_ports", m.DstPorts)
	g = appendString(g, "packet_length", m.PacketLength)
	g = appendString(g, "tcp_flags", m.TCPFlags)
	g = appendString(g, "fragment", m.Fragment)
	return append(out, slog.Attr{Key: key, Value: slog.GroupValue(g...)})
}

// roundDuration rounds to the second from a minute on, to the millisecond
// below.
func roundDuration(d time.Duration) time.Duration {
	if d >= time.Minute || d <= -time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

// RunLog logs every event rd reads (see Log) until ctx ends or rd is
// closed, and returns nil then. When the ring lapped the reader, it logs
// at WARN how many events were lost first. When ctx ends, the events
// already published are logged before it returns, so the last attack
// ended line is not lost at shutdown.
func RunLog(ctx context.Context, rd *Reader, logger *slog.Logger) error {
	for {
		e, err := rd.Next(ctx)
		if err != nil {
			if errors.Is(err, ErrClosed) {
				return nil
			}
			if ctx.Err() != nil {
				drainLog(rd, logger)
				return nil
			}
			return err
		}
		logOne(rd, logger, &e)
	}
}

// drainLog logs the events published until now, and no more (a writer
// still busy must not keep a stopping daemon waiting).
func drainLog(rd *Reader, logger *slog.Logger) {
	last := rd.r.Last()
	for {
		e, ok := rd.TryNext()
		if !ok {
			return
		}
		logOne(rd, logger, &e)
		if e.Seq >= last {
			return
		}
	}
}

func logOne(rd *Reader, logger *slog.Logger, e *Event) {
	if n := rd.LostBefore(); n > 0 {
		logger.Warn("event log fell behind, events lost", "reader", rd.name, "lost", n, "lost_total", rd.Lost())
	}
	Log(logger, e)
}
