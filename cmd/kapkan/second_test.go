package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/daemon/daemontest"
)

// mainEnv makes the test binary, run again, behave as the kapkan command
// with the arguments after "--".
const mainEnv = "KAPKAN_TEST_MAIN"

// TestMainProcess is not a test: it is kapkan's main for the processes the
// tests start from the test binary.
func TestMainProcess(t *testing.T) {
	if os.Getenv(mainEnv) == "" {
		t.Skip("helper process only")
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	os.Exit(realMain(args, os.Stdout, os.Stderr))
}

// kapkanProcess returns a command running kapkan with args in another
// process (the test binary again).
func kapkanProcess(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestMainProcess$", "-test.count=1", "--"}, args...)...)
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	return cmd
}

// TestSecondDaemonOnSamePortFails starts a daemon, then a second kapkan
// process with a configuration on the same sFlow port: it must not start
// (the kernel would split the datagrams between the two), and must say why.
func TestSecondDaemonOnSamePortFails(t *testing.T) {
	cfg, err := config.Parse("test.yaml", []byte(`
ingest:
  sflow: {listen: "127.0.0.1:0", workers: 2}
  netflow: {listen: ""}
api: {listen: "127.0.0.1:0"}
mitigation: {state_file: ""}
store: {path: ""}
`))
	if err != nil {
		t.Fatal(err)
	}
	d, _ := daemontest.Start(t, cfg, "")
	port := d.FlowAddrs()[0].Port()
	path := filepath.Join(t.TempDir(), "kapkan.yaml")
	// The second one listens on the wildcard address: it overlaps.
	second := fmt.Sprintf(`
ingest:
  sflow: {listen: "0.0.0.0:%d"}
  netflow: {listen: ""}
api: {listen: "127.0.0.1:0"}
mitigation: {state_file: ""}
store: {path: ""}
`, port)
	if err := os.WriteFile(path, []byte(second), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := kapkanProcess("run", "--config", path)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("the second daemon kept running; output:\n%s", out.String())
	}
	if err == nil || cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("second daemon: %v, want exit 1; output:\n%s", err, out.String())
	}
	want := fmt.Sprintf("udp port %d is already used by another kapkan process (pid %d)", port, os.Getpid())
	if !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
	if strings.Contains(out.String(), "listening") {
		t.Errorf("the second daemon said it was listening:\n%s", out.String())
	}
}
