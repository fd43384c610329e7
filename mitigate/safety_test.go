package mitigate

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/flowspec"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func guard(t *testing.T, mod func(*Config)) *Guard {
	t.Helper()
	cfg := Config{
		DryRun:        true,
		Protected:     []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8:1::/48")},
		Allowlist:     []netip.Prefix{netip.MustParsePrefix("203.0.113.250/32")},
		MaxBlackholes: 3, MaxFlowSpec: 3, MaxNewPerMinute: 5,
		TTL: 10 * time.Minute, MaxTTL: time.Hour, PenaltyWindow: 30 * time.Minute, PenaltyFactor: 2,
	}
	if mod != nil {
		mod(&cfg)
	}
	g, err := NewGuard(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func bh(s string) Request { return Request{Kind: flowspec.Blackhole, Target: netip.MustParsePrefix(s)} }

func TestSafetyRules(t *testing.T) {
	tests := []struct {
		name string
		req  Request
		want error
	}{
		{"a protected address", bh("203.0.113.10/32"), nil},
		{"a protected IPv6 address", bh("2001:db8:1::10/128"), nil},
		{"a flood aimed at an allow-listed address", bh("203.0.113.250/32"), ErrAllowlisted},
		{"an address outside the protected prefixes", bh("198.51.100.10/32"), ErrNotProtected},
		{"next to a protected prefix", bh("203.0.114.0/32"), ErrNotProtected},
		{"a blackhole of a whole prefix", bh("203.0.113.0/25"), ErrPrefixTooShort},
		{"a blackhole wider than protected", bh("203.0.112.0/23"), ErrNotProtected},
		{"a blackhole of a prefix holding an allow-listed address", bh("203.0.113.0/24"), ErrPrefixTooShort},
		{"FlowSpec on a prefix holding an allow-listed address", Request{Kind: flowspec.Discard, Target: netip.MustParsePrefix("203.0.113.0/24")}, ErrAllowlisted},
		{"FlowSpec on a protected prefix", Request{Kind: flowspec.Discard, Target: netip.MustParsePrefix("203.0.113.0/25")}, nil},
		{"a rate limit without a rate", Request{Kind: flowspec.RateLimit, Target: netip.MustParsePrefix("203.0.113.9/32")}, ErrInvalid},
		{"no target", Request{Kind: flowspec.Blackhole}, ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := guard(t, nil)
			a, err := g.Check(tc.req, t0)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if err == nil && (!a.DryRun || a.TTL != 10*time.Minute || !a.Expires.Equal(t0.Add(10*time.Minute))) {
				t.Errorf("action %+v: want dry-run, the default TTL", a)
			}
			if err != nil && len(g.Active(t0)) != 0 {
				t.Error("a refused action is active")
			}
		})
	}
}

func TestCarpetBombHitsTheCaps(t *testing.T) {
	g := guard(t, func(c *Config) { c.MaxNewPerMinute = 100 })
	var refused []error
	for i := 1; i <= 10; i++ {
		if _, err := g.Check(bh(fmt.Sprintf("203.0.113.%d/32", i)), t0); err != nil {
			refused = append(refused, err)
		}
	}
	if len(g.Active(t0)) != 3 || len(refused) != 7 || !errors.Is(refused[0], ErrBlackholeCap) {
		t.Fatalf("%d active, refused %v", len(g.Active(t0)), refused)
	}
	// FlowSpec has its own cap.
	for i := 1; i <= 4; i++ {
		_, err := g.Check(Request{Kind: flowspec.Discard, Target: netip.MustParsePrefix(fmt.Sprintf("203.0.113.%d/32", 100+i))}, t0)
		if (i <= 3) != (err == nil) {
			t.Fatalf("flowspec %d: %v", i, err)
		}
		if i == 4 && !errors.Is(err, ErrFlowSpecCap) {
			t.Fatalf("flowspec cap: %v", err)
		}
	}
}

func TestNewActionsPerMinute(t *testing.T) {
	g := guard(t, func(c *Config) { c.MaxBlackholes, c.MaxNewPerMinute = 100, 2 })
	for i, want := range []error{nil, nil, ErrRateLimited} {
		if _, err := g.Check(bh(fmt.Sprintf("203.0.113.%d/32", i+1)), t0.Add(time.Duration(i)*time.Second)); !errors.Is(err, want) {
			t.Fatalf("action %d: %v, want %v", i, err, want)
		}
	}
	if _, err := g.Check(bh("203.0.113.9/32"), t0.Add(61*time.Second)); err != nil {
		t.Fatalf("a minute later: %v", err)
	}
}

func TestNeverTwiceAndTTL(t *testing.T) {
	g := guard(t, nil)
	a1, _ := g.Check(bh("203.0.113.10/32"), t0)
	a2, err := g.Check(bh("203.0.113.10/32"), t0.Add(time.Minute))
	if err != nil || a2 != a1 || len(g.Active(t0.Add(time.Minute))) != 1 {
		t.Fatalf("second request: %+v %v", a2, err)
	}
	if n := len(g.Due(t0.Add(10*time.Minute - time.Second))); n != 0 {
		t.Fatalf("%d actions due before their TTL", n)
	}
	if due := g.Due(t0.Add(10 * time.Minute)); len(due) != 1 || due[0] != a1 {
		t.Fatalf("due at the TTL: %+v", due)
	}
	// Renewed while its attack runs on: a new TTL from now.
	if r, ok := g.Renew(flowspec.Blackhole, netip.MustParsePrefix("203.0.113.10/32"), t0.Add(10*time.Minute)); !ok || !r.Expires.Equal(t0.Add(20*time.Minute)) {
		t.Fatalf("renew: %+v %v", r, ok)
	}
	// A requested TTL is clamped to MaxTTL.
	a, _ := g.Check(Request{Kind: flowspec.Blackhole, Target: netip.MustParsePrefix("203.0.113.11/32"), TTL: 24 * time.Hour}, t0)
	if a.TTL != time.Hour {
		t.Fatalf("TTL %s, want the 1h maximum", a.TTL)
	}
}

// TestFlapDamping: a target that comes back within the penalty window gets
// a longer TTL each time (flapping traffic gives no announce/withdraw
// storm), up to MaxTTL; after a quiet window it starts over.
func TestFlapDamping(t *testing.T) {
	g := guard(t, func(c *Config) { c.MaxNewPerMinute = 100 })
	now := t0
	var ttls []time.Duration
	for range 4 {
		a, err := g.Check(bh("203.0.113.10/32"), now)
		if err != nil {
			t.Fatal(err)
		}
		ttls = append(ttls, a.TTL)
		now = now.Add(a.TTL)
		g.Release(flowspec.Blackhole, a.Target, now) // ran out, the attack is over
		now = now.Add(time.Minute)
	}
	want := []time.Duration{10 * time.Minute, 20 * time.Minute, 40 * time.Minute, time.Hour}
	if fmt.Sprint(ttls) != fmt.Sprint(want) {
		t.Fatalf("TTLs %v, want %v", ttls, want)
	}
	a, _ := g.Check(bh("203.0.113.10/32"), now.Add(2*time.Hour))
	if a.TTL != 10*time.Minute {
		t.Fatalf("after a quiet window: %s, want the default again", a.TTL)
	}
}

func TestReleaseAndDryRunOff(t *testing.T) {
	g := guard(t, func(c *Config) { c.DryRun = false })
	a, _ := g.Check(bh("203.0.113.10/32"), t0)
	if a.DryRun {
		t.Fatal("dry-run set although the configuration turned it off")
	}
	if !g.Release(flowspec.Blackhole, netip.MustParsePrefix("203.0.113.10/32"), t0.Add(time.Minute)) || len(g.Active(t0.Add(time.Minute))) != 0 {
		t.Fatal("release")
	}
	if g.Release(flowspec.Blackhole, netip.MustParsePrefix("203.0.113.10/32"), t0) {
		t.Fatal("released twice")
	}
	if _, err := NewGuard(Config{TTL: time.Hour, MaxTTL: time.Minute}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a TTL above its maximum: %v", err)
	}
}

// TestRestoreChecksAgain: an action kept across a restart comes back with
// the expiry it had, unless it expired meanwhile or today's configuration
// no longer allows it (the address was allow-listed since).
func TestRestoreChecksAgain(t *testing.T) {
	g := guard(t, nil)
	a, err := g.Check(bh("203.0.113.10/32"), t0)
	if err != nil {
		t.Fatal(err)
	}
	// Restart 4 minutes into the 10-minute TTL.
	g2 := guard(t, func(c *Config) { c.DryRun = false })
	r, err := g2.Restore(a, t0.Add(4*time.Minute))
	if err != nil || !r.Expires.Equal(a.Expires) || r.DryRun {
		t.Fatalf("restore: %+v %v", r, err)
	}
	if _, err := g2.Restore(a, t0.Add(10*time.Minute)); err == nil {
		t.Fatal("an expired action was restored")
	}
	g3 := guard(t, func(c *Config) { c.Allowlist = append(c.Allowlist, netip.MustParsePrefix("203.0.113.0/28")) })
	if _, err := g3.Restore(a, t0.Add(time.Minute)); !errors.Is(err, ErrAllowlisted) {
		t.Fatalf("restored an address allow-listed since: %v", err)
	}
	g4 := guard(t, func(c *Config) { c.Protected = c.Protected[1:] })
	if _, err := g4.Restore(a, t0.Add(time.Minute)); !errors.Is(err, ErrNotProtected) {
		t.Fatalf("restored an address no longer protected: %v", err)
	}
	g5 := guard(t, func(c *Config) { c.MaxBlackholes = 0 })
	if _, err := g5.Restore(a, t0.Add(time.Minute)); !errors.Is(err, ErrBlackholeCap) {
		t.Fatalf("restored over the blackhole cap: %v", err)
	}
}
