package bgp

import (
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

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
