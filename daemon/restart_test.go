package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/daemon"
	"github.com/kapkan-io/kapkan/daemon/daemontest"
	"github.com/kapkan-io/kapkan/ingest/demo"
	"github.com/kapkan-io/kapkan/internal/testutil"
)

// childEnv names the configuration file of a daemon run by this test
// binary in a process of its own (so that it can be killed with SIGKILL);
// set only for that child.
const childEnv = "KAPKAN_DAEMON_CHILD_CONFIG"

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		runChild(path)
	}
	os.Exit(m.Run())
}

// runChild runs a daemon on the configuration at path, logging JSON on
// stdout after a first line "ready FLOW-ADDR API-ADDR"; it exits after two
// minutes at most (the parent kills it long before).
func runChild(path string) {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	log := slog.New(slog.NewJSONHandler(lockedWriter{&mu, out}, nil))
	d, err := daemon.New(cfg, daemon.Deps{Logger: log, ConfigPath: path})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mu.Lock()
	fmt.Fprintln(out, "ready", d.FlowAddrs()[0], d.APIAddr())
	out.Flush()
	mu.Unlock()
	err = d.Run(ctx)
	mu.Lock()
	fmt.Fprintln(out, "exit", err)
	out.Flush()
	mu.Unlock()
	os.Exit(0)
}

// lockedWriter writes whole log lines and flushes each.
type lockedWriter struct {
	mu *sync.Mutex
	w  *bufio.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.w.Write(p)
	if err == nil {
		err = l.w.Flush()
	}
	return n, err
}

// child is a daemon in a process of its own.
type child struct {
	cmd       *exec.Cmd
	flow      netip.AddrPort
	api       string
	mu        sync.Mutex
	log       bytes.Buffer
	exited    chan struct{}
	readyLine chan string
}

func startChild(t *testing.T, cfgPath string) *child {
	t.Helper()
	c := &child{exited: make(chan struct{}), readyLine: make(chan string, 1)}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(os.Environ(), childEnv+"="+cfgPath)
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Stderr = c.cmd.Stdout
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "ready ") {
				c.readyLine <- line
			}
			c.mu.Lock()
			c.log.WriteString(line + "\n")
			c.mu.Unlock()
		}
		_ = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		<-c.exited
	})
	select {
	case line := <-c.readyLine:
		f := strings.Fields(line)
		c.flow = netip.MustParseAddrPort(f[1])
		c.api = "http://" + f[2]
	case <-c.exited:
		t.Fatalf("the daemon exited before it was ready:\n%s", c.logs())
	case <-time.After(20 * time.Second):
		t.Fatalf("the daemon not ready in 20 s:\n%s", c.logs())
	}
	return c
}

func (c *child) logs() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.log.String()
}

// kill9 kills the daemon with SIGKILL and waits for it to be gone.
func (c *child) kill9(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.exited
}

// active is what GET /api/v1/mitigations lists of an action.
type active struct {
	ID      string    `json:"id"`
	Target  string    `json:"target"`
	Expires time.Time `json:"expires"`
}

func (c *child) mitigations(t *testing.T) map[string]active {
	t.Helper()
	var got struct {
		Mitigations []active `json:"mitigations"`
	}
	getJSON(t, c.api+"/api/v1/mitigations", &got)
	out := map[string]active{}
	for _, a := range got.Mitigations {
		out[a.ID] = a
	}
	return out
}

func (c *child) ban(t *testing.T, target, ttl string) {
	t.Helper()
	body := fmt.Sprintf(`{"target": %q, "action": "blackhole", "ttl": %q, "reason": "restart test"}`, target, ttl)
	req, _ := http.NewRequest(http.MethodPost, c.api+"/api/v1/mitigations", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+daemontest.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("ban %s: %d %s", target, resp.StatusCode, b)
	}
}

// TestKillNineWithMitigationsInForce: a live daemon with three actions in
// force at a real gobgpd — a FlowSpec rule from a detected attack (TTL
// 25 s), a manual blackhole for two minutes and one for 4 s — is killed
// with SIGKILL. The router drops the routes with the session (no graceful
// restart here). Started again on the same state file after the short ban
// expired, the daemon restores the two others with the expiry they had,
// announces each once (and the router holds exactly those two), leaves the
// expired one out, and withdraws the FlowSpec rule at its original expiry.
func TestKillNineWithMitigationsInForce(t *testing.T) {
	router := testutil.StartGoBGPD(t, testutil.GoBGPNeighbor{Address: "127.0.0.1", ASN: 65010,
		Families: []string{"ipv4-unicast", "ipv4-flowspec"}})
	dir := t.TempDir()
	state := filepath.Join(dir, "mitigations.json")
	mit := strings.Replace(daemontest.BGPMitigation(router.BGPPort, state), "mitigation:\n", "mitigation:\n  ttl: 25s\n", 1)
	cfgPath := filepath.Join(dir, "kapkan.yaml")
	if err := os.WriteFile(cfgPath, []byte(daemontest.ConfigYAML(t, mit)), 0o600); err != nil {
		t.Fatal(err)
	}

	const (
		flowspecRule = "[destination: 203.0.113.5/32][protocol: ==udp][source-port: ==53]"
		longBan      = "203.0.113.77/32"
		shortBan     = "203.0.113.78/32"
	)
	routes := func() (unicast, fs map[string]testutil.Received) {
		return router.AdjIn("127.0.0.1", "ipv4"), router.AdjIn("127.0.0.1", "ipv4-flowspec")
	}
	holds := func(want ...string) func() bool {
		return func() bool {
			u, f := routes()
			for _, w := range want {
				_, inU := u[w]
				_, inF := f[w]
				if !inU && !inF {
					return false
				}
			}
			return true
		}
	}
	held := func() string {
		u, f := routes()
		return fmt.Sprintf("the router holds %v and %v", keys(u), keys(f))
	}

	first := startChild(t, cfgPath)
	router.WaitEstablished("127.0.0.1", 30*time.Second)
	daemontest.SendAttack(t, first.flow, demo.DNSAmp, netip.MustParseAddr("203.0.113.5"), 3*time.Second, 5)
	first.ban(t, longBan, "2m")
	first.ban(t, shortBan, "4s")
	waitFor(t, 15*time.Second, holds(flowspecRule, longBan, shortBan), func() string { return held() + "\nlog:\n" + first.logs() })
	before := first.mitigations(t)
	if len(before) != 3 {
		t.Fatalf("%d mitigations in force before the kill, want 3: %v", len(before), before)
	}

	first.kill9(t)
	// Without graceful restart the router drops the routes with the
	// session (gobgpd then has no Adj-RIB-In for the peer to list).
	waitFor(t, 15*time.Second, func() bool { return !router.Established("127.0.0.1") },
		func() string { return "the session stayed up after SIGKILL" })
	// Past the short ban's expiry before the daemon is back.
	for _, a := range before {
		if a.Target == shortBan {
			time.Sleep(time.Until(a.Expires) + 500*time.Millisecond)
		}
	}

	second := startChild(t, cfgPath)
	router.WaitEstablished("127.0.0.1", 30*time.Second)
	waitFor(t, 15*time.Second, holds(flowspecRule, longBan), func() string { return held() + "\nlog:\n" + second.logs() })
	after := second.mitigations(t)
	if len(after) != 2 {
		t.Errorf("%d mitigations in force after the restart, want 2 (the expired ban left out): %v", len(after), after)
	}
	for id, a := range after {
		b, ok := before[id]
		if !ok {
			t.Errorf("%s in force after the restart, not before", id)
			continue
		}
		if !a.Expires.Equal(b.Expires) {
			t.Errorf("%s expires %s after the restart, %s before", id, a.Expires, b.Expires)
		}
		if a.Target == shortBan {
			t.Errorf("the expired ban on %s was restored", shortBan)
		}
	}
	if u, f := routes(); len(u) != 1 || len(f) != 1 {
		t.Errorf("after the restart: %s, want exactly the long ban and the FlowSpec rule", held())
	}
	// Each restored action announced once, and nothing else announced.
	announced := scrapeSum(t, second.api+"/metrics", "kapkan_mitigation_events_total", `type="announce"`)
	if announced != 2 {
		t.Errorf("kapkan_mitigation_events_total{type=announce} = %v after the restart, want 2; log:\n%s", announced, second.logs())
	}

	// The FlowSpec rule goes at the expiry it had before the kill.
	var fsExpires time.Time
	for _, a := range before {
		if strings.HasPrefix(a.Target, "203.0.113.5/") {
			fsExpires = a.Expires
		}
	}
	waitFor(t, time.Until(fsExpires)+10*time.Second, func() bool { _, f := routes(); return len(f) == 0 },
		func() string { return "the FlowSpec rule outlived its TTL after the restart: " + held() })
	if early := time.Until(fsExpires); early > time.Second {
		t.Errorf("the FlowSpec rule was withdrawn %v before its expiry", early)
	}
	if !holds(longBan)() {
		t.Errorf("the long ban went with the FlowSpec rule: %s", held())
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// scrapeSum sums the samples of a metric at url whose labels contain
// label (as the exposition writes it: name="value").
func scrapeSum(t *testing.T, url, name, label string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") || !strings.Contains(line, label) {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
			sum += v
		}
	}
	return sum
}
