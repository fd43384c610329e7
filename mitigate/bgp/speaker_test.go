package bgp

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/internal/testutil"
	"github.com/kapkan-io/kapkan/mitigate"
)

var allFamilies = []string{"ipv4-unicast", "ipv6-unicast", "ipv4-flowspec", "ipv6-flowspec"}

const (
	blackhole = 0xFFFF029A // 65535:666
	noExport  = 0xFFFFFF01
)

// routers are the real BGP daemons the speaker talks to: gobgpd A (AS
// 65000) accepts an eBGP session from 127.0.0.1 with every family and one
// from ::1 with unicast only (that peer has its own communities and next
// hop); gobgpd B (AS 65010, on 127.0.0.2) is an iBGP peer with its own
// local-pref.
type routers struct {
	a, b *testutil.GoBGPD
}

func startRouters(t *testing.T) routers {
	a := testutil.StartGoBGPD(t,
		testutil.GoBGPNeighbor{Address: "127.0.0.1", ASN: 65010, Families: allFamilies},
		testutil.GoBGPNeighbor{Address: "::1", ASN: 65010, Families: []string{"ipv4-unicast", "ipv6-unicast"}})
	b := testutil.StartGoBGPDAt(t, 65010, "127.0.0.2",
		testutil.GoBGPNeighbor{Address: "127.0.0.1", ASN: 65010, Families: []string{"ipv4-unicast"}})
	return routers{a, b}
}

func (r routers) config() Config {
	return Config{ASN: 65010, RouterID: netip.MustParseAddr("192.0.2.10"), ListenPort: -1,
		NextHopIPv4: netip.MustParseAddr("192.0.2.1"), NextHopIPv6: netip.MustParseAddr("100::1"),
		Communities: []uint32{blackhole, noExport}, ConnectRetry: time.Second,
		Peers: []Peer{
			{Address: netip.MustParseAddr("127.0.0.1"), Port: uint16(r.a.BGPPort), ASN: 65000, Families: allFamilies},
			{Address: netip.MustParseAddr("::1"), Port: uint16(r.a.BGPPort), ASN: 65000, Families: []string{"ipv4-unicast", "ipv6-unicast"},
				Communities: []uint32{64500<<16 | 666}, NextHopIPv4: netip.MustParseAddr("198.51.100.66")},
			{Address: netip.MustParseAddr("127.0.0.2"), Port: uint16(r.b.BGPPort), ASN: 65010, Families: []string{"ipv4-unicast"}, LocalPref: 200},
		}}
}

func (r routers) waitUp(t *testing.T) {
	r.a.WaitEstablished("127.0.0.1", 30*time.Second)
	r.a.WaitEstablished("::1", 30*time.Second)
	r.b.WaitEstablished("127.0.0.1", 30*time.Second)
}

func startSpeaker(t *testing.T, cfg Config) *Speaker {
	t.Helper()
	s, err := New(cfg, Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

var (
	bh4 = mitigate.Route{Kind: flowspec.Blackhole, Target: netip.MustParsePrefix("203.0.113.5/32")}
	bh6 = mitigate.Route{Kind: flowspec.Blackhole, Target: netip.MustParsePrefix("2001:db8:1::5/128")}
	fs4 = mitigate.Route{Kind: flowspec.RateLimit, Target: netip.MustParsePrefix("203.0.113.6/32"), RateMbps: 100,
		Match: flowspec.Match{Protocol: "udp", SrcPorts: []string{"53", "1024-65535"}, DstPorts: []string{"80"}, PacketLength: ">=512", Fragment: "is-fragment"}}
	fs6 = mitigate.Route{Kind: flowspec.Discard, Target: netip.MustParsePrefix("2001:db8:1::6/128"),
		Match: flowspec.Match{Protocol: "tcp", DstPorts: []string{"443"}, TCPFlags: "syn&!ack", PacketLength: "40-60"}}
)

// The networks and attributes each router must hold for bh4, bh6, fs4, fs6.
const (
	fs4Network = "[destination: 203.0.113.6/32][protocol: ==udp][destination-port: ==80][source-port: ==53 >=1024&<=65535][packet-length: >=512][fragment: =is-fragment]"
	fs6Network = "[destination: 2001:db8:1::6/128/0][protocol: ==tcp][destination-port: ==443][tcp-flags: =S&!A][packet-length: >=40&<=60]"
)

func wantA127() map[string]map[string]testutil.Received {
	return map[string]map[string]testutil.Received{
		"ipv4":          {"203.0.113.5/32": {NextHop: "192.0.2.1", Communities: []uint32{blackhole, noExport}, TrafficRate: -1}},
		"ipv6":          {"2001:db8:1::5/128": {NextHop: "100::1", Communities: []uint32{blackhole, noExport}, TrafficRate: -1}},
		"ipv4-flowspec": {fs4Network: {NextHop: "0.0.0.0", TrafficRate: 100e6 / 8}},
		"ipv6-flowspec": {fs6Network: {NextHop: "::", TrafficRate: 0}},
	}
}

func wantA6() map[string]map[string]testutil.Received {
	return map[string]map[string]testutil.Received{
		"ipv4":          {"203.0.113.5/32": {NextHop: "198.51.100.66", Communities: []uint32{64500<<16 | 666}, TrafficRate: -1}},
		"ipv6":          {"2001:db8:1::5/128": {NextHop: "100::1", Communities: []uint32{64500<<16 | 666}, TrafficRate: -1}},
		"ipv4-flowspec": {}, // not a family of this session
		"ipv6-flowspec": {},
	}
}

func wantB() map[string]map[string]testutil.Received {
	return map[string]map[string]testutil.Received{
		"ipv4": {"203.0.113.5/32": {NextHop: "192.0.2.1", Communities: []uint32{blackhole, noExport}, LocalPref: 200, TrafficRate: -1}},
	}
}

func empty(families ...string) map[string]map[string]testutil.Received {
	out := map[string]map[string]testutil.Received{}
	for _, f := range families {
		out[f] = map[string]testutil.Received{}
	}
	return out
}

// eventually polls what a router received from neighbor until it is want.
func eventually(t *testing.T, g *testutil.GoBGPD, neighbor string, want map[string]map[string]testutil.Received) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := map[string]map[string]testutil.Received{}
		for f := range want {
			got[f] = g.AdjIn(neighbor, f)
		}
		if reflect.DeepEqual(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s received from %s:\n%s\nwant:\n%s", g.Address, neighbor, dump(got), dump(want))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func dump(m map[string]map[string]testutil.Received) string {
	s := ""
	for f, routes := range m {
		s += "  " + f + ":\n"
		for n, r := range routes {
			s += fmt.Sprintf("    %s %+v\n", n, r)
		}
	}
	return s
}

func (r routers) wantAll(t *testing.T) {
	t.Helper()
	eventually(t, r.a, "127.0.0.1", wantA127())
	eventually(t, r.a, "::1", wantA6())
	eventually(t, r.b, "127.0.0.1", wantB())
}

func (r routers) wantNone(t *testing.T) {
	t.Helper()
	eventually(t, r.a, "127.0.0.1", empty("ipv4", "ipv6", "ipv4-flowspec", "ipv6-flowspec"))
	eventually(t, r.a, "::1", empty("ipv4", "ipv6"))
	eventually(t, r.b, "127.0.0.1", empty("ipv4"))
}

// TestRoutersReceiveExactly: RTBH and FlowSpec for IPv4 and IPv6 over
// three sessions, checked field by field as the routers received them;
// withdrawn; announced again in full after a router restarts.
func TestRoutersReceiveExactly(t *testing.T) {
	r := startRouters(t)
	s := startSpeaker(t, r.config())
	r.waitUp(t)
	for _, rt := range []mitigate.Route{bh4, bh6, fs4, fs6, bh4} { // bh4 twice: announced once
		if err := s.Announce(rt); err != nil {
			t.Fatal(err)
		}
	}
	r.wantAll(t)

	// A router restarts: the session comes back and gets every route again.
	r.a.Stop()
	r.a.Start()
	r.a.WaitEstablished("127.0.0.1", 30*time.Second)
	r.a.WaitEstablished("::1", 30*time.Second)
	r.wantAll(t)

	for _, rt := range []mitigate.Route{bh4, bh6, fs4, fs6} {
		if err := s.Withdraw(rt); err != nil {
			t.Fatal(err)
		}
	}
	r.wantNone(t)
}

func managerConfig(r routers, dryRun bool, file string, ann mitigate.Announcer) mitigate.ManagerConfig {
	return mitigate.ManagerConfig{
		Safety: mitigate.Config{DryRun: dryRun,
			Protected:     []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8:1::/48")},
			MaxBlackholes: 10, MaxFlowSpec: 10, MaxNewPerMinute: 10, TTL: 10 * time.Minute, MaxTTL: time.Hour},
		StateFile: file, Announcer: ann,
	}
}

func decisions(at time.Time) []flowspec.Decision {
	return []flowspec.Decision{
		{AttackID: 1, Target: bh4.Target, Action: flowspec.Blackhole, At: at},
		{AttackID: 2, Target: bh6.Target, Action: flowspec.Blackhole, At: at},
		{AttackID: 3, Target: fs4.Target, Action: flowspec.RateLimit, RateMbps: 100, Vector: fs4.Match, At: at},
		{AttackID: 4, Target: fs6.Target, Action: flowspec.Discard, Vector: fs6.Match, At: at},
	}
}

// TestKapkanRestartAndTTL: the manager announces through the speaker;
// Kapkan stops (its sessions drop, the routers forget the routes) and
// starts again from its state file in the middle of the TTLs: the routers
// get the full set again; once the TTLs pass (the attacks over) they are
// withdrawn.
func TestKapkanRestartAndTTL(t *testing.T) {
	r := startRouters(t)
	file := filepath.Join(t.TempDir(), "mitigations.json")
	t0 := time.Now()

	s1, err := New(r.config(), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	m1, err := mitigate.NewManager(managerConfig(r, false, file, s1))
	if err != nil {
		t.Fatal(err)
	}
	r.waitUp(t)
	for _, d := range decisions(t0) {
		if err := m1.Apply(d); err != nil {
			t.Fatal(err)
		}
	}
	m1.Flush()
	r.wantAll(t)
	m1.Close()
	s1.Stop()
	r.wantNone(t)

	s2 := startSpeaker(t, r.config())
	m2, err := mitigate.NewManager(managerConfig(r, false, file, s2))
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if n, err := m2.Restore(t0.Add(4 * time.Minute)); err != nil || n != 4 {
		t.Fatalf("restored %d: %v", n, err)
	}
	m2.Flush() // no Run here: the restored routes are sent now
	r.waitUp(t)
	r.wantAll(t)
	// The attacks ended before the restart; at the TTL everything goes.
	m2.Tick(t0.Add(10 * time.Minute))
	m2.Flush()
	r.wantNone(t)
}

// TestDryRunAnnouncesNothing: in dry-run the sessions come up (operators
// check peering before going live), the manager hands its routes to the
// DryRun announcer (it refuses the speaker) and the routers receive
// nothing.
func TestDryRunAnnouncesNothing(t *testing.T) {
	r := startRouters(t)
	s := startSpeaker(t, r.config())
	if _, err := mitigate.NewManager(managerConfig(r, true, "", s)); !errors.Is(err, mitigate.ErrInvalid) {
		t.Fatalf("a dry-run manager took the speaker: %v", err)
	}
	var events []mitigate.Event
	dry := mitigate.NewDryRun()
	cfg := managerConfig(r, true, "", dry)
	cfg.OnEvent = func(e mitigate.Event) { events = append(events, e) }
	m, err := mitigate.NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	r.waitUp(t)
	for _, d := range decisions(time.Now()) {
		if err := m.Apply(d); err != nil {
			t.Fatal(err)
		}
	}
	m.Flush()
	time.Sleep(time.Second) // what would have been sent has had time to arrive
	r.wantNone(t)
	if len(events) != 4 || !events[0].DryRun || len(m.Active()) != 4 || len(dry.Routes()) != 4 {
		t.Fatalf("dry-run events %+v, active %d, recorded %+v", events, len(m.Active()), dry.Routes())
	}
	if up := s.Up(); len(up) != 3 {
		t.Fatalf("sessions up: %v", up)
	}
}
