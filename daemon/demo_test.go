package daemon

import (
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
	cfg := config.Default()
	AddDemoHostgroup(cfg)
	if len(cfg.Hostgroups) != 1 || cfg.Hostgroups[0].Prefixes[0] != demoPrefix {
		t.Fatalf("hostgroups %+v", cfg.Hostgroups)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	AddDemoHostgroup(cfg) // already covered: not added twice
	if len(cfg.Hostgroups) != 1 {
		t.Fatal("demo hostgroup added twice")
	}
}
