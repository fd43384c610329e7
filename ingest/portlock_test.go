package ingest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// holdEnv asks the re-executed test binary to open a listener on the given
// address, print its port, and hold it until its standard input closes.
const holdEnv = "KAPKAN_TEST_HOLD_LISTENER"

// TestHoldListener is not a test: it is the body of the second process the
// tests below start (the test binary run again with holdEnv set).
func TestHoldListener(t *testing.T) {
	addr := os.Getenv(holdEnv)
	if addr == "" {
		t.Skip("helper process only")
	}
	dec := New(Options{}, Deps{Logger: newDiscardLogger()})
	l, err := NewListener(ListenerConfig{Name: "sflow", Listen: addr, Workers: 2}, dec, &discardSink{}, nil, Deps{Logger: newDiscardLogger()})
	if err != nil {
		fmt.Printf("error: %v\n", err)
		os.Exit(3)
	}
	fmt.Printf("port %d\n", l.Addr().Port())
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin
	l.Close()
	os.Exit(0)
}

// holdInOtherProcess starts a second process holding a listener on addr and
// returns the port it bound; the process ends with the test.
func holdInOtherProcess(t *testing.T, addr string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHoldListener$", "-test.count=1")
	cmd.Env = append(os.Environ(), holdEnv+"="+addr)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("helper process: %v", err)
	}
	port, ok := strings.CutPrefix(strings.TrimSpace(line), "port ")
	if !ok {
		t.Fatalf("helper process: %s", line)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestListenerRefusesPortOfAnotherKapkan: a second process on a port that a
// kapkan process already listens on must fail (SO_REUSEPORT would otherwise
// split the exporters' datagrams between the two), and say which process
// holds it; wildcard and specific addresses of one port overlap.
func TestListenerRefusesPortOfAnotherKapkan(t *testing.T) {
	dec := New(Options{}, Deps{Logger: newDiscardLogger()})
	for _, tc := range []struct{ held, ours string }{
		{"127.0.0.1:0", "127.0.0.1"},
		{"0.0.0.0:0", "127.0.0.1"},
		{"127.0.0.1:0", "0.0.0.0"},
	} {
		t.Run(tc.held+"/"+tc.ours, func(t *testing.T) {
			port := holdInOtherProcess(t, tc.held)
			addr := net.JoinHostPort(tc.ours, strconv.Itoa(port))
			l, err := NewListener(ListenerConfig{Name: "sflow", Listen: addr, Workers: 1}, dec, &discardSink{}, nil, Deps{Logger: newDiscardLogger()})
			if err == nil {
				l.Close()
				t.Fatalf("a second kapkan process listened on %s", addr)
			}
			want := fmt.Sprintf("udp port %d is already used by another kapkan process (pid ", port)
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		})
	}
}

// TestListenersInOneProcessSharePort: the lock is the process's, so two
// listeners of one process still share a port, and closing one keeps the
// lock while the other is open.
func TestListenersInOneProcessSharePort(t *testing.T) {
	dec := New(Options{}, Deps{Logger: newDiscardLogger()})
	deps := Deps{Logger: newDiscardLogger()}
	a, err := NewListener(ListenerConfig{Name: "a", Listen: "127.0.0.1:0", Workers: 2}, dec, &discardSink{}, nil, deps)
	if err != nil {
		t.Fatal(err)
	}
	addr := a.Addr().String()
	b, err := NewListener(ListenerConfig{Name: "b", Listen: addr, Workers: 1}, dec, &discardSink{}, nil, deps)
	if err != nil {
		a.Close()
		t.Fatalf("a second listener of the same process: %v", err)
	}
	a.Close()
	a.Close() // twice is harmless and must not release b's share
	if holdErr := tryHoldElsewhere(addr); holdErr == "" {
		t.Error("another process could take the port while b still listens")
	}
	b.Close()
	if holdErr := tryHoldElsewhere(addr); holdErr != "" {
		t.Errorf("the port stayed locked after every listener closed: %s", holdErr)
	}
}

// tryHoldElsewhere starts a second process on addr and returns its error
// line, or "" if it could listen.
func tryHoldElsewhere(addr string) string {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHoldListener$", "-test.count=1")
	cmd.Env = append(os.Environ(), holdEnv+"="+addr)
	cmd.Stdin = strings.NewReader("\n")
	out, _ := cmd.Output()
	if s := string(out); strings.HasPrefix(s, "error: ") {
		return strings.TrimSpace(s)
	}
	return ""
}
