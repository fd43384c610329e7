package daemon

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/kapkan-io/kapkan/config"
)

func TestDemoSendsOnlyToLoopback(t *testing.T) {
	for _, tc := range []struct {
		listen, want string
		ok           bool
	}{
		{":6343", "127.0.0.1:6343", true},
		{"0.0.0.0:6343", "127.0.0.1:6343", true},
		{"127.0.0.1:7000", "127.0.0.1:7000", true},
		{"[::1]:7000", "[::1]:7000", true},
		{"[::]:7000", "[::1]:7000", true},
		{"192.0.2.10:6343", "", false},
		{"", "", false},
	} {
		got, err := demoDestination(tc.listen)
		if (err == nil) != tc.ok || (tc.ok && got.String() != tc.want) {
			t.Errorf("%q: got %v, %v; want %q ok=%v", tc.listen, got, err, tc.want, tc.ok)
		}
	}
}

func TestDemoHostgroup(t *testing.T) {
	for _, c := range []struct {
		name  string
		have  []config.Hostgroup // already configured
		wantN int                // hostgroups after
		want  map[string]string  // name → prefixes of the added ones
	}{
		{"defaults", nil, 2, map[string]string{"demo": "[203.0.113.0/24 2001:db8:1::/48]", "demo-carpet": "[198.51.100.0/24]"}},
		{"the IPv4 prefix already covered", []config.Hostgroup{{Name: "mine", Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.128/25")},
			Thresholds: config.Thresholds{Incoming: config.ThresholdSet{PPS: 1000}}}},
			3, map[string]string{"demo": "[2001:db8:1::/48]", "demo-carpet": "[198.51.100.0/24]"}},
		{"everything covered", []config.Hostgroup{{Name: "all", Prefixes: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")},
			Thresholds: config.Thresholds{Incoming: config.ThresholdSet{PPS: 1000}}}},
			1, map[string]string{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Hostgroups = c.have
			AddDemoHostgroup(cfg)
			if len(cfg.Hostgroups) != c.wantN {
				t.Fatalf("%d hostgroups %+v, want %d", len(cfg.Hostgroups), cfg.Hostgroups, c.wantN)
			}
			for _, hg := range cfg.Hostgroups[len(c.have):] {
				if got := fmt.Sprint(hg.Prefixes); got != c.want[hg.Name] {
					t.Errorf("hostgroup %s: prefixes %s, want %s", hg.Name, got, c.want[hg.Name])
				}
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			n := len(cfg.Hostgroups)
			AddDemoHostgroup(cfg) // already covered: not added twice
			if len(cfg.Hostgroups) != n {
				t.Fatal("demo hostgroups added twice")
			}
		})
	}
}
