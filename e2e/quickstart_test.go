package e2e

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestQuickstart runs the README's first command as a newcomer would, on a
// fresh clone of the repository: `make run` builds the binary and starts
// the demo; the start line gives the dashboard's address; within a
// minute an attack is detected with a label and its would-be mitigation
// is logged; the dashboard and the API answer with the attack.
//
// The demo listens on its fixed default ports (API 8080, sFlow 6343,
// NetFlow 2055): the test fails at once, saying so, when one is taken.
func TestQuickstart(t *testing.T) {
	for _, p := range []struct{ network, addr string }{{"tcp", "127.0.0.1:8080"}, {"udp", "[::]:6343"}, {"udp", "[::]:2055"}} {
		if err := portFree(p.network, p.addr); err != nil {
			t.Fatalf("make run needs %s %s, which is taken: %v", p.network, p.addr, err)
		}
	}
	clone := filepath.Join(t.TempDir(), "kapkan")
	if out, err := exec.Command("git", "clone", "--quiet", root, clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	// The demo's history goes to the system's temporary directory: keep it
	// in the test's own.
	tmp := t.TempDir()
	cmd := exec.Command("make", "run")
	cmd.Dir = clone
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // make and the daemon it starts, stopped together
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		lines []string
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			mu.Lock()
			lines = append(lines, sc.Text())
			mu.Unlock()
		}
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		waited := make(chan error, 1)
		go func() { waited <- cmd.Wait() }()
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-waited
		}
		pw.Close()
		<-done
	}
	t.Cleanup(stop)
	// find waits for a line matching re, for up to d.
	find := func(re *regexp.Regexp, d time.Duration) []string {
		deadline := time.Now().Add(d)
		for time.Now().Before(deadline) {
			mu.Lock()
			for _, l := range lines {
				if m := re.FindStringSubmatch(l); m != nil {
					mu.Unlock()
					return m
				}
			}
			mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("no line matching %s within %v; make run printed:\n%s", re, d, strings.Join(lines, "\n"))
		return nil
	}

	// Building takes a while on a cold cache; the clock for the detection
	// starts when the daemon says it started.
	url := find(regexp.MustCompile(`msg="kapkan started".* dashboard=(http://\S+)`), 5*time.Minute)[1]
	started := time.Now()
	mu.Lock()
	first := ""
	for _, l := range lines {
		if strings.Contains(l, "dashboard") {
			first = l
			break
		}
	}
	mu.Unlock()
	if !strings.Contains(first, "http://127.0.0.1:8080/") {
		t.Errorf("the first line naming the dashboard does not give its address: %q", first)
	}
	det := find(regexp.MustCompile(`msg="attack detected" .*target=(\S+) .*labels=\[([^\]]+)\]`), time.Minute)
	t.Logf("detection %v after the start line: %s labelled %s", time.Since(started).Round(100*time.Millisecond), det[1], det[2])
	find(regexp.MustCompile(`msg="mitigation announced" .*target=`+regexp.QuoteMeta(det[1])+`.*dry_run=true`), 30*time.Second)

	page := httpGet(t, url)
	if !strings.Contains(page, "<title>Kapkan</title>") {
		t.Errorf("the dashboard at %s answered:\n%s", url, page)
	}
	attacks := httpGet(t, strings.TrimSuffix(url, "/")+"/api/v1/attacks")
	if !strings.Contains(attacks, `"target":"`+det[1]+`"`) {
		t.Errorf("GET /api/v1/attacks does not list %s:\n%s", det[1], attacks)
	}
	stop()
}

func portFree(network, addr string) error {
	if network == "tcp" {
		l, err := net.Listen(network, addr)
		if err != nil {
			return err
		}
		return l.Close()
	}
	c, err := net.ListenPacket(network, addr)
	if err != nil {
		return err
	}
	return c.Close()
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v\n%s", url, resp.StatusCode, err, b)
	}
	return string(b)
}
