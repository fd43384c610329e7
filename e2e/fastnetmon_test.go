package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Issue #20: with FastNetMon-style thresholds (packets, megabits and flows
// per second together), every attack kind of `kapkan simulate`, in each of
// the four formats, over IPv4 and IPv6, is labelled and mitigated
// (dry-run), in replay and live.

// fnmConfig protects both families with FastNetMon's usual thresholds. The
// short cool-down lets an attack of the 30 s scenario end, and so show its
// final verdict, soon after its traffic stops.
const fnmConfig = `detection: {window: 5s, cooldown: 5s}
hostgroups:
  - name: customers
    prefixes: [203.0.113.0/24, "2001:db8:1::/48"]
    thresholds:
      incoming: {pps: 20000, mbps: 1000, fps: 3500}
`

var families = []struct {
	name, target, victim string
	// prefixes the background goes to: for IPv6, both families, so that
	// an IPv6 attack stands out of mixed traffic (and NetFlow v9 and IPFIX
	// exporters send both templates).
	prefixes []string
}{
	{"ipv4", "203.0.113.50", "203.0.113.50/32", []string{"203.0.113.0/24"}},
	{"ipv6", "[2001:db8:1::50]", "2001:db8:1::50/128", []string{"203.0.113.0/24", "2001:db8:1::/48"}},
}

var formats = []string{"sflow5", "netflow5", "netflow9", "ipfix"}

// carries reports whether format can carry family: NetFlow v5 records
// have IPv4 addresses only, so there is no IPv6 case for it (simulate
// refuses to write one).
func carries(format, family string) bool { return !(format == "netflow5" && family == "ipv6") }

// expectedLabel is the label the built-in rules must give a kind of
// simulate: its name, except where the rule is named otherwise.
func expectedLabel(kind, format string) string {
	switch {
	case kind == "frag-flood" && format == "netflow5":
		// A NetFlow v5 record has no fragment field (no flags, no
		// offset): fragments of UDP are UDP there, and nothing can tell
		// them apart. A limit of the format, not a bug.
		return "udp-flood"
	case kind == "frag-flood":
		return "fragment-flood"
	}
	return kind
}

// simulateKinds lists the attack kinds `kapkan simulate -h` names, so
// that a kind added there is tested here without a change.
func simulateKinds(t *testing.T) []string {
	t.Helper()
	_, help, err := kapkan(10*time.Second, "simulate", "-h")
	if err != nil {
		t.Fatalf("%v\n%s", err, help)
	}
	m := regexp.MustCompile(`kinds: ([a-z0-9, -]+)`).FindStringSubmatch(help)
	if m == nil {
		t.Fatalf("simulate -h names no kinds:\n%s", help)
	}
	kinds := strings.Split(m[1], ", ")
	if len(kinds) < 13 {
		t.Fatalf("simulate -h names %d kinds, want at least 13: %v", len(kinds), kinds)
	}
	return kinds
}

// captures caches the simulated captures of this process by name.
var captures struct {
	sync.Mutex
	paths map[string]string
}

// scenario writes (once per process) the issue's scenario for one kind,
// format and family: 200 hosts, 20 000 pps of background for 30 s, and
// the attack at 100 000 pps from the 2nd second for 20 s.
func scenario(t *testing.T, kind, format string, fam int) string {
	t.Helper()
	f := families[fam]
	name := fmt.Sprintf("%s-%s-%s.pcap", kind, format, f.name)
	captures.Lock()
	defer captures.Unlock()
	if p, ok := captures.paths[name]; ok {
		return p
	}
	p := filepath.Join(work, name)
	args := []string{"simulate", "--pcap", p, "--format", format, "--hosts", "200", "--background-pps", "20000",
		"--duration", "30s", "--attack", fmt.Sprintf("%s@%s:100000:2s:20s", kind, f.target)}
	if fam != 0 {
		for _, pfx := range f.prefixes {
			args = append(args, "--prefix", pfx)
		}
	}
	if out, stderr, err := kapkan(time.Minute, args...); err != nil {
		t.Fatalf("%v\n%s%s", err, out, stderr)
	}
	if captures.paths == nil {
		captures.paths = map[string]string{}
	}
	captures.paths[name] = p
	return p
}

func fnmConfigFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kapkan.yaml")
	if err := os.WriteFile(p, []byte(fnmConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// mitigationProblems checks the verdict and mitigation events of one
// attack (replay's lines or the daemon's log) and returns what is wrong:
// the victim must be detected once and only it; its final verdict (the
// last one, made on the largest flow sample) must hold wantLabel and a
// vector; at least one action must be announced, in dry-run, none
// refused; and when the attack ends, an action must be in force on the
// victim whose match is the final vector: the attack was mitigated as
// classified, not only at first.
func mitigationProblems(evs []event, victim, wantLabel string) []string {
	var problems []string
	var labels []string
	var vector *match
	detected, ended, announces := 0, false, 0
	inForce := map[string]event{} // action+match → announce
	var finalForce []event
	var lines []string
	for _, e := range evs {
		if e.Target != victim {
			if e.What == "detected" {
				problems = append(problems, "attack on another target: "+e.Raw)
			}
			continue
		}
		if e.What != "updated" {
			lines = append(lines, e.String())
		}
		if ended {
			continue
		}
		switch e.What {
		case "detected", "updated", "ended":
			if e.What == "detected" {
				detected++
			}
			labels = e.Labels
			if !e.Vector.zero() {
				vector = e.Vector
			}
			if e.What == "ended" {
				ended = true
				for _, a := range inForce {
					finalForce = append(finalForce, a)
				}
			}
		case "announce":
			announces++
			if !e.DryRun {
				problems = append(problems, "announced with dry_run false: "+e.Raw)
			}
			inForce[e.Action+" "+e.Match.String()] = e
		case "withdraw":
			delete(inForce, e.Action+" "+e.Match.String())
		case "refused", "failed":
			problems = append(problems, "mitigation "+e.What+": "+e.Raw)
		}
	}
	seq := ":\n  " + strings.Join(lines, "\n  ")
	switch {
	case detected != 1:
		return append(problems, fmt.Sprintf("%s detected %d times, want once%s", victim, detected, seq))
	case !ended:
		return append(problems, fmt.Sprintf("the attack on %s never ended%s", victim, seq))
	case announces == 0:
		return append(problems, "no mitigation announced"+seq)
	}
	if !slices.Contains(labels, wantLabel) {
		problems = append(problems, fmt.Sprintf("final labels %v, want %s among them%s", labels, wantLabel, seq))
	}
	if vector.zero() {
		problems = append(problems, "no vector"+seq)
	}
	ok := false
	for _, a := range finalForce {
		ok = ok || a.Action == "blackhole" || a.Match.String() == vector.String()
	}
	if !ok {
		problems = append(problems, fmt.Sprintf("when the attack ended, in force on %s: %v; want an action on its vector %s%s",
			victim, finalForce, vector, seq))
	}
	return problems
}

// TestMitigationProblemsFires proves the check above catches what it is
// there for, on made-up event sequences.
func TestMitigationProblemsFires(t *testing.T) {
	const v = "203.0.113.50/32"
	udp, dns := &match{Protocol: "udp"}, &match{Protocol: "udp", SrcPorts: []string{"53"}}
	detected := event{What: "detected", Target: v, Vector: udp}
	updated := event{What: "updated", Target: v, Labels: []string{"dns-amplification"}, Vector: dns}
	ended := event{What: "ended", Target: v, Labels: []string{"dns-amplification"}}
	announce := func(m *match) event {
		return event{What: "announce", Target: v, Action: "flowspec-discard", Match: m, DryRun: true}
	}
	withdraw := func(m *match) event { return event{What: "withdraw", Target: v, Action: "flowspec-discard", Match: m} }
	for _, tc := range []struct {
		name string
		evs  []event
		want string // a problem containing this; "" for none
	}{
		{"classified again, the new vector replaces the old", []event{detected, announce(udp), updated, announce(dns), withdraw(udp), ended}, ""},
		{"classified again, the old vector withdrawn and the new never announced", []event{detected, announce(udp), updated, withdraw(udp), ended}, "when the attack ended, in force"},
		{"only the first vector in force", []event{detected, announce(udp), updated, ended}, "when the attack ended, in force"},
		{"not detected", []event{announce(dns)}, "detected 0 times"},
		{"never ended", []event{detected, announce(udp)}, "never ended"},
		{"nothing announced", []event{detected, updated, ended}, "no mitigation announced"},
		{"wrong label", []event{detected, announce(udp), {What: "ended", Target: v, Labels: []string{"udp-flood"}}}, "want dns-amplification among them"},
		{"live", []event{detected, {What: "announce", Target: v, Action: "flowspec-discard", Match: udp}, updated, announce(dns), ended}, "dry_run false"},
		{"refused", []event{detected, announce(udp), {What: "refused", Target: v, Action: "flowspec-discard", Match: dns}, updated, ended}, "mitigation refused"},
		{"another target", []event{{What: "detected", Target: "203.0.113.51/32"}, detected, updated, announce(dns), ended}, "another target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mitigationProblems(tc.evs, v, "dns-amplification")
			found := slices.ContainsFunc(got, func(p string) bool { return tc.want != "" && strings.Contains(p, tc.want) })
			if (tc.want == "" && len(got) > 0) || (tc.want != "" && !found) {
				t.Errorf("problems %q, want one with %q", got, tc.want)
			}
		})
	}
}

// checkMitigated reports the problems mitigationProblems finds as errors.
func checkMitigated(t *testing.T, evs []event, victim, wantLabel string) {
	t.Helper()
	for _, p := range mitigationProblems(evs, victim, wantLabel) {
		t.Error(p)
	}
}

// TestFastNetMonThresholdsReplay replays every kind × format × family of
// the issue's scenario.
func TestFastNetMonThresholdsReplay(t *testing.T) {
	cfg := fnmConfigFile(t)
	for _, kind := range simulateKinds(t) {
		for _, format := range formats {
			for fam, f := range families {
				if !carries(format, f.name) {
					continue
				}
				t.Run(kind+"/"+format+"/"+f.name, func(t *testing.T) {
					// The attack ends 22 s into the 30 s capture, its
					// cool-down after the capture's end: a quiet minute
					// follows so that replay prints its end.
					pcap := withQuietTail(t, scenario(t, kind, format, fam), time.Minute)
					r := replay(t, cfg, pcap)
					if r.summary.DecodeErrors != 0 || r.summary.Formats[format] == 0 {
						t.Errorf("summary %+v", r.summary)
					}
					checkMitigated(t, r.events, f.victim, expectedLabel(kind, format))
					if t.Failed() {
						t.Logf("replay printed:\n%s", r.text)
					}
				})
			}
		}
	}
}

// TestFastNetMonThresholdsLive plays the scenario into running daemons.
// Every combination live would take 91 daemons × 30 s; the live path
// differs from replay's only in how datagrams arrive (sockets, listeners,
// per-exporter templates, wall clock, several shards), not in how a kind is
// classified, which the replay matrix covers in full. So: every kind on
// sFlow v5 over IPv4 (the classification path live for each kind), and
// one kind per other format and family (each decoder and template path
// live once): a DNS amplification, the issue's own example, which on the
// flow formats also goes through the verdict made again on a larger
// sample; and a SYN flood for sFlow over IPv6.
//
// At --speed 1 (the daemon sees the capture's own rates, so the thresholds
// are FastNetMon's as they are); the plays run concurrently, each into a
// daemon of its own, at most liveConcurrency at once: they wait on the
// wall clock, not on the CPU (a few hundred datagrams a second each).
func TestFastNetMonThresholdsLive(t *testing.T) {
	t.Parallel()
	type liveCase struct {
		kind, format string
		fam          int
		events       []event
		err          error
		log          string
		took         time.Duration
	}
	var cases []*liveCase
	for _, kind := range simulateKinds(t) {
		cases = append(cases, &liveCase{kind: kind, format: "sflow5", fam: 0})
	}
	cases = append(cases,
		&liveCase{kind: "syn-flood", format: "sflow5", fam: 1},
		&liveCase{kind: "dns-amplification", format: "netflow5", fam: 0},
		&liveCase{kind: "dns-amplification", format: "netflow9", fam: 0},
		&liveCase{kind: "dns-amplification", format: "netflow9", fam: 1},
		&liveCase{kind: "dns-amplification", format: "ipfix", fam: 0},
		&liveCase{kind: "dns-amplification", format: "ipfix", fam: 1},
	)
	const liveConcurrency = 10
	sem := make(chan struct{}, liveConcurrency)
	var wg sync.WaitGroup
	for _, c := range cases {
		pcap := scenario(t, c.kind, c.format, c.fam)
		sem <- struct{}{}
		d := startDaemon(t, fnmConfig)
		wg.Go(func() {
			defer func() { <-sem }()
			start := time.Now()
			defer func() { c.took = time.Since(start) }()
			if c.err = d.send(pcap, c.format, 1, 2*time.Minute); c.err != nil {
				return
			}
			// The attack stopped 8 s before the capture's end; it ends
			// when its window has drained and the cool-down has passed.
			victim := families[c.fam].victim
			d.waitFor(20*time.Second, func() bool {
				return slices.ContainsFunc(d.events, func(e event) bool { return e.What == "ended" && e.Target == victim })
			})
			c.events, c.log = d.snapshot(), d.log()
			d.stop(t)
		})
	}
	wg.Wait()
	for _, c := range cases {
		f := families[c.fam]
		t.Run(c.kind+"/"+c.format+"/"+f.name, func(t *testing.T) {
			if c.err != nil {
				t.Fatal(c.err)
			}
			t.Logf("played live in %s", c.took.Round(time.Millisecond))
			checkMitigated(t, c.events, f.victim, expectedLabel(c.kind, c.format))
			if t.Failed() {
				t.Logf("the daemon's log:\n%s", c.log)
			}
		})
	}
}

// TestIssue20DNSAmplification is point 1 of issue #20, as written: the
// issue's simulate command, replayed with FastNetMon's thresholds (and the
// default detection settings). The attack on 203.0.113.50 must end up
// labelled dns-amplification, its vector UDP from source port 53, with a
// FlowSpec discard of that vector announced on it.
func TestIssue20DNSAmplification(t *testing.T) {
	pcap := filepath.Join(t.TempDir(), "x.pcap")
	if out, stderr, err := kapkan(time.Minute, "simulate", "--pcap", pcap, "--format", "netflow9", "--hosts", "200",
		"--background-pps", "20000", "--duration", "30s", "--attack", "dns-amplification@203.0.113.50:100000:2s:20s"); err != nil {
		t.Fatalf("%v\n%s%s", err, out, stderr)
	}
	cfg := filepath.Join(t.TempDir(), "kapkan.yaml")
	if err := os.WriteFile(cfg, []byte(`hostgroups:
  - name: customers
    prefixes: [203.0.113.0/24, "2001:db8:1::/48"]
    thresholds:
      incoming: {pps: 20000, mbps: 1000, fps: 3500}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	// The default cool-down (30 s) outlasts the capture: two quiet
	// minutes follow it so that the attack ends and shows its last verdict.
	r := replay(t, cfg, withQuietTail(t, pcap, 2*time.Minute))
	const victim = "203.0.113.50/32"
	want := match{Protocol: "udp", SrcPorts: []string{"53"}}
	var final *event
	announced := false
	for i, e := range r.events {
		if e.Target != victim {
			continue
		}
		switch e.What {
		case "detected", "ended":
			final = &r.events[i]
		case "announce":
			announced = announced || (e.Action == "flowspec-discard" && e.Match.String() == want.String() && e.DryRun)
		}
	}
	switch {
	case final == nil:
		t.Fatalf("%s not detected:\n%s", victim, r.text)
	case final.What != "ended":
		t.Errorf("the attack did not end within the capture and its quiet tail:\n%s", r.text)
	}
	if !slices.Contains(final.Labels, "dns-amplification") || final.Vector.String() != want.String() {
		t.Errorf("final verdict %v %s, want dns-amplification with vector %s:\n%s", final.Labels, final.Vector, &want, r.text)
	}
	if !announced {
		t.Errorf("no flowspec-discard of %s announced (dry-run) on %s:\n%s", &want, victim, r.text)
	}
}
