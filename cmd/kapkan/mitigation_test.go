package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/daemon/daemontest"
	"github.com/kapkan-io/kapkan/ingest/demo"
	"github.com/kapkan-io/kapkan/internal/testutil"
)

// TestDaemonMitigatesThroughBGP is the whole path on loopback: sFlow
// datagrams of a DNS amplification reach the daemon, which detects and
// classifies the attack, and its default ladder's FlowSpec rule reaches a
// real BGP daemon (gobgpd) with the vector as match; an operator then bans
// and unbans an address with `kapkan ban` / `kapkan unban`, and a ban of
// an allow-listed address is refused.
func TestDaemonMitigatesThroughBGP(t *testing.T) {
	router := testutil.StartGoBGPD(t, testutil.GoBGPNeighbor{Address: "127.0.0.1", ASN: 65010,
		Families: []string{"ipv4-unicast", "ipv4-flowspec"}})
	state := filepath.Join(t.TempDir(), "mitigations.json")
	cfg := daemontest.Config(t, daemontest.BGPMitigation(router.BGPPort, state, "203.0.113.250/32"))
	d, logs := daemontest.Start(t, cfg, "")
	router.WaitEstablished("127.0.0.1", 30*time.Second)

	daemontest.SendAttack(t, d.FlowAddrs()[0], demo.DNSAmp, netip.MustParseAddr("203.0.113.5"), 3*time.Second, 5)
	want := "[destination: 203.0.113.5/32][protocol: ==udp][source-port: ==53]"
	waitFor(t, 15*time.Second, func() bool { _, ok := router.AdjIn("127.0.0.1", "ipv4-flowspec")[want]; return ok },
		func() string {
			return fmt.Sprintf("router holds %v; log:\n%s", router.AdjIn("127.0.0.1", "ipv4-flowspec"), logs.All())
		})
	if got := router.AdjIn("127.0.0.1", "ipv4-flowspec")[want]; got.TrafficRate != 0 {
		t.Errorf("flowspec action: %+v, want discard", got)
	}

	// Manual actions through the API, with the CLI.
	api := "http://" + d.APIAddr().String()
	var out, errb bytes.Buffer
	if code := cmdBan(context.Background(), []string{"--api", api, "--token", daemontest.Token, "--ttl", "5m", "--reason", "ticket 42", "203.0.113.9"}, &out, &errb); code != 0 {
		t.Fatalf("ban: %d %s", code, errb.String())
	}
	waitFor(t, 10*time.Second, func() bool { _, ok := router.AdjIn("127.0.0.1", "ipv4")["203.0.113.9/32"]; return ok },
		func() string { return fmt.Sprint(router.AdjIn("127.0.0.1", "ipv4")) })
	errb.Reset()
	if code := cmdBan(context.Background(), []string{"--api", api, "203.0.113.250"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "unauthorized") {
		t.Fatalf("ban without a token: exit %d, %s", code, errb.String())
	}
	errb.Reset()
	t.Setenv("KAPKAN_TOKEN", daemontest.Token) // the flag's default
	if code := cmdBan(context.Background(), []string{"--api", api, "203.0.113.250"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "refused: 203.0.113.250/32: target is in the allow-list") {
		t.Fatalf("ban of an allow-listed address: exit %d, %s", code, errb.String())
	}
	var list struct {
		DryRun      bool `json:"dry_run"`
		Mitigations []struct {
			Kind   string `json:"kind"`
			Target string `json:"target"`
			Reason string `json:"reason"`
		} `json:"mitigations"`
	}
	if err := json.Unmarshal([]byte(testutil.Get(t, api+"/api/v1/mitigations")), &list); err != nil {
		t.Fatal(err)
	}
	if list.DryRun || len(list.Mitigations) != 2 || list.Mitigations[1].Reason != "ticket 42" {
		t.Fatalf("GET /api/v1/mitigations: %+v", list)
	}
	if code := cmdUnban(context.Background(), []string{"--api", api, "203.0.113.9"}, &out, &errb); code != 0 {
		t.Fatalf("unban: %d %s", code, errb.String())
	}
	waitFor(t, 10*time.Second, func() bool { _, ok := router.AdjIn("127.0.0.1", "ipv4")["203.0.113.9/32"]; return !ok },
		func() string { return fmt.Sprint(router.AdjIn("127.0.0.1", "ipv4")) })
	if m := testutil.Get(t, api+"/metrics"); !strings.Contains(m, `kapkan_mitigation_events_total{kind="blackhole",reason="allowlisted",type="refused"} 1`) {
		t.Error("the refused ban was not counted")
	}
}

func waitFor(t *testing.T, timeout time.Duration, ok func() bool, explain func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %s", timeout, explain())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBanArguments: what ban and unban refuse before calling the daemon,
// and a daemon that is not there.
func TestBanArguments(t *testing.T) {
	down := fmt.Sprintf("http://127.0.0.1:%d", testutil.FreePort(t))
	for _, tc := range []struct {
		cmd  string
		args []string
		code int
		msg  string
	}{
		{"ban", nil, 2, "usage"},
		{"ban", []string{"not-an-address"}, 2, "neither an address nor a prefix"},
		{"ban", []string{"--api", down, "--ttl", "soon", "203.0.113.9"}, 2, "not a positive duration"},
		{"ban", []string{"--api", down, "--action", "nuke", "203.0.113.9"}, 2, "nuke"},
		{"ban", []string{"--api", down, "--protocol", "udp", "203.0.113.9"}, 2, "blackhole takes no match"},
		{"ban", []string{"--api", down, "203.0.113.9"}, 1, "is the daemon running"},
		{"unban", []string{"--api", down, "203.0.113.9", "extra"}, 2, "usage"},
		{"unban", []string{"--api", down, "203.0.113.9"}, 1, "is the daemon running"},
	} {
		var out, errb bytes.Buffer
		code := commands[tc.cmd].run(context.Background(), tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(errb.String(), tc.msg) {
			t.Errorf("%s %v: exit %d, %q; want %d and %q", tc.cmd, tc.args, code, errb.String(), tc.code, tc.msg)
		}
	}
}
