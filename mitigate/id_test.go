package mitigate

import (
	"errors"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/flowspec"
)

// TestActionIDRoundTrip: every kind and address family reads back as it
// was written, and the ID needs no escaping in a URL path.
func TestActionIDRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		kind   flowspec.Action
		target string
		want   string
	}{
		{flowspec.Blackhole, "203.0.113.5/32", "blackhole_203.0.113.5_32"},
		{flowspec.Discard, "203.0.113.0/24", "flowspec-discard_203.0.113.0_24"},
		{flowspec.RateLimit, "2001:db8::1/128", "flowspec-ratelimit_2001:db8::1_128"},
	} {
		id := ActionID(tc.kind, netip.MustParsePrefix(tc.target))
		if id != tc.want {
			t.Errorf("ActionID(%s, %s) = %q, want %q", tc.kind, tc.target, id, tc.want)
		}
		if esc := url.PathEscape(id); esc != id {
			t.Errorf("%q escapes to %q in a path", id, esc)
		}
		kind, p, err := ParseActionID(id)
		if err != nil || kind != tc.kind || p.String() != tc.target {
			t.Errorf("ParseActionID(%q) = %s %s %v", id, kind, p, err)
		}
	}
}

// TestParseActionIDInvalid: malformed IDs are ErrInvalid, never a panic
// or another action.
func TestParseActionIDInvalid(t *testing.T) {
	for _, id := range []string{"", "blackhole", "blackhole_203.0.113.5", "nuke_203.0.113.5_32", "_203.0.113.5_32",
		"blackhole_203.0.113.x_32", "blackhole_203.0.113.5_33", "blackhole_203.0.113.5_-1", "blackhole_203.0.113.5_032",
		"blackhole_203.0.113.5_24", "blackhole_203.0.113.5_32_x"} {
		if _, _, err := ParseActionID(id); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseActionID(%q): %v, want ErrInvalid", id, err)
		}
	}
}

// TestUnbanID: Active shows the ID, UnbanID withdraws that action and no
// other (the discard on the same target stays), a second call finds none.
func TestUnbanID(t *testing.T) {
	f := newFixture(t, "", nil)
	target := netip.MustParsePrefix("203.0.113.5/32")
	if _, err := f.m.Ban(Request{Kind: flowspec.Blackhole, Target: target}, flowspec.Match{}, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.Ban(Request{Kind: flowspec.Discard, Target: target}, udp53, t0); err != nil {
		t.Fatal(err)
	}
	f.m.Flush()
	act := f.m.Active()
	if len(act) != 2 || act[0].ID != "flowspec-discard_203.0.113.5_32" || act[1].ID != "blackhole_203.0.113.5_32" {
		t.Fatalf("active: %+v", act)
	}
	n, err := f.m.UnbanID(act[1].ID, t0.Add(time.Minute), "manual unban")
	if n != 1 || err != nil {
		t.Fatalf("UnbanID: %d %v", n, err)
	}
	f.m.Flush()
	want(t, f.ann.list(), "announce "+bhKey, "announce "+fd, "withdraw "+bhKey)
	if n, err := f.m.UnbanID(act[1].ID, t0.Add(time.Minute), "again"); n != 0 || err != nil {
		t.Errorf("second UnbanID: %d %v, want 0 and no error", n, err)
	}
	if n, err := f.m.UnbanID("blackhole_203.0.113.5", t0, "bad"); n != 0 || !errors.Is(err, ErrInvalid) {
		t.Errorf("malformed: %d %v", n, err)
	}
	if act := f.m.Active(); len(act) != 1 || act[0].ID != "flowspec-discard_203.0.113.5_32" {
		t.Errorf("left in force: %+v", act)
	}
}
