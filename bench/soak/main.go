// Command soak runs the built daemon for a bounded time under steady
// background telemetry with attacks coming and going (make soak), samples
// its resident memory, goroutines and open files every few seconds, checks
// that every attack was detected and ended, and writes a report: a CSV of
// the samples, an SVG chart it draws itself, and a Markdown summary.
//
// Everything runs on loopback, and every process it starts dies with it.
package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The defaults follow docs/performance.md: Kapkan's highest lossless sFlow
// rate at 10 000 destinations was about 2 M records/s on this 2-core
// machine, so the soak offers half of it.
const (
	defaultRate = 1_000_000
	sampling    = 1000
	prefix      = "10.0.0.0/12"
	// segment is how long one `kapkan simulate` runs; the soak chains
	// segments until its duration is spent.
	segment = time.Minute
)

// thresholds returns the hostgroup's threshold and the attacks' rate: the
// background is spread evenly over the hosts, so the threshold is four
// times one host's share (no background host is an attack) and an attack
// five times the threshold.
func (o *options) thresholds() (threshold, attack int) {
	perHost := o.rate * sampling / max(o.hosts, 1)
	threshold = max(50_000, 4*perHost)
	return threshold, 5 * threshold
}

type options struct {
	bin                   string
	duration, every       time.Duration
	attackEvery, attackOn time.Duration
	rate, hosts           int
	out, note             string
	drain                 time.Duration
}

// sample is one row of the CSV.
type sample struct {
	T          float64 // seconds since the daemon started
	RSSMiB     float64 // resident set (VmRSS)
	AnonMiB    float64 // its anonymous part (RssAnon): the heap and stacks, not mapped files such as the history's
	HeapMiB    float64 // Go heap in use (go_memstats_heap_inuse_bytes)
	Goroutines float64
	OpenFiles  float64
	RecordsPS  float64 // accounted records per second since the last sample
	Dropped    float64 // records the engine dropped so far
	SockDrops  float64 // datagrams the kernel dropped so far
}

// attack is one injected attack and what the daemon said of it.
type attack struct {
	Victim          string
	Start, End      time.Time // when it was sent
	Detected, Ended time.Time // from the daemon's log
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/kapkan", "the kapkan binary")
	flag.DurationVar(&o.duration, "duration", 30*time.Minute, "how long traffic is sent")
	flag.DurationVar(&o.every, "every", 5*time.Second, "how often the daemon is sampled")
	flag.DurationVar(&o.attackEvery, "attack-every", 30*time.Second, "one attack starts this often")
	flag.DurationVar(&o.attackOn, "attack-for", 10*time.Second, "how long each attack lasts")
	flag.IntVar(&o.rate, "rate", defaultRate, "background sFlow records per second")
	flag.IntVar(&o.hosts, "hosts", 10_000, "background destination addresses")
	flag.DurationVar(&o.drain, "drain", 30*time.Second, "after the traffic, how long to wait for the last attacks to end")
	flag.StringVar(&o.out, "out", "docs", "directory of soak.md, soak.csv and soak.svg")
	flag.StringVar(&o.note, "note", "", "a line added at the top of the report (what kind of run this was)")
	flag.Parse()
	if o.duration <= 0 || o.duration > 24*time.Hour || o.every <= 0 || o.attackOn >= o.attackEvery {
		fatal(errors.New("want 0 < -duration <= 24h, -every > 0 and -attack-for < -attack-every"))
	}
	// The whole run is bounded: traffic, drain, and a margin to stop.
	ctx, cancel := context.WithTimeout(context.Background(), o.duration+o.drain+2*time.Minute)
	defer cancel()
	ok, err := run(ctx, &o)
	if err != nil {
		fatal(err)
	}
	if !ok {
		fmt.Fprintln(os.Stderr, "soak: FAILED (see", filepath.Join(o.out, "soak.md")+")")
		os.Exit(1)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "soak:", err)
	os.Exit(2)
}

func run(ctx context.Context, o *options) (bool, error) {
	work, err := os.MkdirTemp("", "kapkan-soak-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(work)
	sflowPort, err := freePort("udp")
	if err != nil {
		return false, err
	}
	apiPort, err := freePort("tcp")
	if err != nil {
		return false, err
	}
	threshold, _ := o.thresholds()
	cfgPath := filepath.Join(work, "kapkan.yaml")
	cfg := fmt.Sprintf(`log: {format: json}
ingest:
  sflow: {listen: "127.0.0.1:%d", read_buffer: 33554432}
  netflow: {listen: ""}
detection: {window: 5s, cooldown: 5s}
hostgroups:
  - name: soak
    prefixes: [%s]
    thresholds:
      incoming: {pps: %d}
api: {listen: "127.0.0.1:%d", open_read: true}
mitigation: {state_file: %q}
store: {path: %q}
`, sflowPort, prefix, threshold, apiPort, filepath.Join(work, "mitigations.json"), filepath.Join(work, "history"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return false, err
	}
	logPath := filepath.Join(work, "kapkan.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return false, err
	}
	defer logf.Close()
	daemon := exec.CommandContext(ctx, o.bin, "run", "--config", cfgPath)
	daemon.Stdout, daemon.Stderr = logf, logf
	daemon.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	started := time.Now()
	if err := daemon.Start(); err != nil {
		return false, fmt.Errorf("starting the daemon: %w", err)
	}
	defer func() {
		_ = daemon.Process.Signal(os.Interrupt)
		_ = daemon.Wait()
	}()
	api := fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	if err := waitHealthy(api); err != nil {
		return false, fmt.Errorf("%w; log:\n%s", err, tail(logPath))
	}
	fmt.Printf("soak: daemon pid %d, %s of %d records/s to %d hosts, an attack every %s for %s\n",
		daemon.Process.Pid, o.duration, o.rate, o.hosts, o.attackEvery, o.attackOn)

	// The sampler runs until the traffic and the drain are over.
	sampCtx, stopSampling := context.WithCancel(ctx)
	samples := make(chan []sample, 1)
	go func() { samples <- sampleLoop(sampCtx, o, daemon.Process.Pid, api, started) }()

	var attacks []attack
	var sendErr error
	var sent float64
	for seg, left := 0, o.duration; left > 0 && ctx.Err() == nil; seg, left = seg+1, left-segment {
		d := min(left, segment)
		as, n, err := simulate(ctx, o, sflowPort, seg, d)
		attacks = append(attacks, as...)
		sent += n
		if err != nil {
			sendErr = err
			break
		}
	}
	// The last attacks end a window and a cool-down after their traffic.
	drainUntil := time.Now().Add(o.drain)
	for time.Now().Before(drainUntil) && ctx.Err() == nil {
		if allEnded(logPath, attacks) {
			break
		}
		time.Sleep(time.Second)
	}
	final, err := scrape(api + "/metrics")
	stopSampling()
	rows := <-samples
	if err != nil {
		return false, fmt.Errorf("final scrape: %w", err)
	}
	// What was sent and not accounted, or accounted and then dropped.
	lost := max(sent-final["kapkan_ingest_records_total"], 0) + final["kapkan_engine_dropped_records_total"]
	if sendErr != nil {
		return false, fmt.Errorf("sending traffic: %w", sendErr)
	}
	others, err := readLog(logPath, attacks)
	if err != nil {
		return false, err
	}
	return report(o, rows, attacks, others, sent, lost, started)
}

// simulate sends one segment of background with its attacks, and returns
// the attacks with the times they were sent.
func simulate(ctx context.Context, o *options, port, seg int, d time.Duration) ([]attack, float64, error) {
	_, attackPPS := o.thresholds()
	var args []string
	var as []attack
	for i, at := 0, 5*time.Second; at+o.attackOn <= d; i, at = i+1, at+o.attackEvery {
		v := fmt.Sprintf("10.15.%d.%d", seg%256, i+1)
		as = append(as, attack{Victim: v + "/32"})
		args = append(args, "--attack", fmt.Sprintf("udp-flood@%s:%d:%s:%s", v, attackPPS, at, o.attackOn))
	}
	args = append([]string{"simulate", "--to", fmt.Sprintf("127.0.0.1:%d", port), "--format", "sflow5",
		"--sampling", strconv.Itoa(sampling), "--hosts", strconv.Itoa(o.hosts), "--prefix", prefix,
		"--records-per-second", strconv.Itoa(o.rate), "--duration", d.String(),
		"--seed", strconv.Itoa(seg + 1), "--pregenerate", "1s"}, args...)
	cmd := exec.CommandContext(ctx, o.bin, args...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.Output()
	if err != nil {
		return as, 0, fmt.Errorf("simulate segment %d: %w", seg, err)
	}
	var rep struct {
		Records float64 `json:"records"`
		Attacks []struct {
			Target    string    `json:"target"`
			FirstSent time.Time `json:"first_record_sent"`
		} `json:"attacks"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return as, 0, fmt.Errorf("simulate segment %d report %q: %w", seg, out, err)
	}
	for i := range as {
		for _, r := range rep.Attacks {
			if r.Target+"/32" == as[i].Victim || r.Target == as[i].Victim {
				as[i].Start, as[i].End = r.FirstSent, r.FirstSent.Add(o.attackOn)
			}
		}
	}
	fmt.Printf("soak: segment %d sent %.0f records, %d attacks\n", seg, rep.Records, len(as))
	return as, rep.Records, nil
}

// sampleLoop samples the daemon every o.every until ctx ends. The count of
// samples is bounded by the run's duration.
func sampleLoop(ctx context.Context, o *options, pid int, api string, started time.Time) []sample {
	var rows []sample
	var lastRecords float64
	lastAt := time.Now()
	tick := time.NewTicker(o.every)
	defer tick.Stop()
	limit := int((o.duration+o.drain+2*time.Minute)/o.every) + 1
	for len(rows) < limit {
		select {
		case <-ctx.Done():
			return rows
		case <-tick.C:
		}
		m, err := scrape(api + "/metrics")
		if err != nil {
			fmt.Fprintln(os.Stderr, "soak: scrape:", err)
			continue
		}
		now := time.Now()
		rec := m["kapkan_ingest_records_total"]
		s := sample{
			T:          now.Sub(started).Seconds(),
			RSSMiB:     procStatusMiB(pid, "VmRSS:"),
			AnonMiB:    procStatusMiB(pid, "RssAnon:"),
			HeapMiB:    m["go_memstats_heap_inuse_bytes"] / (1 << 20),
			Goroutines: m["go_goroutines"],
			OpenFiles:  float64(openFiles(pid)),
			RecordsPS:  (rec - lastRecords) / now.Sub(lastAt).Seconds(),
			Dropped:    m["kapkan_engine_dropped_records_total"],
			SockDrops:  m["kapkan_ingest_socket_drops_total"],
		}
		lastRecords, lastAt = rec, now
		rows = append(rows, s)
	}
	return rows
}

// procStatusMiB is a field of /proc/PID/status given in kB (VmRSS:,
// RssAnon:), in MiB.
func procStatusMiB(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return math.NaN()
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, field); ok {
			kb, _ := strconv.ParseFloat(strings.Fields(rest)[0], 64)
			return kb / 1024
		}
	}
	return math.NaN()
}

// openFiles counts a process's file descriptors, from /proc.
func openFiles(pid int) int {
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(es)
}

// logLine is what the soak reads of the daemon's JSON log.
type logLine struct {
	Time   time.Time `json:"time"`
	Msg    string    `json:"msg"`
	Target string    `json:"target"`
}

// readLog fills in when each attack was detected and ended, and returns
// how many other targets the daemon took for attacked (the background is
// below the threshold everywhere: there should be none).
func readLog(path string, attacks []attack) (others int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	other := map[string]bool{}
	idx := map[string]int{}
	for i, a := range attacks {
		idx[a.Victim] = i
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		i, ok := idx[l.Target]
		if !ok {
			if l.Msg == "attack detected" {
				other[l.Target] = true
			}
			continue
		}
		switch {
		case l.Msg == "attack detected" && attacks[i].Detected.IsZero():
			attacks[i].Detected = l.Time
		case l.Msg == "attack ended":
			attacks[i].Ended = l.Time
		}
	}
	return len(other), sc.Err()
}

func allEnded(path string, attacks []attack) bool {
	as := append([]attack(nil), attacks...)
	if _, err := readLog(path, as); err != nil {
		return false
	}
	for _, a := range as {
		if a.Ended.IsZero() {
			return false
		}
	}
	return true
}

// growth compares a series' mean over the last quarter of the samples with
// its mean over the quarter after the first tenth (the warm-up).
func growth(rows []sample, get func(sample) float64) (early, late float64) {
	n := len(rows)
	if n < 8 {
		return math.NaN(), math.NaN()
	}
	mean := func(rs []sample) float64 {
		var s float64
		for _, r := range rs {
			s += get(r)
		}
		return s / float64(len(rs))
	}
	from := n / 10
	return mean(rows[from : from+n/4]), mean(rows[n-n/4:])
}

// check is one line of the verdict.
type check struct {
	What, Result string
	OK           bool
}

func report(o *options, rows []sample, attacks []attack, others int, sent, lost float64, started time.Time) (bool, error) {
	took := time.Since(started)
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return false, err
	}
	if err := writeCSV(filepath.Join(o.out, "soak.csv"), rows); err != nil {
		return false, err
	}
	if err := os.WriteFile(filepath.Join(o.out, "soak.svg"), []byte(chart(rows, attacks, started)), 0o644); err != nil {
		return false, err
	}

	var checks []check
	// Flat: the late mean may exceed the early one by a fifth plus a small
	// absolute slack (a GC cycle, an API connection, a timer goroutine).
	for _, s := range []struct {
		name  string
		get   func(sample) float64
		slack float64
		unit  string
	}{
		{"resident memory", func(r sample) float64 { return r.RSSMiB }, 16, " MiB"},
		{"anonymous resident memory", func(r sample) float64 { return r.AnonMiB }, 16, " MiB"},
		{"Go heap in use", func(r sample) float64 { return r.HeapMiB }, 16, " MiB"},
		{"goroutines", func(r sample) float64 { return r.Goroutines }, 10, ""},
		{"open files", func(r sample) float64 { return r.OpenFiles }, 5, ""},
	} {
		early, late := growth(rows, s.get)
		ok := !math.IsNaN(early) && late <= early*1.2+s.slack
		checks = append(checks, check{What: s.name + " flat",
			Result: fmt.Sprintf("early mean %.1f%s, late mean %.1f%s", early, s.unit, late, s.unit), OK: ok})
	}
	var missed, unended []string
	var lat []float64
	for _, a := range attacks {
		if a.Detected.IsZero() {
			missed = append(missed, a.Victim)
			continue
		}
		if !a.Start.IsZero() {
			lat = append(lat, a.Detected.Sub(a.Start).Seconds())
		}
		if a.Ended.IsZero() {
			unended = append(unended, a.Victim)
		}
	}
	checks = append(checks,
		check{"every attack detected", fmt.Sprintf("%d of %d%s", len(attacks)-len(missed), len(attacks), list(missed)), len(missed) == 0 && len(attacks) > 0},
		check{"every attack ended", fmt.Sprintf("%d of %d%s", len(attacks)-len(unended), len(attacks), list(unended)), len(unended) == 0 && len(attacks) > 0},
		check{"records lost under 0.1 %", fmt.Sprintf("%.0f of %.0f sent (%.3f %%)", lost, sent, 100*lost/max(sent, 1)), lost < sent/1000},
		check{"no background host taken for an attack", fmt.Sprintf("%d other targets detected", others), others == 0})
	ok := true
	for _, c := range checks {
		ok = ok && c.OK
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# Soak run\n\n")
	fmt.Fprintf(&b, "Generated by `make soak` (`go run ./bench/soak`); do not edit by hand.\n\n")
	if o.note != "" {
		fmt.Fprintf(&b, "**%s**\n\n", o.note)
	}
	threshold, attackPPS := o.thresholds()
	fmt.Fprintf(&b, "Started at %s on %s (%d CPUs): %s of sFlow background at %d records/s to %d destinations "+
		"(sampling 1 in %d), a threshold of %d pps, a UDP flood of %d pps every %s for %s, detection window and cool-down 5 s, "+
		"history in the embedded store, mitigation in dry-run with a state file. Samples every %s, %d in all; the whole run took %s.\n\n",
		started.UTC().Format("2006-01-02 15:04 UTC"), hostname(), numCPU(), o.duration, o.rate, o.hosts,
		sampling, threshold, attackPPS, o.attackEvery, o.attackOn, o.every, len(rows), took.Round(time.Second))
	fmt.Fprintf(&b, "| check | result | |\n|---|---|---|\n")
	for _, c := range checks {
		v := "pass"
		if !c.OK {
			v = "FAIL"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", c.What, c.Result, v)
	}
	if len(lat) > 0 {
		sort.Float64s(lat)
		fmt.Fprintf(&b, "\nDetection latency (first attack record sent → \"attack detected\" logged): median %.2f s, worst %.2f s.\n",
			lat[len(lat)/2], lat[len(lat)-1])
	}
	if len(rows) > 0 {
		var maxRSS, maxG, maxF, sumRPS float64
		for _, r := range rows {
			maxRSS, maxG, maxF = max(maxRSS, r.RSSMiB), max(maxG, r.Goroutines), max(maxF, r.OpenFiles)
			sumRPS += r.RecordsPS
		}
		fmt.Fprintf(&b, "Peaks: %.1f MiB resident, %.0f goroutines, %.0f open files. Mean accounted rate %.0f records/s.\n",
			maxRSS, maxG, maxF, sumRPS/float64(len(rows)))
	}
	fmt.Fprintf(&b, "\nFlat means: the mean over the last quarter of the samples is at most 1.2 × the mean over the quarter "+
		"after the first tenth (the warm-up), plus 16 MiB, 10 goroutines or 5 files. The resident set also counts the "+
		"pages of the history file the daemon has mapped (it grows with the file); the anonymous part and the Go heap do not. "+
		"Records lost are those sent and never accounted (the kernel's socket drops when the daemon is starved of CPU) "+
		"plus those the engine dropped.\n\n")
	fmt.Fprintf(&b, "![resident memory, Go heap, goroutines and open files over the run; attacks shaded](soak.svg)\n\n")
	fmt.Fprintf(&b, "The samples are in [soak.csv](soak.csv).\n")
	if err := os.WriteFile(filepath.Join(o.out, "soak.md"), []byte(b.String()), 0o644); err != nil {
		return false, err
	}
	fmt.Print(b.String())
	return ok, nil
}

func list(v []string) string {
	if len(v) == 0 {
		return ""
	}
	if len(v) > 5 {
		v = append(v[:5:5], "…")
	}
	return " (not: " + strings.Join(v, ", ") + ")"
}

func writeCSV(path string, rows []sample) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"seconds", "rss_mib", "rss_anon_mib", "heap_inuse_mib", "goroutines", "open_files", "records_per_second", "dropped_records", "socket_dropped_datagrams"})
	for _, r := range rows {
		_ = w.Write([]string{ff(r.T, 1), ff(r.RSSMiB, 1), ff(r.AnonMiB, 1), ff(r.HeapMiB, 1), ff(r.Goroutines, 0), ff(r.OpenFiles, 0), ff(r.RecordsPS, 0), ff(r.Dropped, 0), ff(r.SockDrops, 0)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func ff(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }

// chart draws a panel per series over time (resident memory, Go heap,
// goroutines, open files), each from zero to a little over its peak, with
// the attacks shaded from their first record to their end.
func chart(rows []sample, attacks []attack, t0 time.Time) string {
	const (
		w, panelH, left, right, top, gap = 720, 120, 60, 20, 20, 40
	)
	series := []struct {
		name string
		get  func(sample) float64
	}{
		{"resident memory (MiB)", func(r sample) float64 { return r.RSSMiB }},
		{"Go heap in use (MiB)", func(r sample) float64 { return r.HeapMiB }},
		{"goroutines", func(r sample) float64 { return r.Goroutines }},
		{"open files", func(r sample) float64 { return r.OpenFiles }},
	}
	h := top + len(series)*(panelH+gap)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	tmax := 1.0
	if len(rows) > 0 {
		tmax = max(rows[len(rows)-1].T, 1)
	}
	x := func(t float64) float64 { return left + t/tmax*float64(w-left-right) }
	for i, s := range series {
		y0 := float64(top + i*(panelH+gap))
		peak := 0.0
		for _, r := range rows {
			if v := s.get(r); !math.IsNaN(v) {
				peak = max(peak, v)
			}
		}
		ymax := niceCeil(peak * 1.1)
		y := func(v float64) float64 { return y0 + panelH - v/ymax*panelH }
		for _, a := range attacks {
			if a.Start.IsZero() {
				continue
			}
			end := a.Ended
			if end.IsZero() {
				end = a.End
			}
			x1, x2 := x(a.Start.Sub(t0).Seconds()), x(end.Sub(t0).Seconds())
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%d" fill="#f4d6d6"/>`+"\n", x1, y0, max(x2-x1, 1), panelH)
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%.0f" width="%d" height="%d" fill="none" stroke="#888"/>`+"\n", left, y0, w-left-right, panelH)
		fmt.Fprintf(&b, `<text x="%d" y="%.0f">%s</text>`+"\n", left, y0-5, s.name)
		fmt.Fprintf(&b, `<text x="%d" y="%.0f" text-anchor="end">%s</text>`+"\n", left-4, y0+10, ff(ymax, 0))
		fmt.Fprintf(&b, `<text x="%d" y="%.0f" text-anchor="end">0</text>`+"\n", left-4, y0+panelH)
		var pts []string
		for _, r := range rows {
			if v := s.get(r); !math.IsNaN(v) {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(r.T), y(v)))
			}
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="#1f5fa8" stroke-width="1.5" points="%s"/>`+"\n", strings.Join(pts, " "))
		fmt.Fprintf(&b, `<text x="%d" y="%.0f">0 s</text>`+"\n", left, y0+panelH+13)
		fmt.Fprintf(&b, `<text x="%d" y="%.0f" text-anchor="end">%s s</text>`+"\n", w-right, y0+panelH+13, ff(tmax, 0))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "this machine"
	}
	return h
}

func numCPU() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\nprocessor") + strings.Count(string(b[:min(len(b), 10)]), "processor")
}

func waitHealthy(api string) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(api + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("the daemon did not become healthy in 15 s")
}

// scrape reads a Prometheus text exposition into name → summed value.
func scrape(url string) (map[string]float64, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		name := line[:i]
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name = name[:j]
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[name] += v
		}
	}
	return out, sc.Err()
}

func freePort(network string) (int, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail is the end of a file, for an error message.
func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
