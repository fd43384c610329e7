// Package fnm runs FastNetMon Community 1.2.4 (the Debian 12 package
// `fastnetmon`) as a foreground child process on loopback, so that a load-test
// harness can compare it with Kapkan side by side.
//
// Start writes a complete fastnetmon.conf, a networks list, an empty whitelist
// and a ban notify script into Config.WorkDir, starts
//
//	/usr/sbin/fastnetmon --configuration_file WorkDir/fastnetmon.conf \
//	    --log_file WorkDir/fastnetmon.log --disable_pid_logic
//
// (no --daemonize: it stays in the foreground as our child) and returns once
// the process owns UDP sockets bound to 127.0.0.1:SFlowPort and
// 127.0.0.1:NetFlowPort. Every ban and unban FastNetMon decides runs the notify
// script, which appends "<unix time with ns> <action> <ip> <direction> <pps>"
// to WorkDir/bans.log; Bans reads that file.
//
// Nothing in the generated configuration talks to anything but the two
// loopback UDP sockets and the notify script: BGP (GoBGP, ExaBGP), Redis,
// MongoDB, InfluxDB, Graphite, Kafka, Prometheus, the gRPC API and the
// hourly usage report to community-stats.fastnetmon.com are all switched off.
//
// See README.md for how FastNetMon computes speeds and how fast it bans.
package fnm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Binary is the FastNetMon executable Start runs.
var Binary = "/usr/sbin/fastnetmon"

// InstallHint tells how to get Binary when it is missing.
const InstallHint = "FastNetMon is not installed: run `apt-get update && apt-get install -y fastnetmon` (Debian 12 package, version 1.2.4)"

// StartTimeout bounds how long Start waits for both UDP ports to be bound.
var StartTimeout = 20 * time.Second

// StopTimeout is how long Stop waits after SIGTERM before SIGKILL.
var StopTimeout = 10 * time.Second

// Files Start writes or FastNetMon writes inside WorkDir.
const (
	ConfigFile    = "fastnetmon.conf"
	NetworksFile  = "networks_list"
	WhitelistFile = "networks_whitelist"
	NotifyScript  = "notify.sh"
	BansFile      = "bans.log"           // one line per notify call, written by the script
	DetailsFile   = "attack_details.log" // what FastNetMon passed on the script's stdin
	LogFile       = "fastnetmon.log"     // FastNetMon's own log (--log_file)
	OutputFile    = "output.log"         // its stdout and stderr
)

// Config describes one FastNetMon instance.
type Config struct {
	// SFlowPort and NetFlowPort are the UDP ports it listens on, on
	// 127.0.0.1 (sflow_port, netflow_port; sflow_host, netflow_host).
	SFlowPort, NetFlowPort int
	// Networks are the protected prefixes in CIDR form (networks_list).
	// Only traffic to or from them is counted.
	Networks []string
	// ThresholdPPS, ThresholdMbps and ThresholdFlows are the per-host ban
	// thresholds (threshold_pps, threshold_mbps, threshold_flows). A
	// threshold of zero or less switches that detection off (ban_for_pps,
	// ban_for_bandwidth, ban_for_flows = off); ThresholdFlows > 0 also
	// switches connection tracking on, which flow counting needs.
	ThresholdPPS, ThresholdMbps, ThresholdFlows int
	// WorkDir holds the configuration, the log, the notify script and its
	// output. It is created if missing.
	WorkDir string
	// NetFlowSamplingRatio is netflow_sampling_ratio: the sampling rate
	// FastNetMon assumes for NetFlow v9 and IPFIX exporters that have not
	// (yet) told theirs in an options data record. Zero means 1 (unsampled,
	// FastNetMon's default). NetFlow v5 and sFlow always carry their own.
	NetFlowSamplingRatio int
	// BanTime is ban_time, how long a host stays banned, in whole seconds.
	// Zero means an hour. FastNetMon's unban thread wakes every 60 s (every
	// BanTime/2 for shorter ones) and, with unban_only_if_attack_finished,
	// unbans only a host whose traffic is back under the thresholds.
	BanTime time.Duration
	// Session starts FastNetMon in a session of its own (setsid), as a
	// service runs: with the kernel's scheduler autogroups, it then gets a
	// share of the CPU of its own instead of sharing the caller's.
	Session bool
}

// Ban is one call of the notify script.
type Ban struct {
	// At is when the script started (date +%s.%N).
	At time.Time
	// IP is the host FastNetMon bans or unbans.
	IP string
	// Action is FastNetMon's fourth script argument: "ban" or "unban"
	// ("attack_details" too if ban_details_records_count were not 0).
	Action string
}

// Instance is a running FastNetMon.
type Instance struct {
	cfg  Config
	dir  string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has been waited for
	werr error         // Wait's result, valid after done

	stopOnce sync.Once
	stopErr  error
}

// Start writes the configuration into cfg.WorkDir, starts FastNetMon in the
// foreground and waits until it listens on both UDP ports. ctx bounds the
// wait; cancelling ctx later also stops the process (SIGTERM, then SIGKILL
// after StopTimeout). The caller must call Stop.
func Start(ctx context.Context, cfg Config) (*Instance, error) {
	if _, err := os.Stat(Binary); err != nil {
		return nil, fmt.Errorf("%s: %w", InstallHint, err)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.WorkDir)
	if err != nil {
		return nil, err
	}
	// FastNetMon runs the notify script by handing the unquoted string
	// "<path> <ip> <direction> <pps> <action>" to sh (popen), so the path
	// must be a single shell word; '=' and '#' are kept out of config values.
	if i := strings.IndexAny(dir, " \t\n=#'\"`$\\;&|<>(){}[]*?!~"); i >= 0 {
		return nil, fmt.Errorf("fnm: WorkDir %q: FastNetMon cannot use a path containing %q", dir, dir[i])
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := writeFiles(dir, cfg); err != nil {
		return nil, err
	}
	out, err := os.OpenFile(filepath.Join(dir, OutputFile), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child has its own copy

	cmd := exec.CommandContext(ctx, Binary,
		// Our configuration instead of /etc/fastnetmon.conf.
		"--configuration_file", filepath.Join(dir, ConfigFile),
		// Our log instead of /var/log/fastnetmon.log.
		"--log_file", filepath.Join(dir, LogFile),
		// No pid file and no "another copy is running" check, so several
		// instances can run side by side; pid_path points into WorkDir anyway.
		"--disable_pid_logic",
		// Without --daemonize it stays in the foreground as our child.
	)
	cmd.Dir = dir
	cmd.Stdin = nil // /dev/null
	cmd.Stdout = out
	cmd.Stderr = out
	// Die with the test or harness process even if it never calls Stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setsid: cfg.Session}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = StopTimeout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", Binary, err)
	}
	inst := &Instance{cfg: cfg, dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() {
		inst.werr = cmd.Wait()
		close(inst.done)
	}()

	if err := inst.waitListening(ctx); err != nil {
		inst.Stop()
		return nil, fmt.Errorf("%w\n%s", err, inst.logTail(30))
	}
	return inst, nil
}

func (c *Config) validate() error {
	if c.WorkDir == "" {
		return errors.New("fnm: Config.WorkDir is empty")
	}
	for _, p := range []int{c.SFlowPort, c.NetFlowPort} {
		if p <= 0 || p > 65535 {
			return fmt.Errorf("fnm: bad UDP port %d", p)
		}
	}
	if c.SFlowPort == c.NetFlowPort {
		return errors.New("fnm: SFlowPort and NetFlowPort must differ")
	}
	if len(c.Networks) == 0 {
		return errors.New("fnm: no Networks")
	}
	for _, n := range c.Networks {
		if _, err := netip.ParsePrefix(n); err != nil {
			return fmt.Errorf("fnm: network %q: %w", n, err)
		}
	}
	if c.ThresholdPPS <= 0 && c.ThresholdMbps <= 0 && c.ThresholdFlows <= 0 {
		return errors.New("fnm: every threshold is off")
	}
	return nil
}

// onOff renders a boolean the way fastnetmon.conf wants it.
func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// threshold returns the value to write for a threshold: a disabled one gets
// off (the value written if v <= 0) as well as its ban_for_* switch off.
func threshold(v, off int) int {
	if v <= 0 {
		return off
	}
	return v
}

// render returns fastnetmon.conf for cfg, with its files in dir.
func (cfg Config) render(dir string) string {
	ratio := cfg.NetFlowSamplingRatio
	if ratio <= 0 {
		ratio = 1
	}
	banTime := int64(time.Hour / time.Second)
	if cfg.BanTime > 0 {
		banTime = max(1, int64((cfg.BanTime+time.Second/2)/time.Second))
	}
	ipv6 := false
	for _, n := range cfg.Networks {
		if p, err := netip.ParsePrefix(n); err == nil && p.Addr().Is6() && !p.Addr().Is4In6() {
			ipv6 = true
		}
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	var b strings.Builder
	kv := func(k string, v any) { fmt.Fprintf(&b, "%s = %v\n", k, v) }
	c := func(s string) { fmt.Fprintf(&b, "\n# %s\n", s) }

	b.WriteString("# Written by github.com/kapkan-io/kapkan/bench/fnm for FastNetMon Community 1.2.4.\n")
	b.WriteString("# Format: one `key = value` per line; unknown keys are ignored.\n")

	c("Logging: only to --log_file (info: debug logs every packet put in an attack bucket).")
	kv("logging_level", "info")
	kv("logging_local_syslog_logging", "off")
	kv("logging_remote_syslog_logging", "off")

	c("Never send the hourly usage report to community-stats.fastnetmon.com (on by default!).")
	kv("disable_usage_report", "on")

	c("Bans: enable_ban makes FastNetMon act (run the notify script) when a host crosses a threshold.")
	kv("enable_ban", "on")
	kv("enable_ban_ipv6", onOff(ipv6))
	c("Count traffic in both directions, as the defaults do (the flood is incoming).")
	kv("process_incoming_traffic", "on")
	kv("process_outgoing_traffic", "on")
	kv("dump_all_traffic", "off")
	kv("dump_other_traffic", "off")
	c("ban_details_records_count: 1.2.4 runs the ban script as soon as a recalculation finds a host\n" +
		"# over a threshold; this count only schedules a second call, `<ip> <dir> <pps> attack_details`,\n" +
		"# once that many packets (sFlow samples, flow records) of the banned host were collected\n" +
		"# (20 in the packaged /etc/fastnetmon.conf: about 0.5 s later in our floods). It never delays the ban; 0 drops that call.")
	kv("ban_details_records_count", 0)
	c("ban_time: seconds a host stays banned (0 would disable unban). The unban thread wakes every\n" +
		"# 60 s (ban_time/2 if shorter); with unban_only_if_attack_finished it unbans only a host whose\n" +
		"# traffic is back under the thresholds. Unban calls `notify.sh <ip> <dir> <pps> unban`.")
	kv("ban_time", banTime)
	kv("unban_only_if_attack_finished", "on")

	c("Protected networks and the (empty) whitelist.")
	kv("networks_list_path", p(NetworksFile))
	kv("white_list_path", p(WhitelistFile))
	c("Do not add this machine's own addresses (or OpenVZ guests) to the protected networks.")
	kv("monitor_local_ip_addresses", "off")
	kv("monitor_openvz_vps_ip_addresses", "off")

	c("check_period: refresh period of the cli stats files (seconds).")
	kv("check_period", 1)

	c("Flows per second need connection tracking, which is CPU-heavy: on only for ThresholdFlows.")
	kv("enable_connection_tracking", onOff(cfg.ThresholdFlows > 0))

	c("Per-host thresholds, checked against the smoothed (average) speed; see average_calculation_time.")
	kv("ban_for_pps", onOff(cfg.ThresholdPPS > 0))
	kv("ban_for_bandwidth", onOff(cfg.ThresholdMbps > 0))
	kv("ban_for_flows", onOff(cfg.ThresholdFlows > 0))
	kv("threshold_pps", threshold(cfg.ThresholdPPS, 100000000))
	kv("threshold_mbps", threshold(cfg.ThresholdMbps, 1000000))
	kv("threshold_flows", threshold(cfg.ThresholdFlows, 100000000))
	c("Per-protocol thresholds: off.")
	for _, proto := range []string{"tcp", "udp", "icmp"} {
		kv("ban_for_"+proto+"_pps", "off")
		kv("ban_for_"+proto+"_bandwidth", "off")
		kv("threshold_"+proto+"_pps", 100000000)
		kv("threshold_"+proto+"_mbps", 1000000)
	}

	c("speed_calculation_delay: seconds between two speed recalculations (an integer; 1 is the\n" +
		"# smallest that works). Each recalculation turns the packet/byte counters of the last period\n" +
		"# into per-second speeds, updates the averages and checks thresholds.\n" +
		"# average_calculation_time: time constant T (seconds) of the exponential moving average\n" +
		"# avg = speed + exp(-period/T) * (avg - speed) the thresholds are checked against\n" +
		"# (default 5: a step to 6x threshold needs ~1 s to cross; 0 gives exp(-inf) = 0, i.e. the\n" +
		"# threshold is checked against the last period's instant speed, the fastest possible).")
	kv("speed_calculation_delay", 1)
	kv("average_calculation_time", 0)

	c("Capture: only the sFlow and NetFlow/IPFIX UDP collectors, on loopback.")
	kv("mirror_afpacket", "off")
	kv("mirror_afxdp", "off")
	kv("mirror_netmap", "off")
	kv("pcap", "off")
	kv("interfaces", "lo")
	kv("sflow", "on")
	kv("sflow_host", "127.0.0.1")
	kv("sflow_port", cfg.SFlowPort)
	c("sFlow: use frame_length of each sample (scaled by the sample's own sampling_rate).")
	kv("sflow_read_packet_length_from_ip_header", "off")
	kv("netflow", "on")
	kv("netflow_host", "127.0.0.1")
	kv("netflow_port", cfg.NetFlowPort)
	c("netflow_sampling_ratio: the rate assumed for NetFlow v9 / IPFIX exporters until one sends its\n" +
		"# own in an options data record (FLOW_SAMPLER_RANDOM_INTERVAL or SAMPLING_INTERVAL); learnt\n" +
		"# rates are kept per exporter IP address. NetFlow v5 uses its header's sampling field.")
	kv("netflow_sampling_ratio", ratio)

	c("Action: the notify script, called as `script <ip> <direction> <pps> ban|unban`.")
	kv("notify_script_path", p(NotifyScript))
	kv("collect_attack_pcap_dumps", "off")

	c("Everything else that could talk to the network: off.")
	kv("redis_enabled", "off")
	kv("mongodb_enabled", "off")
	kv("exabgp", "off")
	kv("gobgp", "off")
	kv("influxdb", "off")
	kv("graphite", "off")
	kv("kafka_traffic_export", "off")
	kv("prometheus", "off")
	c("The gRPC API (127.0.0.1:50052, fixed) would clash between instances.")
	kv("enable_api", "off")

	c("Files that default to /var/run and /tmp.")
	kv("pid_path", p("fastnetmon.pid"))
	kv("cli_stats_file_path", p("fastnetmon.dat"))
	kv("cli_stats_ipv6_file_path", p("fastnetmon_ipv6.dat"))
	kv("sort_parameter", "packets")
	kv("max_ips_in_list", 7)
	return b.String()
}

// shQuote quotes s for a POSIX shell.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func notifyScript(dir string) string {
	return `#!/bin/sh
# Ban notify script for FastNetMon 1.2.4, written by bench/fnm.
# FastNetMon runs it through popen() as: notify.sh <ip> <direction> <pps> <action>
# with action "ban" or "unban", writing attack details to its stdin, which must be
# read to the end (FastNetMon exits on SIGPIPE otherwise).
ts=$(date +%s.%N)
printf '%s %s %s %s %s\n' "$ts" "$4" "$1" "$2" "$3" >> ` + shQuote(filepath.Join(dir, BansFile)) + `
{ printf '=== %s %s %s\n' "$ts" "$4" "$1"; cat; printf '\n'; } >> ` + shQuote(filepath.Join(dir, DetailsFile)) + `
exit 0
`
}

func writeFiles(dir string, cfg Config) error {
	files := []struct {
		name string
		data string
		mode fs.FileMode
	}{
		{NetworksFile, strings.Join(cfg.Networks, "\n") + "\n", 0o644},
		{WhitelistFile, "", 0o644},
		{NotifyScript, notifyScript(dir), 0o755},
		{ConfigFile, cfg.render(dir), 0o644},
		{BansFile, "", 0o666},
		{DetailsFile, "", 0o666},
	}
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		if err := os.WriteFile(path, []byte(f.data), f.mode); err != nil {
			return err
		}
		if err := os.Chmod(path, f.mode); err != nil { // WriteFile keeps an old file's mode
			return err
		}
	}
	return nil
}

// waitListening polls until the process owns UDP sockets on both ports.
func (i *Instance) waitListening(ctx context.Context) error {
	deadline := time.NewTimer(StartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := i.listening()
		if err == nil && ok {
			return nil
		}
		select {
		case <-i.done:
			return fmt.Errorf("fastnetmon exited during startup: %v", i.werr)
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("fastnetmon did not bind UDP 127.0.0.1:%d and :%d within %v (last error: %v)",
				i.cfg.SFlowPort, i.cfg.NetFlowPort, StartTimeout, err)
		case <-tick.C:
		}
	}
}

// listening reports whether the process has sockets bound to both ports.
func (i *Instance) listening() (bool, error) {
	inodes, err := processSockets(i.PID())
	if err != nil {
		return false, err
	}
	for _, port := range []int{i.cfg.SFlowPort, i.cfg.NetFlowPort} {
		found := false
		for _, table := range []string{"/proc/net/udp", "/proc/net/udp6"} {
			socks, err := udpSockets(table, port)
			if err != nil {
				return false, err
			}
			for _, ino := range socks {
				if inodes[ino] {
					found = true
				}
			}
		}
		if !found {
			return false, nil
		}
	}
	return true, nil
}

// processSockets returns the socket inodes among the open files of pid.
func processSockets(pid int) (map[string]bool, error) {
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err != nil {
			continue
		}
		if ino, ok := strings.CutPrefix(link, "socket:["); ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	return inodes, nil
}

// udpSocket is one line of /proc/net/udp or /proc/net/udp6.
type udpSocket struct {
	port  int
	inode string
	drops uint64
}

// udpTable parses /proc/net/udp or /proc/net/udp6.
func udpTable(table string) ([]udpSocket, error) {
	data, err := os.ReadFile(table)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var socks []udpSocket
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Scan() // header
	for sc.Scan() {
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
		f := strings.Fields(sc.Text())
		if len(f) < 13 {
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil {
			continue
		}
		drops, _ := strconv.ParseUint(f[12], 10, 64)
		socks = append(socks, udpSocket{port: int(p), inode: f[9], drops: drops})
	}
	return socks, sc.Err()
}

// udpSockets returns the inodes of the sockets in a /proc/net/udp{,6} table
// bound to local port port.
func udpSockets(table string, port int) ([]string, error) {
	socks, err := udpTable(table)
	var inodes []string
	for _, s := range socks {
		if s.port == port {
			inodes = append(inodes, s.inode)
		}
	}
	return inodes, err
}

// UDPDrops returns how many datagrams the kernel dropped on FastNetMon's UDP
// sockets because their receive buffers were full (the drops column of
// /proc/net/udp), summed over its sockets. Under load, a ban that comes late
// or never may be explained by these drops rather than by detection.
func (i *Instance) UDPDrops() (uint64, error) {
	inodes, err := processSockets(i.PID())
	if err != nil {
		return 0, err
	}
	var total uint64
	for _, table := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		socks, err := udpTable(table)
		if err != nil {
			return 0, err
		}
		for _, s := range socks {
			if inodes[s.inode] {
				total += s.drops
			}
		}
	}
	return total, nil
}

// CLIStats returns the text FastNetMon rewrites every check_period (1 s) in
// WorkDir/fastnetmon.dat (cli_stats_file_path) for fastnetmon_client: total
// incoming, outgoing, internal and other speeds and the top hosts by packets,
// as smoothed speeds (with average_calculation_time 0, last second's).
func (i *Instance) CLIStats() (string, error) {
	data, err := os.ReadFile(filepath.Join(i.dir, "fastnetmon.dat"))
	return string(data), err
}

// IncomingPPS returns the total incoming packets per second of CLIStats.
func (i *Instance) IncomingPPS() (int64, error) {
	var last error
	for try := 0; try < 5; try++ { // the file may be read mid-rewrite
		text, err := i.CLIStats()
		if err == nil {
			for line := range strings.Lines(text) {
				rest, ok := strings.CutPrefix(line, "Incoming traffic")
				if !ok {
					continue
				}
				f := strings.Fields(rest)
				if len(f) >= 2 && f[1] == "pps" {
					return strconv.ParseInt(f[0], 10, 64)
				}
			}
			err = errors.New("fnm: no incoming traffic line in fastnetmon.dat")
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	return 0, last
}

// Version runs `fastnetmon --version` and returns what it prints after
// "Version:" ("1.2.4" for the Debian 12 package).
func Version() (string, error) {
	out, err := exec.Command(Binary, "--version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w: %s", Binary, err, out)
	}
	v := strings.TrimSpace(string(out))
	v = strings.TrimSpace(strings.TrimPrefix(v, "Version:"))
	return v, nil
}

// PID returns the process id of FastNetMon.
func (i *Instance) PID() int { return i.cmd.Process.Pid }

// WorkDir returns the absolute working directory.
func (i *Instance) WorkDir() string { return i.dir }

// LogPath returns the path of FastNetMon's log file.
func (i *Instance) LogPath() string { return filepath.Join(i.dir, LogFile) }

// Exited is closed when the process has exited.
func (i *Instance) Exited() <-chan struct{} { return i.done }

// Stop sends SIGTERM, waits up to StopTimeout, then sends SIGKILL and waits
// for the process. It returns nil when the process ended on our signal (or
// exited cleanly), and is safe to call more than once.
func (i *Instance) Stop() error {
	i.stopOnce.Do(func() { i.stopErr = i.stop() })
	return i.stopErr
}

func (i *Instance) stop() error {
	select {
	case <-i.done:
		return i.exitErr(false)
	default:
	}
	if err := i.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	t := time.NewTimer(StopTimeout)
	defer t.Stop()
	select {
	case <-i.done:
		return i.exitErr(true)
	case <-t.C:
	}
	if err := i.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-i.done
	return fmt.Errorf("fastnetmon (pid %d) ignored SIGTERM for %v and was killed", i.PID(), StopTimeout)
}

// exitErr interprets the wait result: death by our SIGTERM is a clean stop.
func (i *Instance) exitErr(signalled bool) error {
	st := i.cmd.ProcessState
	if st == nil {
		return i.werr
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok {
		if ws.Exited() && ws.ExitStatus() == 0 {
			return nil
		}
		if signalled && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
		if signalled && ws.Exited() {
			return nil // it handled SIGTERM and exited with its own code
		}
	}
	return fmt.Errorf("fastnetmon (pid %d) ended on its own: %v", i.PID(), st)
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100
// on every Linux architecture Go supports.
const clockTicks = 100

// Usage returns the CPU time (user + system) FastNetMon has used and its peak
// resident set size. While it runs they come from /proc/PID/stat (utime,
// stime) and /proc/PID/status (VmHWM); after it has exited, from its rusage
// (ru_utime + ru_stime, ru_maxrss).
func (i *Instance) Usage() (cpuSeconds float64, peakRSSBytes int64, err error) {
	select {
	case <-i.done:
		return i.exitedUsage()
	default:
	}
	cpu, err1 := procCPU(i.PID())
	rss, err2 := procPeakRSS(i.PID())
	if err1 != nil || err2 != nil {
		// It may have exited between the check and the reads.
		select {
		case <-i.done:
			return i.exitedUsage()
		case <-time.After(100 * time.Millisecond):
		}
		return 0, 0, errors.Join(err1, err2)
	}
	return cpu, rss, nil
}

func (i *Instance) exitedUsage() (float64, int64, error) {
	st := i.cmd.ProcessState
	if st == nil {
		return 0, 0, errors.New("fastnetmon: no process state")
	}
	ru, ok := st.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, 0, errors.New("fastnetmon: no rusage")
	}
	cpu := (st.UserTime() + st.SystemTime()).Seconds()
	return cpu, ru.Maxrss * 1024, nil // ru_maxrss is in KiB on Linux
}

// procCPU reads utime + stime of pid in seconds.
func procCPU(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may contain spaces.
	s := string(data)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0, fmt.Errorf("fnm: bad /proc/%d/stat", pid)
	}
	f := strings.Fields(s[end+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("fnm: short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return float64(utime+stime) / clockTicks, nil
}

// procPeakRSS reads VmHWM of pid in bytes.
func procPeakRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		rest, ok := strings.CutPrefix(line, "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(rest) // "1234 kB"
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("fnm: bad VmHWM line %q", line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, err
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("fnm: no VmHWM in /proc/%d/status", pid)
}

// Bans returns every notify script call so far, in order.
func (i *Instance) Bans() ([]Ban, error) {
	return ReadBans(filepath.Join(i.dir, BansFile))
}

// ReadBans parses a bans.log the notify script wrote.
func ReadBans(path string) ([]Ban, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var bans []Ban
	for n, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 3 {
			// A line still being written; the script writes it with one
			// append, so this is only a torn read at the very end.
			continue
		}
		at, err := parseUnixNano(f[0])
		if err != nil {
			return bans, fmt.Errorf("%s:%d: %w", path, n+1, err)
		}
		bans = append(bans, Ban{At: at, Action: f[1], IP: f[2]})
	}
	return bans, nil
}

// parseUnixNano parses "seconds.nanoseconds" as date +%s.%N prints it.
func parseUnixNano(s string) (time.Time, error) {
	secStr, nsStr, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(secStr, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad timestamp %q", s)
	}
	var ns int64
	if nsStr != "" {
		if len(nsStr) > 9 {
			nsStr = nsStr[:9]
		}
		nsStr += strings.Repeat("0", 9-len(nsStr))
		if ns, err = strconv.ParseInt(nsStr, 10, 64); err != nil {
			return time.Time{}, fmt.Errorf("bad timestamp %q", s)
		}
	}
	return time.Unix(sec, ns), nil
}

// logTail returns the last n lines of FastNetMon's log and output, for errors.
func (i *Instance) logTail(n int) string {
	var b strings.Builder
	for _, name := range []string{LogFile, OutputFile} {
		data, err := os.ReadFile(filepath.Join(i.dir, name))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "--- %s (last %d lines)\n%s\n", name, len(lines), strings.Join(lines, "\n"))
	}
	return b.String()
}

// LogTail returns the last n lines of FastNetMon's log file and of its
// stdout/stderr.
func (i *Instance) LogTail(n int) string { return i.logTail(n) }
