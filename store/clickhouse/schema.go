package clickhouse

import (
	"context"
	"fmt"
	"strings"
)

// The schema is written for ClickHouse 18.16, the oldest server Kapkan
// supports (Debian's package), and runs unchanged on current servers. What
// 18.16 lacks, measured against it: DateTime64 (20.1), Map, the IPv6 type,
// LowCardinality without an experimental flag, table TTL (19.6),
// toStartOfInterval and the JSONExtract functions. So times are Int64 Unix
// nanoseconds beside a Date column that partitions, maps are two arrays,
// structured values are JSON text decoded by Kapkan, and retention drops
// partitions and deletes rows (ALTER ... DELETE, a mutation, which 18.16
// has).
//
// Every table is a ReplacingMergeTree whose sorting key names one fact
// (an attack by id, a mitigation event by time, sequence and target, …),
// and every read says FINAL: a batch written twice (a retry after a lost
// answer) reads back once, whether or not the server merged the parts.

// migrations are applied in order, each once; a migration's statements
// are idempotent (IF NOT EXISTS), so a crash between a migration and its
// schema_version row only repeats it. %[1]s is the database.
var migrations = [][]string{
	1: {
		`CREATE TABLE IF NOT EXISTS %[1]s.attacks (
			id UInt64,
			version UInt64,
			day Date,
			started_ns Int64,
			ended_ns Int64,
			last_ns Int64,
			target String,
			target_addr String,
			target_bits UInt8,
			scope String,
			direction String,
			hostgroup String,
			trigger String,
			rate Float64,
			threshold Float64,
			peak_keys Array(String),
			peak_values Array(Float64),
			labels Array(String),
			vector String,
			rules Array(String),
			decider String,
			sample_records UInt32,
			sample String
		) ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(day) ORDER BY id`,
		`CREATE TABLE IF NOT EXISTS %[1]s.attack_rates (
			attack_id UInt64,
			at_ns Int64,
			day Date,
			pps Float64,
			mbps Float64,
			fps Float64
		) ENGINE = ReplacingMergeTree PARTITION BY toYYYYMMDD(day) ORDER BY (attack_id, at_ns)`,
		`CREATE TABLE IF NOT EXISTS %[1]s.mitigations (
			at_ns Int64,
			day Date,
			seq UInt64,
			kind String,
			attack_id UInt64,
			target String,
			action String,
			match String,
			rate_mbps Float64,
			ladder String,
			step Int32,
			expires_ns Int64,
			reason String,
			error String,
			dry_run UInt8
		) ENGINE = ReplacingMergeTree PARTITION BY toYYYYMMDD(day) ORDER BY (at_ns, seq, kind)`,
		`CREATE TABLE IF NOT EXISTS %[1]s.reloads (
			at_ns Int64,
			day Date,
			seq UInt64,
			what String,
			ok UInt8,
			trigger String,
			errors Array(String)
		) ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(day) ORDER BY (at_ns, seq, what)`,
		`CREATE TABLE IF NOT EXISTS %[1]s.traffic (
			hostgroup String,
			direction String,
			at_ns Int64,
			day Date,
			pps Float64,
			mbps Float64,
			fps Float64
		) ENGINE = ReplacingMergeTree PARTITION BY toYYYYMMDD(day) ORDER BY (hostgroup, direction, at_ns)`,
		`CREATE TABLE IF NOT EXISTS %[1]s.samples (
			attack_id UInt64,
			taken_ns Int64,
			n UInt32,
			day Date,
			received_ns Int64,
			start_ns Int64,
			end_ns Int64,
			exporter String,
			src String,
			dst String,
			src_port UInt16,
			dst_port UInt16,
			proto UInt8,
			tcp_flags UInt8,
			flags UInt8,
			bytes UInt64,
			packets UInt64,
			sampling_rate UInt32,
			format UInt8,
			sampling UInt8
		) ENGINE = ReplacingMergeTree PARTITION BY toYYYYMMDD(day) ORDER BY (attack_id, taken_ns, n)`,
	},
}

// table is how retention sees a table: the expression its partitions are
// named by, and the column a row's age is read from.
type table struct {
	name      string
	partition string // the PARTITION BY expression
	age       string // Int64 Unix ns
	// ttl is the expression a TTL clause compares (servers from 19.6).
	ttl string
}

var tables = []table{
	{"attacks", "toYYYYMM(day)", "last_ns", "toDateTime(intDiv(last_ns, 1000000000))"},
	{"attack_rates", "toYYYYMMDD(day)", "at_ns", "day"},
	{"mitigations", "toYYYYMMDD(day)", "at_ns", "day"},
	{"reloads", "toYYYYMM(day)", "at_ns", "day"},
	{"traffic", "toYYYYMMDD(day)", "at_ns", "day"},
	{"samples", "toYYYYMMDD(day)", "taken_ns", "day"},
}

// migrate creates the database and brings the schema to the latest
// version.
func (s *Store) migrate(ctx context.Context) error {
	if err := s.conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+s.db); err != nil {
		return fmt.Errorf("create database %s: %w", s.db, err)
	}
	if err := s.conn.Exec(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.schema_version (
		version UInt32, applied DateTime DEFAULT now()
	) ENGINE = MergeTree ORDER BY version`, s.db)); err != nil {
		return fmt.Errorf("create %s.schema_version: %w", s.db, err)
	}
	var have uint32
	if err := s.conn.QueryRow(ctx, "SELECT max(version) FROM "+s.db+".schema_version").Scan(&have); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if int(have) >= len(migrations) {
		s.log.Debug("schema is current", "version", have)
	}
	for v := int(have) + 1; v < len(migrations); v++ {
		for _, stmt := range migrations[v] {
			if err := s.conn.Exec(ctx, fmt.Sprintf(stmt, s.db)); err != nil {
				return fmt.Errorf("schema migration %d: %s: %w", v, firstLine(stmt), err)
			}
		}
		// A batch, not Exec of INSERT … VALUES: 18.16 waits for a data
		// block after such a statement, and the driver sends none.
		if err := s.insert(ctx, "schema_version", "version", 1, func(int) []any { return []any{uint32(v)} }); err != nil {
			return fmt.Errorf("record schema version %d: %w", v, err)
		}
		s.log.Info("schema migrated", "version", v)
	}
	return nil
}

// SchemaVersion is the version of the newest migration this build knows.
func SchemaVersion() int { return len(migrations) - 1 }

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

// hasTTL reports whether a server version has table TTL (19.6 and later).
func hasTTL(major, minor uint64) bool { return major > 19 || major == 19 && minor >= 6 }

// ttlStatements sets each table's TTL to the retention, for servers that
// have TTL; older servers rely on Prune alone.
func ttlStatements(db string, retentionDays int) []string {
	out := make([]string, 0, len(tables))
	for _, t := range tables {
		out = append(out, fmt.Sprintf("ALTER TABLE %s.%s MODIFY TTL %s + toIntervalDay(%d)", db, t.name, t.ttl, retentionDays))
	}
	return out
}
