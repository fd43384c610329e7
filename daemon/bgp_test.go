package daemon_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/daemon/daemontest"
	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/ingest/demo"
	"github.com/kapkan-io/kapkan/internal/testutil"
)

// TestRouterRestartWithActionInForce: the daemon's default ladder puts a
// FlowSpec rule in force at a real gobgpd; the router stops and starts
// again. The rule is announced again, kapkan_bgp_session_up shows down and
// up, the down transition is counted, and bgp_session_down / _up events are
// published on the daemon's event ring.
func TestRouterRestartWithActionInForce(t *testing.T) {
	router := testutil.StartGoBGPD(t, testutil.GoBGPNeighbor{Address: "127.0.0.1", ASN: 65010,
		Families: []string{"ipv4-unicast", "ipv4-flowspec"}})
	cfg := daemontest.Config(t, daemontest.BGPMitigation(router.BGPPort, ""))
	d, logs := daemontest.Start(t, cfg, "")
	rd := d.Events().NewReader("test", 1)
	router.WaitEstablished("127.0.0.1", 30*time.Second)
	daemontest.SendAttack(t, d.FlowAddrs()[0], demo.DNSAmp, netip.MustParseAddr("203.0.113.5"), 3*time.Second, 5)
	want := "[destination: 203.0.113.5/32][protocol: ==udp][source-port: ==53]"
	inForce := func() bool { _, ok := router.AdjIn("127.0.0.1", "ipv4-flowspec")[want]; return ok }
	waitFor(t, 15*time.Second, inForce, func() string { return "no FlowSpec rule at the router; log:\n" + logs.All() })
	up := func() float64 {
		return testutil.MetricValue(t, d.Registry(), "kapkan_bgp_session_up", map[string]string{"peer": "127.0.0.1"})
	}
	if up() != 1 {
		t.Fatalf("kapkan_bgp_session_up = %v with the session established", up())
	}
	// The API shows the session and what was sent to it, and the daemon is
	// ready; once the router stops it is not.
	api := "http://" + d.APIAddr().String()
	var bgp struct {
		Sessions []struct {
			Peer       string   `json:"peer"`
			State      string   `json:"state"`
			RoutesSent int      `json:"routes_sent"`
			Sent       []string `json:"sent"`
		} `json:"sessions"`
	}
	getJSON(t, api+"/api/v1/bgp", &bgp)
	if len(bgp.Sessions) != 1 || bgp.Sessions[0].Peer != "127.0.0.1" || bgp.Sessions[0].State != "established" || bgp.Sessions[0].RoutesSent < 1 {
		t.Errorf("/api/v1/bgp: %+v, want the peer established with the route sent", bgp)
	} else if s := bgp.Sessions[0]; len(s.Sent) != s.RoutesSent || !slices.Contains(s.Sent, "ipv4-flowspec "+want) {
		t.Errorf("/api/v1/bgp sent %q (%d routes sent), want %q listed", s.Sent, s.RoutesSent, want)
	}
	if code := status(t, api+"/readyz"); code != 200 {
		t.Errorf("/readyz %d with every session up", code)
	}

	router.Stop()
	waitFor(t, 15*time.Second, func() bool { return up() == 0 }, func() string { return "session still up after the router stopped" })
	if code := status(t, api+"/readyz"); code != 503 {
		t.Errorf("/readyz %d with the session down, want 503", code)
	}
	router.Start()
	router.WaitEstablished("127.0.0.1", 30*time.Second)
	waitFor(t, 15*time.Second, inForce, func() string {
		return fmt.Sprintf("the FlowSpec rule was not announced again: router holds %v", router.AdjIn("127.0.0.1", "ipv4-flowspec"))
	})
	waitFor(t, 5*time.Second, func() bool { return up() == 1 }, func() string { return "kapkan_bgp_session_up not back to 1" })
	if n := testutil.MetricValue(t, d.Registry(), "kapkan_bgp_session_transitions_total", map[string]string{"peer": "127.0.0.1", "state": "down"}); n < 1 {
		t.Errorf("session down not counted (kapkan_bgp_session_transitions_total{state=down} = %v)", n)
	}
	// The events, in order: up (first session), down, up again.
	var got []events.Kind
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for len(got) < 3 {
		e, err := rd.Next(ctx)
		if err != nil {
			break
		}
		if e.BGP != nil && e.BGP.Peer == "127.0.0.1" {
			got = append(got, e.Kind)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint([]events.Kind{events.BGPSessionUp, events.BGPSessionDown, events.BGPSessionUp}) {
		t.Errorf("bgp events %v, want up, down, up", got)
	}
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool, why func() string) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal(why())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// status is the HTTP status of a GET of url.
func status(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
