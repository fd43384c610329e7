package main

import (
	"bytes"
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kapkan-io/kapkan/api"
	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/internal/testutil"
)

// TestHelpExitsZero: -h of every subcommand prints its usage once and
// exits 0.
func TestHelpExitsZero(t *testing.T) {
	for name := range commands {
		for _, flagName := range []string{"-h", "--help"} {
			var out, errb bytes.Buffer
			code := realMain([]string{name, flagName}, &out, &errb)
			all := out.String() + errb.String()
			if code != 0 {
				t.Errorf("kapkan %s %s: exit %d, want 0", name, flagName, code)
			}
			if n := strings.Count(all, "usage: kapkan "+name); n != 1 {
				t.Errorf("kapkan %s %s: usage printed %d times:\n%s", name, flagName, n, all)
			}
		}
	}
	// A bad flag is still a usage error.
	var out, errb bytes.Buffer
	if code := realMain([]string{"test", "--nosuch"}, &out, &errb); code != 2 || strings.Count(errb.String(), "usage: kapkan test") != 1 {
		t.Errorf("kapkan test --nosuch: exit %d, stderr:\n%s", code, errb.String())
	}
}

// TestAttackIPv6Target: an IPv6 target is written in brackets, and one
// without them gets a hint.
func TestAttackIPv6Target(t *testing.T) {
	a, err := parseAttack("syn-flood@[2001:db8::1]:1000:0s:1s")
	if err != nil || a.Target != netip.MustParseAddr("2001:db8::1") || a.PPS != 1000 {
		t.Errorf("bracketed: %+v, %v", a, err)
	}
	_, err = parseAttack("syn-flood@2001:db8::1:1000:0s:1s")
	if err == nil || !strings.Contains(err.Error(), "[2001:db8::1]") {
		t.Errorf("unbracketed IPv6: %v, want a hint with [2001:db8::1]", err)
	}
}

// TestBanMatchErrors: a bad FlowSpec match is explained in words, not with
// the parser's internals.
func TestBanMatchErrors(t *testing.T) {
	for _, tc := range []struct {
		match flowspec.Match
		want  string
	}{
		{flowspec.Match{DstPorts: []string{"99999"}}, "port 99999 is out of range 0-65535"},
		{flowspec.Match{SrcPorts: []string{"http"}}, `port "http" is not a number`},
		{flowspec.Match{Protocol: "xyz"}, `protocol "xyz" (want tcp, udp, icmp, icmpv6 or a number 0-255)`},
	} {
		m := tc.match
		err := checkBan(api.BanRequest{Target: "203.0.113.1", Action: "flowspec-discard", Match: &m})
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "strconv") {
			t.Errorf("%+v: %v, want %q", tc.match, err, tc.want)
		}
	}
}

// TestReplayWithoutConfigSaysSo: with the defaults no prefix is protected,
// so replay cannot detect anything; it says so rather than print nothing.
func TestReplayWithoutConfigSaysSo(t *testing.T) {
	capture := filepath.Join(testutil.RepoRoot(t), "testdata", "captures", "sflow-udp-flood", "capture.pcap")
	var out, errb bytes.Buffer
	if code := cmdReplay(context.Background(), []string{capture}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "no prefix is protected") {
		t.Errorf("stderr lacks a warning that nothing is protected:\n%s", errb.String())
	}
	errb.Reset()
	cfg := filepath.Join(testutil.RepoRoot(t), "testdata", "captures", "sflow-udp-flood", "kapkan.yaml")
	if code := cmdReplay(context.Background(), []string{"--config", cfg, capture}, &out, &errb); code != 0 || strings.Contains(errb.String(), "no prefix is protected") {
		t.Errorf("with a config: exit %d, stderr:\n%s", code, errb.String())
	}
}
