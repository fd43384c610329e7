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

// The demo protects TEST-NET-3 and an IPv6 documentation prefix (hostgroup
// demo), attacked one address at a time, and TEST-NET-2 (hostgroup
// demo-carpet), carpet-bombed as a whole.
var (
	demoPrefix   = netip.MustParsePrefix("203.0.113.0/24")
	demoPrefix6  = netip.MustParsePrefix("2001:db8:1::/48")
	demoCarpet   = netip.MustParsePrefix("198.51.100.0/24")
	demoAgent    = netip.MustParseAddr("127.0.0.1")
	demoCarpetBy = demo.DNSAmp // the kind of the carpet bomb
)

// The demo's schedule: the first attack demoFirst after start (the first
// detection within a few seconds of it), then one every demoEvery, each
// demoAttackLen long, so that two at most overlap; every kind once, then
// the carpet bomb, then a pause for the last attacks to end before the
// next cycle.
const (
	demoFirst     = 15 * time.Second
	demoEvery     = 12 * time.Second
	demoAttackLen = 20 * time.Second
	demoAttackPPS = 200_000
	// The carpet bomb: 300 000 pps over 256 addresses is about 1 200 pps
	// each, far under the per-address threshold, three times the
	// prefix's total threshold.
	demoCarpetPPS   = 300_000
	demoCarpetTotal = 100_000
	demoThreshold   = 50_000
	demoPause       = 45 * time.Second
)

// AddDemoHostgroup protects the demo prefixes, those the configuration
// does not already cover: hostgroup demo (203.0.113.0/24 and
// 2001:db8:1::/48, per-address thresholds) and demo-carpet
// (198.51.100.0/24, with a threshold on the prefix's total as well).
func AddDemoHostgroup(cfg *config.Config) {
	free := func(ps ...netip.Prefix) []netip.Prefix {
		var out []netip.Prefix
		for _, p := range ps {
			covered := false
			for _, hg := range cfg.Hostgroups {
				for _, q := range hg.Prefixes {
					covered = covered || q.Overlaps(p)
				}
			}
			if !covered {
				out = append(out, p)
			}
		}
		return out
	}
	perAddress := config.ThresholdSet{PPS: demoThreshold, Mbps: 500}
	if ps := free(demoPrefix, demoPrefix6); len(ps) > 0 {
		cfg.Hostgroups = append(cfg.Hostgroups, config.Hostgroup{
			Name: "demo", Prefixes: ps, Thresholds: config.Thresholds{Incoming: perAddress},
		})
	}
	if ps := free(demoCarpet); len(ps) > 0 {
		cfg.Hostgroups = append(cfg.Hostgroups, config.Hostgroup{
			Name: "demo-carpet", Prefixes: ps,
			Thresholds: config.Thresholds{Incoming: perAddress, IncomingTotal: config.ThresholdSet{PPS: demoCarpetTotal}},
		})
	}
}

// demoScenario is cycle's traffic: background to the three prefixes and,
// one after the other, an attack of every kind on its own address (IPv4
// and IPv6 in turn, swapped from one cycle to the next, so that every kind
// is seen on both over two cycles), then a carpet bomb over 198.51.100.0/24.
func demoScenario(cycle int) demo.Scenario {
	s := demo.Scenario{
		Format: flow.FormatSFlow5, SamplingRate: 1000,
		Prefixes: []netip.Prefix{demoPrefix, demoPrefix6, demoCarpet}, Hosts: 200, BackgroundPPS: 30_000,
		Agent: demoAgent, Seed: uint64(cycle + 1),
	}
	at := demoFirst
	for i, kind := range demo.Kinds {
		a := demo.Attack{Kind: kind, PPS: demoAttackPPS, Start: at, Duration: demoAttackLen}
		if (i+cycle)%2 == 0 {
			a.Target = netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + i)})
		} else {
			b := demoPrefix6.Addr().As16()
			b[15] = byte(10 + i)
			a.Target = netip.AddrFrom16(b)
		}
		s.Attacks = append(s.Attacks, a)
		at += demoEvery
	}
	s.Attacks = append(s.Attacks, demo.Attack{Kind: demoCarpetBy, Carpet: demoCarpet, PPS: demoCarpetPPS, Start: at, Duration: demoAttackLen})
	s.Duration = at + demoAttackLen + demoPause
	return s
}

// runDemo sends generated sFlow to the daemon's own sFlow listener on
// loopback, cycle after cycle of demoScenario, and logs each attack as it
// begins.
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
		s := demoScenario(cycle)
		g, err := demo.NewGenerator(s)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		log.Info("demo cycle: background traffic and an attack of every kind, one after the other",
			"attacks", len(s.Attacks), "first_in", demoFirst.String(), "every", demoEvery.String(),
			"cycle", s.Duration.String(), "sflow_to", to.String())
		start := time.Now()
		next := 0
		for {
			at, dgs, ok := g.Next()
			if !ok {
				break
			}
			if wait := time.Until(start.Add(at)); wait > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(wait):
				}
			}
			for ; next < len(s.Attacks) && s.Attacks[next].Start <= at; next++ {
				a := &s.Attacks[next]
				log.Info("demo attack", "attack", string(a.Kind), "target", a.Where(), "pps", a.PPS,
					"duration", a.Duration.String())
			}
			for _, d := range dgs {
				if _, err := conn.Write(d); err != nil {
					log.Warn("demo send failed", "err", err)
				}
			}
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
