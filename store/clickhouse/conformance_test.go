package clickhouse_test

import (
	"context"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/store"
	"github.com/kapkan-io/kapkan/store/clickhouse"
	"github.com/kapkan-io/kapkan/store/storetest"
)

// TestConformance runs the suite both stores pass, each case on a fresh
// database of the shared server; Reopen closes the store and opens the
// same database again.
func TestConformance(t *testing.T) {
	var mu sync.Mutex
	dsns := map[store.Store]string{}
	openDSN := func(t *testing.T, dsn string) store.Store {
		s, err := clickhouse.Open(context.Background(), dsn, clickhouse.Deps{Registry: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		mu.Lock()
		dsns[s] = dsn
		mu.Unlock()
		return s
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		return openDSN(t, server(t).DSN(dbFor(t)))
	}, storetest.Options{Reopen: func(t *testing.T, s store.Store) store.Store {
		mu.Lock()
		dsn := dsns[s]
		mu.Unlock()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return openDSN(t, dsn)
	}})
}
