// Command e2e is Kapkan's end-to-end load harness (make bench-e2e): it
// starts the daemon from the built binary, drives it with `kapkan simulate`
// at stepped rates for each format, and reports per step the records offered
// and accounted, the loss (application drops and kernel socket drops), CPU
// seconds per million records, peak RSS, and the detection latency of the
// injected attacks. With -fastnetmon it runs FastNetMon Community on the
// same traffic in the same run and prints the ratios.
//
// Everything runs on loopback.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kapkan-io/kapkan/bench/fnm"
	"github.com/kapkan-io/kapkan/ingest"
)

type options struct {
	apiClients, sseSubscribers int
	apiEvery                   time.Duration
	history                    bool
	bin                        string
	formats                    []string
	hosts                      []int
	rates                      []int
	fnmRates                   []int
	duration                   time.Duration
	sampling                   int
	fastnetmon                 bool
	out                        string
	work                       string
	pregen                     time.Duration
	profiles                   string
	sessions                   bool
	readBuffer                 int
	warmup                     time.Duration
	charts                     string
}

// step is one measured run: one system, format, host count and rate.
type step struct {
	System       string  `json:"system"`
	Format       string  `json:"format"`
	Hosts        int     `json:"hosts"`
	OfferedRPS   float64 `json:"offered_rps"`
	SentRecords  int64   `json:"sent_records"`
	Accounted    int64   `json:"accounted_records"`
	AppDrops     int64   `json:"app_drops"`
	KernelDrops  int64   `json:"kernel_drops"`
	LossPercent  float64 `json:"loss_percent"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	CPUPerMillon float64 `json:"cpu_seconds_per_million"`
	PeakRSSMiB   float64 `json:"peak_rss_mib"`
	GenCPU       float64 `json:"generator_cpu_seconds"`
	// BoxCPU is the CPU time the whole machine was busy while the
	// generator sent (all cores, /proc/stat): what the collector, the
	// generator and everything else running on the machine used.
	BoxCPU float64 `json:"box_busy_cpu_seconds"`
	// RunDelay is how long the collector's threads were ready to run but
	// waited for a CPU (/proc/PID/task/*/schedstat), over its life.
	RunDelay float64 `json:"run_delay_seconds"`
	// SendSeconds is how long the generator sent.
	SendSeconds float64   `json:"send_seconds"`
	LatenciesMS []float64 `json:"detection_latencies_ms"`
	Missed      int       `json:"attacks_missed"`
	// API is the load on the daemon's API during the step (-api-clients).
	API *apiLoad `json:"api,omitempty"`
}

func main() {
	var o options
	var formats, hosts, rates, fnmRates string
	flag.StringVar(&o.bin, "bin", "bin/kapkan", "the kapkan binary")
	flag.StringVar(&formats, "formats", "sflow5,netflow9,ipfix", "formats to measure")
	flag.StringVar(&hosts, "hosts", "10000,1000000", "active destination addresses")
	flag.StringVar(&rates, "rates", "250000,500000,750000,1000000,1250000", "offered records per second, in steps")
	flag.StringVar(&fnmRates, "fastnetmon-rates", "", "FastNetMon's steps when they should differ from -rates (both run in the same run, format by format)")
	flag.DurationVar(&o.duration, "duration", 12*time.Second, "how long each step sends")
	flag.IntVar(&o.sampling, "sampling", 1000, "sampling rate of the simulated telemetry")
	flag.BoolVar(&o.fastnetmon, "fastnetmon", false, "also run Debian's FastNetMon Community on the same traffic")
	flag.StringVar(&o.out, "out", "bench-e2e.json", "where to write every step as JSON")
	flag.DurationVar(&o.pregen, "pregenerate", 0, "pass --pregenerate to simulate: build this much background once and replay it (sflow5 and netflow9)")
	flag.BoolVar(&o.sessions, "sessions", true, "run each collector and the generator in a session of its own (setsid), as services run: with the kernel's scheduler autogroups each then gets its own share of the CPU instead of all sharing the harness's")
	flag.IntVar(&o.readBuffer, "read-buffer", 32<<20, "socket receive buffer of both collectors, in bytes: Kapkan's ingest read_buffer, and net.core.rmem_default during FastNetMon's steps")
	flag.DurationVar(&o.warmup, "warmup", 0, "before each step, send the same background (no attacks) for this long and measure only what follows: a collector that has already seen every host, as in steady state")
	flag.StringVar(&o.profiles, "cpuprofile", "", "write a CPU profile of each Kapkan step into this directory (KAPKAN_CPUPROFILE)")
	flag.IntVar(&o.apiClients, "api-clients", 0, "during each Kapkan step, this many clients fetch the API's read routes in a loop")
	flag.DurationVar(&o.apiEvery, "api-interval", 100*time.Millisecond, "how often each API client fetches a route (0: back to back)")
	flag.BoolVar(&o.history, "history", false, "keep the daemon's history (embedded store in a temporary directory) during each Kapkan step")
	flag.IntVar(&o.sseSubscribers, "sse-subscribers", 0, "during each Kapkan step, this many clients follow /api/v1/events (and one more stops reading, to be cut off)")
	flag.StringVar(&o.charts, "charts", "", "draw the results as SVG charts into this directory (make bench-e2e: docs/performance)")
	from := flag.String("from", "", "run nothing: draw the charts (-charts) of this results file, written by an earlier run (-out)")
	flag.Parse()
	if *from != "" {
		if o.charts == "" {
			fatal(errors.New("-from draws charts: give -charts DIR"))
		}
		steps, err := readSteps(*from)
		if err != nil {
			fatal(err)
		}
		names, err := writeCharts(o.charts, steps)
		if err != nil {
			fatal(err)
		}
		fmt.Printf("%d steps of %s drawn into %s: %s\n", len(steps), *from, o.charts, strings.Join(names, " "))
		return
	}
	o.formats = strings.Split(formats, ",")
	o.hosts = ints(hosts)
	o.rates = ints(rates)
	o.fnmRates = o.rates
	if fnmRates != "" {
		o.fnmRates = ints(fnmRates)
	}
	var err error
	if o.work, err = os.MkdirTemp("", "kapkan-e2e-"); err != nil {
		fatal(err)
	}
	defer os.RemoveAll(o.work)
	if err := run(context.Background(), &o); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench-e2e:", err)
	os.Exit(1)
}

func ints(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			fatal(fmt.Errorf("%q: %w", f, err))
		}
		out = append(out, v)
	}
	return out
}

// The attacks every step injects: one new victim every 3 seconds, at 20× the
// threshold of 50000 pps, so each step yields several latency samples.
const (
	thresholdPPS = 50_000
	attackPPS    = 1_000_000
	prefix       = "10.0.0.0/12" // FastNetMon preallocates counters for every address of its networks: a /8 would cost it 12 GB
)

func attackArgs(d time.Duration) (args []string, victims []string) {
	for i, at := 0, 2*time.Second; at+2*time.Second < d; i, at = i+1, at+3*time.Second {
		v := fmt.Sprintf("10.15.255.%d", i+1)
		victims = append(victims, v)
		args = append(args, "--attack", fmt.Sprintf("udp-flood@%s:%d:%s:2s", v, attackPPS, at))
	}
	return args, victims
}

func run(ctx context.Context, o *options) error {
	var all []step
	for _, format := range o.formats {
		for _, hosts := range o.hosts {
			// Each rate in turn, Kapkan then FastNetMon, so that both see
			// the same moments of the shared machine where their steps meet.
			for _, rate := range mergeRates(o.rates, o.fnmRates) {
				if slices.Contains(o.rates, rate) {
					s, err := kapkanStep(ctx, o, format, hosts, rate)
					if err != nil {
						return fmt.Errorf("kapkan %s %d hosts %d rps: %w", format, hosts, rate, err)
					}
					all = append(all, s)
					printStep(s)
				}
				if o.fastnetmon && slices.Contains(o.fnmRates, rate) {
					f, err := fnmStep(ctx, o, format, hosts, rate)
					if err != nil {
						return fmt.Errorf("fastnetmon %s %d hosts %d rps: %w", format, hosts, rate, err)
					}
					all = append(all, f)
					printStep(f)
				}
			}
		}
	}
	summarize(os.Stdout, all, o)
	b, _ := json.MarshalIndent(all, "", "  ")
	if err := os.WriteFile(o.out, b, 0o644); err != nil {
		return err
	}
	if o.charts == "" {
		return nil
	}
	names, err := writeCharts(o.charts, all)
	if err != nil {
		return err
	}
	fmt.Printf("charts in %s: %s\n", o.charts, strings.Join(names, " "))
	return nil
}

// mergeRates returns the rates of a and b, sorted, once each.
// storePath is the history directory of a step: none unless -history.
func storePath(o *options) string {
	if !o.history {
		return ""
	}
	return filepath.Join(o.work, fmt.Sprintf("history-%d", time.Now().UnixNano()))
}

func mergeRates(a, b []int) []int {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

func freePort(network string) (int, error) {
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	default:
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port, nil
	}
}

// simulate runs `kapkan simulate` to port and returns its report.
// With warm > 0 it sends the background alone for that long.
func simulate(ctx context.Context, o *options, format string, hosts, rate, port int, warm time.Duration) (map[string]any, []string, error) {
	d := o.duration
	attacks, victims := attackArgs(d)
	if warm > 0 {
		d, attacks, victims = warm, nil, nil
	}
	args := append([]string{"simulate", "--to", fmt.Sprintf("127.0.0.1:%d", port), "--format", format,
		"--sampling", strconv.Itoa(o.sampling), "--hosts", strconv.Itoa(hosts), "--prefix", prefix,
		"--records-per-second", strconv.Itoa(rate), "--duration", d.String(), "--seed", "1"}, attacks...)
	if o.pregen > 0 {
		args = append(args, "--pregenerate", o.pregen.String())
	}
	cmd := exec.CommandContext(ctx, o.bin, args...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: o.sessions, Pdeathsig: syscall.SIGKILL}
	busy := boxBusy()
	out, err := cmd.Output()
	busy = boxBusy() - busy
	if err != nil {
		return nil, nil, fmt.Errorf("simulate: %w", err)
	}
	var rep map[string]any
	if err := json.Unmarshal(out, &rep); err != nil {
		return nil, nil, fmt.Errorf("simulate report %q: %w", out, err)
	}
	rep["box_busy_cpu_seconds"] = busy
	return rep, victims, nil
}

// firstSent maps each attack target to the time its first record was sent.
func firstSent(rep map[string]any) map[string]time.Time {
	out := map[string]time.Time{}
	attacks, _ := rep["attacks"].([]any)
	for _, a := range attacks {
		m := a.(map[string]any)
		if s, ok := m["first_record_sent"].(string); ok {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err == nil {
				out[m["target"].(string)] = t
			}
		}
	}
	return out
}

func kapkanStep(ctx context.Context, o *options, format string, hosts, rate int) (step, error) {
	s := step{System: "kapkan", Format: format, Hosts: hosts, OfferedRPS: float64(rate)}
	sflowPort, err := freePort("udp")
	if err != nil {
		return s, err
	}
	nfPort, _ := freePort("udp")
	apiPort, _ := freePort("tcp")
	cfgPath := filepath.Join(o.work, "kapkan.yaml")
	cfg := fmt.Sprintf(`log: {format: json}
ingest:
  sflow: {listen: "127.0.0.1:%d", read_buffer: %d}
  netflow: {listen: "127.0.0.1:%d", read_buffer: %d}
detection: {window: 5s, cooldown: 5s, queue_size: 8192}
hostgroups:
  - name: bench
    prefixes: [%s]
    thresholds:
      incoming: {pps: %d}
api: {listen: "127.0.0.1:%d", open_read: true}
mitigation: {state_file: ""}
store: {path: %q}
`, sflowPort, o.readBuffer, nfPort, o.readBuffer, prefix, thresholdPPS, apiPort, storePath(o))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return s, err
	}
	logPath := filepath.Join(o.work, "kapkan.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return s, err
	}
	defer logf.Close()
	daemon := exec.CommandContext(ctx, o.bin, "run", "--config", cfgPath)
	daemon.Stdout, daemon.Stderr = logf, logf
	daemon.SysProcAttr = &syscall.SysProcAttr{Setsid: o.sessions, Pdeathsig: syscall.SIGKILL}
	if o.profiles != "" {
		if err := os.MkdirAll(o.profiles, 0o755); err != nil {
			return s, err
		}
		p, _ := filepath.Abs(filepath.Join(o.profiles, fmt.Sprintf("kapkan-%s-%d-%d.pprof", format, hosts, rate)))
		daemon.Env = append(os.Environ(), "KAPKAN_CPUPROFILE="+p,
			// The profile must end before the step stops the daemon.
			fmt.Sprintf("KAPKAN_CPUPROFILE_SECONDS=%d", int(o.duration/time.Second)))
	}
	if err := daemon.Start(); err != nil {
		return s, err
	}
	defer func() {
		_ = daemon.Process.Signal(os.Interrupt)
		_ = daemon.Wait()
	}()
	api := fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	if err := waitHealthy(api); err != nil {
		return s, err
	}
	port := sflowPort
	if format != "sflow5" {
		port = nfPort
	}
	m0 := map[string]float64{}
	var cpu0 float64
	if o.warmup > 0 {
		if _, _, err := simulate(ctx, o, format, hosts, rate, port, o.warmup); err != nil {
			return s, err
		}
		time.Sleep(time.Second)
		if m0, err = scrape(api + "/metrics"); err != nil {
			return s, err
		}
		cpu0, _ = usage(daemon.Process.Pid)
	}
	var stopLoad func() apiLoad
	if o.apiClients > 0 || o.sseSubscribers > 0 {
		stopLoad = startAPILoad(ctx, api, o.apiClients, o.sseSubscribers, o.apiEvery)
	}
	rep, victims, err := simulate(ctx, o, format, hosts, rate, port, 0)
	if stopLoad != nil {
		l := stopLoad()
		s.API = &l
	}
	if err != nil {
		return s, err
	}
	time.Sleep(2 * time.Second) // let the queues drain
	m, err := scrape(api + "/metrics")
	if err != nil {
		return s, err
	}
	for k, v := range m0 {
		m[k] -= v
	}
	s.SentRecords = int64(rep["records"].(float64))
	s.OfferedRPS = rep["records_per_second"].(float64)
	s.GenCPU, _ = rep["cpu_seconds"].(float64)
	s.BoxCPU, _ = rep["box_busy_cpu_seconds"].(float64)
	s.SendSeconds, _ = rep["seconds"].(float64)
	s.Accounted = int64(m["kapkan_ingest_records_total"])
	s.AppDrops = int64(m["kapkan_engine_dropped_records_total"])
	kernelDatagrams := m["kapkan_ingest_socket_drops_total"]
	// A datagram holds about sent/datagrams records.
	perDatagram := float64(s.SentRecords) / max(rep["datagrams"].(float64), 1)
	s.KernelDrops = int64(kernelDatagrams * perDatagram)
	lost := s.SentRecords - s.Accounted + s.AppDrops
	s.LossPercent = 100 * float64(max(lost, 0)) / float64(max(s.SentRecords, 1))
	s.CPUSeconds, s.PeakRSSMiB = usage(daemon.Process.Pid)
	s.CPUSeconds -= cpu0
	s.RunDelay = runDelay(daemon.Process.Pid)
	s.CPUPerMillon = s.CPUSeconds / (float64(s.SentRecords) / 1e6)
	detected, err := detections(logPath)
	if err != nil {
		return s, err
	}
	sent := firstSent(rep)
	for _, v := range victims {
		at, ok := detected[v+"/32"]
		if !ok {
			s.Missed++
			continue
		}
		s.LatenciesMS = append(s.LatenciesMS, float64(at.Sub(sent[v]).Microseconds())/1000)
	}
	return s, nil
}

func waitHealthy(api string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(api + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("daemon did not become healthy")
}

// scrape reads a Prometheus text exposition into name → summed value.
func scrape(url string) (map[string]float64, error) {
	resp, err := http.Get(url)
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
		name := line[:i]
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name = name[:j]
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[name] += v
		}
	}
	return out, sc.Err()
}

// usage reads a process's CPU seconds and peak RSS (MiB) from /proc.
func usage(pid int) (cpu, rssMiB float64) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err == nil {
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		if len(f) > 12 {
			ut, _ := strconv.ParseFloat(f[11], 64)
			st, _ := strconv.ParseFloat(f[12], 64)
			cpu = (ut + st) / 100 // USER_HZ
		}
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err == nil {
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "VmHWM:") {
				kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
				rssMiB = kb / 1024
			}
		}
	}
	return cpu, rssMiB
}

// detections reads the daemon's JSON log: target → time of "attack detected".
func detections(path string) (map[string]time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]time.Time{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l struct {
			Time   time.Time `json:"time"`
			Msg    string    `json:"msg"`
			Target string    `json:"target"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "attack detected" {
			if _, seen := out[l.Target]; !seen {
				out[l.Target] = l.Time
			}
		}
	}
	return out, sc.Err()
}

func fnmStep(ctx context.Context, o *options, format string, hosts, rate int) (step, error) {
	s := step{System: "fastnetmon", Format: format, Hosts: hosts, OfferedRPS: float64(rate)}
	sflowPort, err := freePort("udp")
	if err != nil {
		return s, err
	}
	nfPort, _ := freePort("udp")
	// Kapkan asks for -read-buffer (its default, 32 MiB, unless changed);
	// FastNetMon 1.2.4 takes the kernel default. Give its sockets the same
	// size for the step (the default is restored afterwards), so both get
	// equal buffering.
	restore, err := setRmemDefault(o.readBuffer)
	if err != nil {
		return s, err
	}
	defer restore()
	inst, err := fnm.Start(ctx, fnm.Config{SFlowPort: sflowPort, NetFlowPort: nfPort, Networks: []string{prefix},
		ThresholdPPS: thresholdPPS, ThresholdMbps: 1 << 20, ThresholdFlows: 1 << 30, WorkDir: filepath.Join(o.work, "fnm"),
		Session: o.sessions})
	if err != nil {
		return s, err
	}
	defer inst.Stop()
	port := sflowPort
	if format != "sflow5" {
		port = nfPort
	}
	var cpu0 float64
	if o.warmup > 0 {
		if _, _, err := simulate(ctx, o, format, hosts, rate, port, o.warmup); err != nil {
			return s, err
		}
		time.Sleep(time.Second)
		cpu0, _, _ = inst.Usage()
	}
	before := socketDrops(port)
	rep, victims, err := simulate(ctx, o, format, hosts, rate, port, 0)
	if err != nil {
		return s, err
	}
	time.Sleep(2 * time.Second)
	s.SentRecords = int64(rep["records"].(float64))
	s.OfferedRPS = rep["records_per_second"].(float64)
	s.GenCPU, _ = rep["cpu_seconds"].(float64)
	s.BoxCPU, _ = rep["box_busy_cpu_seconds"].(float64)
	s.SendSeconds, _ = rep["seconds"].(float64)
	perDatagram := float64(s.SentRecords) / max(rep["datagrams"].(float64), 1)
	s.KernelDrops = int64(float64(socketDrops(port)-before) * perDatagram)
	s.Accounted = s.SentRecords - s.KernelDrops // FastNetMon exports no record count; kernel drops are its visible loss
	s.LossPercent = 100 * float64(s.KernelDrops) / float64(max(s.SentRecords, 1))
	s.RunDelay = runDelay(inst.PID())
	cpu, rss, err := inst.Usage()
	if err == nil {
		s.CPUSeconds, s.PeakRSSMiB = cpu-cpu0, float64(rss)/(1<<20)
		s.CPUPerMillon = s.CPUSeconds / (float64(s.SentRecords) / 1e6)
	}
	bans, err := inst.Bans()
	if err != nil {
		return s, err
	}
	banned := map[string]time.Time{}
	for _, b := range bans {
		if b.Action == "ban" {
			if _, seen := banned[b.IP]; !seen {
				banned[b.IP] = b.At
			}
		}
	}
	sent := firstSent(rep)
	for _, v := range victims {
		at, ok := banned[v]
		if !ok {
			s.Missed++
			continue
		}
		s.LatenciesMS = append(s.LatenciesMS, float64(at.Sub(sent[v]).Microseconds())/1000)
	}
	return s, nil
}

// runDelay sums the time pid's threads spent waiting for a CPU while
// runnable (the second field of each thread's schedstat), in seconds.
func runDelay(pid int) float64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var ns float64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) >= 2 {
			v, _ := strconv.ParseFloat(f[1], 64)
			ns += v
		}
	}
	return ns / 1e9
}

// boxBusy returns the CPU seconds all cores have been busy since boot
// (/proc/stat: everything but idle and iowait).
func boxBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	var busy float64
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseFloat(f, 64)
		switch i {
		case 0, 1, 2, 5, 6: // user, nice, system, irq, softirq (guest time is in user; not idle, iowait, steal)
			busy += v
		}
	}
	return busy / 100 // USER_HZ
}

// socketDrops sums the kernel drop counters of UDP sockets bound to port.
func socketDrops(port int) int64 { return int64(ingest.SocketDrops(port)) }

func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func printStep(s step) {
	fmt.Printf("%-10s %-8s hosts=%-8d offered=%9.0f rec/s  accounted=%9d/%-9d loss=%6.2f%%  cpu=%6.2fs (%5.2f s/M rec)  rss=%6.1f MiB  latency p50=%6.0f ms p99=%6.0f ms missed=%d  generator cpu=%5.2fs  machine busy=%5.2fs of %5.2fs  waited for a CPU=%5.2fs\n",
		s.System, s.Format, s.Hosts, s.OfferedRPS, s.Accounted, s.SentRecords, s.LossPercent, s.CPUSeconds, s.CPUPerMillon,
		s.PeakRSSMiB, percentile(s.LatenciesMS, 0.5), percentile(s.LatenciesMS, 0.99), s.Missed, s.GenCPU,
		s.BoxCPU, s.SendSeconds*float64(runtime.NumCPU()), s.RunDelay)
	if s.API != nil {
		fmt.Printf("           %s\n", s.API)
	}
}

// summarize prints, per system, format and host count, the highest lossless
// rate (< 0.1 % loss) and the latency percentiles over every step, and the
// ratios Kapkan / FastNetMon.
func summarize(w io.Writer, all []step, o *options) {
	type key struct {
		system, format string
		hosts          int
	}
	best := map[key]float64{}
	lat := map[key][]float64{}
	for _, s := range all {
		k := key{s.System, s.Format, s.Hosts}
		if s.LossPercent < 0.1 && s.OfferedRPS > best[k] {
			best[k] = s.OfferedRPS
		}
		lat[k] = append(lat[k], s.LatenciesMS...)
	}
	fmt.Fprintln(w, "\n| system | format | hosts | highest lossless rate (rec/s) | latency p50 (ms) | latency p99 (ms) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	var keys []key
	for k := range lat {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].format != keys[j].format {
			return keys[i].format < keys[j].format
		}
		if keys[i].hosts != keys[j].hosts {
			return keys[i].hosts < keys[j].hosts
		}
		return keys[i].system > keys[j].system
	})
	for _, k := range keys {
		fmt.Fprintf(w, "| %s | %s | %d | %.0f | %.0f | %.0f |\n", k.system, k.format, k.hosts, best[k],
			percentile(lat[k], 0.5), percentile(lat[k], 0.99))
	}
	if !o.fastnetmon {
		return
	}
	fmt.Fprintln(w, "\n| format | hosts | lossless rate kapkan / fastnetmon | latency p50 fastnetmon / kapkan |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, k := range keys {
		if k.system != "kapkan" {
			continue
		}
		f := key{"fastnetmon", k.format, k.hosts}
		fmt.Fprintf(w, "| %s | %d | %.2f | %.2f |\n", k.format, k.hosts, best[k]/max(best[f], 1),
			percentile(lat[f], 0.5)/max(percentile(lat[k], 0.5), 1e-9))
	}
}

const rmemDefault = "/proc/sys/net/core/rmem_default"

// setRmemDefault sets net.core.rmem_default and returns how to restore it.
func setRmemDefault(v int) (func(), error) {
	old, err := os.ReadFile(rmemDefault)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(rmemDefault, []byte(strconv.Itoa(v)), 0o644); err != nil {
		return nil, fmt.Errorf("raise %s for FastNetMon (run as root): %w", rmemDefault, err)
	}
	return func() { _ = os.WriteFile(rmemDefault, old, 0o644) }, nil
}
