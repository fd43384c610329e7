// Package incident owns the flight recorder's read side: for every attack,
// the flow telemetry of its target from a few seconds before detection to a
// bound after, cut from the rings the listeners write (ingest.Flight), and
// its export as a folder an operator commits as a regression test: the
// capture (pcap) and a rule-test file (*_test.yaml, the format of `kapkan
// test`) that expects the verdict as it was observed.
//
// The recorder works off the hot path: it follows the event ring, reads
// the rings about once a second while an attack is being recorded, decodes
// what it read with a decoder of its own and keeps the datagrams that carry
// a record to or from a target being recorded.
package incident

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/ingest"
)

// Config bounds what is recorded.
type Config struct {
	// Before is how much telemetry before detection an incident keeps (as
	// far as the rings still hold it).
	Before time.Duration
	// After is how long after detection recording goes on.
	After time.Duration
	// MaxBytes bounds the datagrams kept per incident; recording stops
	// when they reach it.
	MaxBytes int
	// Keep is how many incidents are held (being recorded and done); the
	// oldest done one makes room for a new one.
	Keep int
}

// DefaultConfig is 10 s before, 60 s after, 8 MiB and 16 incidents.
func DefaultConfig() Config {
	return Config{Before: 10 * time.Second, After: 60 * time.Second, MaxBytes: 8 << 20, Keep: 16}
}

// Setup is what a rule test needs of the configuration to see the attack
// the way the daemon saw it.
type Setup struct {
	// Hostgroup names the attack's hostgroup (ladders apply by it).
	Hostgroup string
	// Prefixes are the protected prefixes the test watches.
	Prefixes []netip.Prefix
	// PPS and Mbps are the hostgroup's incoming thresholds.
	PPS, Mbps uint64
	// Window is the detection window (0: the rule tests' default).
	Window time.Duration
}

// Deps are the recorder's inputs.
type Deps struct {
	// Flight holds the rings the listeners (or a replay) write.
	Flight *ingest.Flight
	// Decode are the ingest options (sampling) to decode with.
	Decode ingest.Options
	// Setup gives the rule-test setup of an attack's hostgroup (nil: the
	// target alone, the rule tests' default thresholds).
	Setup    func(a *events.Attack) Setup
	Log      *slog.Logger
	Registry prometheus.Registerer
}

// ErrNotFound is an attack the recorder holds no incident of.
var ErrNotFound = errors.New("no incident recorded for this attack")

// Recorder keeps the incidents of the attacks the events announce.
type Recorder struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	mu   sync.Mutex
	dec  *ingest.Decoder
	recs []*rec // oldest first

	incidents *prometheus.CounterVec
	heldBytes prometheus.Gauge
}

// rec is one incident being recorded, or done.
type rec struct {
	attack   events.Attack
	action   string
	detected time.Time
	target   netip.Prefix
	outgoing bool
	fresh    bool // the telemetry before detection is still to be read
	done     bool
	cur      ingest.FlightCursor
	dgs      []ingest.Datagram
	bytes    int
	lost     int
	full     bool
}

// New builds a recorder; it reads nothing until Observe and Tick are called
// (Run does both for a daemon).
func New(cfg Config, deps Deps) (*Recorder, error) {
	d := DefaultConfig()
	if cfg.Before < 0 || cfg.After < 0 || cfg.MaxBytes < 0 || cfg.Keep < 0 {
		return nil, fmt.Errorf("incident recorder: negative bound in %+v", cfg)
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = d.MaxBytes
	}
	if cfg.Keep == 0 {
		cfg.Keep = d.Keep
	}
	if deps.Flight == nil {
		return nil, errors.New("incident recorder: no flight recorder")
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Recorder{cfg: cfg, deps: deps, log: log.With("component", "incident"),
		dec: ingest.New(deps.Decode, ingest.Deps{Logger: slog.New(slog.DiscardHandler)}),
		incidents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_incident_recordings_total",
			Help: "Incidents by outcome: started, done, dropped (no room: every held incident was still recording), evicted (a done one made room).",
		}, []string{"outcome"}),
		heldBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kapkan_incident_held_bytes",
			Help: "Bytes of datagrams the held incidents keep.",
		}),
	}
	for _, o := range []string{"started", "done", "dropped", "evicted"} {
		r.incidents.WithLabelValues(o)
	}
	if deps.Registry != nil {
		for _, c := range []prometheus.Collector{r.incidents, r.heldBytes} {
			if err := deps.Registry.Register(c); err != nil {
				return nil, fmt.Errorf("register incident metrics: %w", err)
			}
		}
	}
	return r, nil
}

// Observe follows one event: an attack starting opens an incident, its
// updates refresh the verdict kept, the first action decided for it is
// noted.
func (r *Recorder) Observe(e *events.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case e.Attack != nil && e.Kind == events.AttackStarted:
		r.open(e)
	case e.Attack != nil && (e.Kind == events.AttackUpdated || e.Kind == events.AttackEnded):
		if x := r.find(e.Attack.ID); x != nil {
			keepVerdict(&x.attack, e.Attack)
		}
	case e.Mitigation != nil && (e.Kind == events.MitigationAnnounced || e.Kind == events.MitigationRefused):
		if x := r.find(e.Mitigation.AttackID); x != nil && x.action == "" && e.Mitigation.AttackID != 0 {
			x.action = e.Mitigation.Action.String()
		}
	}
}

// keepVerdict copies what an update says of the attack, keeping the
// verdict when the update carries none.
func keepVerdict(dst, src *events.Attack) {
	labels, vector, rules, decider := dst.Labels, dst.Vector, dst.Rules, dst.Decider
	*dst = *src
	if len(src.Labels) == 0 && len(src.Rules) == 0 {
		dst.Labels, dst.Vector, dst.Rules, dst.Decider = labels, vector, rules, decider
	}
}

func (r *Recorder) find(id uint64) *rec {
	for _, x := range r.recs {
		if x.attack.ID == id {
			return x
		}
	}
	return nil
}

func (r *Recorder) open(e *events.Event) {
	if r.find(e.Attack.ID) != nil {
		return
	}
	if len(r.recs) >= r.cfg.Keep {
		i := slices.IndexFunc(r.recs, func(x *rec) bool { return x.done })
		if i < 0 {
			r.incidents.WithLabelValues("dropped").Inc()
			r.log.Warn("incident not recorded: every held incident is still recording", "attack_id", e.Attack.ID, "keep", r.cfg.Keep)
			return
		}
		r.heldBytes.Sub(float64(r.recs[i].bytes))
		r.recs = slices.Delete(r.recs, i, i+1)
		r.incidents.WithLabelValues("evicted").Inc()
	}
	at := e.At
	if at.IsZero() {
		at = time.Now()
	}
	r.recs = append(r.recs, &rec{attack: *e.Attack, detected: at, target: e.Attack.Target,
		outgoing: e.Attack.Direction == "outgoing", fresh: true})
	r.incidents.WithLabelValues("started").Inc()
}

// Tick reads what the rings received since the last tick into the
// incidents being recorded, and closes those whose bound passed at now.
func (r *Recorder) Tick(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.collect(now)
}

func (r *Recorder) collect(now time.Time) {
	var active []*rec
	for _, x := range r.recs {
		if !x.done {
			active = append(active, x)
		}
	}
	if len(active) == 0 {
		return
	}
	// Templates first, so that the decoder knows them.
	r.deps.Flight.Aside(func(d ingest.Datagram) { _, _ = r.dec.Decode(d.Payload, d.Src.Addr(), d.Time, r.discard()) })
	// One read serves every incident: from where the least advanced one
	// stopped, or the whole rings when one has yet to read the telemetry
	// before its detection.
	var cur ingest.FlightCursor
	var from time.Time
	fresh := false
	for i, x := range active {
		if x.fresh {
			if !fresh || x.detected.Add(-r.cfg.Before).Before(from) {
				from = x.detected.Add(-r.cfg.Before)
			}
			fresh = true
		} else if i == 0 || cur == nil {
			cur = x.cur
		} else {
			cur = minCursor(cur, x.cur)
		}
	}
	if fresh {
		cur = nil
	}
	var hit []bool
	m := &matcher{recs: active}
	b := ingest.NewBatcher(nil, m)
	next, lost := r.deps.Flight.Read(cur, from, func(ring int, seq uint64, d ingest.Datagram) {
		hit = hit[:0]
		for _, x := range active {
			ok := false
			if x.fresh {
				ok = !d.Time.Before(x.detected.Add(-r.cfg.Before))
			} else {
				ok = ring >= len(x.cur) || seq >= x.cur[ring]
			}
			hit = append(hit, ok && !x.full)
		}
		if !slices.Contains(hit, true) {
			return
		}
		m.hit = hit
		m.matched = m.matched[:0]
		_, _ = r.dec.Decode(d.Payload, d.Src.Addr(), d.Time, b)
		b.Flush()
		for _, i := range m.matched {
			x := active[i]
			if x.bytes+len(d.Payload) > r.cfg.MaxBytes {
				x.full = true
				continue
			}
			x.dgs = append(x.dgs, d)
			x.bytes += len(d.Payload)
			r.heldBytes.Add(float64(len(d.Payload)))
		}
	})
	for _, x := range active {
		if !x.fresh {
			x.lost += lost
		}
		x.fresh = false
		x.cur = next
		if x.full || !now.Before(x.detected.Add(r.cfg.After)) {
			x.done = true
			r.incidents.WithLabelValues("done").Inc()
		}
	}
}

func minCursor(a, b ingest.FlightCursor) ingest.FlightCursor {
	out := slices.Clone(a)
	for i := range out {
		if i >= len(b) || b[i] < out[i] {
			if i >= len(b) {
				out[i] = 0
			} else {
				out[i] = b[i]
			}
		}
	}
	return out
}

// matcher is the sink of the recorder's decoder: it notes which incidents
// (among those hit) the records of one datagram concern.
type matcher struct {
	recs    []*rec
	hit     []bool
	matched []int
}

func (m *matcher) Consume(b *flow.Batch) {
	defer flow.DefaultPool.Put(b)
	for i := range b.Valid() {
		rr := &b.Records[i]
		for j, x := range m.recs {
			if !m.hit[j] || slices.Contains(m.matched, j) {
				continue
			}
			a := rr.DstAddr()
			if x.outgoing {
				a = rr.SrcAddr()
			}
			if a.IsValid() && x.target.Contains(a.Unmap()) {
				m.matched = append(m.matched, j)
			}
		}
	}
}

func (r *Recorder) discard() *ingest.Batcher {
	return ingest.NewBatcher(nil, flow.SinkFunc(func(b *flow.Batch) { flow.DefaultPool.Put(b) }))
}

// Incident is what was recorded of one attack.
type Incident struct {
	// Attack is the attack as last seen (its verdict is the one expected).
	Attack events.Attack
	// Action is the first action decided for it ("" if none).
	Action string
	// Detected is when it was detected.
	Detected time.Time
	// Datagrams are the templates kept aside, then the datagrams that
	// carry records of the target, in time order.
	Datagrams []ingest.Datagram
	// Lost counts datagrams the rings overwrote before they were read
	// (some of the target's may be among them); Full says MaxBytes
	// stopped the recording; Recording says it is not over yet.
	Lost      int
	Full      bool
	Recording bool
	Setup     Setup
}

// Incident returns the incident of attack id as recorded so far (an
// incident still being recorded first reads the rings up to now).
func (r *Recorder) Incident(id uint64, now time.Time) (*Incident, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	x := r.find(id)
	if x == nil {
		return nil, fmt.Errorf("%w: attack %d", ErrNotFound, id)
	}
	if !x.done {
		r.collect(now)
	}
	return r.incident(x), nil
}

// Incidents returns every incident held, oldest first (replay exports them
// all once the capture is read).
func (r *Recorder) Incidents(now time.Time) []*Incident {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.collect(now)
	out := make([]*Incident, len(r.recs))
	for i, x := range r.recs {
		out[i] = r.incident(x)
	}
	return out
}

func (r *Recorder) incident(x *rec) *Incident {
	in := &Incident{Attack: x.attack, Action: x.action, Detected: x.detected, Lost: x.lost, Full: x.full, Recording: !x.done}
	if r.deps.Setup != nil {
		in.Setup = r.deps.Setup(&x.attack)
	}
	// Templates precede the telemetry, at its first instant, so that a
	// replay decodes it from the start.
	var first time.Time
	if len(x.dgs) > 0 {
		first = x.dgs[0].Time
		for _, d := range x.dgs {
			if d.Time.Before(first) {
				first = d.Time
			}
		}
	}
	r.deps.Flight.Aside(func(d ingest.Datagram) {
		if !first.IsZero() {
			d.Time = first
		}
		in.Datagrams = append(in.Datagrams, d)
	})
	dgs := slices.Clone(x.dgs)
	sort.SliceStable(dgs, func(i, j int) bool { return dgs[i].Time.Before(dgs[j].Time) })
	in.Datagrams = append(in.Datagrams, dgs...)
	return in
}

// Run follows the event ring and reads the flight recorder's rings once a
// second until ctx ends.
func (r *Recorder) Run(ctx context.Context, rd *events.Reader) error {
	evs := make(chan events.Event, 64)
	go func() {
		defer close(evs)
		for {
			e, err := rd.Next(ctx)
			if err != nil {
				return
			}
			select {
			case evs <- e:
			case <-ctx.Done():
				return
			}
		}
	}()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-evs:
			if !ok {
				return nil
			}
			r.Observe(&e)
		case now := <-t.C:
			r.Tick(now)
		}
	}
}
