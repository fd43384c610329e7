// Package mitigate owns the safety model every mitigation passes through,
// whatever asked for it (a ladder, a WASM policy, the API, replay): dry-run,
// protected prefixes only, never an allow-listed address, blackholes of one
// address only, caps on active and new actions, a TTL on everything, and
// longer TTLs for targets that keep coming back. The BGP speaker that
// announces what passes is mitigate/bgp; the Manager in state.go ties the
// guard, the speaker and the state file together.
package mitigate

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/gaissmai/bart"

	"github.com/kapkan-io/kapkan/flowspec"
)

// Refusals: every action the guard will not let through says why.
var (
	ErrNotProtected   = errors.New("target is outside the protected prefixes")
	ErrAllowlisted    = errors.New("target is in the allow-list")
	ErrPrefixTooShort = errors.New("a blackhole must be one address (/32 or /128)")
	ErrBlackholeCap   = errors.New("maximum number of active blackholes reached")
	ErrFlowSpecCap    = errors.New("maximum number of active FlowSpec rules reached")
	ErrRateLimited    = errors.New("maximum number of new actions per minute reached")
	ErrInvalid        = errors.New("invalid action")
)

// Config is the safety configuration.
type Config struct {
	// DryRun marks every action as not to be sent; it is the default, and
	// only an explicit false in the configuration turns it off.
	DryRun bool
	// Protected are the prefixes of every hostgroup: nothing outside them
	// is ever mitigated.
	Protected []netip.Prefix
	// Allowlist is never mitigated, even when protected.
	Allowlist []netip.Prefix
	// MaxBlackholes and MaxFlowSpec cap the active actions of each kind;
	// MaxNewPerMinute caps new actions over any 60 seconds. 0 means none
	// allowed, as a cap must be set to let anything through.
	MaxBlackholes, MaxFlowSpec, MaxNewPerMinute int
	// TTL is an action's lifetime when the request names none; MaxTTL
	// bounds every TTL, flap damping included.
	TTL, MaxTTL time.Duration
	// A target mitigated again within PenaltyWindow of its last action's
	// end gets its TTL multiplied by PenaltyFactor for each such return
	// (flap damping), up to MaxTTL.
	PenaltyWindow time.Duration
	PenaltyFactor float64
}

// Request is what a policy asks for.
type Request struct {
	Kind     flowspec.Action
	Target   netip.Prefix
	RateMbps float64
	TTL      time.Duration // 0: the configured TTL
	Reason   string
}

// Action is a request the guard let through.
type Action struct {
	Request
	DryRun  bool
	Expires time.Time
}

// Guard applies the safety model and keeps the state it needs: active
// actions and recent ones. It is not safe for concurrent use; the Manager
// serialises access.
type Guard struct {
	cfg       Config
	protected bart.Lite
	allow     bart.Lite
	active    map[key]Action
	recent    []time.Time // start times of new actions in the last minute
	history   map[netip.Prefix]penalty
}

type key struct {
	kind   flowspec.Action
	target netip.Prefix
}

type penalty struct {
	ended   time.Time
	repeats int
}

// NewGuard checks the configuration and builds a guard.
func NewGuard(cfg Config) (*Guard, error) {
	if cfg.TTL <= 0 || cfg.MaxTTL < cfg.TTL {
		return nil, fmt.Errorf("%w: ttl %s must be positive and at most max_ttl %s", ErrInvalid, cfg.TTL, cfg.MaxTTL)
	}
	if cfg.PenaltyFactor < 1 {
		cfg.PenaltyFactor = 1
	}
	g := &Guard{cfg: cfg, active: map[key]Action{}, history: map[netip.Prefix]penalty{}}
	for _, p := range cfg.Protected {
		g.protected.Insert(p.Masked())
	}
	for _, p := range cfg.Allowlist {
		g.allow.Insert(p.Masked())
	}
	return g, nil
}

// Check decides on a request at time now. An action let through is
// recorded as active until it expires or is released.
func (g *Guard) Check(r Request, now time.Time) (Action, error) {
	g.expire(now)
	t := r.Target
	if !t.IsValid() {
		return Action{}, fmt.Errorf("%w: no target", ErrInvalid)
	}
	t = t.Masked()
	r.Target = t
	if err := g.allowed(r.Kind, t); err != nil {
		return Action{}, err
	}
	if r.Kind == flowspec.RateLimit && r.RateMbps <= 0 {
		return Action{}, fmt.Errorf("%w: a rate limit needs a rate", ErrInvalid)
	}
	k := key{r.Kind, t}
	if a, ok := g.active[k]; ok {
		return a, nil // already active: never announced twice
	}
	if err := g.capped(r.Kind, t); err != nil {
		return Action{}, err
	}
	if len(g.recent) >= g.cfg.MaxNewPerMinute {
		return Action{}, fmt.Errorf("%s: %w (%d)", t, ErrRateLimited, g.cfg.MaxNewPerMinute)
	}
	ttl := r.TTL
	if ttl <= 0 {
		ttl = g.cfg.TTL
	}
	// Flap damping: a target back soon after its last action gets longer.
	if h, ok := g.history[t]; ok {
		h.repeats++ // expire forgot the targets quiet for longer than the window
		g.history[t] = h
		for range h.repeats {
			ttl = time.Duration(float64(ttl) * g.cfg.PenaltyFactor)
			if ttl >= g.cfg.MaxTTL {
				break
			}
		}
	}
	ttl = min(ttl, g.cfg.MaxTTL)
	a := Action{Request: r, DryRun: g.cfg.DryRun, Expires: now.Add(ttl)}
	a.TTL = ttl
	g.active[k] = a
	g.recent = append(g.recent, now)
	return a, nil
}

// Release ends an action before its TTL (the attack ended and stayed
// below its thresholds through the cool-down).
func (g *Guard) Release(kind flowspec.Action, target netip.Prefix, now time.Time) bool {
	k := key{kind, target.Masked()}
	if _, ok := g.active[k]; !ok {
		return false
	}
	delete(g.active, k)
	g.remember(k.target, now)
	return true
}

// Drop ends an action that the next step of its ladder replaced: unlike
// Release it does not count as the target's mitigation ending, so flap
// damping does not lengthen the next step.
func (g *Guard) Drop(kind flowspec.Action, target netip.Prefix) {
	delete(g.active, key{kind, target.Masked()})
}

// Active returns the actions in force at now (due ones included until
// they are released or renewed).
func (g *Guard) Active(now time.Time) []Action {
	g.expire(now)
	out := make([]Action, 0, len(g.active))
	for _, a := range g.active {
		out = append(out, a)
	}
	return out
}

func (g *Guard) remember(t netip.Prefix, now time.Time) {
	h := g.history[t]
	h.ended = now
	g.history[t] = h
}

func (g *Guard) expire(now time.Time) {
	i := 0
	for i < len(g.recent) && now.Sub(g.recent[i]) >= time.Minute {
		i++
	}
	g.recent = g.recent[i:]
	// Forget targets quiet for longer than the penalty window.
	for t, h := range g.history {
		if now.Sub(h.ended) > g.cfg.PenaltyWindow {
			delete(g.history, t)
		}
	}
}

// Due returns the actions whose TTL has passed at now. They stay active
// until released or renewed: the owner decides (an attack still running
// keeps its action).
func (g *Guard) Due(now time.Time) []Action {
	var out []Action
	for _, a := range g.active {
		if !now.Before(a.Expires) {
			out = append(out, a)
		}
	}
	return out
}

// Renew starts a new TTL for an active action at now (its attack is still
// running when the old one ran out).
func (g *Guard) Renew(kind flowspec.Action, target netip.Prefix, now time.Time) (Action, bool) {
	k := key{kind, target.Masked()}
	a, ok := g.active[k]
	if !ok {
		return Action{}, false
	}
	a.Expires = now.Add(a.TTL)
	g.active[k] = a
	return a, true
}

// Restore re-admits an action kept across a restart, with the expiry it
// had. The target is checked again against today's protected prefixes and
// allow-list, and the caps apply, but not the per-minute limit: these are
// not new actions.
func (g *Guard) Restore(a Action, now time.Time) (Action, error) {
	if !now.Before(a.Expires) {
		return Action{}, fmt.Errorf("%s: expired at %s", a.Target, a.Expires.Format(time.RFC3339))
	}
	if !a.Target.IsValid() {
		return Action{}, fmt.Errorf("%w: no target", ErrInvalid)
	}
	t := a.Target.Masked()
	if err := g.allowed(a.Kind, t); err != nil {
		return Action{}, err
	}
	k := key{a.Kind, t}
	if cur, ok := g.active[k]; ok {
		return cur, nil
	}
	if err := g.capped(a.Kind, t); err != nil {
		return Action{}, err
	}
	if a.TTL > g.cfg.MaxTTL {
		a.TTL = g.cfg.MaxTTL
	}
	if max := now.Add(g.cfg.MaxTTL); a.Expires.After(max) {
		a.Expires = max
	}
	a.Target = t
	a.DryRun = g.cfg.DryRun
	g.active[k] = a
	return a, nil
}

// allowed checks a (masked) target for a kind: all of it protected, none
// of it allow-listed, one address for a blackhole. Check and Restore both
// go through it, so the rules live in one place.
func (g *Guard) allowed(kind flowspec.Action, t netip.Prefix) error {
	if !g.protected.Contains(t.Addr()) || !g.covered(t) {
		return fmt.Errorf("%s: %w", t, ErrNotProtected)
	}
	// The length rule first: a blackhole of a prefix is refused whatever it
	// holds, and saying "allow-list" would send the operator looking for
	// the wrong fix.
	if kind == flowspec.Blackhole && t.Bits() != t.Addr().BitLen() {
		return fmt.Errorf("%s: %w", t, ErrPrefixTooShort)
	}
	if g.allow.Contains(t.Addr()) || g.allowOverlaps(t) {
		return fmt.Errorf("%s: %w", t, ErrAllowlisted)
	}
	return nil
}

// capped reports whether one more action of kind would exceed its cap.
func (g *Guard) capped(kind flowspec.Action, t netip.Prefix) error {
	if kind == flowspec.Blackhole {
		if g.count(flowspec.Blackhole) >= g.cfg.MaxBlackholes {
			return fmt.Errorf("%s: %w (%d)", t, ErrBlackholeCap, g.cfg.MaxBlackholes)
		}
		return nil
	}
	if g.count(flowspec.Discard)+g.count(flowspec.RateLimit) >= g.cfg.MaxFlowSpec {
		return fmt.Errorf("%s: %w (%d)", t, ErrFlowSpecCap, g.cfg.MaxFlowSpec)
	}
	return nil
}

func (g *Guard) count(k flowspec.Action) int {
	n := 0
	for key := range g.active {
		if key.kind == k {
			n++
		}
	}
	return n
}

// covered reports whether the whole prefix t lies inside one protected
// prefix (not merely its first address).
func (g *Guard) covered(t netip.Prefix) bool {
	for _, p := range g.cfg.Protected {
		if p.Bits() <= t.Bits() && p.Contains(t.Addr()) {
			return true
		}
	}
	return false
}

// allowOverlaps reports whether an allow-listed prefix lies inside t.
func (g *Guard) allowOverlaps(t netip.Prefix) bool {
	for _, p := range g.cfg.Allowlist {
		if p.Overlaps(t) {
			return true
		}
	}
	return false
}
