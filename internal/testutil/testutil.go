// Package testutil holds helpers shared by the tests of several packages:
// locating the shared capture corpus and the repository root.
package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
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

// Need returns the path of an external program a test needs, and fails the
// test (never skips it) with the install hint when it is missing. make test
// installs every program named here (.ci/deps.sh).
func Need(t testing.TB, program, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(program)
	if err != nil {
		t.Fatalf("%s not found: this test needs it (apt-get install %s, or run make test, which installs it)", program, debianPackage)
	}
	return path
}

// stopProcess ends a process a test started: SIGTERM, then SIGKILL after
// 5 s, and waits for it.
func stopProcess(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}
