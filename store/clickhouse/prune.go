package clickhouse

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Prune drops what is older than before, by the rules of store/storetest:
// an attack whose newest event is older (its end, or the last update of
// one whose end never came) goes with its rate points, samples and every
// mitigation event naming it; an attack heard of since is kept whole;
// mitigation events and samples of attacks the store does not hold,
// reloads and traffic points go by their own time. Rows are deleted by
// mutations (ALTER TABLE … DELETE, which 18.16 has), waited for, so a
// read after Prune no longer sees them; reloads and traffic drop whole
// partitions first, which is cheap on every server.
func (s *Store) Prune(ctx context.Context, before time.Time) error {
	cut := ns(before)
	if err := s.pruneAttacks(ctx, cut); err != nil {
		return fmt.Errorf("prune attacks before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	for _, t := range tables {
		if t.name != "reloads" && t.name != "traffic" {
			continue
		}
		if err := s.prune(ctx, t, cut); err != nil {
			return fmt.Errorf("prune %s.%s before %s: %w", s.db, t.name, before.UTC().Format(time.RFC3339), err)
		}
	}
	return nil
}

func (s *Store) pruneAttacks(ctx context.Context, cut int64) error {
	drop, err := s.ids(ctx, fmt.Sprintf("SELECT id FROM %s.attacks FINAL WHERE last_ns < %d", s.db, cut))
	if err != nil {
		return fmt.Errorf("find attacks to drop: %w", err)
	}
	for chunk := range slices.Chunk(drop, idChunk) {
		list := idList(chunk)
		for _, stmt := range []string{
			"ALTER TABLE %[1]s.attack_rates DELETE WHERE attack_id IN (%[2]s)",
			"ALTER TABLE %[1]s.mitigations DELETE WHERE attack_id IN (%[2]s)",
			"ALTER TABLE %[1]s.samples DELETE WHERE attack_id IN (%[2]s)",
			"ALTER TABLE %[1]s.attacks DELETE WHERE id IN (%[2]s)",
		} {
			if err := s.conn.Exec(ctx, fmt.Sprintf(stmt, s.db, list)); err != nil {
				return fmt.Errorf("delete %d attacks: %w", len(chunk), err)
			}
		}
	}
	// What names an attack the store does not hold goes by its own time.
	for _, t := range []struct{ table, at string }{{"mitigations", "at_ns"}, {"samples", "taken_ns"}} {
		orphans, err := s.ids(ctx, fmt.Sprintf("SELECT DISTINCT attack_id FROM %[1]s.%[2]s WHERE %[3]s < %[4]d AND attack_id NOT IN (SELECT id FROM %[1]s.attacks)",
			s.db, t.table, t.at, cut))
		if err != nil {
			return fmt.Errorf("find %s of no attack: %w", t.table, err)
		}
		for chunk := range slices.Chunk(orphans, idChunk) {
			if err := s.conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s.%s DELETE WHERE %s < %d AND attack_id IN (%s)", s.db, t.table, t.at, cut, idList(chunk))); err != nil {
				return fmt.Errorf("delete %s of no attack: %w", t.table, err)
			}
		}
	}
	for _, t := range []string{"attacks", "attack_rates", "mitigations", "samples"} {
		if err := s.waitMutations(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// ids runs a query of one UInt64 column.
func (s *Store) ids(ctx context.Context, q string) ([]uint64, error) {
	rows, err := s.conn.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []uint64
	for rows.Next() {
		var id uint64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// waitMutations waits until the table's deletes are done: 18.16 has no
// mutations_sync setting.
func (s *Store) waitMutations(ctx context.Context, table string) error {
	for {
		var pending uint64
		if err := s.conn.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ? AND table = ? AND is_done = 0", s.db, table).Scan(&pending); err != nil {
			return fmt.Errorf("wait for deletes in %s: %w", table, err)
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for deletes in %s: %w", table, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *Store) prune(ctx context.Context, t table, cut int64) error {
	rows, err := s.conn.Query(ctx, fmt.Sprintf("SELECT toString(%s) AS p, max(%s), min(%s) FROM %s.%s GROUP BY p", t.partition, t.age, t.age, s.db, t.name))
	if err != nil {
		return fmt.Errorf("read partitions: %w", err)
	}
	var drop []string
	partial := false
	for rows.Next() {
		var (
			p        string
			newest   int64
			earliest int64
		)
		if err := rows.Scan(&p, &newest, &earliest); err != nil {
			rows.Close()
			return fmt.Errorf("read partitions: %w", err)
		}
		switch {
		case newest < cut:
			drop = append(drop, p)
		case earliest < cut:
			partial = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read partitions: %w", err)
	}
	for _, p := range drop {
		// Partition values are numbers (toYYYYMM, toYYYYMMDD) read from the
		// server itself.
		if err := s.conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s.%s DROP PARTITION %s", s.db, t.name, p)); err != nil {
			return fmt.Errorf("drop partition %s: %w", p, err)
		}
	}
	if !partial {
		return nil
	}
	if err := s.conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s.%s DELETE WHERE %s < %d", s.db, t.name, t.age, cut)); err != nil {
		return fmt.Errorf("delete rows: %w", err)
	}
	return s.waitMutations(ctx, t.name)
}
