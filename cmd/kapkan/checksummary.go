package main

import (
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/kapkan-io/kapkan/config"
)

// writeConfigSummary prints, in a few lines, what a valid configuration
// protects and what it does about it: the hostgroups with their prefixes and
// thresholds, the listeners, dry-run or not, the BGP peers, the safety caps,
// the notifiers and where the history is kept. check prints it before its
// verdict, so that a file that is valid but says something else than meant
// (a forgotten prefix, dry-run still on) shows at a glance. Secrets never
// appear: notifiers by name and type, ClickHouse without its user.
func writeConfigSummary(w io.Writer, cfg *config.Config) {
	switch n := len(cfg.Hostgroups); n {
	case 0:
		fmt.Fprintln(w, "protects nothing: no hostgroup, so no traffic is counted")
	default:
		fmt.Fprintf(w, "protects %s:\n", plural(n, "hostgroup"))
	}
	for _, hg := range cfg.Hostgroups {
		off := ""
		if hg.Thresholds.Disabled {
			off = " (detection disabled)"
		}
		fmt.Fprintf(w, "  %s: %s%s\n", hg.Name, joinPrefixes(hg.Prefixes), off)
		for _, set := range []struct {
			name string
			t    config.ThresholdSet
		}{
			{"incoming", hg.Thresholds.Incoming},
			{"outgoing", hg.Thresholds.Outgoing},
			{"incoming total (the prefix)", hg.Thresholds.IncomingTotal},
			{"outgoing total (the prefix)", hg.Thresholds.OutgoingTotal},
		} {
			if t := thresholdText(set.t); t != "" {
				fmt.Fprintf(w, "    %s above %s\n", set.name, t)
			}
		}
		if len(hg.IgnoreSources) > 0 {
			fmt.Fprintf(w, "    ignores traffic from %s\n", joinPrefixes(hg.IgnoreSources))
		}
	}
	var listen []string
	if l := cfg.Ingest.SFlow.Listen; l != "" {
		listen = append(listen, "sFlow on "+l)
	}
	if l := cfg.Ingest.NetFlow.Listen; l != "" {
		listen = append(listen, "NetFlow/IPFIX on "+l)
	}
	if len(listen) == 0 {
		listen = append(listen, "no listener")
	}
	fmt.Fprintf(w, "telemetry: %s; window %s\n", strings.Join(listen, ", "), durationText(cfg.Detection.Window.Duration))

	peers := cfg.Mitigation.BGP.Peers
	switch {
	case cfg.DryRun:
		fmt.Fprintln(w, "dry-run: on (attacks are detected and reported; nothing is announced)")
	case len(peers) == 0:
		fmt.Fprintln(w, "dry-run: off, but no BGP peer: nothing is announced")
	default:
		fmt.Fprintf(w, "dry-run: off (mitigations are announced to %s)\n", plural(len(peers), "BGP peer"))
	}
	if len(peers) == 0 {
		fmt.Fprintln(w, "bgp peers: none")
	} else {
		var ps []string
		for _, p := range peers {
			fam := ""
			if len(p.Families) > 0 {
				fam = " " + strings.Join(p.Families, "+")
			}
			ps = append(ps, fmt.Sprintf("%s AS%d%s", p.Address, p.ASN, fam))
		}
		fmt.Fprintf(w, "bgp peers (local AS%d): %s\n", cfg.Mitigation.BGP.ASN, strings.Join(ps, ", "))
	}
	m := cfg.Mitigation
	fmt.Fprintf(w, "safety: at most %d blackholes and %d FlowSpec rules at once, %d new a minute, TTL %s",
		m.MaxActiveBlackholes, m.MaxActiveFlowSpec, m.MaxNewPerMinute, durationText(m.TTL.Duration))
	if len(m.Allowlist) > 0 {
		fmt.Fprintf(w, "; never mitigated: %s", joinPrefixes(m.Allowlist))
	}
	fmt.Fprintln(w)

	if len(cfg.Notify) == 0 {
		fmt.Fprintln(w, "notifiers: none")
	} else {
		var ns []string
		for _, n := range cfg.Notify {
			ns = append(ns, fmt.Sprintf("%s (%s)", n.Name, n.Type))
		}
		fmt.Fprintf(w, "notifiers: %s\n", strings.Join(ns, ", "))
	}
	fmt.Fprintf(w, "history: %s\n", storeText(cfg.Store))
}

// thresholdText lists the thresholds set in t by their configuration
// names: "pps 100 000, mbps 1 000"; "" when none is.
func thresholdText(t config.ThresholdSet) string {
	var parts []string
	v, typ := reflect.ValueOf(t), reflect.TypeOf(t)
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ",")
		if n := v.Field(i).Uint(); n > 0 {
			parts = append(parts, name+" "+fmtCount(int64(n)))
		}
	}
	return strings.Join(parts, ", ")
}

func storeText(s config.Store) string {
	if dsn := s.ClickHouse.DSN; dsn != "" {
		if u, err := url.Parse(dsn); err == nil {
			return fmt.Sprintf("ClickHouse at %s%s", u.Host, u.Path)
		}
		return "ClickHouse"
	}
	if s.Path == "" {
		return "off (store.path is empty)"
	}
	text := "embedded store in " + s.Path
	if r := s.Retention.Duration; r > 0 {
		text += ", kept " + durationText(r)
	} else {
		text += ", kept forever"
	}
	if s.MaxBytes > 0 {
		text += fmt.Sprintf(", at most %s bytes", fmtCount(s.MaxBytes))
	}
	return text
}

// durationText writes a duration in its largest whole unit (90d, 2h,
// 10m), or as Go does when it has none.
func durationText(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		unit string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}} {
		if d >= u.d && d%u.d == 0 {
			return fmt.Sprintf("%d%s", d/u.d, u.unit)
		}
	}
	return d.String()
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
