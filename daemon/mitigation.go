package daemon

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/mitigate"
	"github.com/kapkan-io/kapkan/mitigate/bgp"
	"github.com/kapkan-io/kapkan/pipeline"
)

// SafetyConfig is the guard's configuration: the protected prefixes are
// those of every hostgroup.
func SafetyConfig(cfg *config.Config) mitigate.Config {
	m := cfg.Mitigation
	sc := mitigate.Config{DryRun: cfg.DryRun, Allowlist: m.Allowlist, MaxBlackholes: m.MaxActiveBlackholes,
		MaxFlowSpec: m.MaxActiveFlowSpec, MaxNewPerMinute: m.MaxNewPerMinute, TTL: m.TTL.Duration, MaxTTL: m.MaxTTL.Duration,
		PenaltyWindow: m.FlapWindow.Duration, PenaltyFactor: float64(m.FlapMultiplier)}
	for _, hg := range cfg.Hostgroups {
		sc.Protected = append(sc.Protected, hg.Prefixes...)
	}
	return sc
}

// mitigation carries out what the verdict path (pipeline) decides: the
// manager applies the safety model, keeps the state and hands routes to
// the BGP speaker, or to the dry-run announcer.
type Mitigation struct {
	mgr     *mitigate.Manager
	speaker *bgp.Speaker
	// dry records what would be sent, in dry-run (nil otherwise).
	dry *mitigate.DryRun
	log *slog.Logger
	// pub receives the mitigation and BGP session events.
	pub pipeline.Publisher
	// passwords are the peers' TCP-MD5 passwords the speaker started
	// with, by peer index.
	passwords []string
}

// passwordsChanged names the password_file keys of the peers whose
// password differs from the one the speaker runs with (the speaker takes
// a new one at a restart).
func (m *Mitigation) passwordsChanged(next []string) []string {
	var out []string
	for i, pw := range next {
		if i < len(m.passwords) && pw != m.passwords[i] {
			out = append(out, fmt.Sprintf("mitigation.bgp.peers[%d].password_file", i))
		}
	}
	return out
}

// newMitigation builds the mitigation stage. With BGP peers configured the
// speaker is started (in dry-run too: sessions come up so operators can
// check peering; nothing is announced).
func NewMitigation(cfg *config.Config, stateFile string, log *slog.Logger, reg prometheus.Registerer, pub pipeline.Publisher) (*Mitigation, error) {
	m := &Mitigation{log: log, pub: pub}
	onEvent := func(e mitigate.Event) { pub.Publish(pipeline.MitigationEvent(&e)) }
	var ann mitigate.Announcer
	if cfg.DryRun {
		m.dry = mitigate.NewDryRun()
		ann = m.dry
	}
	if !cfg.DryRun && len(cfg.Mitigation.BGP.Peers) == 0 {
		log.Warn("dry_run is false but mitigation.bgp has no peer: mitigations are decided and logged, and reach no router")
	}
	if len(cfg.Mitigation.BGP.Peers) > 0 {
		pw, err := cfg.PeerPasswords()
		if err != nil {
			return nil, err
		}
		m.passwords = pw
		bc, err := BGPConfig(cfg.Mitigation.BGP, pw)
		if err != nil {
			return nil, err
		}
		if m.speaker, err = bgp.New(bc, bgp.Deps{Logger: log, Registerer: reg, OnSession: m.session}); err != nil {
			return nil, err
		}
		if !cfg.DryRun {
			ann = m.speaker
		}
	}
	mgr, err := mitigate.NewManager(mitigate.ManagerConfig{Safety: SafetyConfig(cfg), StateFile: stateFile,
		Announcer: ann, Log: log, OnEvent: onEvent, Registerer: reg})
	if err != nil {
		return nil, err
	}
	m.mgr = mgr
	return m, nil
}

// session is told of BGP sessions going up and down; one that comes back
// gets what failed to be sent before.
func (m *Mitigation) session(e bgp.SessionEvent) {
	kind := events.BGPSessionDown
	if e.Up {
		kind = events.BGPSessionUp
	}
	m.pub.Publish(events.Event{Kind: kind, BGP: &events.BGPSession{Peer: e.Peer, State: e.State}})
	if e.Up {
		m.mgr.Retry()
	}
}

// Close hands what the manager still holds to the announcer and stops the
// speaker (the daemon stops its speaker itself, after Close).
func (m *Mitigation) Close() {
	if m.mgr != nil {
		m.mgr.Close()
	}
	if m.speaker != nil {
		m.speaker.Stop()
	}
}

// Manager is the mitigation manager (replay ticks its TTL clock).
func (m *Mitigation) Manager() *mitigate.Manager { return m.mgr }

// ExpireIdle runs the TTL clock forward until every action no running
// attack wants is withdrawn (replay, at the end of the captures).
func (m *Mitigation) ExpireIdle() {
	for {
		var next time.Time
		for _, a := range m.mgr.Active() {
			if len(a.Attacks) == 0 && (next.IsZero() || a.Expires.Before(next)) {
				next = a.Expires
			}
		}
		if next.IsZero() {
			return
		}
		m.mgr.Tick(next)
	}
}

// BGPConfig converts the configuration file's BGP section into the
// speaker's settings; passwords are the peers' TCP-MD5 passwords by index
// (config.PeerPasswords; nil for none).
func BGPConfig(c config.BGP, passwords []string) (bgp.Config, error) {
	out := bgp.Config{ASN: c.ASN, RouterID: c.RouterID, ListenPort: c.ListenPort, NextHopIPv4: c.NextHopIPv4,
		NextHopIPv6: c.NextHopIPv6, LocalPref: c.LocalPref}
	var err error
	if out.Communities, err = communities(c.Communities); err != nil {
		return out, err
	}
	for i, p := range c.Peers {
		cs, err := communities(p.Communities)
		if err != nil {
			return out, err
		}
		fams := p.Families
		if len(fams) == 0 {
			fams = []string{"ipv4-unicast", "ipv6-unicast"}
		}
		out.Peers = append(out.Peers, bgp.Peer{Address: p.Address, Port: p.Port, ASN: p.ASN, Families: fams,
			Communities: cs, NextHopIPv4: p.NextHopIPv4, NextHopIPv6: p.NextHopIPv6, LocalPref: p.LocalPref,
			GracefulRestart: p.GracefulRestart, RestartTime: p.GracefulRestartTime.Duration,
			LongLivedStaleTime: p.LongLivedStaleTime.Duration})
		if i < len(passwords) {
			out.Peers[i].Password = passwords[i]
		}
	}
	return out, nil
}

func communities(list []string) ([]uint32, error) {
	var out []uint32
	for _, s := range list {
		c, err := config.ParseCommunity(s)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// PipelineConfig is the verdict path's part of the configuration.
func PipelineConfig(cfg *config.Config, workers int) pipeline.Config {
	return pipeline.Config{Workers: workers, Window: cfg.Detection.Window.Duration}
}
