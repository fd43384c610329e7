// Package embedded is Kapkan's default history store: one bbolt file
// (a B+tree with copy-on-write pages and an fsync per transaction) in the
// daemon's data directory. It owns the file's layout — the buckets and the
// keys, designed for the reads of store.Store — and retention by age and
// by size.
//
// Layout (all integers big-endian, times as Unix nanoseconds, so that keys
// sort by time):
//
//	attacks   id                    → the attack's row (JSON)
//	started   started | id          → ""   (attacks by start time)
//	open      id                    → ""   (attacks not ended)
//	rates     id | at               → pps, mbps, fps (3 float64)
//	mits      at | seq | kind       → the mitigation (JSON)
//	mitsof    attack id | at | seq | kind → ""   (an attack's mitigations)
//	reloads   at | seq | kind       → the reload (JSON)
//	traffic   hostgroup \0 direction (a bucket) / at → pps, mbps, fps
//	meta      "maxdur"              → the longest ended attack (ns)
package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/store"
)

// FileName is the name of the store's file inside its directory.
const FileName = "history.db"

var (
	bAttacks = []byte("attacks")
	bStarted = []byte("started")
	bOpen    = []byte("open")
	bRates   = []byte("rates")
	bMits    = []byte("mits")
	bMitsOf  = []byte("mitsof")
	bReloads = []byte("reloads")
	bTraffic = []byte("traffic")
	bMeta    = []byte("meta")
	kMaxDur  = []byte("maxdur")
	buckets  = [][]byte{bAttacks, bStarted, bOpen, bRates, bMits, bMitsOf, bReloads, bTraffic, bMeta}
)

// Options tune a store.
type Options struct {
	// MaxBytes, when above zero, bounds the bytes in use (see Used): Prune
	// drops the oldest history until the store is under it.
	MaxBytes int64
}

// Store is the embedded store. It is safe for one writer and any number of
// readers at once.
type Store struct {
	db   *bolt.DB
	opts Options
}

var _ store.Store = (*Store)(nil)

// Open opens (or creates) the store in dir, creating dir when missing. A
// second process opening the same store waits at most a second for the
// file's lock, then fails.
func Open(dir string, opts Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create store directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o640, &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: it is in use by another process (another kapkan with the same store.path?)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: create buckets: %w", path, err)
	}
	return &Store{db: db, opts: opts}, nil
}

// Path returns the store's file.
func (s *Store) Path() string { return s.db.Path() }

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// row is an attack as kept: the store.Attack without its rates, and the
// time of its newest event (what Prune goes by).
type row struct {
	store.Attack
	Last time.Time `json:"last"`
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func ns(t time.Time) uint64 { return uint64(t.UnixNano()) }

func fromNS(b []byte) time.Time { return time.Unix(0, int64(binary.BigEndian.Uint64(b))).UTC() }

// eventKey is at | seq | kind: an event's identity, sorted by time.
func eventKey(e *events.Event) []byte {
	k := make([]byte, 0, 16+len(e.Kind))
	k = binary.BigEndian.AppendUint64(k, ns(e.At))
	k = binary.BigEndian.AppendUint64(k, e.Seq)
	return append(k, e.Kind...)
}

func rateValue(pps, mbps, fps float64) []byte {
	v := make([]byte, 24)
	binary.BigEndian.PutUint64(v, math.Float64bits(pps))
	binary.BigEndian.PutUint64(v[8:], math.Float64bits(mbps))
	binary.BigEndian.PutUint64(v[16:], math.Float64bits(fps))
	return v
}

func readRate(v []byte) (pps, mbps, fps float64) {
	return math.Float64frombits(binary.BigEndian.Uint64(v)),
		math.Float64frombits(binary.BigEndian.Uint64(v[8:])),
		math.Float64frombits(binary.BigEndian.Uint64(v[16:]))
}

// PutEvents records the events in one transaction (one fsync).
func (s *Store) PutEvents(ctx context.Context, evs []events.Event) error {
	if len(evs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		fill(tx)
		w := writeTx{tx: tx, rows: map[uint64]*row{}}
		for i := range evs {
			if err := w.put(&evs[i]); err != nil {
				return fmt.Errorf("event %d (%s): %w", evs[i].Seq, evs[i].Kind, err)
			}
		}
		return w.flush()
	})
	if err != nil {
		return writeErr("store events", err)
	}
	return nil
}

// writeErr says what failed to be written; a full disk marks the error
// store.ErrUnavailable, so the writer keeps the batch until space returns.
func writeErr(what string, err error) error {
	// bbolt wraps some of its file errors as text only ("file resize
	// error: ..."), hence the comparison of the message too.
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || strings.Contains(err.Error(), syscall.ENOSPC.Error()) {
		return fmt.Errorf("%s: the disk is full: %w: %w", what, store.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// writeTx keeps the rows a batch changes, written once at its end (a batch
// of updates of one attack decodes and encodes its row once).
type writeTx struct {
	tx    *bolt.Tx
	rows  map[uint64]*row
	order []uint64
}

func (w *writeTx) put(e *events.Event) error {
	switch e.Kind {
	case events.AttackStarted, events.AttackUpdated, events.AttackEscalated, events.AttackEnded:
		if e.Attack == nil {
			return nil
		}
		return w.attack(e)
	case events.MitigationAnnounced, events.MitigationWithdrawn, events.MitigationRenewed,
		events.MitigationRefused, events.MitigationFailed, events.MitigationNone:
		m, ok := mitigation(e)
		if !ok {
			return nil
		}
		v, err := json.Marshal(m)
		if err != nil {
			return err
		}
		k := eventKey(e)
		if err := w.tx.Bucket(bMits).Put(k, v); err != nil {
			return err
		}
		return w.tx.Bucket(bMitsOf).Put(append(u64(m.AttackID), k...), nil)
	case events.RulesReloaded, events.ConfigReloaded:
		if e.Reload == nil {
			return nil
		}
		r := store.Reload{At: e.At, What: e.Reload.What, OK: e.Reload.OK, Trigger: e.Reload.Trigger, Errors: e.Reload.Errors}
		if r.What == "" {
			r.What = map[events.Kind]string{events.RulesReloaded: "rules", events.ConfigReloaded: "config"}[e.Kind]
		}
		if len(r.Errors) == 0 && e.Reload.Err != "" {
			r.Errors = []string{e.Reload.Err}
		}
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		return w.tx.Bucket(bReloads).Put(eventKey(e), v)
	}
	return nil
}

// mitigation turns a mitigation event into its record; a mitigation_none
// event may carry the attack instead.
func mitigation(e *events.Event) (store.Mitigation, bool) {
	if m := e.Mitigation; m != nil {
		return store.Mitigation{
			At: e.At, Kind: e.Kind, AttackID: m.AttackID, Target: m.Target, Action: m.Action, Match: m.Match,
			RateMbps: m.RateMbps, Ladder: m.Ladder, Step: m.Step, Expires: m.Expires, Reason: m.Reason, Err: m.Err, DryRun: m.DryRun,
		}, true
	}
	if a := e.Attack; a != nil && e.Kind == events.MitigationNone {
		return store.Mitigation{At: e.At, Kind: e.Kind, AttackID: a.ID, Target: a.Target, Ladder: a.Ladder, Step: a.Step, Reason: a.Reason}, true
	}
	return store.Mitigation{}, false
}

// attack merges an attack event into its row (the rules of storetest) and
// adds its rate point.
func (w *writeTx) attack(e *events.Event) error {
	a := e.Attack
	r, err := w.row(a.ID)
	if err != nil {
		return err
	}
	if r == nil {
		r = &row{}
		w.rows[a.ID] = r
		w.order = append(w.order, a.ID)
	}
	old := r.Attack
	r.Attack.Apply(e)
	if e.At.After(r.Last) {
		r.Last = e.At.UTC()
	}
	// The start index moves if the start time changed (or is new).
	st := w.tx.Bucket(bStarted)
	if !old.Started.Equal(r.Started) || old.ID == 0 {
		if old.ID != 0 {
			if err := st.Delete(append(u64(ns(old.Started)), u64(a.ID)...)); err != nil {
				return err
			}
		}
		if err := st.Put(append(u64(ns(r.Started)), u64(a.ID)...), nil); err != nil {
			return err
		}
	}
	if len(a.Rates) > 0 {
		k := append(u64(a.ID), u64(ns(e.At))...)
		if err := w.tx.Bucket(bRates).Put(k, rateValue(a.Rates["pps"], a.Rates["mbps"], a.Rates["fps"])); err != nil {
			return err
		}
	}
	return nil
}

// row returns the row of id, from this batch or the file; nil if none.
func (w *writeTx) row(id uint64) (*row, error) {
	if r, ok := w.rows[id]; ok {
		return r, nil
	}
	v := w.tx.Bucket(bAttacks).Get(u64(id))
	if v == nil {
		return nil, nil
	}
	r := &row{}
	if err := json.Unmarshal(v, r); err != nil {
		return nil, fmt.Errorf("decode attack %d: %w", id, err)
	}
	w.rows[id] = r
	w.order = append(w.order, id)
	return r, nil
}

// flush writes the rows the batch changed, the open set and the longest
// duration.
func (w *writeTx) flush() error {
	at, open, meta := w.tx.Bucket(bAttacks), w.tx.Bucket(bOpen), w.tx.Bucket(bMeta)
	maxDur := readMaxDur(meta)
	for _, id := range w.order {
		r := w.rows[id]
		v, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode attack %d: %w", id, err)
		}
		if err := at.Put(u64(id), v); err != nil {
			return err
		}
		if r.Ended.IsZero() {
			err = open.Put(u64(id), nil)
		} else {
			err = open.Delete(u64(id))
			maxDur = max(maxDur, r.Ended.Sub(r.Started))
		}
		if err != nil {
			return err
		}
	}
	return meta.Put(kMaxDur, u64(uint64(maxDur)))
}

func readMaxDur(meta *bolt.Bucket) time.Duration {
	if v := meta.Get(kMaxDur); len(v) == 8 {
		return time.Duration(binary.BigEndian.Uint64(v))
	}
	return 0
}

// appendFill is how full bolt packs a page it splits, for buckets whose
// keys mostly arrive in order (times, ids): its default of a half leaves
// half of every page of an append-only bucket empty for ever. Measured on
// the disk benchmark: bytes per attack and per traffic point fall by about
// a third.
const appendFill = 0.9

func fill(tx *bolt.Tx) {
	for _, name := range [][]byte{bAttacks, bStarted, bRates, bMits, bMitsOf, bReloads} {
		tx.Bucket(name).FillPercent = appendFill
	}
}

func trafficBucket(hostgroup, direction string) []byte {
	return []byte(hostgroup + "\x00" + direction)
}

// PutTraffic records traffic points in one transaction.
func (s *Store) PutTraffic(ctx context.Context, pts []store.TrafficPoint) error {
	if len(pts) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		tr := tx.Bucket(bTraffic)
		for _, p := range pts {
			b, err := tr.CreateBucketIfNotExists(trafficBucket(p.Hostgroup, p.Direction))
			if err != nil {
				return err
			}
			b.FillPercent = appendFill
			if err := b.Put(u64(ns(p.At)), rateValue(p.PPS, p.Mbps, p.FPS)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return writeErr("store traffic", err)
	}
	return nil
}

func contains(outer, inner netip.Prefix) bool {
	return outer.Addr().Is4() == inner.Addr().Is4() && outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

func matches(r *row, f *store.AttackFilter) bool {
	if !f.To.IsZero() && !r.Started.Before(f.To) {
		return false
	}
	if !f.From.IsZero() && !r.Ended.IsZero() && r.Ended.Before(f.From) {
		return false
	}
	if f.Target.IsValid() && !contains(f.Target, r.Target) {
		return false
	}
	if f.Label != "" && !slices.Contains(r.Labels, f.Label) {
		return false
	}
	if f.Hostgroup != "" && r.Hostgroup != f.Hostgroup {
		return false
	}
	if f.Rule != "" && r.Decider != f.Rule && !slices.Contains(r.Rules, f.Rule) {
		return false
	}
	return true
}

// Attacks walks the start index newest first from To. With From set, it
// stops at From less the longest attack that ever ended, and adds the
// attacks still open that started before.
func (s *Store) Attacks(ctx context.Context, f store.AttackFilter) ([]store.Attack, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	out := []store.Attack{}
	err := s.db.View(func(tx *bolt.Tx) error {
		at := tx.Bucket(bAttacks)
		get := func(id []byte) (*row, error) {
			r := &row{}
			if err := json.Unmarshal(at.Get(id), r); err != nil {
				return nil, fmt.Errorf("decode attack %d: %w", binary.BigEndian.Uint64(id), err)
			}
			return r, nil
		}
		var cutoff uint64
		if !f.From.IsZero() {
			if c := f.From.Add(-readMaxDur(tx.Bucket(bMeta))); c.UnixNano() > 0 {
				cutoff = ns(c)
			}
		}
		c := tx.Bucket(bStarted).Cursor()
		var k []byte
		if f.To.IsZero() {
			k, _ = c.Last()
		} else {
			k, _ = c.Seek(u64(ns(f.To)))
			if k == nil {
				k, _ = c.Last()
			} else {
				k, _ = c.Prev()
			}
		}
		for ; k != nil && len(out) < limit; k, _ = c.Prev() {
			if binary.BigEndian.Uint64(k) < cutoff {
				break
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			r, err := get(k[8:])
			if err != nil {
				return err
			}
			if matches(r, &f) {
				out = append(out, r.Attack)
			}
		}
		if cutoff == 0 || len(out) >= limit {
			return nil
		}
		var older []store.Attack
		err := tx.Bucket(bOpen).ForEach(func(id, _ []byte) error {
			r, err := get(id)
			if err != nil {
				return err
			}
			if ns(r.Started) < cutoff && matches(r, &f) {
				older = append(older, r.Attack)
			}
			return nil
		})
		if err != nil {
			return err
		}
		slices.SortFunc(older, newestFirst)
		out = append(out, older[:min(len(older), limit-len(out))]...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list attacks: %w", err)
	}
	return out, nil
}

func newestFirst(a, b store.Attack) int {
	if c := b.Started.Compare(a.Started); c != 0 {
		return c
	}
	switch {
	case a.ID > b.ID:
		return -1
	case a.ID < b.ID:
		return 1
	}
	return 0
}

// Attack returns an attack with its rates and mitigation events.
func (s *Store) Attack(ctx context.Context, id uint64) (store.Attack, []store.Mitigation, error) {
	var (
		a  store.Attack
		ms []store.Mitigation
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bAttacks).Get(u64(id))
		if v == nil {
			return store.ErrNotFound
		}
		var r row
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("decode: %w", err)
		}
		a = r.Attack
		prefix := u64(id)
		c := tx.Bucket(bRates).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			p := store.RatePoint{At: fromNS(k[8:])}
			p.PPS, p.Mbps, p.FPS = readRate(v)
			a.Rates = append(a.Rates, p)
		}
		mits := tx.Bucket(bMits)
		c = tx.Bucket(bMitsOf).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			var m store.Mitigation
			if err := json.Unmarshal(mits.Get(k[8:]), &m); err != nil {
				return fmt.Errorf("decode mitigation: %w", err)
			}
			ms = append(ms, m)
		}
		return nil
	})
	if err != nil {
		return store.Attack{}, nil, fmt.Errorf("attack %d: %w", id, err)
	}
	return a, ms, nil
}

// scan calls fn for the keys of b in [from, to) (zero: unbounded) whose
// first 8 bytes are a time.
func scan(b *bolt.Bucket, from, to time.Time, fn func(k, v []byte) error) error {
	c := b.Cursor()
	var k, v []byte
	if from.IsZero() {
		k, v = c.First()
	} else {
		k, v = c.Seek(u64(ns(from)))
	}
	for ; k != nil; k, v = c.Next() {
		if !to.IsZero() && binary.BigEndian.Uint64(k) >= ns(to) {
			break
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// Mitigations lists the mitigation events in [from, to).
func (s *Store) Mitigations(ctx context.Context, from, to time.Time) ([]store.Mitigation, error) {
	var out []store.Mitigation
	err := s.db.View(func(tx *bolt.Tx) error {
		return scan(tx.Bucket(bMits), from, to, func(_, v []byte) error {
			var m store.Mitigation
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			out = append(out, m)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list mitigations: %w", err)
	}
	return out, nil
}

// Reloads lists the reloads in [from, to).
func (s *Store) Reloads(ctx context.Context, from, to time.Time) ([]store.Reload, error) {
	var out []store.Reload
	err := s.db.View(func(tx *bolt.Tx) error {
		return scan(tx.Bucket(bReloads), from, to, func(_, v []byte) error {
			var r store.Reload
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list reloads: %w", err)
	}
	return out, nil
}

// Traffic returns a series' points in [from, to), averaged over step.
func (s *Store) Traffic(ctx context.Context, hostgroup, direction string, from, to time.Time, step time.Duration) ([]store.TrafficPoint, error) {
	var pts []store.TrafficPoint
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bTraffic).Bucket(trafficBucket(hostgroup, direction))
		if b == nil {
			return nil
		}
		return scan(b, from, to, func(k, v []byte) error {
			p := store.TrafficPoint{At: fromNS(k), Hostgroup: hostgroup, Direction: direction}
			p.PPS, p.Mbps, p.FPS = readRate(v)
			pts = append(pts, p)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("traffic of %s %s: %w", hostgroup, direction, err)
	}
	if step <= 0 {
		return pts, nil
	}
	return average(pts, step), nil
}

// average groups points (oldest first) in buckets of step aligned on the
// Unix epoch, each the mean of its points.
func average(pts []store.TrafficPoint, step time.Duration) []store.TrafficPoint {
	var out []store.TrafficPoint
	n := 0.0
	end := func() {
		if n > 0 {
			p := &out[len(out)-1]
			p.PPS, p.Mbps, p.FPS = p.PPS/n, p.Mbps/n, p.FPS/n
		}
	}
	for _, p := range pts {
		start := time.Unix(0, p.At.UnixNano()/int64(step)*int64(step)).UTC()
		if len(out) == 0 || !out[len(out)-1].At.Equal(start) {
			end()
			out = append(out, store.TrafficPoint{At: start, Hostgroup: p.Hostgroup, Direction: p.Direction})
			n = 0
		}
		q := &out[len(out)-1]
		q.PPS += p.PPS
		q.Mbps += p.Mbps
		q.FPS += p.FPS
		n++
	}
	end()
	return out
}
