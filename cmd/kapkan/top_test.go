package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// fakeAPI serves the four sections top reads from the hand-written fixtures
// in testdata/top (shaped after api-contract.md). status overrides the
// answer of a path ("/api/v1/exporters": 503); token, when set, is required
// as a bearer token on every request. It records the queries it got.
type fakeAPI struct {
	status map[string]int
	token  string

	mu      sync.Mutex
	queries []string
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.queries = append(f.queries, r.URL.RequestURI())
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error": {"code": "unauthorized", "message": "no or unknown token"}}`)
		return
	}
	if code := f.status[r.URL.Path]; code != 0 {
		w.WriteHeader(code)
		_, _ = io.WriteString(w, `{"error": {"code": "`+map[int]string{503: "unavailable", 403: "forbidden", 500: "internal"}[code]+`", "message": "`+strings.ToLower(http.StatusText(code))+` here"}}`)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/api/v1/")
	data, err := os.ReadFile(filepath.Join("testdata", "top", name+".json"))
	if err != nil {
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error": {"code": "not_found", "message": "no route"}}`)
		return
	}
	_, _ = w.Write(data)
}

func startFakeAPI(t *testing.T, f *fakeAPI) string {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestTopPipe: with stdout not a terminal, top prints one snapshot without
// escape codes and exits 0. The snapshot is compared with a golden file
// (-update rewrites it), and the request asked for --limit and --by.
func TestTopPipe(t *testing.T) {
	f := &fakeAPI{}
	base := startFakeAPI(t, f)
	var out, errb bytes.Buffer
	code := cmdTop(context.Background(), []string{"--api", base, "--limit", "3", "--by", "mbps"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	got := out.String()
	if strings.ContainsRune(got, '\x1b') {
		t.Errorf("escape codes in a pipe:\n%q", got)
	}
	for _, want := range []string{
		"203.0.113.66  customers  1.2M  9.9k  3.5k  #7",  // an incoming target under attack, marked
		"203.0.113.5   customers  350k  96.2  12    -\n", // the attack on its /24 is outgoing
		"203.0.113.9  customers  4.1k  30    40   #8",    // inside the attacked outgoing prefix
		"#7  203.0.113.66/32  in   customers  udp-flood,dns-amplification  1.2M/20k pps    1m30s  flowspec-discard",
		"none (no vector yet)",
		"m-1  203.0.113.66/32  flowspec-discard            proto udp src-port 53  8m31s",
		"flowspec-ratelimit 100Mbps",
		"192.0.2.2  netflow9,ipfix  0          512 (option),100 (config)  0     3           active timeout too long; silent for 5m00s",
		"DRY-RUN",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("snapshot lacks %q", want)
		}
	}
	golden := filepath.Join("testdata", "top", "snapshot.golden")
	norm := strings.ReplaceAll(got, base, "http://127.0.0.1:8080")
	if *update {
		if err := os.WriteFile(golden, []byte(norm), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if norm != string(want) {
		t.Errorf("snapshot differs from %s (go test -run TestTopPipe -update rewrites it):\ngot:\n%s\nwant:\n%s", golden, norm, want)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !containsString(f.queries, "/api/v1/traffic?by=mbps&limit=3") {
		t.Errorf("queries %q, want the traffic asked with by=mbps&limit=3", f.queries)
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestTopSections: a section the daemon cannot serve says so, and the
// others are still shown.
func TestTopSections(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  map[string]int
		want    []string
		notWant []string
	}{
		{
			name:    "exporters unavailable",
			status:  map[string]int{"/api/v1/exporters": 503},
			want:    []string{"INGEST  0 exporters\n  unavailable: service unavailable here\n", "203.0.113.66/32", "m-1"},
			notWant: []string{"192.0.2.1"},
		},
		{
			name:    "traffic unavailable",
			status:  map[string]int{"/api/v1/traffic": 503},
			want:    []string{"INCOMING  top 10 by pps\n  unavailable", "OUTGOING  top 10 by pps\n  unavailable", "192.0.2.1", "#8"},
			notWant: []string{"customers  1.2M"},
		},
		{
			name:   "attacks failing",
			status: map[string]int{"/api/v1/attacks": 500},
			want:   []string{"ATTACKS  0 active\n  error: 500 Internal Server Error: internal server error here\n", "203.0.113.66  customers  1.2M  9.9k  3.5k  -"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := startFakeAPI(t, &fakeAPI{status: tc.status})
			var out, errb bytes.Buffer
			if code := cmdTop(context.Background(), []string{"--api", base}, &out, &errb); code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errb.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out.String(), w) {
					t.Errorf("output has %q:\n%s", w, out.String())
				}
			}
		})
	}
}

// TestTopErrors: a daemon that cannot be reached, or that wants a token,
// stops top with exit 1 and a message saying what to do; bad flags exit 2.
func TestTopErrors(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	locked := startFakeAPI(t, &fakeAPI{token: "s3cret"})
	readOnly := startFakeAPI(t, &fakeAPI{status: map[string]int{"/api/v1/traffic": 403}})
	for _, tc := range []struct {
		name string
		args []string
		env  string // KAPKAN_TOKEN
		code int
		want string
	}{
		{"daemon down", []string{"--api", downURL}, "", 1, "cannot reach the API at " + downURL + ": is the daemon running"},
		{"no token", []string{"--api", locked}, "", 1, "401 Unauthorized: no or unknown token): give a token with --token or $KAPKAN_TOKEN"},
		{"wrong token", []string{"--api", locked, "--token", "guess"}, "", 1, "the token was not accepted"},
		{"wrong token from env", []string{"--api", locked}, "guess", 1, "the token was not accepted"},
		{"token lacks scope", []string{"--api", readOnly}, "", 1, "lacks the read scope"},
		{"bad --by", []string{"--api", locked, "--by", "bps"}, "", 2, `--by "bps": want pps, mbps or fps`},
		{"bad --interval", []string{"--interval", "1ms"}, "", 2, "--interval 1ms: want 100ms or more"},
		{"argument", []string{"203.0.113.5"}, "", 2, `unexpected argument "203.0.113.5"`},
		{"help", []string{"-h"}, "", 0, "usage: kapkan top"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(tokenEnv, tc.env)
			var out, errb bytes.Buffer
			code := cmdTop(context.Background(), tc.args, &out, &errb)
			if code != tc.code || !strings.Contains(errb.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errb.String(), tc.code, tc.want)
			}
			if out.Len() > 0 {
				t.Errorf("stdout %q, want nothing", out.String())
			}
		})
	}
	// The right token, from the flag or the environment, opens the API.
	for name, env := range map[string]string{"flag": "", "env": "s3cret"} {
		args := []string{"--api", locked}
		if env == "" {
			args = append(args, "--token", "s3cret")
		}
		t.Setenv(tokenEnv, env)
		var out, errb bytes.Buffer
		if code := cmdTop(context.Background(), args, &out, &errb); code != 0 || !strings.Contains(out.String(), "203.0.113.66") {
			t.Errorf("token from %s: exit %d, stderr %q", name, code, errb.String())
		}
	}
}

// frames is a writer that reports each write on a channel.
type frames struct {
	mu     sync.Mutex
	all    bytes.Buffer
	writes chan string
}

func (f *frames) Write(p []byte) (int, error) {
	f.mu.Lock()
	f.all.Write(p)
	f.mu.Unlock()
	f.writes <- string(p)
	return len(p), nil
}

// TestTopLiveScreen drives the live view in process on a pretend terminal
// of 40×12: it enters the alternate screen, redraws from the top-left,
// keeps to the terminal's size, and leaves on q.
func TestTopLiveScreen(t *testing.T) {
	base := startFakeAPI(t, &fakeAPI{})
	keysR, keysW := io.Pipe()
	t.Cleanup(func() { _ = keysW.Close() })
	scr := screen{live: true, size: func() (int, int) { return 40, 12 }, keys: keysR}
	tp := &top{api: newAPIClient(base, ""), limit: 10, by: "pps", interval: 100 * time.Millisecond}
	out := &frames{writes: make(chan string, 64)}
	done := make(chan int, 1)
	go func() { done <- tp.run(context.Background(), out, io.Discard, scr) }()

	var got []string
	for len(got) < 3 { // enter, and two frames: the first and one refresh
		select {
		case w := <-out.writes:
			got = append(got, w)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d writes: %q", len(got), got)
		}
	}
	if got[0] != ansiEnter {
		t.Errorf("first write %q, want the alternate screen entered and the cursor hidden", got[0])
	}
	for _, fr := range got[1:] {
		if !strings.HasPrefix(fr, ansiHome) || !strings.HasSuffix(fr, ansiEOS) {
			t.Errorf("frame not drawn from the top-left over the last: %q", fr)
		}
		lines := strings.Split(strings.TrimSuffix(strings.TrimPrefix(fr, ansiHome), ansiEOS), "\r\n")
		if len(lines) > 12 {
			t.Errorf("%d lines on a 12-line terminal", len(lines))
		}
		for _, l := range lines {
			if n := len([]rune(strings.TrimSuffix(l, ansiEOL))); n > 40 {
				t.Errorf("line of %d characters on a 40-column terminal: %q", n, l)
			}
		}
		if !strings.Contains(fr, "203.0.113.66") {
			t.Errorf("frame lacks the top target: %q", fr)
		}
	}
	go func() { _, _ = keysW.Write([]byte("q")) }()
	for {
		select {
		case w := <-out.writes:
			if w == ansiLeave {
				if code := <-done; code != 0 {
					t.Errorf("exit %d after q, want 0", code)
				}
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatal("top did not leave on q")
		}
	}
}

// TestTopTerminal runs the kapkan binary under a pseudo-terminal: it
// redraws in place until SIGINT (or q), then shows the cursor again, leaves
// the alternate screen and exits 0. In a pipe, the same binary prints one
// plain snapshot.
func TestTopTerminal(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "kapkan")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	base := startFakeAPI(t, &fakeAPI{})

	t.Run("pipe", func(t *testing.T) {
		cmd := exec.Command(bin, "top", "--api", base)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v", err)
		}
		if bytes.ContainsRune(out, '\x1b') || !bytes.Contains(out, []byte("203.0.113.66")) {
			t.Errorf("pipe output:\n%q", out)
		}
	})

	for _, stop := range []string{"sigint", "q"} {
		t.Run(stop, func(t *testing.T) {
			cmd := exec.Command(bin, "top", "--api", base, "--interval", "100ms")
			tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
			if err != nil {
				t.Fatalf("start under a pty: %v", err)
			}
			defer tty.Close()
			var mu sync.Mutex
			var screen bytes.Buffer
			read := make(chan struct{})
			go func() {
				defer close(read)
				b := make([]byte, 4096)
				for {
					n, err := tty.Read(b)
					mu.Lock()
					screen.Write(b[:n])
					mu.Unlock()
					if err != nil { // EIO once the child has gone
						return
					}
				}
			}()
			snapshot := func() string { mu.Lock(); defer mu.Unlock(); return screen.String() }
			deadline := time.Now().Add(10 * time.Second)
			for strings.Count(snapshot(), ansiHome) < 3 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond) // polling a real process's output: no clock to drive
			}
			s := snapshot()
			if n := strings.Count(s, ansiHome); n < 3 {
				t.Fatalf("%d redraws in 10 s at 100ms, want 3 or more:\n%q", n, s)
			}
			if !strings.HasPrefix(s, ansiEnter) || !strings.Contains(s, "203.0.113.66") || !strings.Contains(s, "MITIGATIONS  3 in force") {
				t.Errorf("screen lacks the alternate screen or the tables:\n%q", s)
			}
			if stop == "sigint" {
				err = cmd.Process.Signal(syscall.SIGINT)
			} else {
				_, err = tty.Write([]byte("q"))
			}
			if err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("exit after %s: %v, want 0", stop, err)
				}
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("still running 10 s after %s", stop)
			}
			<-read
			s = snapshot()
			if !strings.HasSuffix(s, ansiLeave) {
				t.Errorf("did not end by showing the cursor and leaving the alternate screen: ends %q", s[max(0, len(s)-80):])
			}
		})
	}
}

func TestHuman(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0, "0"}, {0.04, "0"}, {1.5, "1.5"}, {96.225, "96.2"}, {99.96, "100"}, {350, "350"}, {999.4, "999"},
		{999.6, "1k"}, {1234, "1.2k"}, {9960, "10k"}, {12345, "12k"}, {350000, "350k"}, {999_600, "1M"},
		{1.2e6, "1.2M"}, {12e6, "12M"}, {3.4e9, "3.4G"}, {5e15, "5000T"}, {-2500, "-2.5k"},
	} {
		if got := human(tc.in); got != tc.want {
			t.Errorf("human(%g) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestShortDuration(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{-time.Second, "0s"}, {0, "0s"}, {1499 * time.Millisecond, "1s"}, {59 * time.Second, "59s"},
		{90 * time.Second, "1m30s"}, {time.Hour + 5*time.Minute + 59*time.Second, "1h05m"}, {50 * time.Hour, "50h00m"},
	} {
		if got := shortDuration(tc.in); got != tc.want {
			t.Errorf("shortDuration(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCut(t *testing.T) {
	for _, tc := range []struct {
		in    string
		width int
		want  string
	}{
		{"abcdef", 0, "abcdef"}, {"abcdef", 6, "abcdef"}, {"abcdef", 3, "abc"}, {"a…bcd", 2, "a…"},
	} {
		if got := cut(tc.in, tc.width); got != tc.want {
			t.Errorf("cut(%q, %d) = %q, want %q", tc.in, tc.width, got, tc.want)
		}
	}
}

// TestTopLiveTokenRevoked: a live view whose token stops being accepted
// leaves the screen and exits 1 with the message; waiting would not help.
func TestTopLiveTokenRevoked(t *testing.T) {
	var revoked atomic.Bool
	f := &fakeAPI{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if revoked.Load() {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error": {"code": "unauthorized", "message": "no or unknown token"}}`)
			return
		}
		f.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	scr := screen{live: true, size: func() (int, int) { return 100, 50 }}
	tp := &top{api: newAPIClient(srv.URL, "old"), limit: 10, by: "pps", interval: 100 * time.Millisecond}
	out := &frames{writes: make(chan string, 64)}
	var errb bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- tp.run(context.Background(), out, &errb, scr) }()
	for n := 0; n < 2; n++ { // enter, first frame
		<-out.writes
	}
	revoked.Store(true)
	for {
		select {
		case w := <-out.writes:
			if w != ansiLeave {
				continue
			}
			if code := <-done; code != 1 || !strings.Contains(errb.String(), "the token was not accepted") {
				t.Errorf("exit %d, stderr %q; want 1 and the token refused", code, errb.String())
			}
			return
		case <-time.After(10 * time.Second):
			t.Fatal("top did not stop on a refused token")
		}
	}
}
