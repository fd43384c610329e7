package mitigate

import (
	"slices"
	"strings"
	"sync"
)

// dryRunLogSize bounds the log of a DryRun announcer: a daemon left in
// dry-run for months must not grow without end.
const dryRunLogSize = 1024

// DryRunOp is one change a DryRun announcer would have sent.
type DryRunOp struct {
	// Seq numbers the changes from 1, so a reader can tell what it missed.
	Seq      uint64
	Withdraw bool
	Route    Route
}

// DryRun is the Announcer of dry-run: it sends nothing and records what
// it would have sent, with the speaker's rules (a route already in force
// is not sent again, withdrawing a route not in force sends nothing), so
// that the whole path from decision to announcement runs in dry-run and
// in tests. It is safe for concurrent use.
type DryRun struct {
	mu     sync.Mutex
	routes map[string]Route
	log    []DryRunOp // the last dryRunLogSize changes
	seq    uint64
}

// NewDryRun returns an empty dry-run announcer.
func NewDryRun() *DryRun { return &DryRun{routes: map[string]Route{}} }

// Announce records r as in force.
func (d *DryRun) Announce(r Route) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := r.Key()
	if _, ok := d.routes[k]; ok {
		return nil
	}
	d.routes[k] = r
	d.record(DryRunOp{Route: r})
	return nil
}

// Withdraw records r as no longer in force.
func (d *DryRun) Withdraw(r Route) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := r.Key()
	if _, ok := d.routes[k]; !ok {
		return nil
	}
	delete(d.routes, k)
	d.record(DryRunOp{Withdraw: true, Route: r})
	return nil
}

func (d *DryRun) record(op DryRunOp) {
	d.seq++
	op.Seq = d.seq
	if len(d.log) == dryRunLogSize {
		d.log = slices.Delete(d.log, 0, 1)
	}
	d.log = append(d.log, op)
}

// Routes returns the routes that would be in force, by key.
func (d *DryRun) Routes() []Route {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Route, 0, len(d.routes))
	for _, r := range d.routes {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Route) int { return strings.Compare(a.Key(), b.Key()) })
	return out
}

// Ops returns the last changes that would have been sent, oldest first.
func (d *DryRun) Ops() []DryRunOp {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.log)
}

var _ Announcer = (*DryRun)(nil)
