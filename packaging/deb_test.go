//go:build deb

package packaging_test

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/internal/testutil"
)

// The tests in this file install the package on this machine: they run as
// root (make test-deb, in CI), and purge it again. No systemd runs here, so
// the service is never started by systemctl; the daemon is started by the
// test under the unit's user and capabilities instead.

const (
	stateDir = "/var/lib/kapkan"
	etcDir   = "/etc/kapkan"
	conffile = "/etc/kapkan/kapkan.yaml"
	binary   = "/usr/bin/kapkan"
	unitPath = "/lib/systemd/system/kapkan.service"
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestDebInstall builds the package with make deb, installs it with dpkg
// -i, checks what it installed and that the daemon runs from it
// unprivileged, reinstalls it over a changed configuration, and purges it.
func TestDebInstall(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("installing a package needs root: run make test-deb as root")
	}
	for _, tool := range []string{"dpkg", "make", "systemd-analyze", "setpriv", "runuser"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s: %v (make deps installs what the tests need)", tool, err)
		}
	}
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		t.Log("systemd runs here; the test still leaves the service alone")
	}
	// Purging deletes /var/lib/kapkan: refuse to when it holds what the
	// package did not put there.
	if exec.Command("dpkg", "-s", "kapkan").Run() != nil {
		if entries, err := os.ReadDir(stateDir); err == nil && len(entries) > 0 {
			t.Fatalf("%s holds %d entries and the package is not installed: the test would delete them when purging", stateDir, len(entries))
		}
	}

	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dist := t.TempDir()
	start := time.Now()
	build := exec.Command("make", "deb", "DIST="+dist)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make deb: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dist, "kapkan_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb left %v in %s, want one package", debs, dist)
	}
	deb := debs[0]
	t.Logf("make deb: %s in %s", filepath.Base(deb), time.Since(start).Round(100*time.Millisecond))

	start = time.Now()
	run(t, "dpkg", "-i", deb)
	t.Cleanup(func() { _ = exec.Command("dpkg", "--purge", "kapkan").Run() })
	t.Logf("dpkg -i: %s", time.Since(start).Round(100*time.Millisecond))

	t.Run("installed", func(t *testing.T) {
		if got := run(t, "dpkg-query", "-W", "-f=${Status}", "kapkan"); got != "install ok installed" {
			t.Errorf("status %q", got)
		}
		if got := run(t, "dpkg-query", "-W", "-f=${Conffiles}", "kapkan"); !strings.Contains(got, conffile+" ") {
			t.Errorf("conffiles %q, want %s", got, conffile)
		}
		f, err := elf.Open(binary)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s asks for a dynamic loader: not a static binary", binary)
			}
		}
		if out := run(t, binary, "version"); !strings.HasPrefix(out, "kapkan ") || strings.Contains(out, "kapkan dev ") {
			t.Errorf("kapkan version: %q, want the version make set", out)
		}
	})

	t.Run("user and permissions", func(t *testing.T) {
		u, err := user.Lookup("kapkan")
		if err != nil {
			t.Fatal(err)
		}
		if uid, _ := strconv.Atoi(u.Uid); uid == 0 || uid >= 1000 {
			t.Errorf("kapkan's uid %s is not a system user's", u.Uid)
		}
		if u.HomeDir != stateDir {
			t.Errorf("kapkan's home %q, want %s", u.HomeDir, stateDir)
		}
		if shell := strings.TrimSpace(run(t, "getent", "passwd", "kapkan")); !strings.HasSuffix(shell, ":/usr/sbin/nologin") {
			t.Errorf("kapkan can log in: %s", shell)
		}
		for _, tc := range []struct {
			path        string
			owner, grp  string
			mode        os.FileMode
			isDirectory bool
		}{
			{stateDir, "kapkan", "kapkan", 0o750, true},
			{etcDir, "root", "kapkan", 0o750, true},
			{conffile, "root", "kapkan", 0o640, false},
			{binary, "root", "root", 0o755, false},
			{unitPath, "root", "root", 0o644, false},
		} {
			st, err := os.Stat(tc.path)
			if err != nil {
				t.Error(err)
				continue
			}
			sys := st.Sys().(*syscall.Stat_t)
			owner, _ := user.LookupId(strconv.Itoa(int(sys.Uid)))
			grp, _ := user.LookupGroupId(strconv.Itoa(int(sys.Gid)))
			if owner == nil || grp == nil || owner.Username != tc.owner || grp.Name != tc.grp || st.Mode().Perm() != tc.mode || st.IsDir() != tc.isDirectory {
				t.Errorf("%s: %v uid %d gid %d, want %#o %s:%s", tc.path, st.Mode(), sys.Uid, sys.Gid, tc.mode, tc.owner, tc.grp)
			}
		}
	})

	t.Run("systemd-analyze verify", func(t *testing.T) {
		out, err := exec.Command("systemd-analyze", "verify", unitPath).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", unitPath, err, out)
		}
	})

	t.Run("check as kapkan", func(t *testing.T) {
		out, err := exec.Command("runuser", "-u", "kapkan", "--", binary, "check", conffile).CombinedOutput()
		if err != nil || !strings.Contains(string(out), conffile+": ok") {
			t.Errorf("kapkan check %s as the kapkan user: %v\n%s", conffile, err, out)
		}
	})

	t.Run("runs unprivileged", func(t *testing.T) { runsUnprivileged(t) })

	t.Run("conffile kept on reinstall", func(t *testing.T) {
		mine := "\n# changed by the operator\n"
		f, err := os.OpenFile(conffile, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.WriteString(mine)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		run(t, "dpkg", "-i", deb)
		if got, err := os.ReadFile(conffile); err != nil || !strings.HasSuffix(string(got), mine) {
			t.Errorf("the operator's change to %s was lost on reinstall (%v)", conffile, err)
		}
	})

	run(t, "dpkg", "--purge", "kapkan")
	for _, p := range []string{binary, unitPath, etcDir, stateDir} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there after dpkg --purge (%v)", p, err)
		}
	}
}

// runsUnprivileged starts the installed daemon as systemd would start the
// unit, short of the sandbox: as the kapkan user, with no capability but
// CAP_NET_BIND_SERVICE (ambient, bounding set reduced to it), no new
// privileges. Its API listens on a port below 1024 to show the capability
// is enough; the kernel's view of the process shows it holds nothing more.
// Started without the capability, it cannot bind the port.
func runsUnprivileged(t *testing.T) {
	low := freeLowPort(t)
	cfg := filepath.Join(etcDir, "test-unprivileged.yaml")
	text := fmt.Sprintf(`dry_run: true
ingest:
  sflow:   {listen: "127.0.0.1:%d"}
  netflow: {listen: "127.0.0.1:%d"}
api:
  listen: "127.0.0.1:%d"
mitigation:
  state_file: /var/lib/kapkan/mitigations.json
store:
  path: /var/lib/kapkan
`, testutil.FreePort(t), testutil.FreePort(t), low)
	if err := os.WriteFile(cfg, []byte(text), 0o640); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(cfg)
	run(t, "chgrp", "kapkan", cfg)

	setpriv := func(caps bool) []string {
		args := []string{"--reuid=kapkan", "--regid=kapkan", "--init-groups", "--no-new-privs"}
		if caps {
			args = append(args, "--inh-caps=-all,+net_bind_service", "--ambient-caps=+net_bind_service", "--bounding-set=-all,+net_bind_service")
		} else {
			args = append(args, "--inh-caps=-all", "--bounding-set=-all")
		}
		return append(args, binary, "run", "--config", cfg)
	}

	// Without the capability the low port is refused and the daemon exits.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "setpriv", setpriv(false)...).CombinedOutput()
	if err == nil || ctx.Err() != nil || !strings.Contains(string(out), "permission denied") {
		t.Errorf("without CAP_NET_BIND_SERVICE the daemon should fail to bind port %d: %v\n%s", low, err, out)
	}

	var log bytes.Buffer
	cmd := exec.Command("setpriv", setpriv(true)...)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("the daemon did not stop within 15 s of SIGTERM")
		}
	}()
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz", low)
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("the daemon exited: %v\n%s", err, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer 200 within 15 s: %v\n%s", url, err, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	// setpriv execs the daemon, so the child is the daemon itself.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	u, err := user.Lookup("kapkan")
	if err != nil {
		t.Fatal(err)
	}
	const bindService = "0000000000000400" // CAP_NET_BIND_SERVICE is capability 10
	want := map[string]string{
		"Uid":        strings.Repeat(u.Uid+"\t", 3) + u.Uid,
		"CapEff":     bindService,
		"CapPrm":     bindService,
		"CapAmb":     bindService,
		"CapBnd":     bindService,
		"NoNewPrivs": "1",
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		if w, ok := want[k]; ok {
			if strings.TrimSpace(v) != w {
				t.Errorf("/proc/PID/status %s: %q, want %q", k, strings.TrimSpace(v), w)
			}
			delete(want, k)
		}
	}
	for k := range want {
		t.Errorf("/proc/PID/status has no %s line", k)
	}
}

// freeLowPort returns a TCP port below 1024 free on loopback.
func freeLowPort(t *testing.T) int {
	t.Helper()
	for p := 1000; p > 900; p-- {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			l.Close()
			return p
		}
	}
	t.Fatal("no free TCP port between 901 and 1000 on loopback")
	return 0
}
