package clickhouse

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
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

// attackRow is one attack's latest state and the event time it is from.
type attackRow struct {
	at  time.Time
	a   *events.Attack
	seq uint64
}

// PutEvents writes the attacks (one row per attack per batch: the latest
// event's view), their rate points, the mitigation events and the
// reloads. Rows are keyed by what they describe, so writing a batch again
// reads back once.
func (s *Store) PutEvents(ctx context.Context, evs []events.Event) error {
	var (
		attacks []attackRow
		byID    = map[uint64]int{}
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
			r := attackRow{at: e.At, a: e.Attack, seq: e.Seq}
			if j, ok := byID[e.Attack.ID]; ok {
				if !e.At.Before(attacks[j].at) {
					attacks[j] = r
				}
			} else {
				byID[e.Attack.ID] = len(attacks)
				attacks = append(attacks, r)
			}
			rates = append(rates, store.RatePoint{At: e.At, PPS: e.Attack.Rates["pps"], Mbps: e.Attack.Rates["mbps"], FPS: e.Attack.Rates["fps"]})
			rateIDs = append(rateIDs, e.Attack.ID)
		case events.MitigationAnnounced, events.MitigationWithdrawn, events.MitigationRenewed,
			events.MitigationRefused, events.MitigationFailed, events.MitigationNone:
			m := e.Mitigation
			if m == nil {
				if e.Attack == nil {
					continue
				}
				// A "none" decision may carry the attack instead.
				m = &events.Mitigation{AttackID: e.Attack.ID, Target: e.Attack.Target, Action: e.Attack.Action,
					Match: e.Attack.Vector, Ladder: e.Attack.Ladder, Step: e.Attack.Step, Reason: e.Attack.Reason}
			}
			mits = append(mits, store.Mitigation{At: e.At, Kind: e.Kind, AttackID: m.AttackID, Target: m.Target,
				Action: m.Action, Match: m.Match, RateMbps: m.RateMbps, Ladder: m.Ladder, Step: m.Step,
				Expires: m.Expires, Reason: m.Reason, Err: m.Err, DryRun: m.DryRun})
			mitSeq = append(mitSeq, e.Seq)
		case events.RulesReloaded, events.ConfigReloaded:
			if e.Reload == nil {
				continue
			}
			r := store.Reload{At: e.At, What: e.Reload.What, OK: e.Reload.OK, Trigger: e.Reload.Trigger, Errors: e.Reload.Errors}
			if len(r.Errors) == 0 && e.Reload.Err != "" {
				r.Errors = []string{e.Reload.Err}
			}
			reloads = append(reloads, r)
			relSeq = append(relSeq, e.Seq)
		}
	}

	// Encode what may fail to encode before anything is written.
	vectors := make([]string, len(attacks))
	samples := make([]string, len(attacks))
	for i, r := range attacks {
		if !r.a.Vector.IsZero() {
			v, err := jsonText(r.a.Vector)
			if err != nil {
				return fmt.Errorf("encode attack %d vector: %w", r.a.ID, err)
			}
			vectors[i] = v
		}
		if r.a.Sample != nil {
			v, err := jsonText(r.a.Sample)
			if err != nil {
				return fmt.Errorf("encode attack %d sample: %w", r.a.ID, err)
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

	err := s.insert(ctx, "attacks", "id, version, day, started_ns, ended_ns, last_ns, target, target_addr, target_bits, scope, direction, hostgroup, trigger, rate, threshold, peak_keys, peak_values, labels, vector, rules, decider, sample_records, sample",
		len(attacks), func(i int) []any {
			r := attacks[i]
			a := r.a
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
			return []any{a.ID, uint64(ns(r.at)), day(a.Started), ns(a.Started), ns(a.Ended), ns(r.at),
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
