// Package testutil holds helpers shared by the tests of several packages:
// locating the shared capture corpus and the repository root.
package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// RepoRoot returns the repository root (the directory holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// FlowsDir returns the shared capture corpus (../shared/flows next to the
// repository, or $KAPKAN_FLOWS). A missing corpus fails the test: it never
// skips.
func FlowsDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("KAPKAN_FLOWS")
	if dir == "" {
		dir = filepath.Join(RepoRoot(t), "..", "shared", "flows")
	}
	if _, err := os.Stat(filepath.Join(dir, "counts.json")); err != nil {
		t.Fatalf("capture corpus not found at %s (set KAPKAN_FLOWS to shared/flows): %v", dir, err)
	}
	return dir
}
