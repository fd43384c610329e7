package mitigate

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kapkan-io/kapkan/flowspec"
)

// recorder is an Announcer that writes down what it was asked.
type recorder struct {
	mu  sync.Mutex
	ops []string
}

func (r *recorder) Announce(rt Route) error { return r.add("announce " + rt.Key()) }
func (r *recorder) Withdraw(rt Route) error { return r.add("withdraw " + rt.Key()) }
func (r *recorder) add(s string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, s)
	return nil
}
func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ops...)
}

type fixture struct {
	m   *Manager
	ann *recorder
	// dry is the announcer in dry-run (ann is then not used).
	dry    *DryRun
	events []Event
	reg    *prometheus.Registry
}

func newFixture(t *testing.T, file string, mod func(*Config)) *fixture {
	t.Helper()
	f := &fixture{ann: &recorder{}, reg: prometheus.NewRegistry()}
	cfg := Config{
		DryRun:        false,
		Protected:     []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8:1::/48")},
		Allowlist:     []netip.Prefix{netip.MustParsePrefix("203.0.113.250/32")},
		MaxBlackholes: 10, MaxFlowSpec: 10, MaxNewPerMinute: 100,
		TTL: 10 * time.Minute, MaxTTL: 2 * time.Hour, PenaltyWindow: time.Hour, PenaltyFactor: 2,
	}
	if mod != nil {
		mod(&cfg)
	}
	var ann Announcer = f.ann
	if cfg.DryRun {
		f.dry = NewDryRun()
		ann = f.dry
	}
	m, err := NewManager(ManagerConfig{Safety: cfg, StateFile: file, Announcer: ann, Registerer: f.reg,
		OnEvent: func(e Event) { f.events = append(f.events, e) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	f.m = m
	return f
}

var udp53 = flowspec.Match{Protocol: "udp", SrcPorts: []string{"53"}}

func decision(id uint64, action flowspec.Action, at time.Time, withdraw, replaced bool) flowspec.Decision {
	d := flowspec.Decision{AttackID: id, Target: netip.MustParsePrefix("203.0.113.5/32"), Ladder: "l", Action: action,
		Withdraw: withdraw, Replaced: replaced, At: at, Reason: "test"}
	if action == flowspec.RateLimit {
		d.RateMbps = 100
	}
	if action != flowspec.Blackhole {
		d.Vector = udp53
	}
	return d
}

func (f *fixture) apply(t *testing.T, ds ...flowspec.Decision) {
	t.Helper()
	for _, d := range ds {
		if err := f.m.Apply(d); err != nil {
			t.Fatal(err)
		}
	}
	f.m.Flush()
}

func want(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("announcer got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

const (
	rl    = "flowspec-ratelimit 203.0.113.5/32 proto udp src-port 53 rate 100Mbps"
	fd    = "flowspec-discard 203.0.113.5/32 proto udp src-port 53"
	bhKey = "blackhole 203.0.113.5/32"
)

// TestLadderThroughManager: each step announced before the one it replaces
// is withdrawn; the last one stays after the attack ends until its TTL.
func TestLadderThroughManager(t *testing.T) {
	f := newFixture(t, "", nil)
	f.apply(t, decision(1, flowspec.RateLimit, t0, false, false))
	f.apply(t, decision(1, flowspec.Discard, t0.Add(30*time.Second), false, false),
		decision(1, flowspec.RateLimit, t0.Add(30*time.Second), true, true))
	f.apply(t, decision(1, flowspec.Blackhole, t0.Add(time.Minute), false, false),
		decision(1, flowspec.Discard, t0.Add(time.Minute), true, true))
	// The attack ends two minutes in: the blackhole stays for its TTL.
	f.apply(t, decision(1, flowspec.Blackhole, t0.Add(2*time.Minute), true, false))
	want(t, f.ann.list(), "announce "+rl, "announce "+fd, "withdraw "+rl, "announce "+bhKey, "withdraw "+fd)
	f.m.Tick(t0.Add(10*time.Minute + 59*time.Second))
	f.m.Flush()
	if len(f.ann.list()) != 5 {
		t.Fatalf("withdrawn before its TTL: %v", f.ann.list())
	}
	f.m.Tick(t0.Add(11 * time.Minute))
	f.m.Flush()
	if got := f.ann.list(); got[len(got)-1] != "withdraw "+bhKey || len(f.m.Active()) != 0 {
		t.Fatalf("after the TTL: %v, active %v", got, f.m.Active())
	}
	if n := testutil.ToFloat64(f.m.active.WithLabelValues("blackhole", "false")); n != 0 {
		t.Fatalf("active gauge %v", n)
	}
}

// TestRunningAttackRenews: the TTL of an action whose attack still runs is
// renewed, not withdrawn.
func TestRunningAttackRenews(t *testing.T) {
	f := newFixture(t, "", nil)
	f.apply(t, decision(1, flowspec.Blackhole, t0, false, false))
	f.m.Tick(t0.Add(10 * time.Minute))
	f.m.Flush()
	want(t, f.ann.list(), "announce "+bhKey)
	if a := f.m.Active(); len(a) != 1 || !a[0].Expires.Equal(t0.Add(20*time.Minute)) {
		t.Fatalf("not renewed: %+v", a)
	}
}

// TestDryRunRecordsTheLadder: in dry-run a full ladder goes through the
// same path as live, to the DryRun announcer, which records what would
// have been sent; events are marked dry-run.
func TestDryRunRecordsTheLadder(t *testing.T) {
	f := newFixture(t, "", func(c *Config) { c.DryRun = true })
	f.apply(t, decision(1, flowspec.RateLimit, t0, false, false))
	f.apply(t, decision(1, flowspec.Discard, t0.Add(30*time.Second), false, false),
		decision(1, flowspec.RateLimit, t0.Add(30*time.Second), true, true))
	f.apply(t, decision(1, flowspec.Blackhole, t0.Add(time.Minute), false, false),
		decision(1, flowspec.Discard, t0.Add(time.Minute), true, true))
	if got := f.dry.Routes(); len(got) != 1 || got[0].Key() != bhKey {
		t.Fatalf("dry-run routes in force %+v, want the blackhole", got)
	}
	f.apply(t, decision(1, flowspec.Blackhole, t0.Add(2*time.Minute), true, false))
	f.m.Tick(t0.Add(time.Hour))
	f.m.Flush()
	var ops []string
	for i, o := range f.dry.Ops() {
		if o.Seq != uint64(i+1) {
			t.Fatalf("op %d has seq %d", i, o.Seq)
		}
		ops = append(ops, map[bool]string{false: "announce ", true: "withdraw "}[o.Withdraw]+o.Route.Key())
	}
	want(t, ops, "announce "+rl, "announce "+fd, "withdraw "+rl, "announce "+bhKey, "withdraw "+fd, "withdraw "+bhKey)
	want(t, f.ann.list()) // the live announcer was never handed to the manager
	if len(f.dry.Routes()) != 0 {
		t.Fatalf("dry-run routes left: %+v", f.dry.Routes())
	}
	if len(f.events) != 6 || f.events[0].Type != EventAnnounce || !f.events[0].DryRun || f.events[5].Type != EventWithdraw {
		t.Fatalf("events %+v", f.events)
	}
}

// TestDryRunNeedsTheDryRunAnnouncer: whatever the caller wires, a manager
// in dry-run cannot reach a real announcer.
func TestDryRunNeedsTheDryRunAnnouncer(t *testing.T) {
	cfg := Config{DryRun: true, TTL: time.Minute, MaxTTL: time.Hour}
	if _, err := NewManager(ManagerConfig{Safety: cfg, Announcer: &recorder{}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("dry-run with a live announcer: %v", err)
	}
	for _, ann := range []Announcer{nil, NewDryRun()} {
		if _, err := NewManager(ManagerConfig{Safety: cfg, Announcer: ann}); err != nil {
			t.Fatalf("dry-run with %T: %v", ann, err)
		}
	}
}

// TestRefusalsAreReported: what the guard refuses is an event, a counter
// with its reason, and an error; never announced.
func TestRefusalsAreReported(t *testing.T) {
	f := newFixture(t, "", nil)
	for _, tc := range []struct{ target, reason string }{
		{"203.0.113.250/32", "allowlisted"}, {"198.51.100.7/32", "not_protected"},
	} {
		d := decision(1, flowspec.Blackhole, t0, false, false)
		d.Target = netip.MustParsePrefix(tc.target)
		if err := f.m.Apply(d); err == nil {
			t.Fatalf("%s accepted", tc.target)
		}
		if n := testutil.ToFloat64(f.m.actions.WithLabelValues("blackhole", EventRefused, tc.reason)); n != 1 {
			t.Fatalf("%s: counter %v", tc.reason, n)
		}
	}
	f.m.Flush()
	want(t, f.ann.list())
	if len(f.events) != 2 || f.events[0].Type != EventRefused || !errors.Is(f.events[0].Err, ErrAllowlisted) {
		t.Fatalf("events %+v", f.events)
	}
}

// TestCarpetBombOverTheCap: 30 addresses at once against a cap of 10.
func TestCarpetBombOverTheCap(t *testing.T) {
	f := newFixture(t, "", nil)
	refused := 0
	for i := range 30 {
		d := decision(uint64(i+1), flowspec.Blackhole, t0, false, false)
		d.Target = netip.MustParsePrefix(fmt.Sprintf("203.0.113.%d/32", i+1))
		if err := f.m.Apply(d); err != nil {
			refused++
		}
	}
	f.m.Flush()
	if len(f.ann.list()) != 10 || refused != 20 || testutil.ToFloat64(f.m.actions.WithLabelValues("blackhole", EventRefused, "blackhole_cap")) != 20 {
		t.Fatalf("%d announced, %d refused", len(f.ann.list()), refused)
	}
}

// TestFlappingTrafficNoStorm: traffic crossing the threshold every minute
// for two hours makes a new attack each minute; the action stays up
// through it (each new attack takes it over) and flap damping doubles its
// TTL each time it comes back (10, 20, 40, 80 minutes), so the routers see
// a handful of changes, not 240.
func TestFlappingTrafficNoStorm(t *testing.T) {
	f := newFixture(t, "", nil)
	now := t0
	for i := range 120 {
		id := uint64(i + 1)
		f.apply(t, decision(id, flowspec.Blackhole, now, false, false))
		now = now.Add(30 * time.Second)
		f.m.Tick(now)
		f.apply(t, decision(id, flowspec.Blackhole, now, true, false))
		now = now.Add(30 * time.Second)
		f.m.Tick(now)
	}
	f.m.Flush()
	ops := f.ann.list()
	if len(ops) > 8 {
		t.Fatalf("%d route changes for a flapping target:\n%s", len(ops), strings.Join(ops, "\n"))
	}
	if len(ops) < 2 {
		t.Fatalf("the action was never renewed nor withdrawn: %v", ops)
	}
}

// TestRestartMidTTL: state survives a restart; what is left of the TTL is
// kept, expired actions are not announced, nothing is announced twice.
func TestRestartMidTTL(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state", "mitigations.json")
	f1 := newFixture(t, file, nil)
	f1.apply(t, decision(1, flowspec.Discard, t0, false, false))
	d := decision(2, flowspec.Blackhole, t0, false, false)
	d.Target = netip.MustParsePrefix("2001:db8:1::9/128")
	f1.apply(t, d)
	if _, err := f1.m.Ban(Request{Kind: flowspec.Blackhole, Target: netip.MustParsePrefix("203.0.113.77/32"), TTL: 2 * time.Minute}, flowspec.Match{}, t0); err != nil {
		t.Fatal(err)
	}
	f1.m.Close()

	// Restart four minutes later: the 2-minute ban expired meanwhile.
	f2 := newFixture(t, file, nil)
	n, err := f2.m.Restore(t0.Add(4 * time.Minute))
	if err != nil || n != 2 {
		t.Fatalf("restored %d: %v", n, err)
	}
	f2.m.Flush()
	want(t, sorted(f2.ann.list()), "announce blackhole 2001:db8:1::9/128", "announce "+fd)
	for _, a := range f2.m.Active() {
		if !a.Expires.Equal(t0.Add(10 * time.Minute)) {
			t.Fatalf("%s expires %s, want the original expiry", a.Target, a.Expires)
		}
	}
	// The attack is detected again after the restart: already in force.
	f2.apply(t, decision(3, flowspec.Discard, t0.Add(5*time.Minute), false, false))
	if len(f2.ann.list()) != 2 {
		t.Fatalf("announced twice: %v", f2.ann.list())
	}
	// At the original expiry the restored action without a running
	// attack goes; the one the new attack wants is renewed.
	f2.m.Tick(t0.Add(10 * time.Minute))
	f2.m.Flush()
	want(t, f2.ann.list()[2:], "withdraw blackhole 2001:db8:1::9/128")

	// A state file that cannot be read stops the start, with its name.
	if err := os.WriteFile(file, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	f3 := newFixture(t, file, nil)
	if _, err := f3.m.Restore(t0); err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("corrupt state: %v", err)
	}
}

// TestDryRunStateStaysDryRun: a restart that turns dry-run off does not
// make actions decided in dry-run live.
func TestDryRunStateStaysDryRun(t *testing.T) {
	file := filepath.Join(t.TempDir(), "m.json")
	f1 := newFixture(t, file, func(c *Config) { c.DryRun = true })
	f1.apply(t, decision(1, flowspec.Blackhole, t0, false, false))
	f2 := newFixture(t, file, nil)
	if n, err := f2.m.Restore(t0.Add(time.Minute)); err != nil || n != 0 {
		t.Fatalf("restored %d: %v", n, err)
	}
	f2.m.Flush()
	want(t, f2.ann.list())
}

func TestManualBanUnban(t *testing.T) {
	f := newFixture(t, "", nil)
	if _, err := f.m.Ban(Request{Kind: flowspec.Blackhole, Target: netip.MustParsePrefix("203.0.113.250/32")}, flowspec.Match{}, t0); !errors.Is(err, ErrAllowlisted) {
		t.Fatalf("manual ban of an allow-listed address: %v", err)
	}
	a, err := f.m.Ban(Request{Kind: flowspec.Blackhole, Target: netip.MustParsePrefix("203.0.113.9/32"), TTL: time.Minute}, flowspec.Match{}, t0)
	if err != nil || a.TTL != time.Minute || a.Reason != "manual" {
		t.Fatalf("%+v %v", a, err)
	}
	if n := f.m.Unban(netip.MustParsePrefix("203.0.113.9/32"), t0.Add(time.Second), "manual"); n != 1 {
		t.Fatalf("unban removed %d", n)
	}
	f.m.Flush()
	want(t, f.ann.list(), "announce blackhole 203.0.113.9/32", "withdraw blackhole 203.0.113.9/32")
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestUnbanPrefix: unbanning a prefix lifts every action inside it (the
// prefix and narrower ones), and none outside or wider.
func TestUnbanPrefix(t *testing.T) {
	f := newFixture(t, "", nil)
	for _, r := range []Request{
		{Kind: flowspec.Blackhole, Target: netip.MustParsePrefix("203.0.113.9/32")},
		{Kind: flowspec.Blackhole, Target: netip.MustParsePrefix("203.0.113.10/32")},
		{Kind: flowspec.Blackhole, Target: netip.MustParsePrefix("203.0.113.100/32")},
		{Kind: flowspec.Discard, Target: netip.MustParsePrefix("203.0.113.10/32")},
		{Kind: flowspec.Discard, Target: netip.MustParsePrefix("203.0.113.0/25")},
		{Kind: flowspec.Blackhole, Target: netip.MustParsePrefix("2001:db8:1::9/128")},
	} {
		if _, err := f.m.Ban(r, udp53, t0); err != nil {
			t.Fatalf("ban %s %s: %v", r.Kind, r.Target, err)
		}
	}
	now := t0.Add(time.Second)
	for _, tc := range []struct {
		target string
		want   int
	}{
		{"203.0.113.0/26", 3},   // .9 and .10 (both kinds); not the wider /25, nor .100
		{"203.0.113.0/26", 0},   // nothing left inside
		{"203.0.113.100/32", 1}, // a single address still works
		{"203.0.113.0/24", 1},   // the /25
		{"2001:db8:1::/48", 1},
	} {
		if n := f.m.Unban(netip.MustParsePrefix(tc.target), now, "manual"); n != tc.want {
			t.Errorf("unban %s withdrew %d, want %d", tc.target, n, tc.want)
		}
	}
	f.m.Flush()
	var withdrawn int
	for _, l := range f.ann.list() {
		if strings.HasPrefix(l, "withdraw ") {
			withdrawn++
		}
	}
	if withdrawn != 6 {
		t.Errorf("announcer saw %d withdrawals, want 6:\n%s", withdrawn, strings.Join(f.ann.list(), "\n"))
	}
}

// TestNewMatchReplacesTheRoute: an attack classified again keeps its action
// with a better match. The new route is announced before the old one is
// withdrawn, the later withdrawal of the old decision (the ladder's) does
// not take the new route with it, and the action keeps its one place under
// the caps. Before, the second announce only joined the entry in force and
// the withdrawal then removed it: nothing stayed in force.
func TestNewMatchReplacesTheRoute(t *testing.T) {
	f := newFixture(t, "", nil)
	udp := flowspec.Match{Protocol: "udp"}
	first := decision(1, flowspec.Discard, t0, false, false)
	first.Vector = udp
	f.apply(t, first)
	better := decision(1, flowspec.Discard, t0.Add(2*time.Second), false, false) // udp53
	old := first
	old.Withdraw, old.Replaced, old.At = true, true, t0.Add(2*time.Second)
	f.apply(t, better, old)
	oldKey := Route{Kind: flowspec.Discard, Target: netip.MustParsePrefix("203.0.113.5/32"), Match: udp}.Key()
	want(t, f.ann.list(), "announce "+oldKey, "announce "+fd, "withdraw "+oldKey)
	act := f.m.Active()
	if len(act) != 1 || act[0].Match == nil || act[0].Match.String() != udp53.String() {
		t.Fatalf("in force: %+v, want the discard of udp port 53", act)
	}
	if n := testutil.ToFloat64(f.m.active.WithLabelValues("flowspec-discard", "false")); n != 1 {
		t.Fatalf("active gauge %v, want 1", n)
	}
	// The attack ends: the route in force is the one left to its TTL.
	end := better
	end.Withdraw, end.At = true, t0.Add(time.Minute)
	f.apply(t, end)
	f.m.Tick(t0.Add(11 * time.Minute))
	f.m.Flush()
	if got := f.ann.list(); got[len(got)-1] != "withdraw "+fd || len(f.m.Active()) != 0 {
		t.Fatalf("after the TTL: %v, active %v", got, f.m.Active())
	}
}
