package testutil

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BIRD is a real BIRD 2 (Debian's bird2) on loopback, standing in for a
// router: it listens on a port of its own at Address, accepts one passive
// session (protocol "kapkan") from a neighbour, imports its IPv4 unicast
// and FlowSpec routes, exports nothing, and answers birdc on a control
// socket of its own.
type BIRD struct {
	t testing.TB
	// Address is where BIRD listens (a loopback address other than the
	// neighbour's).
	Address string
	BGPPort int
	dir     string
	bin     string
	cli     string
	cmd     *exec.Cmd
}

// BIRDConfig is the session BIRD accepts.
type BIRDConfig struct {
	// Address is BIRD's own address ("" for 127.0.0.2).
	Address string
	ASN     uint32 // BIRD's AS (0 for 65000)
	// Neighbor and NeighborASN are the speaker's address and AS.
	Neighbor    string
	NeighborASN uint32
	// Password, when set, is the session's TCP-MD5 password.
	Password string
	// GracefulRestartTime, when not 0, turns graceful restart on (helper
	// for the neighbour) with this restart time; LongLived turns long-lived
	// graceful restart on too.
	GracefulRestartTime time.Duration
	LongLived           bool
}

// StartBIRD writes BIRD's configuration, starts it and stops it (by its
// PID) when the test ends.
func StartBIRD(t testing.TB, c BIRDConfig) *BIRD {
	t.Helper()
	b := &BIRD{t: t, Address: c.Address, BGPPort: FreePort(t), dir: t.TempDir(),
		bin: Need(t, "bird", "bird2"), cli: Need(t, "birdc", "bird2")}
	if b.Address == "" {
		b.Address = "127.0.0.2"
	}
	if c.ASN == 0 {
		c.ASN = 65000
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "log %q all;\nrouter id 192.0.2.201;\n", filepath.Join(b.dir, "bird.log"))
	conf.WriteString("ipv4 table master4;\nflow4 table flowtab4;\n")
	fmt.Fprintf(&conf, "protocol bgp kapkan {\n  local %s port %d as %d;\n  neighbor %s as %d;\n  passive on;\n  multihop;\n",
		b.Address, b.BGPPort, c.ASN, c.Neighbor, c.NeighborASN)
	if c.Password != "" {
		fmt.Fprintf(&conf, "  password %q;\n", c.Password)
	}
	if c.GracefulRestartTime > 0 {
		fmt.Fprintf(&conf, "  graceful restart on;\n  graceful restart time %d;\n", int(c.GracefulRestartTime/time.Second))
	} else {
		conf.WriteString("  graceful restart off;\n")
	}
	if c.LongLived {
		conf.WriteString("  long lived graceful restart on;\n")
	}
	conf.WriteString("  ipv4 { import all; export none; };\n  flow4 { table flowtab4; import all; export none; };\n}\n")
	if err := os.WriteFile(filepath.Join(b.dir, "bird.conf"), []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	b.Start()
	t.Cleanup(b.Stop)
	return b
}

func (b *BIRD) socket() string { return filepath.Join(b.dir, "bird.ctl") }

// Start runs BIRD in the foreground (as a child of the test) and waits for
// its control socket.
func (b *BIRD) Start() {
	b.t.Helper()
	out, err := os.OpenFile(filepath.Join(b.dir, "bird.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		b.t.Fatal(err)
	}
	defer out.Close()
	b.cmd = exec.Command(b.bin, "-f", "-c", filepath.Join(b.dir, "bird.conf"), "-s", b.socket(),
		"-P", filepath.Join(b.dir, "bird.pid"))
	b.cmd.Stdout, b.cmd.Stderr = out, out
	if err := b.cmd.Start(); err != nil {
		b.t.Fatalf("start bird: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := b.Run("show", "status"); err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("bird did not answer within 15 s; its output:\n%s", b.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends BIRD (the process this test started, by its PID).
func (b *BIRD) Stop() {
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	stopProcess(b.cmd)
	b.cmd = nil
}

// Log returns what BIRD wrote to its log and its output.
func (b *BIRD) Log() string {
	l, _ := os.ReadFile(filepath.Join(b.dir, "bird.log"))
	o, _ := os.ReadFile(filepath.Join(b.dir, "bird.out"))
	return string(l) + string(o)
}

// Run runs birdc against this BIRD's control socket.
func (b *BIRD) Run(args ...string) (string, error) {
	cmd := exec.Command(b.cli, append([]string{"-s", b.socket()}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("birdc %s: %v: %s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out), nil
}

// Established reports whether the session with the neighbour is up.
func (b *BIRD) Established() bool {
	out, err := b.Run("show", "protocols", "kapkan")
	return err == nil && strings.Contains(out, "Established")
}

// WaitEstablished waits for the session to come up.
func (b *BIRD) WaitEstablished(timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for !b.Established() {
		if time.Now().After(deadline) {
			out, _ := b.Run("show", "protocols", "all", "kapkan")
			b.t.Fatalf("no BGP session within %s; birdc:\n%s\nbird log:\n%s", timeout, out, b.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// GracefulRestartActive reports whether BIRD keeps the neighbour's routes
// as stale: from the moment the session went down without a NOTIFICATION
// until the neighbour's End-of-RIB (or the restart timer ran out).
func (b *BIRD) GracefulRestartActive() bool {
	b.t.Helper()
	out, err := b.Run("show", "protocols", "all", "kapkan")
	if err != nil {
		b.t.Fatal(err)
	}
	return strings.Contains(out, "Neighbor graceful restart active")
}

// Route is a route BIRD holds from the neighbour.
type Route struct {
	// Since is when BIRD took the route in (birdc's time of day): a route
	// refreshed with the same attributes keeps it; one withdrawn and
	// announced again does not.
	Since string
	// LLGRStale is set when the route carries the LLGR_STALE community
	// (65535:6): BIRD keeps it under long-lived graceful restart.
	LLGRStale bool
}

// Routes returns the routes of table (master4 or flowtab4) by network as
// birdc prints it (203.0.113.9/32, or a FlowSpec match like
// "flow4 { dst 203.0.113.5/32; proto 17; sport 53; }").
func (b *BIRD) Routes(table string) map[string]Route {
	b.t.Helper()
	out, err := b.Run("show", "route", "table", table, "all")
	if err != nil {
		b.t.Fatal(err)
	}
	return parseBIRDRoutes(out)
}

// parseBIRDRoutes reads `show route all`: a route starts on a line that
// does not start with a blank: its network, two blanks or more, then
// "[kapkan HH:MM:SS.mmm from ...]"; its attributes follow, indented.
func parseBIRDRoutes(out string) map[string]Route {
	m := map[string]Route{}
	var cur string
	for _, line := range strings.Split(out, "\n") {
		if line == "" || strings.HasPrefix(line, "BIRD ") || strings.HasPrefix(line, "Table ") {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			cur = line
			if i := strings.Index(line, "  "); i > 0 {
				cur = line[:i]
			}
			var r Route
			if _, rest, ok := strings.Cut(line, "[kapkan "); ok {
				r.Since, _, _ = strings.Cut(rest, " ")
			}
			m[cur] = r
			continue
		}
		if cur != "" && strings.Contains(line, "BGP.community:") && strings.Contains(line, "(65535,6)") {
			r := m[cur]
			r.LLGRStale = true
			m[cur] = r
		}
	}
	return m
}
