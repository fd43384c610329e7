package mitigate

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/kapkan-io/kapkan/flowspec"
)

// An action's ID names it in the API: its kind and target, as
// "blackhole_203.0.113.5_32" or "flowspec-discard_2001:db8::1_128". The
// manager keeps at most one action per kind and target (a new match on
// the same target replaces the route), so the pair is a unique key, and
// the ID is the same for as long as the action is in force and after a
// restart that restores it. No character of it needs escaping in a URL
// path: kind names are letters and '-', addresses have no '_'.
const idSep = "_"

// ActionID returns the ID of the action of kind on target.
func ActionID(kind flowspec.Action, target netip.Prefix) string {
	t := target.Masked()
	return kind.String() + idSep + t.Addr().String() + idSep + strconv.Itoa(t.Bits())
}

// ParseActionID reads an ID made by ActionID; a malformed one is an
// ErrInvalid error.
func ParseActionID(id string) (flowspec.Action, netip.Prefix, error) {
	parts := strings.Split(id, idSep)
	if len(parts) != 3 {
		return flowspec.None, netip.Prefix{}, fmt.Errorf("%w: mitigation id %q (want kind_address_bits, like blackhole_203.0.113.5_32)", ErrInvalid, id)
	}
	kind, err := flowspec.ParseAction(parts[0])
	if err != nil || kind == flowspec.None {
		return flowspec.None, netip.Prefix{}, fmt.Errorf("%w: mitigation id %q: unknown kind %q", ErrInvalid, id, parts[0])
	}
	addr, err := netip.ParseAddr(parts[1])
	if err != nil {
		return flowspec.None, netip.Prefix{}, fmt.Errorf("%w: mitigation id %q: %q is not an address", ErrInvalid, id, parts[1])
	}
	bits, err := strconv.Atoi(parts[2])
	if err != nil || bits < 0 || bits > addr.BitLen() || parts[2] != strconv.Itoa(bits) {
		return flowspec.None, netip.Prefix{}, fmt.Errorf("%w: mitigation id %q: %q is not a prefix length", ErrInvalid, id, parts[2])
	}
	p := netip.PrefixFrom(addr, bits)
	if p.Masked() != p || addr.Zone() != "" {
		return flowspec.None, netip.Prefix{}, fmt.Errorf("%w: mitigation id %q: %s has host bits set", ErrInvalid, id, p)
	}
	return kind, p, nil
}

// UnbanID withdraws now the one action the id names (see ActionID),
// whoever asked for it. It returns 1, or 0 when no such action is in
// force; a malformed id is an ErrInvalid error.
func (m *Manager) UnbanID(id string, now time.Time, reason string) (int, error) {
	kind, target, err := ParseActionID(id)
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := key{kind, target}
	e, ok := m.entries[k]
	if !ok {
		return 0, nil
	}
	m.withdraw(k, e, now, reason)
	m.save()
	return 1, nil
}
