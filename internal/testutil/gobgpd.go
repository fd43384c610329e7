package testutil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// GoBGPD is a real gobgpd (Debian's package) on loopback with ephemeral
// ports, standing in for a router: it accepts sessions from the neighbours
// it is given (passive) and tells what it received through its own CLI.
type GoBGPD struct {
	t testing.TB
	// Address is where gobgpd listens (127.0.0.1 and ::1, or the address
	// given to StartGoBGPDAt).
	Address  string
	dir      string
	bin, cli string
	BGPPort  int
	apiPort  int
	cmd      *exec.Cmd
}

// GoBGPNeighbor is a session gobgpd accepts.
type GoBGPNeighbor struct {
	Address  string
	ASN      uint32
	Families []string // ipv4-unicast, ipv6-unicast, ipv4-flowspec, ipv6-flowspec
	// Password, when set, is the session's TCP-MD5 password.
	Password string
	// GracefulRestart makes gobgpd a graceful restart helper for the
	// session (RFC 4724): it keeps the neighbour's routes, marked stale,
	// while the neighbour restarts; LongLived adds long-lived graceful
	// restart (RFC 9494).
	GracefulRestart, LongLived bool
}

// FreePort returns a TCP port free on loopback at the time of the call.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartGoBGPD starts gobgpd as AS 65000 on 127.0.0.1 and ::1 and stops it
// when the test ends.
func StartGoBGPD(t testing.TB, neighbors ...GoBGPNeighbor) *GoBGPD {
	t.Helper()
	return StartGoBGPDAt(t, 65000, "", neighbors...)
}

// StartGoBGPDAt starts gobgpd as AS asn, listening on address ("" for
// 127.0.0.1 and ::1).
func StartGoBGPDAt(t testing.TB, asn uint32, address string, neighbors ...GoBGPNeighbor) *GoBGPD {
	t.Helper()
	g := &GoBGPD{t: t, dir: t.TempDir(), bin: Need(t, "gobgpd", "gobgpd"), cli: Need(t, "gobgp", "gobgpd"),
		BGPPort: FreePort(t), apiPort: FreePort(t), Address: address}
	listen := `"127.0.0.1", "::1"`
	if address != "" {
		listen = fmt.Sprintf("%q", address)
	} else {
		g.Address = "127.0.0.1"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[global.config]\n  as = %d\n  router-id = \"192.0.2.200\"\n  port = %d\n  local-address-list = [%s]\n", asn, g.BGPPort, listen)
	for _, n := range neighbors {
		fmt.Fprintf(&b, "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = %q\n    peer-as = %d\n", n.Address, n.ASN)
		if n.Password != "" {
			fmt.Fprintf(&b, "    auth-password = %q\n", n.Password)
		}
		b.WriteString("  [neighbors.transport.config]\n    passive-mode = true\n")
		if n.GracefulRestart {
			fmt.Fprintf(&b, "  [neighbors.graceful-restart.config]\n    enabled = true\n    long-lived-enabled = %v\n", n.LongLived)
		}
		for _, f := range n.Families {
			fmt.Fprintf(&b, "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = %q\n", f)
			if n.GracefulRestart {
				b.WriteString("    [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n")
			}
			if n.LongLived {
				b.WriteString("    [neighbors.afi-safis.long-lived-graceful-restart.config]\n      enabled = true\n      restart-time = 3600\n")
			}
		}
	}
	if err := os.WriteFile(filepath.Join(g.dir, "gobgpd.toml"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	g.Start()
	t.Cleanup(g.Stop)
	return g
}

// Start runs gobgpd (again, after Stop) and waits for its API.
func (g *GoBGPD) Start() {
	g.t.Helper()
	logf, err := os.OpenFile(filepath.Join(g.dir, "gobgpd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		g.t.Fatal(err)
	}
	defer logf.Close()
	g.cmd = exec.Command(g.bin, "-f", filepath.Join(g.dir, "gobgpd.toml"), "--api-hosts", fmt.Sprintf("127.0.0.1:%d", g.apiPort), "-l", "info")
	g.cmd.Stdout, g.cmd.Stderr = logf, logf
	if err := g.cmd.Start(); err != nil {
		g.t.Fatalf("start gobgpd: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := g.Run("neighbor"); err == nil {
			return
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("gobgpd did not answer within 15 s; its log:\n%s", g.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends gobgpd (the process this test started, by its PID).
func (g *GoBGPD) Stop() {
	if g.cmd == nil || g.cmd.Process == nil {
		return
	}
	stopProcess(g.cmd)
	g.cmd = nil
}

// Log returns what gobgpd logged.
func (g *GoBGPD) Log() string {
	b, _ := os.ReadFile(filepath.Join(g.dir, "gobgpd.log"))
	return string(b)
}

// Run runs the gobgp CLI against this gobgpd.
func (g *GoBGPD) Run(args ...string) ([]byte, error) {
	cmd := exec.Command(g.cli, append([]string{"-u", "127.0.0.1", "-p", fmt.Sprint(g.apiPort)}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("gobgp %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// Established reports whether the session with neighbor is up.
func (g *GoBGPD) Established(neighbor string) bool {
	out, err := g.Run("neighbor", neighbor, "-j")
	if err != nil {
		return false
	}
	var p struct {
		State struct {
			SessionState int `json:"session_state"`
		} `json:"state"`
	}
	return json.Unmarshal(out, &p) == nil && p.State.SessionState == 6
}

// WaitEstablished waits for the session with neighbor to come up.
func (g *GoBGPD) WaitEstablished(neighbor string, timeout time.Duration) {
	g.t.Helper()
	deadline := time.Now().Add(timeout)
	for !g.Established(neighbor) {
		if time.Now().After(deadline) {
			g.t.Fatalf("no BGP session with %s within %s; gobgpd log:\n%s", neighbor, timeout, g.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Received is one route as gobgpd received it: its network (for FlowSpec,
// gobgp's text form of the match, like "[destination: 203.0.113.6/32]
// [protocol: ==udp]"), next hop, communities, LOCAL_PREF and FlowSpec
// traffic-rate action (bytes per second; 0 is discard; -1 when absent).
type Received struct {
	NextHop     string
	Communities []uint32
	LocalPref   uint32
	TrafficRate float64
}

// AdjIn returns the routes of a family ("ipv4", "ipv6", "ipv4-flowspec",
// "ipv6-flowspec") received from neighbor, by network.
func (g *GoBGPD) AdjIn(neighbor, family string) map[string]Received {
	g.t.Helper()
	out, err := g.Run("neighbor", neighbor, "adj-in", "-a", family, "-j")
	if err != nil && !g.Established(neighbor) {
		return map[string]Received{} // gobgp refuses adj-in of a session that is down: nothing received
	}
	if err != nil {
		g.t.Fatal(err)
	}
	var raw map[string][]struct {
		Attrs []struct {
			Type        int      `json:"type"`
			NextHop     string   `json:"nexthop"`
			Communities []uint32 `json:"communities"`
			Value       any      `json:"value"`
		} `json:"attrs"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		g.t.Fatalf("gobgp adj-in output: %v\n%s", err, out)
	}
	m := map[string]Received{}
	for network, paths := range raw {
		if len(paths) != 1 {
			g.t.Fatalf("%s received %d times from %s", network, len(paths), neighbor)
		}
		r := Received{TrafficRate: -1}
		for _, a := range paths[0].Attrs {
			switch a.Type {
			case 3, 14: // NEXT_HOP, MP_REACH_NLRI
				r.NextHop = a.NextHop
			case 5: // LOCAL_PREF
				if v, ok := a.Value.(float64); ok {
					r.LocalPref = uint32(v)
				}
			case 8: // COMMUNITIES
				r.Communities = a.Communities
			case 16: // EXTENDED_COMMUNITIES
				list, _ := a.Value.([]any)
				for _, x := range list {
					ec, _ := x.(map[string]any)
					if ec["type"] == float64(128) && ec["subtype"] == float64(6) {
						r.TrafficRate, _ = ec["rate"].(float64)
					}
				}
			}
		}
		m[network] = r
	}
	return m
}

// RIBPath is one path of gobgpd's global RIB.
type RIBPath struct {
	// Stale is set while gobgpd keeps the path across its neighbour's
	// restart (graceful restart), until the neighbour's End-of-RIB.
	Stale bool
	// Age is when gobgpd took the path in (Unix seconds): a path
	// refreshed keeps it only if gobgpd kept the old one.
	Age int64
	// Communities are the path's BGP communities (LLGR_STALE, 65535:6,
	// marks a path kept under long-lived graceful restart).
	Communities []uint32
}

// RIB returns the paths of a family ("ipv4", "ipv4-flowspec", ...) in
// gobgpd's global RIB by network: unlike AdjIn it answers while the
// session is down, so it shows what gobgpd keeps of a neighbour that went
// away.
func (g *GoBGPD) RIB(family string) map[string]RIBPath {
	g.t.Helper()
	out, err := g.Run("global", "rib", "-a", family, "-j")
	if err != nil {
		g.t.Fatal(err)
	}
	var raw map[string][]struct {
		Stale bool  `json:"stale"`
		Age   int64 `json:"age"`
		Attrs []struct {
			Type        int      `json:"type"`
			Communities []uint32 `json:"communities"`
		} `json:"attrs"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		g.t.Fatalf("gobgp global rib output: %v\n%s", err, out)
	}
	m := map[string]RIBPath{}
	for network, paths := range raw {
		if len(paths) == 0 {
			continue
		}
		p := RIBPath{Stale: paths[0].Stale, Age: paths[0].Age}
		for _, a := range paths[0].Attrs {
			if a.Type == 8 { // COMMUNITIES
				p.Communities = a.Communities
			}
		}
		m[network] = p
	}
	return m
}
