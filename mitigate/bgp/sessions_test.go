package bgp

import (
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/kapkan-io/kapkan/internal/testutil"
)

// TestSessions: against a real gobgpd, the session with one route
// announced is established, with one route sent and its times set; once
// the router is gone it is not established any more; a stopped speaker
// reports it idle.
func TestSessions(t *testing.T) {
	const peer = "127.0.0.1"
	g := testutil.StartGoBGPD(t, testutil.GoBGPNeighbor{Address: peer, ASN: 65010, Families: allFamilies})
	sessions := make(chan SessionEvent, 16)
	s, err := New(Config{ASN: 65010, RouterID: netip.MustParseAddr("192.0.2.10"), ListenPort: -1,
		NextHopIPv4: netip.MustParseAddr("192.0.2.1"), Communities: []uint32{blackhole}, ConnectRetry: time.Second,
		Peers: []Peer{{Address: netip.MustParseAddr(peer), Port: uint16(g.BGPPort), ASN: 65000, Families: allFamilies}}},
		Deps{Logger: slog.New(slog.DiscardHandler), OnSession: func(e SessionEvent) { sessions <- e }})
	if err != nil {
		t.Fatal(err)
	}
	before, err := s.Sessions(t.Context())
	if err != nil || len(before) != 1 || !reflect.DeepEqual(before[0], Session{Peer: peer, State: "idle"}) {
		t.Fatalf("before Start: %+v, %v; want one idle session", before, err)
	}
	started := time.Now()
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	waitSession(t, sessions, peer, true)
	if err := s.Announce(bh4); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	var got []Session
	for {
		if got, err = s.Sessions(t.Context()); err != nil {
			t.Fatal(err)
		}
		if len(got) == 1 && got[0].RoutesSent == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // GoBGP sends on its own goroutine
	}
	if len(got) != 1 || got[0].Peer != peer || got[0].State != "established" || got[0].RoutesSent != 1 {
		t.Fatalf("sessions %+v, want %s established with 1 route sent", got, peer)
	}
	if want := []string{"ipv4-unicast 203.0.113.5/32"}; !slices.Equal(got[0].Sent, want) {
		t.Errorf("sent %q, want %q", got[0].Sent, want)
	}
	if got[0].Since.Before(started) || got[0].Since.After(time.Now()) || got[0].Uptime < 0 {
		t.Errorf("since %s (started %s), uptime %s", got[0].Since, started, got[0].Uptime)
	}
	up := got[0].Since

	g.Stop()
	waitSession(t, sessions, peer, false)
	if got, err = s.Sessions(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].State == "established" || got[0].Uptime != 0 || !got[0].Since.After(up) {
		t.Fatalf("after the router stopped: %+v, want not established, since after %s", got, up)
	}

	s.Stop()
	if got, err = s.Sessions(t.Context()); err != nil || !reflect.DeepEqual(got[0], Session{Peer: peer, State: "idle"}) {
		t.Fatalf("stopped speaker: %+v, %v", got, err)
	}
}

// TestRoutesFromPeersRefused: a route a router sends Kapkan never enters
// its RIB (so it could never be passed on to another peer), while
// Kapkan's own routes still go out.
func TestRoutesFromPeersRefused(t *testing.T) {
	const peer = "127.0.0.1"
	g := testutil.StartGoBGPD(t, testutil.GoBGPNeighbor{Address: peer, ASN: 65010, Families: allFamilies})
	if out, err := g.Run("global", "rib", "add", "198.51.100.0/24", "-a", "ipv4"); err != nil {
		t.Fatalf("gobgp global rib add: %v\n%s", err, out)
	}
	sessions := make(chan SessionEvent, 16)
	s, err := New(Config{ASN: 65010, RouterID: netip.MustParseAddr("192.0.2.10"), ListenPort: -1,
		NextHopIPv4: netip.MustParseAddr("192.0.2.1"), Communities: []uint32{blackhole}, ConnectRetry: time.Second,
		Peers: []Peer{{Address: netip.MustParseAddr(peer), Port: uint16(g.BGPPort), ASN: 65000, Families: allFamilies}}},
		Deps{Logger: slog.New(slog.DiscardHandler), OnSession: func(e SessionEvent) { sessions <- e }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Announce(bh4); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	waitSession(t, sessions, peer, true)
	g.WaitEstablished(peer, 30*time.Second)
	// The router sends its route when the session comes up; give it the
	// time GoBGP takes to take an UPDATE in, then look.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, ok := g.AdjIn(peer, "ipv4")["203.0.113.5/32"]; ok {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, ok := g.AdjIn(peer, "ipv4")["203.0.113.5/32"]; !ok {
		t.Fatal("Kapkan's own route did not reach the router")
	}
	time.Sleep(time.Second)
	var received []string
	if err := s.srv.ListPath(t.Context(), &api.ListPathRequest{TableType: api.TableType_ADJ_IN, Name: peer, Family: families["ipv4-unicast"]},
		func(d *api.Destination) { received = append(received, d.Prefix) }); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(received, "198.51.100.0/24") {
		t.Fatalf("the router's route was never received (Adj-RIB-In %q): the test proves nothing", received)
	}
	if n := ribSize(t, s, "ipv4-unicast"); n != 1 {
		t.Errorf("Kapkan's RIB holds %d IPv4 routes, want its own only: a route from a peer was accepted", n)
	}
}
