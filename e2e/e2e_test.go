// Package e2e holds Kapkan's acceptance tests. They are black-box: the
// real binary is built once per test process and driven as an operator
// would drive it (`kapkan simulate`, `kapkan replay`, `kapkan replay
// --send` into a running `kapkan run`), and only what it prints is read —
// replay's JSON lines and the daemon's JSON log. No package of the module is
// imported, so the daemon's construction can move without touching them.
//
// Everything runs on loopback; every process is bounded in time and
// stopped by its own PID when its test ends.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

var (
	// bin is the kapkan binary built by TestMain (without -race even when
	// the tests run under it: the race detector would only slow the
	// subprocesses down, and it cannot see into them anyway).
	bin string
	// root is the repository's root.
	root string
	// work is a directory shared by the tests of this process.
	work string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	var err error
	if root, err = filepath.Abs(".."); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: the repository root is not the parent directory:", err)
		return 1
	}
	if work, err = os.MkdirTemp("", "kapkan-e2e-"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(work)
	bin = filepath.Join(work, "kapkan")
	build := exec.Command("go", "build", "-o", bin, "./cmd/kapkan")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building kapkan: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// kapkan runs the binary with args, bounded by timeout, and returns what
// it wrote and its exit error.
func kapkan(timeout time.Duration, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("kapkan %s: killed after %s: %w", strings.Join(args, " "), timeout, err)
	} else if err != nil {
		err = fmt.Errorf("kapkan %s: %w", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), err
}

// match is a FlowSpec match (an attack's vector, a mitigation's match) as
// replay and the JSON log write it.
type match struct {
	Protocol     string   `json:"protocol,omitempty"`
	SrcPorts     []string `json:"src_ports,omitempty"`
	DstPorts     []string `json:"dst_ports,omitempty"`
	PacketLength string   `json:"packet_length,omitempty"`
	TCPFlags     string   `json:"tcp_flags,omitempty"`
	Fragment     string   `json:"fragment,omitempty"`
}

func (m *match) String() string {
	if m == nil {
		return "{}"
	}
	b, _ := json.Marshal(m)
	return strings.ReplaceAll(string(b), `\u0026`, "&")
}

func (m *match) zero() bool { return m == nil || m.String() == "{}" }

// event is one verdict or mitigation line, from replay's output or the
// daemon's log, in one shape: what is compared between the two.
type event struct {
	// What is one of detected, updated, ended (attacks) or announce,
	// withdraw, renew, refused, failed (mitigations).
	What   string
	Target string
	Labels []string
	Vector *match // attacks
	Action string // mitigations
	Match  *match // mitigations
	DryRun bool
	Reason string
	Raw    string
}

func (e event) String() string {
	if e.Action != "" {
		return fmt.Sprintf("%s %s %s %s (%s)", e.What, e.Target, e.Action, e.Match, e.Reason)
	}
	return fmt.Sprintf("%s %s %v %s", e.What, e.Target, e.Labels, e.Vector)
}

// jsonLine holds the fields of both replay's lines and the log's.
type jsonLine struct {
	Type     string   `json:"type"`
	Msg      string   `json:"msg"`
	Event    string   `json:"event"`
	Target   string   `json:"target"`
	Labels   []string `json:"labels"`
	Vector   *match   `json:"vector"`
	Action   string   `json:"action"`
	Match    *match   `json:"match"`
	DryRun   bool     `json:"dry_run"`
	Reason   string   `json:"reason"`
	Listener string   `json:"listener"`
	Address  string   `json:"address"`
	// replay's summary and send_summary
	Attacks      int            `json:"attacks"`
	DecodeErrors int            `json:"decode_errors"`
	Formats      map[string]int `json:"formats"`
	Datagrams    int            `json:"datagrams"`
	SendErrors   int            `json:"send_errors"`
}

// logKinds maps the daemon's log messages to event kinds.
var logKinds = map[string]string{
	"attack detected":      "detected",
	"attack updated":       "updated",
	"attack ended":         "ended",
	"mitigation announced": "announce",
	"mitigation withdrawn": "withdraw",
	"mitigation renewed":   "renew",
	"mitigation refused":   "refused",
	"mitigation failed":    "failed",
}

// toEvent returns the event of a replay line or a log line, if it is one.
func toEvent(l *jsonLine, raw string) (event, bool) {
	e := event{Target: l.Target, Labels: l.Labels, Vector: l.Vector, Action: l.Action, Match: l.Match,
		DryRun: l.DryRun, Reason: l.Reason, Raw: raw}
	switch {
	case l.Type == "attack":
		e.What = "detected"
	case l.Type == "attack_end":
		e.What = "ended"
	case l.Type == "mitigation":
		e.What = l.Event
	case logKinds[l.Msg] != "":
		e.What = logKinds[l.Msg]
	default:
		return event{}, false
	}
	if e.What == "updated" || e.What == "detected" || e.What == "ended" {
		e.Action = "" // an attack line may name the action in force; it is not a mitigation
	}
	return e, true
}

// replayOutput is what `kapkan replay` printed.
type replayOutput struct {
	events  []event
	summary jsonLine
	text    string
}

func parseReplay(t *testing.T, out string) replayOutput {
	t.Helper()
	r := replayOutput{text: out}
	for line := range strings.Lines(out) {
		var l jsonLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("replay printed a line that is not JSON: %q", line)
		}
		if l.Type == "summary" {
			r.summary = l
			continue
		}
		if e, ok := toEvent(&l, strings.TrimSpace(line)); ok {
			r.events = append(r.events, e)
		}
	}
	if r.summary.Type != "summary" {
		t.Fatalf("replay printed no summary:\n%s", out)
	}
	return r
}

// replay runs `kapkan replay --config cfg captures...`.
func replay(t *testing.T, cfg string, captures ...string) replayOutput {
	t.Helper()
	out, stderr, err := kapkan(time.Minute, append([]string{"replay", "--config", cfg}, captures...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	return parseReplay(t, out)
}

// ports hands out loopback ports, never the same one twice in this
// process: the daemon's listeners use SO_REUSEPORT, so two daemons given
// the same port would share its traffic without a word.
var ports struct {
	sync.Mutex
	used map[string]bool
}

// freePort returns a port of network ("udp" or "tcp") free on 127.0.0.1
// when asked, the kernel's choice.
func freePort(t *testing.T, network string) int {
	t.Helper()
	ports.Lock()
	defer ports.Unlock()
	if ports.used == nil {
		ports.used = map[string]bool{}
	}
	for range 100 {
		var port int
		if network == "udp" {
			c, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port = c.LocalAddr().(*net.UDPAddr).Port
			c.Close()
		} else {
			l, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port = l.Addr().(*net.TCPAddr).Port
			l.Close()
		}
		key := fmt.Sprint(port)
		if !ports.used[key] {
			ports.used[key] = true
			return port
		}
	}
	t.Fatal("no free port in 100 tries")
	return 0
}

// daemon is a running `kapkan run`.
type daemon struct {
	cmd        *exec.Cmd
	sflow      string // host:port of the sFlow listener
	netflow    string // host:port of the NetFlow/IPFIX listener
	api        string // host:port of the API
	done       chan struct{}
	mu         sync.Mutex
	lines      []string
	events     []event
	listening  map[string]string
	changed    chan struct{} // closed and replaced at each new line
	waitErr    error
	configPath string
}

// startDaemon starts `kapkan run` with the configuration base (YAML) made
// runnable by a test: listeners, API on free loopback ports, no state
// file (unless base names one), JSON log at debug level (to see "attack updated", which carries
// a verdict made again on a larger sample). It returns once both
// listeners log that they listen, and stops the daemon (by its PID)
// when the test ends.
func startDaemon(t *testing.T, base string) *daemon {
	t.Helper()
	cfg := map[string]any{}
	if err := yaml.Unmarshal([]byte(base), &cfg); err != nil {
		t.Fatalf("configuration: %v", err)
	}
	d := &daemon{
		sflow:     fmt.Sprintf("127.0.0.1:%d", freePort(t, "udp")),
		netflow:   fmt.Sprintf("127.0.0.1:%d", freePort(t, "udp")),
		done:      make(chan struct{}),
		listening: map[string]string{},
		changed:   make(chan struct{}),
	}
	cfg["log"] = map[string]any{"format": "json", "level": "debug"}
	cfg["ingest"] = map[string]any{
		"sflow":   map[string]any{"listen": d.sflow, "read_buffer": 1 << 20},
		"netflow": map[string]any{"listen": d.netflow, "read_buffer": 1 << 20},
	}
	api, _ := cfg["api"].(map[string]any)
	if api == nil {
		api = map[string]any{}
	}
	d.api = fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	api["listen"] = d.api
	cfg["api"] = api
	mit, _ := cfg["mitigation"].(map[string]any)
	if mit == nil {
		mit = map[string]any{}
	}
	if _, ok := mit["state_file"]; !ok {
		mit["state_file"] = "" // a test of restarts names its own
	}
	cfg["mitigation"] = mit
	if _, ok := cfg["store"]; !ok {
		cfg["store"] = map[string]any{"path": ""}
	}
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(work, "kapkan-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d.configPath = f.Name()
	if _, err := f.Write(raw); err != nil {
		t.Fatal(err)
	}
	f.Close()

	d.cmd = exec.Command(bin, "run", "--config", d.configPath, "--log-format", "json", "--log-level", "debug")
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Stdout = io.Discard
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go d.read(stderr)
	t.Cleanup(func() { d.stop(t) })
	if !d.waitFor(10*time.Second, func() bool { return len(d.listening) == 2 }) {
		d.stop(t)
		t.Fatalf("the daemon did not start listening within 10 s; its log:\n%s", d.log())
	}
	if d.listening["sflow"] != d.sflow || d.listening["netflow"] != d.netflow {
		t.Fatalf("listening on %v, configured %s and %s", d.listening, d.sflow, d.netflow)
	}
	return d
}

// kill ends the daemon with SIGKILL, as a crash would: nothing it does at
// a shutdown runs.
func (d *daemon) kill(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.done
}

// read collects the daemon's log lines until it exits.
func (d *daemon) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var l jsonLine
		err := json.Unmarshal([]byte(line), &l)
		d.mu.Lock()
		d.lines = append(d.lines, line)
		if err == nil {
			if l.Msg == "listening" {
				d.listening[l.Listener] = l.Address
			}
			if e, ok := toEvent(&l, line); ok {
				d.events = append(d.events, e)
			}
		}
		close(d.changed)
		d.changed = make(chan struct{})
		d.mu.Unlock()
	}
	err := d.cmd.Wait()
	d.mu.Lock()
	d.waitErr = err
	d.mu.Unlock()
	close(d.done)
}

// waitFor waits until cond (called with d.mu held) holds, the daemon
// exits or timeout passes; it reports whether cond held.
func (d *daemon) waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		ok, changed := cond(), d.changed
		d.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-changed:
		case <-d.done:
			d.mu.Lock()
			defer d.mu.Unlock()
			return cond()
		case <-deadline.C:
			return false
		}
	}
}

// snapshot returns the events logged so far.
func (d *daemon) snapshot() []event {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.events)
}

func (d *daemon) log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.lines, "\n")
}

// stop interrupts the daemon (the operator's Ctrl-C) and kills it if it
// has not exited 10 s later. It can be called more than once.
func (d *daemon) stop(t *testing.T) {
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		t.Errorf("the daemon (pid %d) did not stop within 10 s of SIGINT; killed", d.cmd.Process.Pid)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var exit *exec.ExitError
	if d.waitErr != nil && !(errors.As(d.waitErr, &exit) && exit.ExitCode() == -1) {
		t.Errorf("the daemon exited with %v", d.waitErr)
	}
}

// send plays a capture into the daemon with `kapkan replay --send` at
// speed, to its sFlow or NetFlow listener, and checks every datagram went.
func (d *daemon) send(capture, format string, speed float64, timeout time.Duration) error {
	to := d.netflow
	if format == "sflow5" {
		to = d.sflow
	}
	out, stderr, err := kapkan(timeout, "replay", "--send", to, "--speed", fmt.Sprint(speed), capture)
	if err != nil {
		return fmt.Errorf("%w\n%s%s", err, out, stderr)
	}
	var sum jsonLine
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &sum); err != nil || sum.Type != "send_summary" {
		return fmt.Errorf("replay --send printed %q (%v)", out, err)
	}
	if sum.SendErrors != 0 || sum.Datagrams == 0 {
		return fmt.Errorf("replay --send: %s", out)
	}
	return nil
}

// withQuietTail copies a pcap capture and appends, after a silence of
// gap, a copy of its first datagram: replay is clocked by the capture, so
// an attack still cooling down when the capture ends only ends (and
// prints its final verdict) when the capture's time runs on.
func withQuietTail(t *testing.T, capture string, gap time.Duration) string {
	t.Helper()
	b, err := os.ReadFile(capture)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24+16 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 {
		t.Fatalf("%s: not a little-endian microsecond pcap", capture)
	}
	first := b[24:]
	incl := binary.LittleEndian.Uint32(first[8:])
	var lastSec uint32
	for off := 24; off+16 <= len(b); {
		lastSec = binary.LittleEndian.Uint32(b[off:])
		off += 16 + int(binary.LittleEndian.Uint32(b[off+8:]))
	}
	rec := slices.Clone(first[:16+incl])
	binary.LittleEndian.PutUint32(rec, lastSec+uint32(gap/time.Second))
	out := filepath.Join(t.TempDir(), filepath.Base(capture))
	if err := os.WriteFile(out, append(slices.Clone(b), rec...), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}
