package clickhouse

import (
	"context"
	"fmt"
	"time"
)

// Prune drops what is older than before: attacks last heard of before it
// (with their rate points older than it), and older mitigation events,
// reloads, traffic points and samples. Whole partitions older than before
// are dropped (cheap on every server); rows older than before in the
// partitions that remain are deleted by a mutation, waited for, so a read
// after Prune no longer sees them.
func (s *Store) Prune(ctx context.Context, before time.Time) error {
	cut := ns(before)
	for _, t := range tables {
		if err := s.prune(ctx, t, cut); err != nil {
			return fmt.Errorf("prune %s.%s before %s: %w", s.db, t.name, before.UTC().Format(time.RFC3339), err)
		}
	}
	return nil
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
	// 18.16 has no mutations_sync setting: wait for the mutation here.
	for {
		var pending uint64
		if err := s.conn.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ? AND table = ? AND is_done = 0", s.db, t.name).Scan(&pending); err != nil {
			return fmt.Errorf("wait for delete: %w", err)
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for delete: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
