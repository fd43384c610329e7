package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCapturesReplayAndLive (issue #13) plays each capture of
// testdata/captures through `kapkan replay` and, with `kapkan replay
// --send`, into a running `kapkan run` with the same configuration: the
// attacks (target, labels, vector) and the mitigations announced (target,
// action, match) must agree.
//
// The live play is at --speed 1. The daemon measures rates by arrival
// time, so at speed S it sees S times the capture's rates; thresholds
// scaled by S would keep rate/threshold ratios, but not the rest: the
// window, the fast trip's newest second and the cool-down are wall-clock
// seconds, which at speed S span S seconds of capture, so the attack would
// trip at another point of the capture, on another flow sample, and could
// be classified differently for reasons that have nothing to do with the
// daemon. At speed 1 the daemon sees what replay sees, by arrival time
// rather than capture time: the comparison is fair. The captures are played
// at once, each into its own daemon, so this costs one capture's length
// (about a minute) of wall time, and runs in parallel with the other
// live tests.
func TestCapturesReplayAndLive(t *testing.T) {
	t.Parallel()
	pcaps, err := filepath.Glob(filepath.Join(root, "testdata", "captures", "*", "capture.pcap"))
	if err != nil || len(pcaps) < 2 {
		t.Fatalf("captures: %v %v", pcaps, err)
	}
	type run struct {
		name, config string
		replayed     replayOutput
		format       string
		live         []event
		err          error
		log          string
		took         time.Duration
	}
	runs := make([]*run, len(pcaps))
	for i, pcap := range pcaps {
		dir := filepath.Dir(pcap)
		// The configuration the golden test (cmd/kapkan TestReplayCaptures)
		// replays the capture with.
		cfg := filepath.Join(dir, "kapkan.yaml")
		r := &run{name: filepath.Base(dir), config: cfg, replayed: replay(t, cfg, pcap)}
		for f, n := range r.replayed.summary.Formats {
			if n > 0 {
				if r.format != "" {
					t.Fatalf("%s holds %s and %s: replay --send sends to one listener", pcap, r.format, f)
				}
				r.format = f
			}
		}
		runs[i] = r
	}

	var wg sync.WaitGroup
	for i, r := range runs {
		raw, err := os.ReadFile(r.config)
		if err != nil {
			t.Fatal(err)
		}
		d := startDaemon(t, string(raw))
		wg.Go(func() {
			start := time.Now()
			defer func() { r.took = time.Since(start) }()
			if r.err = d.send(pcaps[i], r.format, 1, 3*time.Minute); r.err != nil {
				return
			}
			// The datagrams are all in; the verdicts follow within moments.
			want := len(comparable(r.replayed.events))
			d.waitFor(10*time.Second, func() bool { return len(comparable(d.events)) >= want })
			r.live = d.snapshot()
			r.log = d.log()
			d.stop(t)
		})
	}
	wg.Wait()

	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			if r.err != nil {
				t.Fatal(r.err)
			}
			t.Logf("played live in %s", r.took.Round(time.Millisecond))
			want, got := comparable(r.replayed.events), comparable(r.live)
			if len(want) == 0 {
				t.Fatalf("replay printed no attack and no mitigation: nothing to compare\n%s", r.replayed.text)
			}
			if !slices.Equal(want, got) {
				t.Errorf("replay and the running daemon disagree:\nreplay:\n  %s\ndaemon:\n  %s\nreplay's output:\n%s\ndaemon's log:\n%s",
					strings.Join(want, "\n  "), strings.Join(got, "\n  "), r.replayed.text, r.log)
			}
		})
	}
}

// comparable returns, sorted, what must agree between replay and the
// daemon: each attack's detection (target, labels, vector) and each
// mitigation announced (target, action, match, dry run). Withdrawals are
// left out: replay runs the capture's clock on past its end until every
// mitigation's TTL has passed, the daemon's clock is the wall's.
func comparable(evs []event) []string {
	var out []string
	for _, e := range evs {
		switch e.What {
		case "detected":
			out = append(out, fmt.Sprintf("attack %s labels %v vector %s", e.Target, e.Labels, e.Vector))
		case "announce":
			out = append(out, fmt.Sprintf("announce %s %s %s dry_run=%t", e.Target, e.Action, e.Match, e.DryRun))
		}
	}
	slices.Sort(out)
	return out
}
