package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/internal/testutil"
)

// Issue #19: the routes of the actions in force survive a crash of Kapkan
// at the router (BGP graceful restart), and sessions can carry a TCP-MD5
// password.

// The actions the restart tests put in force, and how BIRD and gobgpd name
// their routes.
const (
	longBlackhole  = "203.0.113.9/32"
	shortBlackhole = "203.0.113.7/32" // its TTL runs out while Kapkan is down
	birdFlowSpec   = "flow4 { dst 203.0.113.5/32; proto 17; sport 53; }"
	gobgpFlowSpec  = "[destination: 203.0.113.5/32][protocol: ==udp][source-port: ==53]"
	shortTTL       = 4 * time.Second
)

// grBase is a daemon configuration with one BGP peer at addr:port,
// mitigating for real, with an operate token and a state file in dir;
// peerExtra are more keys of the peer (indented by 8).
func grBase(t *testing.T, dir, addr string, port int, peerExtra string) string {
	t.Helper()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("operate-token-for-e2e\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`dry_run: false
hostgroups:
  - name: customers
    prefixes: [203.0.113.0/24]
    thresholds:
      incoming: {pps: 50000}
api:
  tokens:
    - {name: e2e, scope: operate, token_file: %q}
mitigation:
  state_file: %q
  bgp:
    asn: 65010
    router_id: 192.0.2.10
    peers:
      - address: %s
        port: %d
        asn: 65000
        families: [ipv4-unicast, ipv4-flowspec]
%s`, token, filepath.Join(dir, "state.json"), addr, port, peerExtra)
}

// api sends a request with the operate token and returns the status and
// body.
func (d *daemon) apiCall(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+d.api+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer operate-token-for-e2e")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// putInForce posts the three actions of the restart tests and returns
// when the short one expires.
func putInForce(t *testing.T, d *daemon) time.Time {
	t.Helper()
	var expires time.Time
	for _, body := range []string{
		`{"target": "203.0.113.9", "action": "blackhole", "ttl": "10m", "reason": "e2e long"}`,
		`{"target": "203.0.113.5", "action": "flowspec-discard", "ttl": "10m", "reason": "e2e", "match": {"protocol": "udp", "src_ports": ["53"]}}`,
		fmt.Sprintf(`{"target": "203.0.113.7", "action": "blackhole", "ttl": %q, "reason": "e2e short"}`, shortTTL),
	} {
		code, out := d.apiCall(t, "POST", "/api/v1/mitigations", body)
		if code != 201 {
			t.Fatalf("POST /api/v1/mitigations %s: %d %s", body, code, out)
		}
		var a struct {
			Expires time.Time `json:"expires"`
		}
		if err := json.Unmarshal([]byte(out), &a); err != nil {
			t.Fatal(err)
		}
		expires = a.Expires // the last one is the short one
	}
	return expires
}

// poll calls cond every 100 ms until it holds or timeout passes, and
// reports whether it held and when.
func poll(timeout time.Duration, cond func() bool) (bool, time.Time) {
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		if cond() {
			return true, time.Now()
		}
		if time.Now().After(deadline) {
			return false, time.Now()
		}
	}
}

func birdHolds(b *testutil.BIRD) (map[string]testutil.Route, bool) {
	all := b.Routes("master4")
	for k, v := range b.Routes("flowtab4") {
		all[k] = v
	}
	_, long := all[longBlackhole]
	_, short := all[shortBlackhole]
	_, fs := all[birdFlowSpec]
	return all, long && short && fs
}

// TestGracefulRestartBIRD: with a blackhole and a FlowSpec rule in force at
// a real BIRD 2 (and a second blackhole whose TTL runs out meanwhile),
// Kapkan is killed with SIGKILL. BIRD keeps every route, as stale (its
// graceful restart active, the session down), until Kapkan is back; then
// Kapkan restores its state and sends the routes still wanted before its
// End-of-RIB: BIRD holds them fresh (graceful restart over, the routes
// never withdrawn meanwhile: the same import time), and has withdrawn the
// one whose TTL ran out.
func TestGracefulRestartBIRD(t *testing.T) {
	bird := testutil.StartBIRD(t, testutil.BIRDConfig{Neighbor: "127.0.0.1", NeighborASN: 65010, GracefulRestartTime: time.Minute})
	base := grBase(t, t.TempDir(), bird.Address, bird.BGPPort, "        graceful_restart_time: 60s\n")
	d := startDaemon(t, base)
	bird.WaitEstablished(30 * time.Second)
	shortExpires := putInForce(t, d)
	var before map[string]testutil.Route
	if ok, _ := poll(10*time.Second, func() bool { var ok bool; before, ok = birdHolds(bird); return ok }); !ok {
		t.Fatalf("BIRD does not hold the three routes: %v; daemon log:\n%s", before, d.log())
	}

	d.kill(t)
	killed := time.Now()
	// Down: BIRD keeps all three routes, stale, past the short TTL.
	samples := 0
	for time.Now().Before(shortExpires.Add(time.Second)) {
		routes, all := birdHolds(bird)
		if !all || bird.Established() || !bird.GracefulRestartActive() {
			t.Fatalf("%.1f s after the kill: BIRD holds %v, established %v, graceful restart active %v; want all three kept as stale",
				time.Since(killed).Seconds(), routes, bird.Established(), bird.GracefulRestartActive())
		}
		samples++
		time.Sleep(200 * time.Millisecond)
	}
	held := time.Since(killed)

	restarted := time.Now()
	d2 := startDaemon(t, base)
	ok, done := poll(30*time.Second, func() bool { return bird.Established() && !bird.GracefulRestartActive() })
	if !ok {
		out, _ := bird.Run("show", "protocols", "all", "kapkan")
		t.Fatalf("BIRD's graceful restart did not end (End-of-RIB) within 30 s of the restart:\n%s\ndaemon log:\n%s", out, d2.log())
	}
	after, _ := birdHolds(bird)
	for _, n := range []string{longBlackhole, birdFlowSpec} {
		r, ok := after[n]
		switch {
		case !ok:
			t.Errorf("BIRD lost %s across the restart; it holds %v", n, after)
		case r.Since != before[n].Since:
			t.Errorf("%s was withdrawn and announced again (imported at %s, then at %s); want it kept and refreshed", n, before[n].Since, r.Since)
		}
	}
	if _, ok := after[shortBlackhole]; ok {
		t.Errorf("BIRD still holds %s, whose TTL ran out during the restart", shortBlackhole)
	}
	if !strings.Contains(d2.log(), `"msg":"mitigations restored from the state file","actions":2`) {
		t.Errorf("the daemon did not restore two actions; its log:\n%s", d2.log())
	}
	t.Logf("BIRD held the 3 routes stale for %.1f s between SIGKILL and the restart (%d samples); graceful restart ended (End-of-RIB, the expired route withdrawn) %.0f ms after the new process started",
		held.Seconds(), samples, done.Sub(restarted).Seconds()*1000)
}

// TestGracefulRestartTimeRunsOut: Kapkan stays away longer than its
// graceful_restart_time: BIRD drops the routes when that time has passed,
// not before.
func TestGracefulRestartTimeRunsOut(t *testing.T) {
	bird := testutil.StartBIRD(t, testutil.BIRDConfig{Neighbor: "127.0.0.1", NeighborASN: 65010, GracefulRestartTime: time.Minute})
	d := startDaemon(t, grBase(t, t.TempDir(), bird.Address, bird.BGPPort, "        graceful_restart_time: 3s\n"))
	bird.WaitEstablished(30 * time.Second)
	putInForce(t, d)
	if ok, _ := poll(10*time.Second, func() bool { _, ok := birdHolds(bird); return ok }); !ok {
		t.Fatal("BIRD does not hold the routes")
	}
	d.kill(t)
	killed := time.Now()
	ok, gone := poll(15*time.Second, func() bool { return len(bird.Routes("master4")) == 0 && len(bird.Routes("flowtab4")) == 0 })
	if !ok {
		t.Fatalf("BIRD still holds %v 15 s after the kill, with a restart time of 3 s", bird.Routes("master4"))
	}
	held := gone.Sub(killed)
	if held < 2500*time.Millisecond || held > 5*time.Second {
		t.Errorf("BIRD dropped the routes %.1f s after the kill; want about 3 s (graceful_restart_time)", held.Seconds())
	}
	t.Logf("graceful_restart_time 3s: BIRD dropped the stale routes %.2f s after SIGKILL", held.Seconds())
}

// TestLongLivedGracefulRestartBIRD: with long-lived graceful restart
// offered and taken by BIRD, the routes outlive the 2 s restart time,
// tagged LLGR_STALE, and are fresh (untagged) once Kapkan is back.
func TestLongLivedGracefulRestartBIRD(t *testing.T) {
	bird := testutil.StartBIRD(t, testutil.BIRDConfig{Neighbor: "127.0.0.1", NeighborASN: 65010,
		GracefulRestartTime: time.Minute, LongLived: true})
	base := grBase(t, t.TempDir(), bird.Address, bird.BGPPort, "        graceful_restart_time: 2s\n        long_lived_stale_time: 1h\n")
	d := startDaemon(t, base)
	bird.WaitEstablished(30 * time.Second)
	shortExpires := putInForce(t, d)
	if ok, _ := poll(10*time.Second, func() bool { _, ok := birdHolds(bird); return ok }); !ok {
		t.Fatal("BIRD does not hold the routes")
	}
	d.kill(t)
	killed := time.Now()
	ok, tagged := poll(10*time.Second, func() bool {
		r := bird.Routes("master4")[longBlackhole]
		return r.LLGRStale
	})
	if !ok {
		t.Fatalf("%s not tagged LLGR_STALE 10 s after the kill: BIRD holds %v", longBlackhole, bird.Routes("master4"))
	}
	if r, ok := bird.Routes("flowtab4")[birdFlowSpec]; !ok || !r.LLGRStale {
		t.Errorf("the FlowSpec rule is not kept as LLGR_STALE: %v", bird.Routes("flowtab4"))
	}
	// Kapkan stays away until the short TTL has run out: all three
	// routes are still held, long-lived stale.
	time.Sleep(time.Until(shortExpires.Add(500 * time.Millisecond)))
	if routes, all := birdHolds(bird); !all {
		t.Fatalf("%.1f s after the kill BIRD holds %v; want the three routes kept (long-lived)", time.Since(killed).Seconds(), routes)
	}
	d2 := startDaemon(t, base)
	if ok, _ := poll(30*time.Second, func() bool { return bird.Established() && !bird.GracefulRestartActive() }); !ok {
		t.Fatalf("graceful restart did not end within 30 s; daemon log:\n%s", d2.log())
	}
	routes, _ := birdHolds(bird)
	for _, n := range []string{longBlackhole, birdFlowSpec} {
		if r, ok := routes[n]; !ok || r.LLGRStale {
			t.Errorf("%s after the restart: %+v (held %v), want it fresh", n, r, ok)
		}
	}
	if _, ok := routes[shortBlackhole]; ok {
		t.Errorf("BIRD still holds %s, whose TTL ran out during the restart", shortBlackhole)
	}
	t.Logf("long-lived graceful restart: routes tagged LLGR_STALE %.1f s after SIGKILL (restart time 2 s), fresh again after the restart",
		tagged.Sub(killed).Seconds())
}

// TestGracefulRestartGoBGPD: the same crash with gobgpd as the router
// (graceful restart helper): it keeps the routes marked stale in its RIB
// while Kapkan is down, then holds them not stale, and drops the one whose
// TTL ran out, once Kapkan's End-of-RIB arrives.
func TestGracefulRestartGoBGPD(t *testing.T) {
	router := testutil.StartGoBGPD(t, testutil.GoBGPNeighbor{Address: "127.0.0.1", ASN: 65010,
		Families: []string{"ipv4-unicast", "ipv4-flowspec"}, GracefulRestart: true})
	base := grBase(t, t.TempDir(), "127.0.0.1", router.BGPPort, "        graceful_restart_time: 60s\n")
	d := startDaemon(t, base)
	router.WaitEstablished("127.0.0.1", 30*time.Second)
	shortExpires := putInForce(t, d)
	rib := func() map[string]testutil.RIBPath {
		m := router.RIB("ipv4")
		for k, v := range router.RIB("ipv4-flowspec") {
			m[k] = v
		}
		return m
	}
	if ok, _ := poll(10*time.Second, func() bool { return len(rib()) == 3 }); !ok {
		t.Fatalf("gobgpd does not hold the three routes: %v", rib())
	}
	before := rib()
	d.kill(t)
	killed := time.Now()
	for time.Now().Before(shortExpires.Add(time.Second)) {
		m := rib()
		stale := 0
		for _, p := range m {
			if p.Stale {
				stale++
			}
		}
		// The session goes down a moment after the kill: the routes are
		// marked stale then.
		if len(m) != 3 || (time.Since(killed) > time.Second && stale != 3) {
			t.Fatalf("%.1f s after the kill gobgpd holds %+v; want the three routes, stale", time.Since(killed).Seconds(), m)
		}
		time.Sleep(200 * time.Millisecond)
	}
	held := time.Since(killed)
	restarted := time.Now()
	d2 := startDaemon(t, base)
	want := func(m map[string]testutil.RIBPath) bool {
		l, okl := m[longBlackhole]
		f, okf := m[gobgpFlowSpec]
		_, short := m[shortBlackhole]
		return okl && okf && !l.Stale && !f.Stale && !short
	}
	ok, done := poll(30*time.Second, func() bool { return want(rib()) })
	if !ok {
		t.Fatalf("gobgpd holds %+v 30 s after the restart; want %s and the FlowSpec rule not stale, %s gone; gobgpd log:\n%s\ndaemon log:\n%s",
			rib(), longBlackhole, shortBlackhole, router.Log(), d2.log())
	}
	after := rib()
	for _, n := range []string{longBlackhole, gobgpFlowSpec} {
		if after[n].Age != before[n].Age {
			t.Logf("gobgpd took %s in again (age %d, then %d)", n, before[n].Age, after[n].Age)
		}
	}
	t.Logf("gobgpd held the 3 routes stale for %.1f s between SIGKILL and the restart; fresh, the expired one dropped, %.0f ms after the new process started",
		held.Seconds(), done.Sub(restarted).Seconds()*1000)
}

// md5Failures reads the kernel's count of TCP segments refused for a
// wrong TCP-MD5 signature (TcpExt TCPMD5Failure).
func md5Failures(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		for j, n := range names {
			if n == "TCPMD5Failure" && j < len(values) {
				var v int
				fmt.Sscan(values[j], &v)
				return v
			}
		}
	}
	t.Fatal("no TCPMD5Failure in /proc/net/netstat")
	return 0
}

// TestMD5Password: the session with a BIRD configured with a TCP-MD5
// password comes up when Kapkan's password_file holds the same password
// and does not with another one (the kernel refuses the segments); the
// password is in neither the daemon's log nor its API.
func TestMD5Password(t *testing.T) {
	const secret = "md5-Pa55-for-e2e"
	for _, tc := range []struct {
		name, password string
		up             bool
	}{
		{"same password", secret, true},
		{"wrong password", "not-the-" + secret, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bird := testutil.StartBIRD(t, testutil.BIRDConfig{Neighbor: "127.0.0.1", NeighborASN: 65010, Password: secret})
			dir := t.TempDir()
			pwFile := filepath.Join(dir, "bgp.password")
			if err := os.WriteFile(pwFile, []byte(tc.password+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			failures := md5Failures(t)
			started := time.Now()
			d := startDaemon(t, grBase(t, dir, bird.Address, bird.BGPPort, fmt.Sprintf("        password_file: %q\n", pwFile)))
			up, at := poll(10*time.Second, bird.Established)
			if up != tc.up {
				out, _ := bird.Run("show", "protocols", "all", "kapkan")
				t.Fatalf("session established %v within 10 s, want %v; birdc:\n%s", up, tc.up, out)
			}
			refused := md5Failures(t) - failures
			if !tc.up && refused == 0 {
				t.Errorf("the kernel counted no TCP-MD5 failure (TcpExt TCPMD5Failure): the session failed for another reason")
			}
			var api bytes.Buffer
			for _, p := range []string{"/api/v1/config", "/api/v1/bgp"} {
				_, body := d.apiCall(t, "GET", p, "")
				api.WriteString(body)
			}
			for where, text := range map[string]string{"log": d.log(), "API": api.String()} {
				if strings.Contains(text, secret) {
					t.Errorf("the password appears in the daemon's %s", where)
				}
			}
			if tc.up {
				t.Logf("MD5 session established %.1f s after the daemon started", at.Sub(started).Seconds())
			} else {
				t.Logf("wrong password: no session in 10 s; the kernel refused %d segments (TcpExt TCPMD5Failure)", refused)
			}
		})
	}
}

// TestPlannedRestartBIRD: a planned restart (SIGTERM, as systemctl
// restart sends, then a new process) lifts no mitigation at BIRD: the
// daemon leaves its session to close with the process, without a
// NOTIFICATION (which would make BIRD drop the routes at once), so BIRD
// keeps the routes as stale and the new process refreshes them.
func TestPlannedRestartBIRD(t *testing.T) {
	bird := testutil.StartBIRD(t, testutil.BIRDConfig{Neighbor: "127.0.0.1", NeighborASN: 65010, GracefulRestartTime: time.Minute})
	base := grBase(t, t.TempDir(), bird.Address, bird.BGPPort, "")
	d := startDaemon(t, base)
	bird.WaitEstablished(30 * time.Second)
	putInForce(t, d)
	var before map[string]testutil.Route
	if ok, _ := poll(10*time.Second, func() bool { var ok bool; before, ok = birdHolds(bird); return ok }); !ok {
		t.Fatalf("BIRD does not hold the three routes: %v", before)
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-d.done
	stopped := time.Now()
	if routes, all := birdHolds(bird); !all || !bird.GracefulRestartActive() {
		out, _ := bird.Run("show", "protocols", "all", "kapkan")
		t.Fatalf("after SIGTERM BIRD holds %v; want the three routes kept as stale; birdc:\n%s", routes, out)
	}
	if !strings.Contains(d.log(), "BGP sessions left to close with the process") {
		t.Errorf("the daemon did not leave its sessions to the process exit; log:\n%s", d.log())
	}
	d2 := startDaemon(t, base)
	ok, done := poll(30*time.Second, func() bool { return bird.Established() && !bird.GracefulRestartActive() })
	if !ok {
		t.Fatalf("graceful restart did not end within 30 s; daemon log:\n%s", d2.log())
	}
	after, _ := birdHolds(bird)
	for _, n := range []string{longBlackhole, birdFlowSpec} {
		if r, ok := after[n]; !ok || r.Since != before[n].Since {
			t.Errorf("%s after the planned restart: %+v (held %v); want it kept since %s", n, r, ok, before[n].Since)
		}
	}
	t.Logf("planned restart: routes held stale by BIRD from the exit to the End-of-RIB of the new process, %.1f s", done.Sub(stopped).Seconds())
}

// TestLongLivedGracefulRestartGoBGPD: gobgpd as a long-lived graceful
// restart helper keeps the routes past the 2 s restart time, tagged
// LLGR_STALE, and holds them fresh (untagged, not stale) once Kapkan is
// back.
func TestLongLivedGracefulRestartGoBGPD(t *testing.T) {
	const llgrStale = 0xFFFF0006 // 65535:6
	router := testutil.StartGoBGPD(t, testutil.GoBGPNeighbor{Address: "127.0.0.1", ASN: 65010,
		Families: []string{"ipv4-unicast", "ipv4-flowspec"}, GracefulRestart: true, LongLived: true})
	base := grBase(t, t.TempDir(), "127.0.0.1", router.BGPPort, "        graceful_restart_time: 2s\n        long_lived_stale_time: 1h\n")
	d := startDaemon(t, base)
	router.WaitEstablished("127.0.0.1", 30*time.Second)
	putInForce(t, d)
	if ok, _ := poll(10*time.Second, func() bool { return len(router.RIB("ipv4")) == 2 && len(router.RIB("ipv4-flowspec")) == 1 }); !ok {
		t.Fatalf("gobgpd does not hold the routes: %v %v", router.RIB("ipv4"), router.RIB("ipv4-flowspec"))
	}
	d.kill(t)
	killed := time.Now()
	tagged := func(p testutil.RIBPath) bool { return slices.Contains(p.Communities, llgrStale) }
	ok, at := poll(10*time.Second, func() bool { return tagged(router.RIB("ipv4")[longBlackhole]) })
	if !ok {
		t.Fatalf("%s not tagged LLGR_STALE 10 s after the kill: gobgpd holds %+v; gobgpd log:\n%s", longBlackhole, router.RIB("ipv4"), router.Log())
	}
	if p, ok := router.RIB("ipv4-flowspec")[gobgpFlowSpec]; !ok || !tagged(p) {
		t.Errorf("the FlowSpec rule is not kept as LLGR_STALE: %+v", router.RIB("ipv4-flowspec"))
	}
	d2 := startDaemon(t, base)
	fresh := func() bool {
		l, okl := router.RIB("ipv4")[longBlackhole]
		f, okf := router.RIB("ipv4-flowspec")[gobgpFlowSpec]
		return okl && okf && !l.Stale && !f.Stale && !tagged(l) && !tagged(f)
	}
	if ok, _ := poll(30*time.Second, fresh); !ok {
		t.Fatalf("gobgpd holds %+v %+v 30 s after the restart, want them fresh; daemon log:\n%s", router.RIB("ipv4"), router.RIB("ipv4-flowspec"), d2.log())
	}
	t.Logf("gobgpd: routes tagged LLGR_STALE %.1f s after SIGKILL (restart time 2 s), fresh after the restart", at.Sub(killed).Seconds())
}
