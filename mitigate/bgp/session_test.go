package bgp

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/internal/testutil"
	"github.com/kapkan-io/kapkan/mitigate"
)

// waitSession waits for the next session event of peer and checks it.
func waitSession(t *testing.T, ch <-chan SessionEvent, peer string, up bool) SessionEvent {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case e := <-ch:
			if e.Peer != peer {
				continue
			}
			if e.Up != up {
				t.Fatalf("session event %+v, want up=%v", e, up)
			}
			return e
		case <-timeout:
			t.Fatalf("no session event for %s (up=%v) within 30 s", peer, up)
		}
	}
}

// TestRouterRestartReannounce: with an action in force the router goes
// away: the speaker sees the session drop (metric and callback); an
// action decided meanwhile is not lost (it waits in GoBGP's RIB); when the
// router comes back on the same port, it gets both, and the metrics tell
// the story (down once, up twice, no failure).
func TestRouterRestartReannounce(t *testing.T) {
	const peer = "127.0.0.1"
	g := testutil.StartGoBGPD(t, testutil.GoBGPNeighbor{Address: peer, ASN: 65010, Families: allFamilies})
	reg := prometheus.NewRegistry()
	sessions := make(chan SessionEvent, 16)
	var m *mitigate.Manager
	s, err := New(Config{ASN: 65010, RouterID: netip.MustParseAddr("192.0.2.10"), ListenPort: -1,
		NextHopIPv4: netip.MustParseAddr("192.0.2.1"), NextHopIPv6: netip.MustParseAddr("100::1"),
		Communities: []uint32{blackhole, noExport}, ConnectRetry: time.Second,
		Peers: []Peer{{Address: netip.MustParseAddr(peer), Port: uint16(g.BGPPort), ASN: 65000, Families: allFamilies}}},
		Deps{Registerer: reg, OnSession: func(e SessionEvent) {
			if e.Up {
				m.Retry() // as the daemon does
			}
			sessions <- e
		}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var events []mitigate.Event
	cfg := managerConfig(routers{}, false, "", s)
	cfg.Registerer = reg
	cfg.OnEvent = func(e mitigate.Event) { mu.Lock(); events = append(events, e); mu.Unlock() }
	if m, err = mitigate.NewManager(cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{s.Run, m.Run} {
		wg.Go(func() {
			if err := run(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	metric := func(name string, labels map[string]string) float64 {
		return testutil.MetricValue(t, reg, name, labels)
	}
	up := map[string]string{"peer": peer}
	transitions := func(state string) float64 {
		return metric("kapkan_bgp_session_transitions_total", map[string]string{"peer": peer, "state": state})
	}

	ds := decisions(time.Now())
	if err := m.Apply(ds[0]); err != nil { // bh4
		t.Fatal(err)
	}
	if e := waitSession(t, sessions, peer, true); e.State != "established" {
		t.Fatalf("up event %+v", e)
	}
	all := wantA127()
	eventually(t, g, peer, map[string]map[string]testutil.Received{"ipv4": all["ipv4"], "ipv4-flowspec": {}})
	if metric("kapkan_bgp_session_up", up) != 1 || transitions("up") != 1 {
		t.Fatalf("session up %v, transitions up %v", metric("kapkan_bgp_session_up", up), transitions("up"))
	}

	// The router goes away.
	g.Stop()
	if e := waitSession(t, sessions, peer, false); e.Routes != 1 {
		t.Fatalf("down event %+v, want 1 route held", e)
	}
	if metric("kapkan_bgp_session_up", up) != 0 || transitions("down") != 1 {
		t.Fatalf("session up %v, transitions down %v", metric("kapkan_bgp_session_up", up), transitions("down"))
	}
	// An action decided while it is away.
	if err := m.Apply(ds[2]); err != nil { // fs4
		t.Fatal(err)
	}
	m.Flush()
	if n := metric("kapkan_bgp_routes_announced", map[string]string{"family": "ipv4-flowspec"}); n != 1 {
		t.Fatalf("flowspec routes in the RIB: %v", n)
	}

	// It comes back on the same port and gets both.
	g.Start()
	waitSession(t, sessions, peer, true)
	eventually(t, g, peer, map[string]map[string]testutil.Received{"ipv4": all["ipv4"], "ipv4-flowspec": all["ipv4-flowspec"]})
	for name, want := range map[string]float64{"up": 2, "down": 1} {
		if n := transitions(name); n != want {
			t.Errorf("transitions %s: %v, want %v", name, n, want)
		}
	}
	if metric("kapkan_bgp_session_up", up) != 1 || metric("kapkan_bgp_routes_announced", map[string]string{"family": "ipv4-unicast"}) != 1 {
		t.Errorf("after the restart: session up %v, unicast routes %v", metric("kapkan_bgp_session_up", up),
			metric("kapkan_bgp_routes_announced", map[string]string{"family": "ipv4-unicast"}))
	}
	if n := metric("kapkan_bgp_announce_failures_total", nil) + metric("kapkan_mitigation_announce_failures_total", nil); n != 0 {
		t.Errorf("%v failures: a local RIB takes routes while the router is away", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 2 || events[0].Type != mitigate.EventAnnounce || events[1].Type != mitigate.EventAnnounce {
		t.Errorf("events %+v, want two announcements", events)
	}
}

// ribSize counts the routes of a family in the speaker's RIB.
func ribSize(t *testing.T, s *Speaker, family string) int {
	t.Helper()
	n := 0
	err := s.srv.ListPath(t.Context(), &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: families[family]},
		func(*api.Destination) { n++ })
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSpeakerFailures: a route announced before Start goes in the RIB when
// it starts; after Stop every change fails, counted, and the manager
// reports it (EventFailed) and keeps it pending; a route the speaker
// cannot encode is rejected and not kept.
func TestSpeakerFailures(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New(Config{ASN: 65010, RouterID: netip.MustParseAddr("192.0.2.10"), ListenPort: -1,
		NextHopIPv4: netip.MustParseAddr("192.0.2.1")}, Deps{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Announce(bh4); err != nil {
		t.Fatalf("announce before start: %v", err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := ribSize(t, s, "ipv4-unicast"); n != 1 {
		t.Fatalf("%d routes in the RIB after start, want 1", n)
	}
	bad := mitigate.Route{Kind: flowspec.Discard, Target: fs4.Target, Match: flowspec.Match{Protocol: "carrier-pigeon"}}
	if err := s.Announce(bad); !errors.Is(err, mitigate.ErrRejected) {
		t.Fatalf("unencodable route: %v", err)
	}
	s.Stop()
	s.Stop() // twice is fine

	var events []mitigate.Event
	cfg := managerConfig(routers{}, false, "", s)
	cfg.Registerer = reg
	cfg.OnEvent = func(e mitigate.Event) { events = append(events, e) }
	m, err := mitigate.NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(decisions(time.Now())[2]); err != nil { // fs4
		t.Fatal(err)
	}
	m.Flush()
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"kapkan_bgp_announce_failures_total", map[string]string{"op": "announce"}, 2}, // the bad route, then fs4
		{"kapkan_mitigation_announce_failures_total", map[string]string{"kind": "flowspec-ratelimit", "op": "announce"}, 1},
		{"kapkan_mitigation_pending_routes", nil, 1},
		{"kapkan_bgp_routes_announced", map[string]string{"family": "ipv4-unicast"}, 1}, // bh4
		{"kapkan_bgp_routes_announced", map[string]string{"family": "ipv4-flowspec"}, 0},
	} {
		if n := testutil.MetricValue(t, reg, c.name, c.labels); n != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, n, c.want)
		}
	}
	if len(events) != 2 || events[1].Type != mitigate.EventFailed || !errors.Is(events[1].Err, ErrStopped) || events[1].AttackID != 3 {
		t.Fatalf("events %+v, want the announcement then its failure", events)
	}
	if p := m.Pending(); len(p) != 1 || p[0].Route.Key() != fs4.Key() {
		t.Fatalf("pending %+v", p)
	}
}
