package clickhouse

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/store"
)

// tm is the time of Unix nanoseconds, the zero time for 0.
func tm(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// nilIfEmpty keeps "none" as nil, the way the events said it.
func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

const attackColumns = "id, last_ns, started_ns, ended_ns, target, scope, direction, hostgroup, trigger, rate, threshold, peak_keys, peak_values, labels, vector, rules, decider, sample_records, sample"

// Attacks lists the attacks the filter selects, newest first, each with
// its rate points.
func (s *Store) Attacks(ctx context.Context, f store.AttackFilter) ([]store.Attack, error) {
	var where []string
	var args []any
	if !f.To.IsZero() {
		where = append(where, "started_ns < ?")
		args = append(args, ns(f.To))
	}
	if !f.From.IsZero() {
		where = append(where, "(ended_ns = 0 OR ended_ns >= ?)")
		args = append(args, ns(f.From))
	}
	if f.Target.IsValid() {
		lo, bits := prefixKey(f.Target)
		hi := lastAddr(f.Target)
		where = append(where, "target_addr >= ? AND target_addr <= ? AND target_bits >= ?")
		args = append(args, lo, hi, bits)
	}
	if f.Label != "" {
		where = append(where, "has(labels, ?)")
		args = append(args, f.Label)
	}
	if f.Hostgroup != "" {
		where = append(where, "hostgroup = ?")
		args = append(args, f.Hostgroup)
	}
	if f.Rule != "" {
		where = append(where, "(decider = ? OR has(rules, ?))")
		args = append(args, f.Rule, f.Rule)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	q := "SELECT " + attackColumns + " FROM " + s.db + ".attacks FINAL"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY started_ns DESC, id DESC LIMIT " + strconv.Itoa(limit)
	sts, err := s.queryAttacks(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list attacks: %w", err)
	}
	// A list leaves the rate points out (Attack has them).
	var out []store.Attack
	for i := range sts {
		out = append(out, sts[i].a)
	}
	return out, nil
}

// lastAddr is the last address of a prefix, as prefixKey writes it.
func lastAddr(p netip.Prefix) string {
	a := p.Masked().Addr().As16()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	for i := bits; i < 128; i++ {
		a[i/8] |= 1 << (7 - i%8)
	}
	return hex.EncodeToString(a[:])
}

func (s *Store) queryAttacks(ctx context.Context, q string, args ...any) ([]attackState, error) {
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []attackState
	for rows.Next() {
		var (
			last                    int64
			a                       store.Attack
			started, ended          int64
			target, vector, sample  string
			peakKeys, labels, rules []string
			peakVals                []float64
			sampleRecords           uint32
		)
		if err := rows.Scan(&a.ID, &last, &started, &ended, &target, &a.Scope, &a.Direction, &a.Hostgroup, &a.Trigger,
			&a.Rate, &a.Threshold, &peakKeys, &peakVals, &labels, &vector, &rules, &a.Decider, &sampleRecords, &sample); err != nil {
			return nil, err
		}
		a.Started, a.Ended = tm(started), tm(ended)
		if target != "" {
			if a.Target, err = netip.ParsePrefix(target); err != nil {
				return nil, fmt.Errorf("attack %d: target %q: %w", a.ID, target, err)
			}
		}
		if len(peakKeys) > 0 {
			a.Peak = make(map[string]float64, len(peakKeys))
			for i, k := range peakKeys {
				if i < len(peakVals) {
					a.Peak[k] = peakVals[i]
				}
			}
		}
		a.Labels, a.Rules = nilIfEmpty(labels), nilIfEmpty(rules)
		if vector != "" {
			if err := json.Unmarshal([]byte(vector), &a.Vector); err != nil {
				return nil, fmt.Errorf("attack %d: vector: %w", a.ID, err)
			}
		}
		a.SampleRecords = int(sampleRecords)
		if sample != "" {
			a.Sample = new(events.SampleSummary)
			if err := json.Unmarshal([]byte(sample), a.Sample); err != nil {
				return nil, fmt.Errorf("attack %d: sample: %w", a.ID, err)
			}
		}
		out = append(out, attackState{a: a, last: tm(last)})
	}
	return out, rows.Err()
}

// addRates fills the attacks' rate points, oldest first.
func (s *Store) addRates(ctx context.Context, as []store.Attack) error {
	if len(as) == 0 {
		return nil
	}
	idx := make(map[uint64]int, len(as))
	ids := make([]uint64, len(as))
	for i, a := range as {
		idx[a.ID] = i
		ids[i] = a.ID
	}
	rows, err := s.conn.Query(ctx, "SELECT attack_id, at_ns, pps, mbps, fps FROM "+s.db+".attack_rates FINAL WHERE attack_id IN ("+
		idList(ids)+") ORDER BY attack_id, at_ns")
	if err != nil {
		return fmt.Errorf("read attack rates: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id uint64
			at int64
			p  store.RatePoint
		)
		if err := rows.Scan(&id, &at, &p.PPS, &p.Mbps, &p.FPS); err != nil {
			return fmt.Errorf("read attack rates: %w", err)
		}
		p.At = tm(at)
		i := idx[id]
		as[i].Rates = append(as[i].Rates, p)
	}
	return rows.Err()
}

// Attack returns one attack with its rates and mitigation events, or
// store.ErrNotFound.
func (s *Store) Attack(ctx context.Context, id uint64) (store.Attack, []store.Mitigation, error) {
	sts, err := s.queryAttacks(ctx, "SELECT "+attackColumns+" FROM "+s.db+".attacks FINAL WHERE id = ?", id)
	if err != nil {
		return store.Attack{}, nil, fmt.Errorf("read attack %d: %w", id, err)
	}
	if len(sts) == 0 {
		return store.Attack{}, nil, fmt.Errorf("attack %d: %w", id, store.ErrNotFound)
	}
	as := []store.Attack{sts[0].a}
	if err := s.addRates(ctx, as[:1]); err != nil {
		return store.Attack{}, nil, err
	}
	ms, err := s.queryMitigations(ctx, "attack_id = ?", id)
	if err != nil {
		return store.Attack{}, nil, fmt.Errorf("read attack %d mitigations: %w", id, err)
	}
	return as[0], ms, nil
}

// Mitigations lists the mitigation events in [from, to), oldest first.
func (s *Store) Mitigations(ctx context.Context, from, to time.Time) ([]store.Mitigation, error) {
	where, args := timeRange("at_ns", from, to)
	ms, err := s.queryMitigations(ctx, where, args...)
	if err != nil {
		return nil, fmt.Errorf("list mitigations: %w", err)
	}
	return ms, nil
}

// timeRange is the condition of [from, to) on a nanosecond column (a zero
// bound is open).
func timeRange(col string, from, to time.Time) (string, []any) {
	where := []string{"1"}
	var args []any
	if !from.IsZero() {
		where = append(where, col+" >= ?")
		args = append(args, ns(from))
	}
	if !to.IsZero() {
		where = append(where, col+" < ?")
		args = append(args, ns(to))
	}
	return strings.Join(where, " AND "), args
}

func (s *Store) queryMitigations(ctx context.Context, where string, args ...any) ([]store.Mitigation, error) {
	rows, err := s.conn.Query(ctx, "SELECT at_ns, kind, attack_id, target, action, match, rate_mbps, ladder, step, expires_ns, reason, error, dry_run FROM "+
		s.db+".mitigations FINAL WHERE "+where+" ORDER BY at_ns, seq", args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Mitigation
	for rows.Next() {
		var (
			m                           store.Mitigation
			at, expires                 int64
			kind, target, action, match string
			step                        int32
			dry                         uint8
		)
		if err := rows.Scan(&at, &kind, &m.AttackID, &target, &action, &match, &m.RateMbps, &m.Ladder, &step, &expires, &m.Reason, &m.Err, &dry); err != nil {
			return nil, err
		}
		m.At, m.Expires, m.Kind, m.Step, m.DryRun = tm(at), tm(expires), events.Kind(kind), int(step), dry == 1
		if target != "" {
			if m.Target, err = netip.ParsePrefix(target); err != nil {
				return nil, fmt.Errorf("mitigation target %q: %w", target, err)
			}
		}
		if err := m.Action.UnmarshalText([]byte(action)); err != nil {
			return nil, fmt.Errorf("mitigation action %q: %w", action, err)
		}
		if match != "" {
			var mm flowspec.Match
			if err := json.Unmarshal([]byte(match), &mm); err != nil {
				return nil, fmt.Errorf("mitigation match: %w", err)
			}
			m.Match = mm
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// Reloads lists the reloads in [from, to), oldest first.
func (s *Store) Reloads(ctx context.Context, from, to time.Time) ([]store.Reload, error) {
	where, args := timeRange("at_ns", from, to)
	rows, err := s.conn.Query(ctx, "SELECT at_ns, what, ok, trigger, errors FROM "+s.db+".reloads FINAL WHERE "+where+" ORDER BY at_ns, seq", args...)
	if err != nil {
		return nil, fmt.Errorf("list reloads: %w", err)
	}
	defer rows.Close()
	var out []store.Reload
	for rows.Next() {
		var (
			r  store.Reload
			at int64
			ok uint8
		)
		if err := rows.Scan(&at, &r.What, &ok, &r.Trigger, &r.Errors); err != nil {
			return nil, fmt.Errorf("list reloads: %w", err)
		}
		r.At, r.OK, r.Errors = tm(at), ok == 1, nilIfEmpty(r.Errors)
		out = append(out, r)
	}
	return out, rows.Err()
}

// Traffic returns a hostgroup's points in [from, to) for a direction,
// oldest first; with a step, the mean of each step (steps aligned on the
// Unix epoch, each point at the start of its step).
func (s *Store) Traffic(ctx context.Context, hostgroup, direction string, from, to time.Time, step time.Duration) ([]store.TrafficPoint, error) {
	where, args := timeRange("at_ns", from, to)
	args = append([]any{hostgroup, direction}, args...)
	q := "SELECT at_ns, pps, mbps, fps FROM " + s.db + ".traffic FINAL WHERE hostgroup = ? AND direction = ? AND " + where + " ORDER BY at_ns"
	if step > 0 {
		st := strconv.FormatInt(int64(step), 10)
		q = "SELECT intDiv(at_ns, " + st + ") * " + st + " AS b, avg(pps), avg(mbps), avg(fps) FROM " + s.db +
			".traffic FINAL WHERE hostgroup = ? AND direction = ? AND " + where + " GROUP BY b ORDER BY b"
	}
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read traffic of %s: %w", hostgroup, err)
	}
	defer rows.Close()
	var out []store.TrafficPoint
	for rows.Next() {
		p := store.TrafficPoint{Hostgroup: hostgroup, Direction: direction}
		var at int64
		if err := rows.Scan(&at, &p.PPS, &p.Mbps, &p.FPS); err != nil {
			return nil, fmt.Errorf("read traffic of %s: %w", hostgroup, err)
		}
		p.At = tm(at)
		out = append(out, p)
	}
	return out, rows.Err()
}

// Sample returns the raw flow records kept for an attack (PutSample), in
// the order written, oldest sample first.
func (s *Store) Sample(ctx context.Context, attackID uint64) ([]flow.Record, error) {
	rows, err := s.conn.Query(ctx, "SELECT received_ns, start_ns, end_ns, exporter, src, dst, src_port, dst_port, proto, tcp_flags, flags, bytes, packets, sampling_rate, format, sampling FROM "+
		s.db+".samples FINAL WHERE attack_id = ? ORDER BY taken_ns, n", attackID)
	if err != nil {
		return nil, fmt.Errorf("read sample of attack %d: %w", attackID, err)
	}
	defer rows.Close()
	var out []flow.Record
	for rows.Next() {
		var (
			r                  flow.Record
			exporter, src, dst string
			format, sampling   uint8
		)
		if err := rows.Scan(&r.Received, &r.Start, &r.End, &exporter, &src, &dst, &r.SrcPort, &r.DstPort, &r.Proto, &r.TCPFlags, &r.Flags,
			&r.Bytes, &r.Packets, &r.SamplingRate, &format, &sampling); err != nil {
			return nil, fmt.Errorf("read sample of attack %d: %w", attackID, err)
		}
		for _, x := range []struct {
			text string
			dst  *[16]byte
		}{{exporter, &r.Exporter}, {src, &r.Src}, {dst, &r.Dst}} {
			a, err := netip.ParseAddr(x.text)
			if err != nil {
				return nil, fmt.Errorf("read sample of attack %d: address %q: %w", attackID, x.text, err)
			}
			*x.dst = a.As16()
		}
		r.Format, r.Sampling = flow.Format(format), flow.SamplingSource(sampling)
		out = append(out, r)
	}
	return out, rows.Err()
}
