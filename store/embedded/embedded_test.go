package embedded_test

import (
	"strings"
	"testing"

	"github.com/kapkan-io/kapkan/store"
	"github.com/kapkan-io/kapkan/store/embedded"
	"github.com/kapkan-io/kapkan/store/storetest"
)

func open(t *testing.T, dir string) *embedded.Store {
	t.Helper()
	s, err := embedded.Open(dir, embedded.Options{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, t.TempDir())
	}, storetest.Options{
		Reopen: func(t *testing.T, s store.Store) store.Store {
			path := s.(*embedded.Store).Path()
			if err := s.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			return open(t, path[:len(path)-len(embedded.FileName)-1])
		},
	})
}

// TestOpenInUse: a second Open of the same store (another kapkan on the
// same store.path) fails with a clear message instead of waiting.
func TestOpenInUse(t *testing.T) {
	dir := t.TempDir()
	s, err := embedded.Open(dir, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := embedded.Open(dir, embedded.Options{}); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second open: %v", err)
	}
}
