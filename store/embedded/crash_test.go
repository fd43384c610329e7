package embedded_test

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/store"
	"github.com/kapkan-io/kapkan/store/embedded"
)

// crashEnv names the directory the child writes into; set only for the
// child process of TestCrashMidWrite.
const crashEnv = "KAPKAN_STORE_CRASH_DIR"

var crashT0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// crashBatch is batch i: attack i started, a mitigation for it, in one
// PutEvents; then its traffic point in a PutTraffic of its own.
func crashBatch(i int) ([]events.Event, []store.TrafficPoint) {
	at := crashT0.Add(time.Duration(i) * time.Second)
	target := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32)
	evs := []events.Event{
		{Seq: uint64(2 * i), Kind: events.AttackStarted, At: at, Attack: &events.Attack{
			ID: uint64(i), Target: target, Hostgroup: "web", Direction: "incoming", Started: at,
			Rates: map[string]float64{"pps": float64(i)}, Labels: []string{"udp-flood"},
		}},
		{Seq: uint64(2*i + 1), Kind: events.MitigationAnnounced, At: at, Mitigation: &events.Mitigation{AttackID: uint64(i), Target: target}},
	}
	return evs, []store.TrafficPoint{{At: at, Hostgroup: "web", Direction: "incoming", PPS: float64(i)}}
}

// crashChild writes batches from the one after the last stored, forever,
// and says "ok N" on stdout after each batch is committed.
func crashChild(dir string) {
	s, err := embedded.Open(dir, embedded.Options{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	ctx := context.Background()
	as, err := s.Attacks(ctx, store.AttackFilter{Limit: 1})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	next := 1
	if len(as) > 0 {
		next = int(as[0].ID) + 1
	}
	for i := next; i < next+100_000; i++ { // bounded; the parent kills long before
		evs, pts := crashBatch(i)
		if err := s.PutEvents(ctx, evs); err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		if err := s.PutTraffic(ctx, pts); err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		fmt.Println("ok", i)
	}
	os.Exit(0)
}

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashEnv); dir != "" {
		crashChild(dir)
	}
	os.Exit(m.Run())
}

// TestCrashMidWrite kills a writing process with SIGKILL, three times, at
// a random point of its writes; each time the store must open and hold
// exactly batches 1…n for some n at least the last one the child saw
// committed (its traffic point may be one behind, a transaction of its
// own).
func TestCrashMidWrite(t *testing.T) {
	dir := t.TempDir()
	acked := 0
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill after 20 to 60 more batches (varied by round), or after 20 s.
		want := acked + 20 + 20*round
		timer := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			n, ok := strings.CutPrefix(line, "ok ")
			if !ok {
				t.Fatalf("child: %s", line)
			}
			acked, _ = strconv.Atoi(n)
			if acked >= want {
				break
			}
		}
		timer.Stop()
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if acked < want {
			t.Fatalf("round %d: child committed only %d batches", round, acked)
		}
		checkPrefix(t, dir, acked)
	}
}

func checkPrefix(t *testing.T, dir string, acked int) {
	t.Helper()
	s, err := embedded.Open(dir, embedded.Options{})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	ctx := context.Background()
	as, err := s.Attacks(ctx, store.AttackFilter{Limit: 1_000_000})
	if err != nil {
		t.Fatal(err)
	}
	n := len(as)
	if n < acked {
		t.Fatalf("%d attacks after kill, the child had committed %d", n, acked)
	}
	for i, a := range as { // newest first: n, n-1, … 1
		if int(a.ID) != n-i || len(a.Labels) != 1 {
			t.Fatalf("attack %d of %d is %d (%v): not a prefix", i, n, a.ID, a.Labels)
		}
	}
	ms, err := s.Mitigations(ctx, time.Time{}, time.Time{})
	if err != nil || len(ms) != n {
		t.Fatalf("%d mitigations (%v), want %d", len(ms), err, n)
	}
	pts, err := s.Traffic(ctx, "web", "incoming", time.Time{}, time.Time{}, 0)
	if err != nil || (len(pts) != n && len(pts) != n-1) {
		t.Fatalf("%d traffic points (%v), want %d or %d", len(pts), err, n, n-1)
	}
	a, _, err := s.Attack(ctx, uint64(n))
	if err != nil || len(a.Rates) != 1 {
		t.Fatalf("attack %d: %v, %d rates", n, err, len(a.Rates))
	}
}
