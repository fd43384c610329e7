package clickhouse

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/store"
)

// insert writes n rows into a table in one batch, with retries. The
// columns are named: 18.16 answers a batch prepared as "INSERT INTO t"
// with "expected 0 arguments".
func (s *Store) insert(ctx context.Context, table, columns string, n int, row func(i int) []any) error {
	if n == 0 {
		return nil
	}
	query := fmt.Sprintf("INSERT INTO %s.%s (%s)", s.db, table, columns)
	err := s.retry(ctx, table, func(ctx context.Context) error {
		b, err := s.conn.PrepareBatch(ctx, query)
		if err != nil {
			return err
		}
		for i := range n {
			if err := b.Append(row(i)...); err != nil {
				_ = b.Abort()
				return permanent{fmt.Errorf("encode row %d: %w", i, err)}
			}
		}
		return b.Send()
	})
	if err == nil {
		s.rows.WithLabelValues(table).Add(float64(n))
	}
	return err
}

// ns is a time as Unix nanoseconds, 0 for the zero time.
func ns(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// day is the UTC day of a time, for the Date columns that partition.
func day(t time.Time) time.Time {
	if t.IsZero() {
		return time.Unix(0, 0).UTC()
	}
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// prefixKey is a prefix's network address in the 16-byte form as hex, and
// its length in that form: string comparison of the hex is comparison of
// the addresses, so "inside a prefix" is a range test in SQL.
func prefixKey(p netip.Prefix) (addr string, bits uint8) {
	p = p.Masked()
	a := p.Addr().As16()
	bits = uint8(p.Bits())
	if p.Addr().Is4() {
		bits += 96
	}
	return hex.EncodeToString(a[:]), bits
}

func jsonText(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// attackState is an attack as stored: its row, and the time of the
// newest event applied to it.
type attackState struct {
	a    store.Attack
	last time.Time
}

// apply merges an attack event into the attack's state, by the rules of
// store/storetest: the identity and the rate always, the verdict only
// when the event carries one, the end when there is one. An event older
// than what the state already holds (a batch written again) changes
// nothing.
func (st *attackState) apply(e *events.Event) {
	if e.At.Before(st.last) {
		return
	}
	st.last = e.At
	st.a.Apply(e)
}

// rateKey is a rate point's identity: a point at the same time replaces
// the earlier one.
type rateKey struct {
	id uint64
	at int64
}

// PutEvents writes the attacks (their stored row merged with the batch's
// events, one row per attack), their rate points, the mitigation events
// and the reloads. Every row is keyed by what it describes, so writing a
// batch again reads back once.
func (s *Store) PutEvents(ctx context.Context, evs []events.Event) error {
	var (
		order   []uint64 // attack ids in the order first seen
		touched = map[uint64]bool{}
		rateAt  = map[rateKey]int{}
		rates   []store.RatePoint
		rateIDs []uint64
		mits    []store.Mitigation
		mitSeq  []uint64
		reloads []store.Reload
		relSeq  []uint64
	)
	for i := range evs {
		e := &evs[i]
		switch e.Kind {
		case events.AttackStarted, events.AttackUpdated, events.AttackEscalated, events.AttackEnded:
			if e.Attack == nil {
				continue
			}
			if !touched[e.Attack.ID] {
				touched[e.Attack.ID] = true
				order = append(order, e.Attack.ID)
			}
			if len(e.Attack.Rates) > 0 {
				p := store.RatePoint{At: e.At, PPS: e.Attack.Rates["pps"], Mbps: e.Attack.Rates["mbps"], FPS: e.Attack.Rates["fps"]}
				k := rateKey{e.Attack.ID, ns(e.At)}
				if j, ok := rateAt[k]; ok {
					rates[j] = p // the later event of the batch wins
				} else {
					rateAt[k] = len(rates)
					rates = append(rates, p)
					rateIDs = append(rateIDs, e.Attack.ID)
				}
			}
		case events.MitigationAnnounced, events.MitigationWithdrawn, events.MitigationRenewed,
			events.MitigationRefused, events.MitigationFailed, events.MitigationNone:
			var m store.Mitigation
			switch {
			case e.Mitigation != nil:
				x := e.Mitigation
				m = store.Mitigation{AttackID: x.AttackID, Target: x.Target, Action: x.Action, Match: x.Match, RateMbps: x.RateMbps,
					Ladder: x.Ladder, Step: x.Step, Expires: x.Expires, Reason: x.Reason, Err: x.Err, DryRun: x.DryRun}
			case e.Attack != nil:
				// A "none" decision may carry the attack instead.
				x := e.Attack
				m = store.Mitigation{AttackID: x.ID, Target: x.Target, Ladder: x.Ladder, Step: x.Step, Reason: x.Reason}
			default:
				continue
			}
			m.At, m.Kind = e.At, e.Kind
			mits = append(mits, m)
			mitSeq = append(mitSeq, e.Seq)
		case events.RulesReloaded, events.ConfigReloaded:
			if e.Reload == nil {
				continue
			}
			what := "rules"
			if e.Kind == events.ConfigReloaded {
				what = "config"
			}
			r := store.Reload{At: e.At, What: what, OK: e.Reload.OK, Trigger: e.Reload.Trigger, Errors: e.Reload.Errors}
			if len(r.Errors) == 0 && e.Reload.Err != "" {
				r.Errors = []string{e.Reload.Err}
			}
			reloads = append(reloads, r)
			relSeq = append(relSeq, e.Seq)
		}
	}

	// The attacks' rows as stored, then this batch's events over them, in
	// order.
	states, err := s.attackStates(ctx, order)
	if err != nil {
		return err
	}
	for i := range evs {
		e := &evs[i]
		switch e.Kind {
		case events.AttackStarted, events.AttackUpdated, events.AttackEscalated, events.AttackEnded:
			if e.Attack != nil {
				st := states[e.Attack.ID]
				if st == nil {
					st = &attackState{}
					states[e.Attack.ID] = st
				}
				st.apply(e)
			}
		}
	}

	// Encode what may fail to encode before anything is written.
	vectors := make([]string, len(order))
	samples := make([]string, len(order))
	for i, id := range order {
		a := &states[id].a
		if !a.Vector.IsZero() {
			v, err := jsonText(a.Vector)
			if err != nil {
				return fmt.Errorf("encode attack %d vector: %w", id, err)
			}
			vectors[i] = v
		}
		if a.Sample != nil {
			v, err := jsonText(a.Sample)
			if err != nil {
				return fmt.Errorf("encode attack %d sample: %w", id, err)
			}
			samples[i] = v
		}
	}
	matches := make([]string, len(mits))
	for i, m := range mits {
		if !m.Match.IsZero() {
			v, err := jsonText(m.Match)
			if err != nil {
				return fmt.Errorf("encode mitigation match: %w", err)
			}
			matches[i] = v
		}
	}

	err = s.insert(ctx, "attacks", "id, version, day, started_ns, ended_ns, last_ns, target, target_addr, target_bits, scope, direction, hostgroup, trigger, rate, threshold, peak_keys, peak_values, labels, vector, rules, decider, sample_records, sample",
		len(order), func(i int) []any {
			st := states[order[i]]
			a := &st.a
			keys := make([]string, 0, len(a.Peak))
			for k := range a.Peak {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			vals := make([]float64, len(keys))
			for j, k := range keys {
				vals[j] = a.Peak[k]
			}
			addr, bits := prefixKey(a.Target)
			return []any{a.ID, uint64(ns(st.last)), day(a.Started), ns(a.Started), ns(a.Ended), ns(st.last),
				prefixText(a.Target), addr, bits, a.Scope, a.Direction, a.Hostgroup, a.Trigger, a.Rate, a.Threshold,
				keys, vals, nonNil(a.Labels), vectors[i], nonNil(a.Rules), a.Decider, uint32(a.SampleRecords), samples[i]}
		})
	if err != nil {
		return err
	}
	if err := s.insert(ctx, "attack_rates", "attack_id, at_ns, day, pps, mbps, fps", len(rates), func(i int) []any {
		p := rates[i]
		return []any{rateIDs[i], ns(p.At), day(p.At), p.PPS, p.Mbps, p.FPS}
	}); err != nil {
		return err
	}
	if err := s.insert(ctx, "mitigations", "at_ns, day, seq, kind, attack_id, target, action, match, rate_mbps, ladder, step, expires_ns, reason, error, dry_run", len(mits), func(i int) []any {
		m := mits[i]
		return []any{ns(m.At), day(m.At), mitSeq[i], string(m.Kind), m.AttackID, prefixText(m.Target), m.Action.String(), matches[i],
			m.RateMbps, m.Ladder, int32(m.Step), ns(m.Expires), m.Reason, m.Err, boolByte(m.DryRun)}
	}); err != nil {
		return err
	}
	return s.insert(ctx, "reloads", "at_ns, day, seq, what, ok, trigger, errors", len(reloads), func(i int) []any {
		r := reloads[i]
		return []any{ns(r.At), day(r.At), relSeq[i], r.What, boolByte(r.OK), r.Trigger, nonNil(r.Errors)}
	})
}

// attackStates reads the stored rows of the attacks, in chunks that keep
// each query well under the server's max_query_size (256 KiB by default).
func (s *Store) attackStates(ctx context.Context, ids []uint64) (map[uint64]*attackState, error) {
	out := make(map[uint64]*attackState, len(ids))
	for chunk := range slices.Chunk(ids, idChunk) {
		var sts []attackState
		err := s.retry(ctx, "attacks (read before merge)", func(ctx context.Context) error {
			var err error
			sts, err = s.queryAttacks(ctx, "SELECT "+attackColumns+" FROM "+s.db+".attacks FINAL WHERE id IN ("+idList(chunk)+")")
			return err
		})
		if err != nil {
			return nil, err
		}
		for i := range sts {
			out[sts[i].a.ID] = &sts[i]
		}
	}
	return out, nil
}

// idChunk is how many ids one IN list holds (at most 21 bytes each).
const idChunk = 5000

func idList(ids []uint64) string {
	b := make([]byte, 0, 12*len(ids))
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, id, 10)
	}
	return string(b)
}

// PutTraffic writes hostgroup traffic points; a point written again (same
// hostgroup, direction and time) replaces the first.
func (s *Store) PutTraffic(ctx context.Context, pts []store.TrafficPoint) error {
	return s.insert(ctx, "traffic", "hostgroup, direction, at_ns, day, pps, mbps, fps", len(pts), func(i int) []any {
		p := pts[i]
		return []any{p.Hostgroup, p.Direction, ns(p.At), day(p.At), p.PPS, p.Mbps, p.FPS}
	})
}

// PutSample keeps the raw flow records an attack's verdict stood on, for
// forensics: taken is when the sample was taken, and with the records'
// order it keys them, so writing the same sample again reads back once.
// It is not part of store.Store (the embedded store keeps only the
// summary).
func (s *Store) PutSample(ctx context.Context, attackID uint64, taken time.Time, recs []flow.Record) error {
	return s.insert(ctx, "samples", "attack_id, taken_ns, n, day, received_ns, start_ns, end_ns, exporter, src, dst, src_port, dst_port, proto, tcp_flags, flags, bytes, packets, sampling_rate, format, sampling",
		len(recs), func(i int) []any {
			r := &recs[i]
			return []any{attackID, ns(taken), uint32(i), day(taken), r.Received, r.Start, r.End,
				addrText(r.Exporter), addrText(r.Src), addrText(r.Dst), r.SrcPort, r.DstPort, r.Proto, r.TCPFlags, r.Flags,
				r.Bytes, r.Packets, r.SamplingRate, uint8(r.Format), uint8(r.Sampling)}
		})
}

// prefixText is a prefix as text, "" when there is none.
func prefixText(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

// addrText writes a record's 16-byte address the way people read it
// (IPv4 unmapped).
func addrText(b [16]byte) string { return netip.AddrFrom16(b).Unmap().String() }

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// nonNil gives the driver an empty array for a nil slice.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
