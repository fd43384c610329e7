package daemon_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/daemon/daemontest"
	"github.com/kapkan-io/kapkan/internal/testutil"
)

// TestReloadRereadsBGPPassword: a BGP peer's password_file is read again
// on reload: a changed password is named as needing a restart, a file
// gone missing or empty fails the reload at the key's line, and the
// password is in no error and no log line.
func TestReloadRereadsBGPPassword(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "bgp.password")
	setPassword := func(s string) {
		t.Helper()
		if err := os.WriteFile(pw, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	setPassword("first-Secret\n")
	path := filepath.Join(dir, "kapkan.yaml")
	text := strings.Replace(reloadConfigText, "PPS", "500000", 1)
	text = strings.Replace(text, "mitigation:\n  state_file: \"\"\n", `mitigation:
  state_file: ""
  bgp:
    asn: 65010
    router_id: 192.0.2.10
    peers:
      - address: 127.0.0.1
        port: PORT
        asn: 65000
        password_file: PWFILE
`, 1)
	text = strings.NewReplacer("PORT", fmt.Sprint(testutil.FreePort(t)), "PWFILE", pw).Replace(text)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	_, logs := daemontest.Start(t, cfg, path)
	// SIGHUP is the daemon's once it runs: before, it would end the test.
	for deadline := time.Now().Add(5 * time.Second); logs.Find("kapkan started") == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not start; log:\n%s", logs.All())
		}
	}

	setPassword("second-Secret")
	if line := reload(t, logs, 1); !strings.Contains(line, `"needs_restart":["mitigation.bgp.peers[0].password_file"]`) {
		t.Errorf("the changed password is not named as needing a restart: %s", line)
	}
	for i, tc := range []struct {
		name, content string // "" removes the file
		want          string
	}{
		{"missing", "", "kapkan.yaml:21:24: mitigation.bgp.peers[0].password_file: open " + pw + ": no such file or directory"},
		{"empty", "\n", "kapkan.yaml:21:24: mitigation.bgp.peers[0].password_file: " + pw + " is empty"},
	} {
		if tc.content == "" {
			os.Remove(pw)
		} else {
			setPassword(tc.content)
		}
		if line := reload(t, logs, i+2); !strings.Contains(line, "reload failed") || !strings.Contains(line, tc.want) {
			t.Errorf("%s: reload %s, want a failure with %q", tc.name, line, tc.want)
		}
	}
	if all := logs.All(); strings.Contains(all, "Secret") {
		t.Errorf("a password appears in the log:\n%s", all)
	}
}

// reload sends SIGHUP (the daemon reloads its file) and returns the log
// line of the reload that follows, the nth so far.
func reload(t *testing.T, logs *testutil.LogLines, n int) string {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var lines []string
		for _, l := range strings.Split(logs.All(), "\n") {
			if strings.Contains(l, `"msg":"config reload`) {
				lines = append(lines, l)
			}
		}
		if len(lines) >= n {
			return lines[n-1]
		}
	}
	t.Fatalf("no reload line %d; log:\n%s", n, logs.All())
	return ""
}
