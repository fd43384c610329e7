// Package clickhouse is Kapkan's history in ClickHouse, for operators who
// keep full traffic history and forensics at scale: it implements
// store.Store over the native protocol (github.com/ClickHouse/clickhouse-go/v2),
// creates and migrates its schema, writes in batches that survive a server
// restart (retried, and idempotent so a retry never doubles a row), keeps
// raw flow sample records of attacks, and prunes by age. It works with
// ClickHouse 18.16 (the oldest supported) and current servers.
package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/store"
)

// Deps are what the store needs from the daemon.
type Deps struct {
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// Retention, when set and the server has table TTL (19.6 and later),
	// becomes each table's TTL; Prune works on every server.
	Retention time.Duration
	// RetryFor bounds how long a write is retried while the server is
	// unreachable (0: 30 s); then the write fails and its caller decides.
	RetryFor time.Duration
}

// Store is the ClickHouse history. It is safe for concurrent use.
type Store struct {
	conn     driver.Conn
	db       string
	log      *slog.Logger
	retryFor time.Duration
	version  string
	ttl      bool

	retries prometheus.Counter
	rows    *prometheus.CounterVec
	errs    prometheus.Counter
}

var _ store.Store = (*Store)(nil)

var dbName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Open connects to the server the DSN names
// ("clickhouse://127.0.0.1:9000/kapkan": host, native port, database),
// detects its version, and creates or migrates the schema in the database
// (created when missing; "kapkan" when the DSN names none).
func Open(ctx context.Context, dsn string, deps Deps) (*Store, error) {
	opts, err := ch.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse clickhouse dsn: %w", err)
	}
	db := opts.Auth.Database
	if db == "" {
		db = "kapkan"
	}
	if !dbName.MatchString(db) {
		return nil, fmt.Errorf("clickhouse dsn: database %q: want letters, digits and _", db)
	}
	// The database may not exist yet: connect to the default one and name
	// ours in every statement.
	opts.Auth.Database = ""
	if opts.DialTimeout == 0 || opts.DialTimeout > 5*time.Second {
		opts.DialTimeout = 5 * time.Second
	}
	conn, err := ch.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %s: %w", opts.Addr, err)
	}
	s := &Store{conn: conn, db: db, log: deps.Logger, retryFor: deps.RetryFor}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "store", "backend", "clickhouse")
	if s.retryFor == 0 {
		s.retryFor = 30 * time.Second
	}
	s.retries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kapkan_store_clickhouse_retries_total",
		Help: "Writes to ClickHouse tried again after the server could not be reached.",
	})
	s.rows = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kapkan_store_clickhouse_rows_total",
		Help: "Rows written to ClickHouse, by table.",
	}, []string{"table"})
	s.errs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kapkan_store_clickhouse_write_errors_total",
		Help: "Writes to ClickHouse that failed after their retries.",
	})
	if deps.Registry != nil {
		for _, c := range []prometheus.Collector{s.retries, s.rows, s.errs} {
			if err := deps.Registry.Register(c); err != nil {
				conn.Close()
				return nil, fmt.Errorf("register clickhouse store metrics: %w", err)
			}
		}
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect to clickhouse %s: %w", opts.Addr, err)
	}
	sv, err := conn.ServerVersion()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("read clickhouse server version: %w", err)
	}
	s.version = sv.Version.String()
	s.ttl = hasTTL(sv.Version.Major, sv.Version.Minor)
	if err := s.migrate(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	if s.ttl && deps.Retention > 0 {
		days := int((deps.Retention + 24*time.Hour - 1) / (24 * time.Hour))
		for _, stmt := range ttlStatements(db, days) {
			if err := conn.Exec(ctx, stmt); err != nil {
				conn.Close()
				return nil, fmt.Errorf("set retention: %s: %w", stmt, err)
			}
		}
	}
	s.log.Info("clickhouse store open", "server_version", s.version, "database", db, "ttl", s.ttl)
	return s, nil
}

// ServerVersion is the server's version as it told at connect.
func (s *Store) ServerVersion() string { return s.version }

// Close closes the connections.
func (s *Store) Close() error { return s.conn.Close() }

// retry runs a write until it succeeds, fails for a reason a retry cannot
// mend (the server refused the statement), the context ends or RetryFor
// has passed. Each try after the first is counted.
func (s *Store) retry(ctx context.Context, what string, write func(context.Context) error) error {
	deadline := time.Now().Add(s.retryFor)
	backoff := 50 * time.Millisecond
	for tries := 1; ; tries++ {
		err := write(ctx)
		if err == nil {
			if tries > 1 {
				s.log.Info("clickhouse write went through after retries", "what", what, "tries", tries)
			}
			return nil
		}
		if ctx.Err() != nil || !retryable(err) {
			s.errs.Inc()
			return fmt.Errorf("write %s to clickhouse (try %d): %w", what, tries, err)
		}
		if time.Now().Add(backoff).After(deadline) {
			// The server is still out of reach: the caller may keep the
			// rows and try later.
			s.errs.Inc()
			return fmt.Errorf("write %s to clickhouse (try %d): %w: %w", what, tries, store.ErrUnavailable, err)
		}
		if tries == 1 {
			s.log.Warn("clickhouse write failed, retrying", "what", what, "err", err)
		}
		s.retries.Inc()
		select {
		case <-ctx.Done():
			s.errs.Inc()
			return fmt.Errorf("write %s to clickhouse: %w", what, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Second)
	}
}

// retryable tells a failure of the connection (the server restarting,
// unreachable, or gone mid-answer) from one a retry cannot mend: the
// server's answer to the statement, or a row the client could not encode.
func retryable(err error) bool {
	var p permanent
	if errors.As(err, &p) {
		return false
	}
	var ex *ch.Exception
	if errors.As(err, &ex) {
		// Only the server's own network and shutdown troubles are worth
		// another try (SOCKET_TIMEOUT, NETWORK_ERROR, TOO_MANY_SIMULTANEOUS_QUERIES,
		// ABORTED).
		switch ex.Code {
		case 209, 210, 202, 236:
			return true
		}
		return false
	}
	// Whatever else failed happened on the way: a refused or reset
	// connection, EOF mid-answer, a pool that could not dial.
	return true
}

// permanent marks an error no retry mends.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }
