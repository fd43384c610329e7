//go:build e2e

// These tests run FastNetMon Community; make bench-e2e runs them (go test
// -tags e2e ./bench/fnm) after installing it. They fail, never skip, when it
// is missing.

package fnm

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/ingest/flowgen"
)

var (
	runs    = flag.Int("fnm.runs", 1, "floods per protocol (each against a fresh FastNetMon); >1 prints latency statistics")
	keepDir = flag.String("fnm.dir", "", "keep each instance's WorkDir (config, logs, bans.log) under this directory instead of a temporary one")
)

const (
	victim        = "203.0.113.10"
	network       = "203.0.113.0/24"
	thresholdPPS  = 50000
	samplingRate  = 1000
	samplesPerSec = 300 // 300 samples/s at 1:1000 = 300 000 pps, 6x the threshold
	frameLen      = 512
	floodFor      = 20 * time.Second
	maxDatagrams  = samplesPerSec * 20 // hard bound on what one flood sends
)

// requireFNM fails (never skips) when FastNetMon is missing.
func requireFNM(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Fatalf("%s (%v)", InstallHint, err)
	}
	v, err := Version()
	if err != nil {
		t.Fatal(err)
	}
	if v != "1.2.4" {
		t.Logf("warning: FastNetMon %s, this package was written for 1.2.4", v)
	}
}

// freeUDPPorts returns n distinct loopback UDP ports that were free a moment ago.
func freeUDPPorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var conns []*net.UDPConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for len(ports) < n {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c) // held open until all are chosen, so they differ
		ports = append(ports, c.LocalAddr().(*net.UDPAddr).Port)
	}
	return ports
}

func startFNM(t *testing.T, cfgMod func(*Config)) *Instance {
	t.Helper()
	requireFNM(t)
	ports := freeUDPPorts(t, 2)
	cfg := Config{
		SFlowPort:    ports[0],
		NetFlowPort:  ports[1],
		Networks:     []string{network},
		ThresholdPPS: thresholdPPS,
		WorkDir:      filepath.Join(t.TempDir(), "fnm"),
	}
	if *keepDir != "" {
		dir, err := os.MkdirTemp(*keepDir, strings.NewReplacer("/", "_", " ", "_", ",", "").Replace(t.Name())+"-")
		if err != nil {
			t.Fatal(err)
		}
		cfg.WorkDir = dir
	}
	if cfgMod != nil {
		cfgMod(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	inst, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := inst.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
		if t.Failed() {
			t.Logf("FastNetMon log tail:\n%s", inst.LogTail(40))
		}
	})
	t.Logf("FastNetMon pid %d, sFlow 127.0.0.1:%d, NetFlow 127.0.0.1:%d, dir %s",
		inst.PID(), cfg.SFlowPort, cfg.NetFlowPort, inst.WorkDir())
	return inst
}

// source returns the k-th spoofed flood source (outside the protected network).
func source(k int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 51, byte(100 + k/250%4), byte(1 + k%250)})
}

// flood sends datagrams from next (one sampled packet or flow record each)
// to 127.0.0.1:port at samplesPerSec until a ban for victim shows up, for at
// most floodFor and maxDatagrams. It returns the time of the first datagram
// and the ban.
func flood(t *testing.T, inst *Instance, port int, preamble [][]byte, next func(k int) []byte) (time.Time, Ban, int, bool) {
	t.Helper()
	conn, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, d := range preamble {
		if _, err := conn.Write(d); err != nil {
			t.Fatal(err)
		}
	}
	// FastNetMon recalculates speeds on a fixed 1 s cadence counted from its
	// start; starting the flood at a random phase of it makes the latency
	// representative instead of always hitting the same phase.
	time.Sleep(rand.N(time.Second))

	const tick = 10 * time.Millisecond
	perTick := samplesPerSec * int(tick) / int(time.Second)
	ticker := time.NewTicker(tick)
	defer ticker.Stop()

	var first time.Time
	sent := 0
	lastCheck := time.Time{}
	for sent < maxDatagrams {
		now := time.Now()
		if !first.IsZero() && now.Sub(first) >= floodFor {
			break
		}
		// Keep the average rate exact whatever the ticker's jitter.
		due := perTick
		if !first.IsZero() {
			due = int(now.Sub(first)*samplesPerSec/time.Second) + perTick - sent
		}
		for j := 0; j < due && sent < maxDatagrams; j++ {
			if first.IsZero() {
				first = time.Now()
			}
			if _, err := conn.Write(next(sent)); err != nil {
				t.Fatalf("send: %v", err)
			}
			sent++
		}
		if now.Sub(lastCheck) >= 50*time.Millisecond {
			lastCheck = now
			if b, ok := findBan(t, inst); ok {
				return first, b, sent, true
			}
		}
		select {
		case <-inst.Exited():
			t.Fatalf("FastNetMon exited during the flood")
		case <-ticker.C:
		}
	}
	// Traffic stopped: give the last recalculation and bucket check a moment.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if b, ok := findBan(t, inst); ok {
			return first, b, sent, true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return first, Ban{}, sent, false
}

func findBan(t *testing.T, inst *Instance) (Ban, bool) {
	t.Helper()
	bans, err := inst.Bans()
	if err != nil {
		t.Fatalf("Bans: %v", err)
	}
	for _, b := range bans {
		if b.Action == "ban" && b.IP == victim {
			return b, true
		}
	}
	return Ban{}, false
}

func report(t *testing.T, inst *Instance, proto string, first time.Time, ban Ban, sent int) time.Duration {
	t.Helper()
	lat := ban.At.Sub(first)
	cpu, rss, err := inst.Usage()
	if err != nil {
		t.Errorf("Usage: %v", err)
	}
	drops, err := inst.UDPDrops()
	if err != nil {
		t.Errorf("UDPDrops: %v", err)
	}
	t.Logf("%s: ban of %s %v after the first datagram (sent at %s, %d datagrams in all, %d dropped by the kernel); FastNetMon CPU %.2f s, peak RSS %.1f MiB",
		proto, victim, lat.Round(time.Millisecond), first.Format("15:04:05.000"), sent, drops, cpu, float64(rss)/(1<<20))
	return lat
}

func summarize(t *testing.T, proto string, lats []time.Duration) {
	if len(lats) < 2 {
		return
	}
	s := slices.Clone(lats)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	t.Logf("%s ban latency over %d runs: min %v median %v mean %v max %v", proto, len(s),
		s[0].Round(time.Millisecond), s[len(s)/2].Round(time.Millisecond),
		(sum / time.Duration(len(s))).Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
}

func sflowDatagram(k int) []byte {
	return flowgen.AppendSFlow(nil,
		flowgen.SFlowHeader{Agent: netip.MustParseAddr("127.0.0.1"), Sequence: uint32(k + 1), Uptime: time.Hour},
		[]flowgen.SFlowSample{{
			SamplingRate: samplingRate,
			SamplePool:   uint32((k + 1) * samplingRate),
			Sequence:     uint32(k + 1),
			Input:        1,
			Output:       2,
			Flow: flowgen.Flow{
				Src:      source(k),
				Dst:      netip.MustParseAddr(victim),
				Proto:    flowgen.ProtoUDP,
				SrcPort:  1234,
				DstPort:  80,
				FrameLen: frameLen,
			},
		}})
}

// TestSFlowFloodIsBanned floods FastNetMon with sFlow v5 at 300 samples/s,
// 1:1000 (300 kpps, 6x threshold_pps) towards one host and expects a ban.
func TestSFlowFloodIsBanned(t *testing.T) {
	var lats []time.Duration
	for r := 0; r < *runs; r++ {
		inst := startFNM(t, nil)
		first, ban, sent, ok := flood(t, inst, inst.cfg.SFlowPort, nil, sflowDatagram)
		if !ok {
			t.Fatalf("sFlow: no ban for %s after %d datagrams in %v", victim, sent, floodFor)
		}
		lats = append(lats, report(t, inst, "sFlow v5", first, ban, sent))
		if err := inst.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	}
	summarize(t, "sFlow v5", lats)
}

// netflowV9 builds a NetFlow v9 exporter's datagrams: one flow record each,
// Packets 1 and Bytes frameLen, and when withOptions an options template and
// record announcing the 1:1000 sampling before the flood and then every 100
// datagrams (as a router refreshes them).
type netflowV9 struct {
	e           *flowgen.Exporter
	tpl, opt    flowgen.Template
	withOptions bool
}

func newNetflowV9(withOptions bool, opt flowgen.Template) *netflowV9 {
	return &netflowV9{
		e:           &flowgen.Exporter{Version: flowgen.VersionNetFlow9, DomainID: 1},
		tpl:         flowgen.Template{ID: 256, Fields: flowgen.FlowFields(9, flowgen.IPv4, flowgen.TimesDefault)},
		opt:         opt,
		withOptions: withOptions,
	}
}

func (n *netflowV9) preamble() [][]byte {
	n.e.Now = time.Now()
	sets := []flowgen.Set{flowgen.TemplateSet(n.tpl)}
	if n.withOptions {
		sets = append(sets, flowgen.TemplateSet(n.opt), flowgen.OptionsDataSet(n.opt, n.options()))
	}
	return [][]byte{n.e.Datagram(sets...)}
}

func (n *netflowV9) options() flowgen.Options {
	return flowgen.Options{Scope: 1, SamplerID: 1, SamplerMode: flowgen.SamplingRandom, SamplingRate: samplingRate}
}

func (n *netflowV9) datagram(k int) []byte {
	now := time.Now()
	n.e.Now = now
	f := flowgen.Flow{
		Src:     source(k),
		Dst:     netip.MustParseAddr(victim),
		Proto:   flowgen.ProtoUDP,
		SrcPort: 1234,
		DstPort: 80,
		Packets: 1,
		Bytes:   frameLen,
		Start:   now.Truncate(time.Second),
		End:     now.Truncate(time.Second),
		InIf:    1,
		OutIf:   2,
		// Written only by templates with samplingInterval (none of the
		// tests' templates: FastNetMon 1.2.4 ignores it in flow records).
		SamplingRate: samplingRate,
	}
	sets := []flowgen.Set{flowgen.DataSet(n.tpl, f)}
	if k > 0 && k%100 == 0 {
		sets = append([]flowgen.Set{flowgen.TemplateSet(n.tpl)}, sets...)
		if n.withOptions {
			sets = append(sets, flowgen.TemplateSet(n.opt), flowgen.OptionsDataSet(n.opt, n.options()))
		}
	}
	return n.e.Datagram(sets...)
}

// TestNetFlowV9FloodIsBanned floods FastNetMon with NetFlow v9 flow records
// (1 packet each) at 300 records/s. FastNetMon must learn the 1:1000
// sampling from the exporter's options data (netflow_sampling_ratio stays 1),
// both as Cisco sends it (FLOW_SAMPLER_RANDOM_INTERVAL) and as Juniper does
// (SAMPLING_INTERVAL); and, without options, from netflow_sampling_ratio.
func TestNetFlowV9FloodIsBanned(t *testing.T) {
	cases := []struct {
		name        string
		withOptions bool
		opt         flowgen.Template
		ratio       int
	}{
		{"options FLOW_SAMPLER_RANDOM_INTERVAL", true, flowgen.V9SamplerOptions(257, true), 0},
		{"options SAMPLING_INTERVAL", true, flowgen.SamplingOptions(flowgen.VersionNetFlow9, 258), 0},
		{"netflow_sampling_ratio 1000, no options", false, flowgen.Template{}, samplingRate},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var lats []time.Duration
			for r := 0; r < *runs; r++ {
				inst := startFNM(t, func(cfg *Config) { cfg.NetFlowSamplingRatio = c.ratio })
				nf := newNetflowV9(c.withOptions, c.opt)
				first, ban, sent, ok := flood(t, inst, inst.cfg.NetFlowPort, nf.preamble(), nf.datagram)
				if !ok {
					t.Fatalf("NetFlow v9 (%s): no ban for %s after %d datagrams in %v", c.name, victim, sent, floodFor)
				}
				lats = append(lats, report(t, inst, "NetFlow v9 ("+c.name+")", first, ban, sent))
				if err := inst.Stop(); err != nil {
					t.Errorf("Stop: %v", err)
				}
			}
			summarize(t, "NetFlow v9 ("+c.name+")", lats)
		})
	}
}

// TestNetFlowV9NotBannedWithoutOptions is the control: NetFlow v9 records
// whose sampling FastNetMon does not learn count 1 packet each, 300 pps, far
// under the threshold, so it must not ban. That holds for records without any
// sampling information and, a quirk of 1.2.4, for records that carry their
// own samplingInterval (IE 34) field in the flow template: FastNetMon only
// reads the rate from options data records (or netflow_sampling_ratio).
func TestNetFlowV9NotBannedWithoutOptions(t *testing.T) {
	cases := []struct {
		name string
		tpl  flowgen.Template
	}{
		{"no sampling information", flowgen.Template{ID: 256, Fields: flowgen.FlowFields(9, flowgen.IPv4, flowgen.TimesDefault)}},
		{"samplingInterval in flow records", flowgen.Template{ID: 256, Fields: flowgen.FlowFields(9, flowgen.IPv4, flowgen.TimesDefault,
			flowgen.Field{ID: flowgen.IESamplingInterval, Len: 4})}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inst := startFNM(t, nil)
			nf := newNetflowV9(false, flowgen.Template{})
			nf.tpl = c.tpl
			conn, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: inst.cfg.NetFlowPort})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			for _, d := range nf.preamble() {
				if _, err := conn.Write(d); err != nil {
					t.Fatal(err)
				}
			}
			// 4 s at 300 records/s, bounded in count and time.
			start := time.Now()
			end := start.Add(5 * time.Second)
			pps := int64(-1)
			for k := 0; k < 4*samplesPerSec && time.Now().Before(end); k++ {
				if _, err := conn.Write(nf.datagram(k)); err != nil {
					t.Fatal(err)
				}
				if pps < 0 && time.Since(start) > 3*time.Second {
					// Two full recalculations in: FastNetMon did parse the
					// records, and counted each as one packet.
					if pps, err = inst.IncomingPPS(); err != nil {
						t.Fatal(err)
					}
				}
				time.Sleep(time.Second / samplesPerSec)
			}
			t.Logf("FastNetMon counted %d incoming pps", pps)
			if pps < 100 || pps > 1000 {
				t.Errorf("FastNetMon counted %d incoming pps, want about the %d records/s sent (unsampled)", pps, samplesPerSec)
			}
			time.Sleep(2500 * time.Millisecond) // two more recalculations
			if b, ok := findBan(t, inst); ok {
				t.Fatalf("unexpected ban at 300 pps: %+v", b)
			}
		})
	}
}

func TestRenderAndParse(t *testing.T) {
	cfg := Config{SFlowPort: 1, NetFlowPort: 2, Networks: []string{network}, ThresholdPPS: 5, WorkDir: "/w"}
	conf := cfg.render("/w")
	for _, want := range []string{
		"disable_usage_report = on\n", "sflow_host = 127.0.0.1\n", "sflow_port = 1\n", "netflow_port = 2\n",
		"ban_for_pps = on\n", "ban_for_bandwidth = off\n", "threshold_pps = 5\n", "enable_api = off\n",
		"notify_script_path = /w/notify.sh\n", "gobgp = off\n", "exabgp = off\n", "prometheus = off\n",
	} {
		if !containsLine(conf, want) {
			t.Errorf("config lacks %q", want)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "bans.log")
	os.WriteFile(path, []byte("1700000000.123456789 ban 203.0.113.10 incoming 300000\n1700000001.5 unban 203.0.113.10 incoming 0\n1700000002"), 0o644)
	bans, err := ReadBans(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []Ban{
		{At: time.Unix(1700000000, 123456789), IP: victim, Action: "ban"},
		{At: time.Unix(1700000001, 500000000), IP: victim, Action: "unban"},
	}
	if fmt.Sprint(bans) != fmt.Sprint(want) {
		t.Errorf("ReadBans = %v, want %v", bans, want)
	}
}

func containsLine(s, line string) bool {
	for l := range strings.Lines(s) {
		if l == line {
			return true
		}
	}
	return false
}

// TestLifecycle checks Usage while running and after Stop, that Stop is
// idempotent, and that cancelling Start's context stops the process too.
func TestLifecycle(t *testing.T) {
	inst := startFNM(t, nil)
	cpu, rss, err := inst.Usage()
	if err != nil || rss <= 0 || cpu < 0 {
		t.Fatalf("Usage while running = %v, %v, %v", cpu, rss, err)
	}
	if d, err := inst.UDPDrops(); err != nil || d != 0 {
		t.Errorf("UDPDrops = %d, %v", d, err)
	}
	t0 := time.Now()
	if err := inst.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("SIGTERM to exit: %v", time.Since(t0).Round(time.Millisecond))
	if err := inst.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	cpu2, rss2, err := inst.Usage()
	if err != nil || rss2 <= 0 || cpu2 < cpu {
		t.Errorf("Usage after exit = %v, %v, %v (running: %v, %v)", cpu2, rss2, err, cpu, rss)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", inst.PID())); err == nil {
		t.Errorf("pid %d still exists after Stop", inst.PID())
	}

	requireFNM(t)
	ports := freeUDPPorts(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	inst2, err := Start(ctx, Config{SFlowPort: ports[0], NetFlowPort: ports[1], Networks: []string{network},
		ThresholdPPS: thresholdPPS, WorkDir: t.TempDir()})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cancel()
	select {
	case <-inst2.Exited():
	case <-time.After(StopTimeout + 5*time.Second):
		inst2.Stop()
		t.Fatalf("cancelling the context did not stop pid %d", inst2.PID())
	}
	inst2.Stop()
}
