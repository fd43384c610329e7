package clickhouse_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/internal/testutil"
	"github.com/kapkan-io/kapkan/store/clickhouse"
)

// One server serves the package's tests (a database each); the restart
// test starts its own.
var (
	shared     *testutil.ClickHouse
	sharedErr  error
	sharedOnce sync.Once
	sharedDir  string
	databases  atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.Stop()
	}
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
	}
	os.Exit(code)
}

// server returns the shared server, started on first use; a missing
// clickhouse-server fails the test with the install hint.
func server(t *testing.T) *testutil.ClickHouse {
	t.Helper()
	sharedOnce.Do(func() {
		sharedDir, sharedErr = os.MkdirTemp("", "kapkan-clickhouse-")
		if sharedErr == nil {
			shared, sharedErr = testutil.LaunchClickHouse(sharedDir)
		}
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

// dbFor is a database name of its own for a test.
func dbFor(t *testing.T) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, t.Name())
	return fmt.Sprintf("t%d_%s", databases.Add(1), name)
}

// open opens a store on a fresh database of the shared server.
func open(t *testing.T) *clickhouse.Store {
	t.Helper()
	s, err := clickhouse.Open(context.Background(), server(t).DSN(dbFor(t)), clickhouse.Deps{Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// ctx is a context bounded for one test.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}
