package main

import (
	"encoding/json"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/internal/testutil"
)

// fakeTerminal makes every writer look like a terminal (or none) for the
// test, and redraws the status line at every chance.
func fakeTerminal(t *testing.T, tty bool) {
	t.Helper()
	oldTTY, oldEvery := isTerminal, progressInterval
	isTerminal = func(io.Writer) bool { return tty }
	progressInterval = 0
	t.Cleanup(func() { isTerminal, progressInterval = oldTTY, oldEvery })
}

// statusLines returns the status lines drawn on stderr, and fails the test
// unless each was drawn in place (after a carriage return, erasing the rest
// of the line) and the last was erased at the end.
func statusLines(t *testing.T, stderr string) []string {
	t.Helper()
	if stderr == "" {
		return nil
	}
	if !strings.HasSuffix(stderr, "\r\x1b[K") {
		t.Errorf("the status line is not erased at the end: %q", stderr[max(0, len(stderr)-80):])
	}
	var lines []string
	for _, part := range strings.Split(strings.TrimPrefix(stderr, "\r"), "\r") {
		if strings.Contains(part, "\n") {
			t.Errorf("a status line with a newline: %q", part)
		}
		text, ok := strings.CutSuffix(part, "\x1b[K")
		if !ok {
			t.Errorf("a status line that does not erase the rest of the line: %q", part)
		}
		if text != "" {
			lines = append(lines, text)
		}
	}
	return lines
}

// TestReplayProgress replays a capture with and without a terminal: on a
// terminal (or with --progress always) a status line counts datagrams and
// records and is redrawn in place; in a pipe (or with --progress never)
// stderr stays empty. stdout is the same either way.
func TestReplayProgress(t *testing.T) {
	dir := filepath.Join(testutil.RepoRoot(t), "testdata", "captures", "sflow-udp-flood")
	capture := filepath.Join(dir, "capture.pcap")
	line := regexp.MustCompile(`^replay capture\.pcap: [0-9 ]+ datagrams, [0-9 ]+ records, [0-9 ]+ records/s, \d+ attacks, \d+:\d\d elapsed$`)
	var want string
	for _, c := range []struct {
		name  string
		tty   bool
		flags []string
		drawn bool
	}{
		{"pipe", false, nil, false},
		{"terminal", true, nil, true},
		{"pipe, forced on", false, []string{"--progress", "always"}, true},
		{"terminal, forced off", true, []string{"--progress=never"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			fakeTerminal(t, c.tty)
			args := append(append([]string{}, c.flags...), "--config", filepath.Join(dir, "kapkan.yaml"), capture)
			stdout, stderr, code := replay(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %q", code, stderr)
			}
			if want == "" {
				want = stdout
			} else if stdout != want {
				t.Errorf("stdout differs with the status line:\n%s\nwant:\n%s", stdout, want)
			}
			lines := statusLines(t, stderr)
			if !c.drawn {
				if stderr != "" {
					t.Errorf("stderr %q, want nothing", stderr)
				}
				return
			}
			if len(lines) < 3 {
				t.Fatalf("%d status lines, want one per 256 datagrams: %q", len(lines), stderr)
			}
			for _, l := range lines {
				if !line.MatchString(l) {
					t.Errorf("status line %q", l)
				}
			}
			if lines[0] == lines[len(lines)-1] {
				t.Errorf("the status line does not move: %q", lines[0])
			}
		})
	}
	if _, stderr, code := replay(t, "--progress", "sometimes", capture); code != 2 || !strings.Contains(stderr, "want auto, always or never") {
		t.Errorf("--progress sometimes: exit %d, %q", code, stderr)
	}
}

// TestSimulateProgress writes a scenario with an attack into a capture:
// on a terminal the status line says what is being sent (background, then
// the attack's kind, target and rate) and how many datagrams so far; in a
// pipe stderr stays empty.
func TestSimulateProgress(t *testing.T) {
	for _, tty := range []bool{false, true} {
		t.Run(map[bool]string{false: "pipe", true: "terminal"}[tty], func(t *testing.T) {
			fakeTerminal(t, tty)
			pcap := filepath.Join(t.TempDir(), "sim.pcap")
			rep, stderr, code := simulate(t, "--pcap", pcap, "--duration", "3s", "--hosts", "10", "--background-pps", "20000",
				"--attack", "syn-flood@203.0.113.9:100000:1s:1s")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			lines := statusLines(t, stderr)
			if !tty {
				if stderr != "" {
					t.Errorf("stderr %q, want nothing", stderr)
				}
				return
			}
			var background, attack bool
			for _, l := range lines {
				if !strings.HasPrefix(l, "simulate sflow5 → "+pcap+": background") || !strings.Contains(l, " datagrams sent, ") || !strings.HasSuffix(l, " / 0:03") {
					t.Errorf("status line %q", l)
				}
				background = background || strings.Contains(l, "background only")
				attack = attack || strings.Contains(l, "background + syn-flood → 203.0.113.9 at 100 000 pps")
			}
			if !background || !attack {
				t.Errorf("background shown %v, attack shown %v: %q", background, attack, lines)
			}
			last := lines[len(lines)-1]
			if !strings.Contains(last, fmtCount(rep.Datagrams)+" datagrams sent") {
				t.Errorf("last status line %q, report %d datagrams", last, rep.Datagrams)
			}
		})
	}
}

func TestProgressFormats(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{fmtCount(0), "0"},
		{fmtCount(999), "999"},
		{fmtCount(1000), "1 000"},
		{fmtCount(1234567), "1 234 567"},
		{fmtCount(-45000), "-45 000"},
		{fmtElapsed(0), "0:00"},
		{fmtElapsed(61 * time.Second), "1:01"},
		{fmtElapsed(3725 * time.Second), "1:02:05"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// TestReplaySendProgress plays a capture into a socket with a terminal:
// after the line naming the capture, the status line counts the datagrams
// sent, up to all of them.
func TestReplaySendProgress(t *testing.T) {
	fakeTerminal(t, true)
	capture := filepath.Join(testutil.RepoRoot(t), "testdata", "captures", "sflow-udp-flood", "capture.pcap")
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	target := pc.LocalAddr().(*net.UDPAddr).AddrPort().String()
	out, stderr, code := replay(t, "--send", target, "--speed", "0", capture)
	if code != 0 {
		t.Fatalf("exit %d: %q", code, stderr)
	}
	var sum sendSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatal(err)
	}
	head, status, ok := strings.Cut(stderr, "\n")
	if !ok || !strings.HasPrefix(head, "kapkan replay: sending the flow datagrams of ") {
		t.Fatalf("stderr %q", stderr)
	}
	lines := statusLines(t, status)
	line := regexp.MustCompile(`^replay capture\.pcap → ` + regexp.QuoteMeta(target) + `: [0-9 ]+ datagrams sent \([0-9 ]+ a second\), 0 send errors, \d+:\d\d elapsed$`)
	for _, l := range lines {
		if !line.MatchString(l) {
			t.Errorf("status line %q", l)
		}
	}
	if len(lines) < 2 || !strings.Contains(lines[len(lines)-1], ": "+fmtCount(int64(sum.Datagrams))+" datagrams sent") {
		t.Errorf("status lines %q; want the last to count all %d datagrams", lines, sum.Datagrams)
	}
}
