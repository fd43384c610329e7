// Package bgp is Kapkan's embedded BGP speaker: GoBGP v3 in library mode,
// announcing the actions the safety guard let through as RTBH routes (/32
// and /128 with the BLACKHOLE community) or FlowSpec rules (RFC 8955/8956).
// Routes live in GoBGP's RIB, so a session that drops and comes back gets
// every active route again without Kapkan doing anything.
package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/server"

	"github.com/kapkan-io/kapkan/mitigate"
)

// Families by their configuration names.
var families = map[string]*api.Family{
	"ipv4-unicast":  {Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST},
	"ipv6-unicast":  {Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST},
	"ipv4-flowspec": {Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_FLOW_SPEC_UNICAST},
	"ipv6-flowspec": {Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_FLOW_SPEC_UNICAST},
}

// Config is the speaker's configuration.
type Config struct {
	ASN                      uint32
	RouterID                 netip.Addr
	ListenPort               int32
	NextHopIPv4, NextHopIPv6 netip.Addr
	Communities              []uint32
	LocalPref                uint32
	Peers                    []Peer
	// ConnectRetry is how long to wait between attempts to reach a peer
	// (default 5s).
	ConnectRetry time.Duration
}

// Peer is one neighbour.
type Peer struct {
	Address  netip.Addr
	Port     uint16
	ASN      uint32
	Families []string
	// Per-peer replacements for blackhole routes (zero: the global ones).
	Communities              []uint32
	NextHopIPv4, NextHopIPv6 netip.Addr
	LocalPref                uint32
}

// Speaker is the embedded BGP speaker. It implements mitigate.Announcer.
type Speaker struct {
	cfg Config
	log *slog.Logger
	srv *server.BgpServer

	mu        sync.Mutex
	announced map[string]*api.Path // by route key
	up        map[string]bool      // peer address → session established
	stop      context.CancelFunc
}

// New checks the configuration; Start brings the sessions up.
func New(cfg Config, log *slog.Logger) (*Speaker, error) {
	if cfg.ASN == 0 || !cfg.RouterID.Is4() {
		return nil, errors.New("bgp: an ASN and an IPv4 router id are required")
	}
	if cfg.ConnectRetry <= 0 {
		cfg.ConnectRetry = 5 * time.Second
	}
	for _, p := range cfg.Peers {
		for _, f := range p.Families {
			if families[f] == nil {
				return nil, fmt.Errorf("bgp: peer %s: unknown family %q", p.Address, f)
			}
		}
	}
	return &Speaker{cfg: cfg, log: log.With("component", "bgp"), announced: map[string]*api.Path{}, up: map[string]bool{}}, nil
}

// Start runs GoBGP, installs the per-peer export policy and adds the
// peers. Sessions come up in the background.
func (s *Speaker) Start(ctx context.Context) error {
	s.srv = server.NewBgpServer(server.LoggerOption(&logAdapter{log: s.log}))
	go s.srv.Serve()
	global := &api.Global{Asn: s.cfg.ASN, RouterId: s.cfg.RouterID.String(), ListenPort: s.cfg.ListenPort}
	if s.cfg.ListenPort > 0 {
		global.ListenAddresses = []string{"0.0.0.0", "::"}
	}
	if err := s.srv.StartBgp(ctx, &api.StartBgpRequest{Global: global}); err != nil {
		s.srv.Stop()
		return fmt.Errorf("bgp: start: %w", err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	err := s.srv.WatchEvent(wctx, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}}, s.peerEvent)
	if err == nil {
		err = s.exportPolicy(ctx)
	}
	for _, p := range s.cfg.Peers {
		if err != nil {
			break
		}
		err = s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.apiPeer(p)})
	}
	if err != nil {
		s.Stop()
		return fmt.Errorf("bgp: %w", err)
	}
	for name := range families {
		if !slices.ContainsFunc(s.cfg.Peers, func(p Peer) bool { return slices.Contains(p.Families, name) }) {
			s.log.Info("no peer carries this family: its actions reach no router", "family", name)
		}
	}
	return nil
}

func (s *Speaker) apiPeer(p Peer) *api.Peer {
	ap := &api.Peer{
		Conf: &api.PeerConf{NeighborAddress: p.Address.String(), PeerAsn: p.ASN},
		Timers: &api.Timers{Config: &api.TimersConfig{ConnectRetry: uint64(s.cfg.ConnectRetry / time.Second),
			HoldTime: 90, KeepaliveInterval: 30}},
		Transport: &api.Transport{RemotePort: uint32(p.Port)},
	}
	if ap.Transport.RemotePort == 0 {
		ap.Transport.RemotePort = 179
	}
	for _, f := range p.Families {
		ap.AfiSafis = append(ap.AfiSafis, &api.AfiSafi{Config: &api.AfiSafiConfig{Family: families[f], Enabled: true}})
	}
	return ap
}

// exportPolicy installs one global export statement per peer that
// replaces communities, next hop or local-pref on the blackhole routes
// sent to it.
func (s *Speaker) exportPolicy(ctx context.Context) error {
	var stmts []*api.Statement
	for i, p := range s.cfg.Peers {
		if len(p.Communities) == 0 && !p.NextHopIPv4.IsValid() && !p.NextHopIPv6.IsValid() && p.LocalPref == 0 {
			continue
		}
		set := "kapkan-peer-" + strconv.Itoa(i)
		if err := s.srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: &api.DefinedSet{
			DefinedType: api.DefinedType_NEIGHBOR, Name: set, List: []string{netip.PrefixFrom(p.Address, p.Address.BitLen()).String()}}}); err != nil {
			return err
		}
		for _, fam := range []string{"ipv4-unicast", "ipv6-unicast"} {
			acts := &api.Actions{RouteAction: api.RouteAction_NONE}
			if len(p.Communities) > 0 {
				var cs []string
				for _, c := range p.Communities {
					cs = append(cs, fmt.Sprintf("%d:%d", c>>16, c&0xffff))
				}
				acts.Community = &api.CommunityAction{Type: api.CommunityAction_REPLACE, Communities: cs}
			}
			if nh := p.NextHopIPv4; fam == "ipv4-unicast" && nh.IsValid() {
				acts.Nexthop = &api.NexthopAction{Address: nh.String()}
			}
			if nh := p.NextHopIPv6; fam == "ipv6-unicast" && nh.IsValid() {
				acts.Nexthop = &api.NexthopAction{Address: nh.String()}
			}
			if p.LocalPref > 0 {
				acts.LocalPref = &api.LocalPrefAction{Value: p.LocalPref}
			}
			stmts = append(stmts, &api.Statement{Name: set + "-" + fam, Actions: acts, Conditions: &api.Conditions{
				NeighborSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: set},
				AfiSafiIn:   []*api.Family{families[fam]},
			}})
		}
	}
	if len(stmts) == 0 {
		return nil
	}
	if err := s.srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{Name: "kapkan-export", Statements: stmts}}); err != nil {
		return err
	}
	return s.srv.AddPolicyAssignment(ctx, &api.AddPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name: "global", Direction: api.PolicyDirection_EXPORT, DefaultAction: api.RouteAction_ACCEPT,
		Policies: []*api.Policy{{Name: "kapkan-export"}}}})
}

func (s *Speaker) peerEvent(ev *api.WatchEventResponse) {
	pe := ev.GetPeer()
	if pe == nil || pe.Peer == nil || pe.Peer.State == nil || pe.Type != api.WatchEventResponse_PeerEvent_STATE {
		return
	}
	addr := pe.Peer.State.NeighborAddress
	established := pe.Peer.State.SessionState == api.PeerState_ESTABLISHED
	s.mu.Lock()
	was := s.up[addr]
	s.up[addr] = established
	n := len(s.announced)
	s.mu.Unlock()
	switch {
	case established && !was:
		s.log.Info("BGP session established", "peer", addr, "routes", n)
	case !established && was:
		s.log.Warn("BGP session down", "peer", addr, "state", pe.Peer.State.SessionState.String())
	}
}

// Up returns the peers whose session is established.
func (s *Speaker) Up() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for a, ok := range s.up {
		if ok {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

// Announce adds a route to the RIB, from which GoBGP sends it to every
// peer of its family now and whenever a session comes back. A route
// already announced is not announced again.
func (s *Speaker) Announce(r mitigate.Route) error {
	key := r.Key()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.announced[key]; ok {
		return nil
	}
	nlri, attrs, err := s.nlriAndAttrs(r)
	if err != nil {
		return fmt.Errorf("bgp: %s: %w", key, err)
	}
	p, err := apiutil.NewPath(nlri, false, attrs, time.Now())
	if err != nil {
		return fmt.Errorf("bgp: %s: %w", key, err)
	}
	if _, err := s.srv.AddPath(context.Background(), &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: p}); err != nil {
		return fmt.Errorf("bgp: announce %s: %w", key, err)
	}
	s.announced[key] = p
	s.log.Info("route announced", "route", key)
	return nil
}

// Withdraw removes a route announced before; withdrawing one that is not
// announced does nothing.
func (s *Speaker) Withdraw(r mitigate.Route) error {
	key := r.Key()
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.announced[key]
	if !ok {
		return nil
	}
	if err := s.srv.DeletePath(context.Background(), &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: p.Family, Path: p}); err != nil {
		return fmt.Errorf("bgp: withdraw %s: %w", key, err)
	}
	delete(s.announced, key)
	s.log.Info("route withdrawn", "route", key)
	return nil
}

// Stop closes every session and stops GoBGP.
func (s *Speaker) Stop() {
	if s.stop != nil {
		s.stop()
	}
	if s.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.srv.StopBgp(ctx, &api.StopBgpRequest{}); err != nil {
			s.log.Warn("stop", "err", err)
		}
		s.srv.Stop()
	}
}

var _ mitigate.Announcer = (*Speaker)(nil)
