package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/ingest/demo"
)

// The demo protects TEST-NET-3 and attacks one of its addresses every cycle.
var (
	demoPrefix = netip.MustParsePrefix("203.0.113.0/24")
	demoTarget = netip.MustParseAddr("203.0.113.66")
	demoAgent  = netip.MustParseAddr("127.0.0.1")
)

const (
	demoCycle       = 90 * time.Second
	demoAttackStart = 20 * time.Second
	demoAttackLen   = 30 * time.Second
)

// addDemoHostgroup protects the demo prefix, unless the configuration
// already covers it.
func AddDemoHostgroup(cfg *config.Config) {
	for _, hg := range cfg.Hostgroups {
		for _, p := range hg.Prefixes {
			if p.Overlaps(demoPrefix) {
				return
			}
		}
	}
	cfg.Hostgroups = append(cfg.Hostgroups, config.Hostgroup{
		Name:     "demo",
		Prefixes: []netip.Prefix{demoPrefix},
		Thresholds: config.Thresholds{
			Incoming: config.ThresholdSet{PPS: 50_000, Mbps: 500},
		},
	})
}

// runDemo sends generated sFlow to the daemon's own sFlow listener on
// loopback: background traffic, and from the 20th second of every 90 an
// attack of the next kind against 203.0.113.66.
func runDemo(ctx context.Context, log *slog.Logger, listen string) error {
	to, err := demoDestination(listen)
	if err != nil {
		return err
	}
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer conn.Close()
	log = log.With("component", "demo")
	for cycle := 0; ; cycle++ {
		kind := demo.Kinds[cycle%len(demo.Kinds)]
		s := demo.Scenario{
			Format: flow.FormatSFlow5, SamplingRate: 1000,
			Prefixes: []netip.Prefix{demoPrefix}, Hosts: 200, BackgroundPPS: 30_000,
			Attacks: []demo.Attack{{Kind: kind, Target: demoTarget, PPS: 200_000,
				Start: demoAttackStart, Duration: demoAttackLen}},
			Duration: demoCycle, Agent: demoAgent, Seed: uint64(cycle + 1),
		}
		dgs, err := s.Generate()
		if err != nil {
			return err
		}
		log.Info("demo cycle: background traffic, then an attack", "attack", string(kind), "target", demoTarget.String(),
			"attack_in", demoAttackStart.String(), "sflow_to", to.String())
		start := time.Now()
		for _, dg := range dgs {
			if wait := time.Until(start.Add(dg.At)); wait > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(wait):
				}
			}
			if _, err := conn.Write(dg.Payload); err != nil {
				log.Warn("demo send failed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Until(start.Add(demoCycle))):
		}
	}
}

// demoDestination is the loopback address of the sFlow listener: the demo
// sends to this daemon and nowhere else.
func demoDestination(listen string) (netip.AddrPort, error) {
	if listen == "" {
		return netip.AddrPort{}, fmt.Errorf("demo: the sFlow listener is disabled (ingest.sflow.listen)")
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("demo: %w", err)
	}
	ap, err := netip.ParseAddrPort(net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("demo: port %q: %w", port, err)
	}
	switch h, _ := netip.ParseAddr(host); {
	case host == "" || h.IsUnspecified():
		if h.Is6() && !h.Is4In6() {
			ap = netip.AddrPortFrom(netip.IPv6Loopback(), ap.Port())
		}
	case h.IsLoopback():
		ap = netip.AddrPortFrom(h, ap.Port())
	default:
		return netip.AddrPort{}, fmt.Errorf("demo: the sFlow listener %s is not on loopback; the demo only sends to loopback", listen)
	}
	return ap, nil
}
