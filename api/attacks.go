package api

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/kapkan-io/kapkan/events"
)

// attackIndex keeps the attacks the event ring told of: the active ones
// and the last RecentAttacks that ended, each with its latest state and
// its mitigation history. One goroutine (Run) writes; handlers read.
type attackIndex struct {
	mu     sync.RWMutex
	byID   map[uint64]*attackEntry // active and recent
	active map[uint64]*attackEntry
	recent []*attackEntry // ended, oldest first, at most RecentAttacks
	last   uint64         // Seq of the last event added
}

type attackEntry struct {
	attack *events.Attack // shared with the event: never changed
	ended  bool
	mits   []MitigationEvent
	series []RatePoint
}

// RatePoint is an attack's rates at one time, from its start and update
// events.
type RatePoint struct {
	At   time.Time `json:"at"`
	PPS  float64   `json:"pps"`
	Mbps float64   `json:"mbps"`
	FPS  float64   `json:"fps"`
}

// addPoint appends the rates of a start or update event. When the series
// is full, every other point is dropped: it keeps the whole span of a long
// attack at a coarser step.
func (en *attackEntry) addPoint(e events.Event) {
	r := e.Attack.Rates
	if r == nil {
		return
	}
	if len(en.series) >= MaxAttackSeries {
		kept := en.series[:0]
		for i, p := range en.series {
			if i%2 == 1 {
				kept = append(kept, p)
			}
		}
		en.series = kept
	}
	en.series = append(en.series, RatePoint{At: e.At.UTC(), PPS: r["pps"], Mbps: r["mbps"], FPS: r["fps"]})
}

func newAttackIndex() *attackIndex {
	return &attackIndex{byID: map[uint64]*attackEntry{}, active: map[uint64]*attackEntry{}}
}

// add takes one event into the index.
func (x *attackIndex) add(e events.Event) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.last = e.Seq
	switch e.Kind {
	case events.AttackStarted, events.AttackUpdated, events.AttackEscalated:
		if e.Attack == nil {
			return
		}
		en := x.byID[e.Attack.ID]
		if en == nil {
			en = &attackEntry{}
			x.byID[e.Attack.ID] = en
			x.active[e.Attack.ID] = en
		}
		if en.ended {
			return
		}
		en.attack = e.Attack // an escalation carries the whole attack too
		en.addPoint(e)
	case events.AttackEnded:
		if e.Attack == nil {
			return
		}
		en := x.byID[e.Attack.ID]
		if en == nil {
			en = &attackEntry{} // started before the ring's oldest event
			x.byID[e.Attack.ID] = en
		}
		if en.ended {
			return
		}
		en.attack, en.ended = e.Attack, true
		delete(x.active, e.Attack.ID)
		x.recent = append(x.recent, en)
		if len(x.recent) > RecentAttacks {
			old := x.recent[0]
			x.recent = slices.Delete(x.recent, 0, 1)
			delete(x.byID, old.attack.ID)
		}
	case events.MitigationNone:
		id, m := uint64(0), e.Mitigation
		if m != nil {
			id = m.AttackID
		} else if e.Attack != nil {
			id = e.Attack.ID
			m = &events.Mitigation{AttackID: id, Target: e.Attack.Target, Reason: e.Attack.Reason}
		}
		x.addMitigation(id, e, m)
	case events.MitigationAnnounced, events.MitigationWithdrawn, events.MitigationRenewed, events.MitigationRefused,
		events.MitigationFailed:
		if e.Mitigation != nil {
			x.addMitigation(e.Mitigation.AttackID, e, e.Mitigation)
		}
	}
}

// addMitigation appends to an attack's history, keeping the newest
// MaxAttackMitigations.
func (x *attackIndex) addMitigation(id uint64, e events.Event, m *events.Mitigation) {
	en := x.byID[id]
	if id == 0 || en == nil || m == nil {
		return // manual, or an attack the index does not hold
	}
	en.mits = append(en.mits, MitigationEvent{Kind: e.Kind, At: e.At.UTC(), Mitigation: m})
	if n := len(en.mits) - MaxAttackMitigations; n > 0 {
		en.mits = slices.Delete(en.mits, 0, n)
	}
}

func (en *attackEntry) view() AttackView {
	mits := make([]MitigationEvent, len(en.mits))
	copy(mits, en.mits)
	return AttackView{Attack: en.attack, Active: !en.ended, Action: inForce(mits), Mitigations: mits}
}

// inForce is the action of the last route announced for an attack and not
// withdrawn since, from its mitigation history.
func inForce(mits []MitigationEvent) string {
	type route struct{ action, match string }
	live := map[route]int{} // route → index of its announcement
	for i, m := range mits {
		if m.Mitigation == nil {
			continue
		}
		r := route{m.Action.String(), m.Match.String()}
		switch m.Kind {
		case events.MitigationAnnounced:
			live[r] = i
		case events.MitigationWithdrawn:
			delete(live, r)
		}
	}
	last, action := -1, ""
	for r, i := range live {
		if i > last {
			last, action = i, r.action
		}
	}
	return action
}

// list returns the active attacks (oldest first) and the recent ones
// (newest first).
func (x *attackIndex) list() (active, recent []AttackView) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	active = make([]AttackView, 0, len(x.active))
	for _, en := range x.active {
		if en.attack != nil {
			active = append(active, en.view())
		}
	}
	slices.SortFunc(active, func(a, b AttackView) int {
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	recent = make([]AttackView, 0, len(x.recent))
	for i := len(x.recent) - 1; i >= 0; i-- {
		recent = append(recent, x.recent[i].view())
	}
	return active, recent
}

// get returns one attack with its rate series.
func (x *attackIndex) get(id uint64) (AttackView, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	en := x.byID[id]
	if en == nil || en.attack == nil {
		return AttackView{}, false
	}
	v := en.view()
	v.Series = slices.Clone(en.series)
	return v, true
}

// seen returns the Seq of the last event added.
func (x *attackIndex) seen() uint64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.last
}
