// Package bgp is Kapkan's embedded BGP speaker: GoBGP v3 in library mode,
// announcing the actions the safety guard let through as RTBH routes (/32
// and /128 with the BLACKHOLE community) or FlowSpec rules (RFC 8955/8956).
// Routes live in GoBGP's RIB, so a session that drops and comes back gets
// every active route again without Kapkan doing anything. The speaker
// watches every session (kapkan_bgp_session_up, OnSession), counts the
// routes in its RIB and the changes it failed to make.
package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/server"

	"github.com/kapkan-io/kapkan/flowspec"
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
	// Password, when set, signs the session's TCP segments (TCP-MD5,
	// RFC 2385). It is never logged.
	Password string
	// GracefulRestart offers graceful restart (RFC 4724) on the session:
	// when Kapkan goes away without a NOTIFICATION (a crash, kill -9) the
	// router keeps its routes, marked stale, for RestartTime, and drops the
	// ones Kapkan does not send again before its End-of-RIB.
	GracefulRestart bool
	// RestartTime is how long the router keeps the stale routes (at most
	// 4095 s; 0 means DefaultRestartTime).
	RestartTime time.Duration
	// LongLivedStaleTime, when set with GracefulRestart, also offers
	// long-lived graceful restart (RFC 9494): once RestartTime has passed,
	// a router that supports it keeps the routes (tagged LLGR_STALE) that
	// much longer. 0 offers none.
	LongLivedStaleTime time.Duration
}

// Limits of the graceful restart timers (the sizes of their fields in the
// capabilities: 12 bits and 24 bits of seconds) and of a TCP-MD5 key
// (TCP_MD5SIG_MAXKEYLEN).
const (
	DefaultRestartTime    = 120 * time.Second
	MaxRestartTime        = 4095 * time.Second
	MaxLongLivedStaleTime = 16777215 * time.Second
	MaxPasswordLen        = 80
)

// Deps are what the speaker is given besides its configuration.
type Deps struct {
	Logger *slog.Logger
	// Registerer, when set, receives the speaker's metrics.
	Registerer prometheus.Registerer
	// OnSession, when set, is called each time a session comes up or goes
	// down, from GoBGP's event goroutine: it must return quickly and not
	// call Stop. The daemon publishes it as an event and, on up, asks the
	// manager to send what is pending (mitigate.Manager.Retry).
	OnSession func(SessionEvent)
}

// SessionEvent is a session that came up or went down.
type SessionEvent struct {
	// Peer is the neighbour's address, as in the configuration.
	Peer string
	Up   bool
	// State is the BGP state the session went to (established, idle,
	// active, connect, opensent, openconfirm).
	State string
	// Routes is how many routes the speaker holds: a session that comes
	// up is sent all of them (those of its families).
	Routes int
}

// ErrStopped is the error of a change asked of a speaker that stopped.
var ErrStopped = errors.New("bgp: the speaker is stopped")

type phase int

const (
	idle phase = iota
	starting
	running
	stopped
)

// Speaker is the embedded BGP speaker. It implements mitigate.Announcer.
type Speaker struct {
	cfg       Config
	log       *slog.Logger
	onSession func(SessionEvent)

	mu        sync.Mutex
	phase     phase
	srv       *server.BgpServer
	announced map[string]*api.Path // by route key: in GoBGP's RIB, or to be put there by Start
	up        map[string]bool      // peer address → session established
	since     map[string]time.Time // peer address → its last state change (or Start)
	stop      context.CancelFunc

	sessionUp   *prometheus.GaugeVec
	transitions *prometheus.CounterVec
	routes      *prometheus.GaugeVec
	failures    *prometheus.CounterVec
}

// New checks the configuration and registers the metrics; it starts
// nothing (see Start and Run). Routes announced before Start are put in
// the RIB when it starts.
func New(cfg Config, deps Deps) (*Speaker, error) {
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
		if p.RestartTime < 0 || p.RestartTime > MaxRestartTime {
			return nil, fmt.Errorf("bgp: peer %s: restart time %s is out of range (want up to %s)", p.Address, p.RestartTime, MaxRestartTime)
		}
		if p.LongLivedStaleTime < 0 || p.LongLivedStaleTime > MaxLongLivedStaleTime {
			return nil, fmt.Errorf("bgp: peer %s: long-lived stale time %s is out of range (want up to %s)", p.Address, p.LongLivedStaleTime, MaxLongLivedStaleTime)
		}
		if len(p.Password) > MaxPasswordLen {
			// The password itself is never part of an error.
			return nil, fmt.Errorf("bgp: peer %s: the TCP-MD5 password is %d bytes long (Linux takes up to %d)", p.Address, len(p.Password), MaxPasswordLen)
		}
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Speaker{cfg: cfg, log: log.With("component", "bgp"), onSession: deps.OnSession,
		announced: map[string]*api.Path{}, up: map[string]bool{}, since: map[string]time.Time{},
		sessionUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kapkan_bgp_session_up",
			Help: "1 while the BGP session with the peer is established, 0 otherwise.",
		}, []string{"peer"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_bgp_session_transitions_total",
			Help: "BGP sessions that came up (state=\"up\") or went down (state=\"down\"), by peer.",
		}, []string{"peer", "state"}),
		routes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kapkan_bgp_routes_announced",
			Help: "Routes in the speaker's RIB, sent to every established peer of their family, by family.",
		}, []string{"family"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_bgp_announce_failures_total",
			Help: "Routes the speaker failed to add to (op=\"announce\") or remove from (op=\"withdraw\") its RIB.",
		}, []string{"op"}),
	}
	for _, p := range cfg.Peers {
		s.sessionUp.WithLabelValues(p.Address.String())
		for _, st := range []string{"up", "down"} {
			s.transitions.WithLabelValues(p.Address.String(), st)
		}
	}
	for f := range families {
		s.routes.WithLabelValues(f)
	}
	for _, op := range []string{mitigate.OpAnnounce, mitigate.OpWithdraw} {
		s.failures.WithLabelValues(op)
	}
	if deps.Registerer != nil {
		for _, c := range []prometheus.Collector{s.sessionUp, s.transitions, s.routes, s.failures} {
			if err := deps.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("bgp: register metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Run starts the speaker if Start was not called, keeps it running until
// ctx ends, then stops it (every session closes, so routers drop the
// routes). It is the errgroup-friendly form; Start alone lets a daemon
// fail its start on a listen port in use before anything runs.
func (s *Speaker) Run(ctx context.Context) error {
	s.mu.Lock()
	p := s.phase
	s.mu.Unlock()
	if p == idle {
		if err := s.Start(ctx); err != nil {
			return err
		}
	}
	<-ctx.Done()
	s.Stop()
	return nil
}

// Start runs GoBGP (binding the listen port, if any), installs the
// per-peer export policy, adds the peers and puts in the RIB the routes
// announced so far. Sessions come up in the background. A speaker starts
// once.
func (s *Speaker) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.phase != idle {
		s.mu.Unlock()
		return errors.New("bgp: the speaker was started already")
	}
	s.phase = starting
	s.mu.Unlock()
	srv := server.NewBgpServer(server.LoggerOption(&logAdapter{log: s.log}))
	go srv.Serve()
	global := &api.Global{Asn: s.cfg.ASN, RouterId: s.cfg.RouterID.String(), ListenPort: s.cfg.ListenPort}
	if s.cfg.ListenPort > 0 {
		global.ListenAddresses = []string{"0.0.0.0", "::"}
	}
	s.mu.Lock()
	s.srv = srv
	for _, p := range s.cfg.Peers {
		s.since[p.Address.String()] = time.Now()
	}
	s.mu.Unlock()
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: global}); err != nil {
		s.Stop()
		return fmt.Errorf("bgp: start: %w", err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	s.stop = cancel
	s.mu.Unlock()
	err := srv.WatchEvent(wctx, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}}, s.peerEvent)
	if err == nil {
		err = importPolicy(ctx, srv)
	}
	if err == nil {
		err = s.exportPolicy(ctx, srv)
	}
	// The routes go in the RIB before any peer is added: a session's first
	// UPDATEs then carry all of them, and its End-of-RIB follows them. A
	// router that kept Kapkan's routes as stale across a restart refreshes
	// the ones sent and drops only those no longer wanted.
	if err == nil {
		err = s.addAnnounced(ctx)
	}
	for _, p := range s.cfg.Peers {
		if err != nil {
			break
		}
		err = srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.apiPeer(p)})
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

// addAnnounced puts in the RIB the routes announced before Start, and
// marks the speaker running.
func (s *Speaker) addAnnounced(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase != starting {
		return ErrStopped // stopped meanwhile
	}
	for key, p := range s.announced {
		if _, err := s.srv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: p}); err != nil {
			s.failures.WithLabelValues(mitigate.OpAnnounce).Inc()
			return fmt.Errorf("announce %s: %w", key, err)
		}
	}
	s.phase = running
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
	ap.Conf.AuthPassword = p.Password
	llgr := p.GracefulRestart && p.LongLivedStaleTime > 0
	if p.GracefulRestart {
		rt := p.RestartTime
		if rt <= 0 {
			rt = DefaultRestartTime
		}
		ap.GracefulRestart = &api.GracefulRestart{
			Enabled:     true,
			RestartTime: uint32(rt / time.Second),
			// Every start is a restart as far as the router can tell: the
			// Restart State bit and the forwarding-state bits (which GoBGP
			// sets only when restarting) tell it to keep the stale routes
			// until the End-of-RIB, instead of dropping them on the new
			// OPEN. GoBGP then holds the routes until the router's own
			// End-of-RIB, or DeferralTime.
			LocalRestarting: true,
			DeferralTime:    uint32(deferralTime / time.Second),
			// RFC 8538: a NOTIFICATION other than a Hard Reset (a hold
			// timer that expired) keeps the routes too.
			NotificationEnabled: true,
			LonglivedEnabled:    llgr,
		}
	}
	for _, f := range p.Families {
		af := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: families[f], Enabled: true}}
		if p.GracefulRestart {
			af.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		}
		if llgr {
			af.LongLivedGracefulRestart = &api.LongLivedGracefulRestart{Config: &api.LongLivedGracefulRestartConfig{
				Enabled: true, RestartTime: uint32(p.LongLivedStaleTime / time.Second)}}
		}
		ap.AfiSafis = append(ap.AfiSafis, af)
	}
	return ap
}

// deferralTime bounds how long a restarted speaker waits for a router's
// End-of-RIB before it sends its routes anyway.
const deferralTime = 10 * time.Second

// exportPolicy installs one global export statement per peer that
// replaces communities, next hop or local-pref on the blackhole routes
// sent to it.
func (s *Speaker) exportPolicy(ctx context.Context, srv *server.BgpServer) error {
	var stmts []*api.Statement
	for i, p := range s.cfg.Peers {
		if len(p.Communities) == 0 && !p.NextHopIPv4.IsValid() && !p.NextHopIPv6.IsValid() && p.LocalPref == 0 {
			continue
		}
		set := "kapkan-peer-" + strconv.Itoa(i)
		if err := srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: &api.DefinedSet{
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
	if err := srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{Name: "kapkan-export", Statements: stmts}}); err != nil {
		return err
	}
	return srv.AddPolicyAssignment(ctx, &api.AddPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name: "global", Direction: api.PolicyDirection_EXPORT, DefaultAction: api.RouteAction_ACCEPT,
		Policies: []*api.Policy{{Name: "kapkan-export"}}}})
}

// importPolicy keeps out of Kapkan's RIB every route a peer sends: Kapkan
// only speaks, and a route a router sent it would otherwise sit in its RIB
// and be advertised on to the other peers (GoBGP's default is to accept
// and pass on). GoBGP applies the import policy to Kapkan's own routes too,
// so those (route type local) are accepted by the one statement.
func importPolicy(ctx context.Context, srv *server.BgpServer) error {
	if err := srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{Name: "kapkan-import", Statements: []*api.Statement{{
		Name:       "kapkan-own-routes",
		Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
		Actions:    &api.Actions{RouteAction: api.RouteAction_ACCEPT},
	}}}}); err != nil {
		return err
	}
	return srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name: "global", Direction: api.PolicyDirection_IMPORT, DefaultAction: api.RouteAction_REJECT,
		Policies: []*api.Policy{{Name: "kapkan-import"}}}})
}

func (s *Speaker) peerEvent(ev *api.WatchEventResponse) {
	pe := ev.GetPeer()
	if pe == nil || pe.Peer == nil || pe.Peer.State == nil || pe.Type != api.WatchEventResponse_PeerEvent_STATE {
		return
	}
	addr := pe.Peer.State.NeighborAddress
	state := strings.ToLower(strings.TrimPrefix(pe.Peer.State.SessionState.String(), "SESSION_STATE_"))
	established := pe.Peer.State.SessionState == api.PeerState_ESTABLISHED
	s.mu.Lock()
	if s.phase == stopped {
		s.mu.Unlock()
		return // our own shutdown closes the sessions
	}
	was := s.up[addr]
	s.up[addr] = established
	s.since[addr] = time.Now()
	n := len(s.announced)
	s.mu.Unlock()
	if established == was {
		return // a step of the FSM on the way up, or down again
	}
	if established {
		s.log.Debug("BGP session established", "peer", addr, "routes", n) // the daemon logs the bgp_session_up event
		s.sessionUp.WithLabelValues(addr).Set(1)
		s.transitions.WithLabelValues(addr, "up").Inc()
	} else {
		s.log.Debug("BGP session down", "peer", addr, "state", state, "routes", n) // the daemon logs the bgp_session_down event
		s.sessionUp.WithLabelValues(addr).Set(0)
		s.transitions.WithLabelValues(addr, "down").Inc()
	}
	if s.onSession != nil {
		s.onSession(SessionEvent{Peer: addr, Up: established, State: state, Routes: n})
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

// Session is the state of the session with one peer.
type Session struct {
	// Peer is the neighbour's address, as in the configuration.
	Peer string
	// State is the BGP state (established, idle, active, connect,
	// opensent, openconfirm); idle while the speaker is not running.
	State string
	// Since is when the session last changed state (or the speaker
	// started, if it never did); zero while the speaker is not running.
	Since time.Time
	// Uptime is how long the session has been established (0 if not).
	Uptime time.Duration
	// RoutesSent counts the routes GoBGP advertises to the peer now (its
	// Adj-RIB-Out, every family of the session).
	RoutesSent uint64
	// Sent are those routes (at most MaxSentListed), each as its family
	// and NLRI in GoBGP's notation ("ipv4-unicast 203.0.113.9/32",
	// "ipv4-flowspec [destination: 203.0.113.9/32][protocol: ==udp]..."),
	// sorted; empty unless the session is established.
	Sent []string
}

// MaxSentListed bounds the routes Sessions lists per peer (RoutesSent
// counts them all).
const MaxSentListed = 256

// Sessions returns the state of every configured peer's session, in
// configuration order. It asks GoBGP (one management call, which counts
// each peer's Adj-RIB-Out), so it is current when called, and safe from any
// goroutine; a speaker not running reports every session idle. It
// holds the speaker's lock through the call, like Announce.
func (s *Speaker) Sessions(ctx context.Context) ([]Session, error) {
	// The lock is held through the call, as Announce does, so that Stop
	// cannot stop GoBGP under it.
	s.mu.Lock()
	defer s.mu.Unlock()
	srv, running, since := s.srv, s.phase == running, s.since
	out := make([]Session, len(s.cfg.Peers))
	index := map[string]int{}
	for i, p := range s.cfg.Peers {
		a := p.Address.String()
		out[i] = Session{Peer: a, State: "idle"}
		index[a] = i
	}
	if !running {
		return out, nil
	}
	now := time.Now()
	err := srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		if p.State == nil {
			return
		}
		i, ok := index[p.State.NeighborAddress]
		if !ok {
			if p.Conf == nil {
				return
			}
			if i, ok = index[p.Conf.NeighborAddress]; !ok {
				return
			}
		}
		ss := &out[i]
		ss.State = strings.ToLower(strings.TrimPrefix(p.State.SessionState.String(), "SESSION_STATE_"))
		ss.Since = since[ss.Peer]
		if p.State.SessionState == api.PeerState_ESTABLISHED && p.Timers != nil && p.Timers.State != nil && p.Timers.State.Uptime != nil {
			ss.Uptime = now.Sub(p.Timers.State.Uptime.AsTime()).Truncate(time.Second)
		}
		for _, af := range p.AfiSafis {
			if af.State != nil {
				ss.RoutesSent += af.State.Advertised
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("bgp: list sessions: %w", err)
	}
	for i := range out {
		if out[i].State != "established" {
			continue
		}
		for _, fam := range s.cfg.Peers[i].Families {
			err := srv.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_ADJ_OUT, Name: out[i].Peer, Family: families[fam]},
				func(d *api.Destination) {
					if len(out[i].Sent) < MaxSentListed {
						out[i].Sent = append(out[i].Sent, fam+" "+d.Prefix)
					}
				})
			if err != nil {
				return nil, fmt.Errorf("bgp: list the routes sent to %s (%s): %w", out[i].Peer, fam, err)
			}
		}
		slices.Sort(out[i].Sent)
	}
	return out, nil
}

// Announce adds a route to the RIB, from which GoBGP sends it to every
// peer of its family now and whenever a session comes back. A route
// already announced is not announced again; one announced before Start
// goes in the RIB when it starts. A route that cannot be encoded is
// rejected (mitigate.ErrRejected); after Stop, every change fails with
// ErrStopped.
func (s *Speaker) Announce(r mitigate.Route) error {
	key := r.Key()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.announced[key]; ok {
		return nil
	}
	if s.phase == stopped {
		s.failures.WithLabelValues(mitigate.OpAnnounce).Inc()
		return fmt.Errorf("announce %s: %w", key, ErrStopped)
	}
	nlri, attrs, err := s.nlriAndAttrs(r)
	var p *api.Path
	if err == nil {
		p, err = apiutil.NewPath(nlri, false, attrs, time.Now())
	}
	if err != nil {
		s.failures.WithLabelValues(mitigate.OpAnnounce).Inc()
		return fmt.Errorf("bgp: %s: %w: %w", key, mitigate.ErrRejected, err)
	}
	if s.phase == running {
		if _, err := s.srv.AddPath(context.Background(), &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: p}); err != nil {
			s.failures.WithLabelValues(mitigate.OpAnnounce).Inc()
			return fmt.Errorf("bgp: announce %s: %w", key, err)
		}
	}
	s.announced[key] = p
	s.routes.WithLabelValues(familyOf(r)).Inc()
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
	if s.phase == stopped {
		s.failures.WithLabelValues(mitigate.OpWithdraw).Inc()
		return fmt.Errorf("withdraw %s: %w", key, ErrStopped)
	}
	if s.phase == running {
		if err := s.srv.DeletePath(context.Background(), &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: p.Family, Path: p}); err != nil {
			s.failures.WithLabelValues(mitigate.OpWithdraw).Inc()
			return fmt.Errorf("bgp: withdraw %s: %w", key, err)
		}
	}
	delete(s.announced, key)
	s.routes.WithLabelValues(familyOf(r)).Dec()
	s.log.Info("route withdrawn", "route", key)
	return nil
}

// familyOf is the configuration name of the family a route goes in.
func familyOf(r mitigate.Route) string {
	v := "ipv4"
	if r.Target.Addr().Is6() {
		v = "ipv6"
	}
	if r.Kind == flowspec.Blackhole {
		return v + "-unicast"
	}
	return v + "-flowspec"
}

// Detach is Stop for a process about to exit: the speaker takes no more
// changes, but its sessions are left open, for the kernel to close with
// the process, without the NOTIFICATION that Stop sends. Routers with
// graceful restart then keep the routes, as stale, until Kapkan is back
// and sends them again: a planned restart (systemctl restart, an upgrade)
// lifts no mitigation. Stop after Detach does nothing; a process that
// does not exit keeps GoBGP running.
func (s *Speaker) Detach() {
	s.mu.Lock()
	if s.phase == stopped {
		s.mu.Unlock()
		return
	}
	s.phase = stopped
	cancel := s.stop
	for _, p := range s.cfg.Peers {
		s.sessionUp.WithLabelValues(p.Address.String()).Set(0)
	}
	clear(s.up)
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	s.log.Info("BGP sessions left to close with the process: routers with graceful restart keep the routes until Kapkan is back")
}

// Stop closes every session and stops GoBGP; it may be called more than
// once. The routes are forgotten by the routers with the sessions.
func (s *Speaker) Stop() {
	s.mu.Lock()
	if s.phase == stopped {
		s.mu.Unlock()
		return
	}
	s.phase = stopped
	srv, cancel := s.srv, s.stop
	for _, p := range s.cfg.Peers {
		s.sessionUp.WithLabelValues(p.Address.String()).Set(0)
	}
	clear(s.up)
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.StopBgp(ctx, &api.StopBgpRequest{}); err != nil {
			s.log.Warn("stop", "err", err)
		}
		srv.Stop()
	}
}

var _ mitigate.Announcer = (*Speaker)(nil)
