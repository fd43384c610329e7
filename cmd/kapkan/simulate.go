package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/ingest/demo"
	fg "github.com/kapkan-io/kapkan/ingest/flowgen"
)

// simulateReport is the JSON line simulate prints at the end.
type simulateReport struct {
	Type       string  `json:"type"`
	Format     string  `json:"format"`
	To         string  `json:"to,omitempty"`
	PCAP       string  `json:"pcap,omitempty"`
	Datagrams  int64   `json:"datagrams"`
	Records    int64   `json:"records"`
	Bytes      int64   `json:"bytes"`
	Seconds    float64 `json:"seconds"`
	RPS        float64 `json:"records_per_second"`
	SendErrors int64   `json:"send_errors"`
	MaxLagMS   float64 `json:"max_lag_ms"`
	// GSOSends counts the sends that handed several datagrams to the
	// kernel at once (UDP_SEGMENT).
	GSOSends int64 `json:"gso_sends"`
	// Pregenerated is the background period built before sending
	// (--pregenerate), in seconds, and PregeneratedBytes its size.
	Pregenerated      float64 `json:"pregenerated_seconds,omitempty"`
	PregeneratedBytes int     `json:"pregenerated_bytes,omitempty"`
	// CPUSeconds is what simulate itself used (user and system).
	CPUSeconds float64          `json:"cpu_seconds"`
	Attacks    []simulateAttack `json:"attacks"`
}

type simulateAttack struct {
	Kind      string `json:"kind"`
	Target    string `json:"target"`
	PPS       int    `json:"pps"`
	Start     string `json:"start"`
	Duration  string `json:"duration"`
	FirstSent string `json:"first_record_sent,omitempty"`
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// parseAttack reads KIND@TARGET:PPS:START:DURATION, e.g.
// udp-flood@203.0.113.10:200000:10s:30s (IPv6 targets in brackets).
func parseAttack(s string) (demo.Attack, error) {
	kind, rest, ok := strings.Cut(s, "@")
	if !ok {
		return demo.Attack{}, fmt.Errorf("attack %q: want KIND@TARGET:PPS:START:DURATION", s)
	}
	var target string
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]")
		if end < 0 {
			return demo.Attack{}, fmt.Errorf("attack %q: unclosed [", s)
		}
		target, rest = rest[1:end], strings.TrimPrefix(rest[end+1:], ":")
	} else if strings.Count(rest, ":") > 3 {
		// An IPv6 address without brackets: its colons run into the
		// fields'. The last three fields are PPS, START and DURATION.
		i := len(rest)
		for range 3 {
			i = strings.LastIndexByte(rest[:i], ':')
		}
		return demo.Attack{}, fmt.Errorf("attack %q: an IPv6 target goes in brackets (want %s@[%s]%s)", s, kind, rest[:i], rest[i:])
	} else {
		target, rest, _ = strings.Cut(rest, ":")
	}
	parts := strings.Split(rest, ":")
	if len(parts) != 3 {
		return demo.Attack{}, fmt.Errorf("attack %q: want KIND@TARGET:PPS:START:DURATION", s)
	}
	a := demo.Attack{Kind: demo.Kind(kind)}
	var err error
	if strings.Contains(target, "/") {
		// A prefix: the attack is spread over its addresses.
		if a.Carpet, err = netip.ParsePrefix(target); err != nil {
			return a, fmt.Errorf("attack %q: target prefix: %w", s, err)
		}
		a.Carpet = a.Carpet.Masked()
	} else if a.Target, err = netip.ParseAddr(target); err != nil {
		return a, fmt.Errorf("attack %q: target: %w", s, err)
	}
	if a.PPS, err = strconv.Atoi(parts[0]); err != nil || a.PPS <= 0 {
		return a, fmt.Errorf("attack %q: packet rate %q is not a positive integer", s, parts[0])
	}
	if a.Start, err = time.ParseDuration(parts[1]); err != nil {
		return a, fmt.Errorf("attack %q: start: %w", s, err)
	}
	if a.Duration, err = time.ParseDuration(parts[2]); err != nil {
		return a, fmt.Errorf("attack %q: duration: %w", s, err)
	}
	return a, nil
}

// checkTarget refuses destinations the simulator must never flood.
func checkTarget(ap netip.AddrPort) error {
	a := ap.Addr().Unmap()
	switch {
	case !a.IsValid() || a.IsUnspecified():
		return fmt.Errorf("target %s: no address", ap)
	case a.IsMulticast():
		return fmt.Errorf("target %s is a multicast address: simulate sends to one collector only", ap)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || (a.Is4() && a.As4()[3] == 255):
		return fmt.Errorf("target %s looks like a broadcast address: simulate sends to one collector only", ap)
	case ap.Port() == 0:
		return fmt.Errorf("target %s: no port", ap)
	}
	return nil
}

func cmdSimulate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	to := fs.String("to", "", "collector host:port to send to (loopback or your own collector)")
	pcapPath := fs.String("pcap", "", "write the datagrams into this capture instead of sending them")
	format := fs.String("format", "sflow5", "sflow5, netflow5, netflow9 or ipfix")
	sampling := fs.Uint("sampling", 1000, "sampling rate (1 in N)")
	hosts := fs.Int("hosts", 1000, "background destination addresses")
	bgPPS := fs.Int("background-pps", 100_000, "background traffic, real packets per second over all hosts")
	rps := fs.Int("records-per-second", 0, "background as sampled records per second (overrides --background-pps)")
	duration := fs.Duration("duration", time.Minute, "how long to send")
	seed := fs.Uint64("seed", 1, "random seed: the same seed sends the same traffic")
	agent := fs.String("agent", "127.0.0.1", "sFlow agent address written in datagrams")
	distinct := fs.Bool("distinct-hosts", false, "exactly --hosts distinct destinations, placed arithmetically and visited in turn (no per-host table)")
	pregen := fs.Duration("pregenerate", 0, "build this much background once (whole seconds, at least every host once; implies --distinct-hosts; sflow5 and netflow9) and replay it with fresh sequence numbers and times")
	gso := fs.Bool("gso", true, "hand runs of equal-length datagrams to the kernel in one send (UDP GSO) when it accepts them")
	cpuProfile := fs.String("cpuprofile", "", "write simulate's own CPU profile to this file")
	progressMode := progressFlag(fs)
	var prefixes, attacks listFlag
	fs.Var(&prefixes, "prefix", "protected prefix the background goes to (repeatable; default 203.0.113.0/24)")
	fs.Var(&attacks, "attack", "KIND@TARGET:PPS:START:DURATION, e.g. udp-flood@203.0.113.10:200000:10s:30s (repeatable; a prefix as TARGET spreads the attack over its addresses, carpet bombing); kinds: "+kindList())
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kapkan simulate --to HOST:PORT | --pcap FILE [flags]")
		fs.PrintDefaults()
	}
	if rest, err := parseArgs(fs, args); err != nil {
		return flagStatus(err)
	} else if len(rest) > 0 {
		fmt.Fprintf(stderr, "kapkan simulate: unexpected argument %q\n", rest[0])
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "kapkan simulate: "+format+"\n", a...)
		return 2
	}
	if (*to == "") == (*pcapPath == "") {
		return fail("give exactly one of --to and --pcap")
	}
	s := demo.Scenario{SamplingRate: uint32(*sampling), Hosts: *hosts, BackgroundPPS: *bgPPS, Duration: *duration, Seed: *seed,
		DistinctHosts: *distinct || *pregen > 0}
	if *rps > 0 {
		s.BackgroundPPS = *rps * int(*sampling)
	}
	var ok bool
	if s.Format, ok = flow.ParseFormat(*format); !ok {
		return fail("format %q: want sflow5, netflow5, netflow9 or ipfix", *format)
	}
	var err error
	if s.Agent, err = netip.ParseAddr(*agent); err != nil {
		return fail("agent: %v", err)
	}
	if len(prefixes) == 0 {
		prefixes = listFlag{"203.0.113.0/24"}
	}
	for _, p := range prefixes {
		pp, err := netip.ParsePrefix(p)
		if err != nil {
			return fail("prefix: %v", err)
		}
		s.Prefixes = append(s.Prefixes, pp.Masked())
	}
	for _, a := range attacks {
		at, err := parseAttack(a)
		if err != nil {
			return fail("%v", err)
		}
		s.Attacks = append(s.Attacks, at)
	}
	if *pregen < 0 {
		return fail("--pregenerate %s: want a positive duration", *pregen)
	}
	prog, err := newProgress(*progressMode, stderr)
	if err != nil {
		return fail("%v", err)
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return fail("%v", err)
		}
		defer stop()
	}
	report := simulateReport{Type: "simulate", Format: s.Format.String(), To: *to, PCAP: *pcapPath}
	opts := sendOptions{pregenerate: *pregen, gso: *gso, progress: prog}
	var rerr error
	if *pcapPath != "" {
		rerr = simulateToPCAP(ctx, s, opts, *pcapPath, &report)
	} else {
		ap, err := netip.ParseAddrPort(*to)
		if err != nil {
			return fail("--to %q: want host:port with an IP address: %v", *to, err)
		}
		if err := checkTarget(ap); err != nil {
			return fail("%v", err)
		}
		rerr = simulateSend(ctx, s, opts, ap, &report)
	}
	prog.clear()
	report.CPUSeconds = processCPUSeconds()
	if rerr != nil {
		fmt.Fprintf(stderr, "kapkan simulate: %v\n", rerr)
		return 1
	}
	_ = newJSONEncoder(stdout).Encode(&report)
	return 0
}

func kindList() string {
	var k []string
	for _, kind := range demo.Kinds {
		k = append(k, string(kind))
	}
	return strings.Join(k, ", ")
}

func fillAttacks(report *simulateReport, s *demo.Scenario, src *source, base time.Time) {
	for i, a := range s.Attacks {
		sa := simulateAttack{Kind: string(a.Kind), Target: a.Where(), PPS: a.PPS, Start: a.Start.String(), Duration: a.Duration.String()}
		if src.firstSample[i] >= 0 {
			sa.FirstSent = base.Add(src.firstSample[i]).UTC().Format(time.RFC3339Nano)
		}
		report.Attacks = append(report.Attacks, sa)
	}
}

// Sending is paced in bursts of pacingBurst datagrams across each
// generator tick of tickLen.
const (
	pacingBurst = 16
	tickLen     = 10 * time.Millisecond
)

// sendOptions are simulate's choices of how to produce and send the
// datagrams, which do not change the traffic's content.
type sendOptions struct {
	pregenerate time.Duration // build the background once (demo.Loop)
	gso         bool
	progress    *progress // the status line while sending (nil: none)
}

// showSimulateProgress draws what simulate is sending at scenario time at:
// the format and destination, the attacks under way (kind, target, rate)
// or only background, the datagrams sent so far and the record rate.
func showSimulateProgress(p *progress, s *demo.Scenario, dest string, at time.Duration, datagrams, records int64) {
	var now []string
	for _, a := range s.Attacks {
		if at >= a.Start && at < a.Start+a.Duration {
			now = append(now, fmt.Sprintf("%s → %s at %s pps", a.Kind, a.Where(), fmtCount(int64(a.PPS))))
		}
	}
	what := "background only"
	if len(now) > 0 {
		what = "background + " + strings.Join(now, ", ")
	}
	el := p.elapsed()
	p.draw(fmt.Sprintf("simulate %s → %s: %s; %s datagrams sent, %s records/s, %s / %s",
		s.Format, dest, what, fmtCount(datagrams), fmtCount(perSecond(records, el)),
		fmtElapsed(at), fmtElapsed(s.Duration)))
}

// source is what simulate sends from: a demo.Generator, or a demo.Loop
// replaying pre-generated background.
type source struct {
	next        func() (time.Duration, [][]byte, bool)
	records     func() int64
	firstSample []time.Duration
	rebase      func(time.Time) // moves the scenario's start (a Loop only)
}

func newSource(s demo.Scenario, o sendOptions, report *simulateReport) (*source, error) {
	if o.pregenerate > 0 {
		l, err := demo.NewLoop(s, o.pregenerate)
		if err != nil {
			return nil, err
		}
		report.Pregenerated, report.PregeneratedBytes = l.Period().Seconds(), l.Bytes
		return &source{next: l.Next, records: func() int64 { return l.Records }, firstSample: l.FirstSample, rebase: l.Rebase}, nil
	}
	g, err := demo.NewGenerator(s)
	if err != nil {
		return nil, err
	}
	return &source{next: g.Next, records: func() int64 { return g.Records }, firstSample: g.FirstSample}, nil
}

// simulateSend paces the scenario in real time, a tick's datagrams in
// bursts with sendmmsg, or with one UDP GSO send for each run of
// equal-length datagrams that lie next to each other in memory (the
// receiver still gets them one by one). When sending falls behind it
// catches up without sleeping and reports the largest lag.
func simulateSend(ctx context.Context, s demo.Scenario, o sendOptions, to netip.AddrPort, report *simulateReport) error {
	network := "udp4"
	if to.Addr().Is6() && !to.Addr().Is4In6() {
		network = "udp6"
	}
	conn, err := net.ListenUDP(network, nil)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetWriteBuffer(8 << 20)
	var gso *gsoSender
	if o.gso {
		if gso, err = newGSOSender(conn, to); err != nil {
			return err
		}
	}
	start := time.Now()
	s.Base = start
	src, err := newSource(s, o, report)
	if err != nil {
		return err
	}
	if src.rebase != nil {
		// The clock starts once the background is built.
		start = time.Now()
		src.rebase(start)
	}
	pc := ipv4.NewPacketConn(conn)
	dst := net.UDPAddrFromAddrPort(to)
	var msgs []ipv4.Message
	flush := func() error {
		for len(msgs) > 0 {
			n, err := pc.WriteBatch(msgs, 0)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return err
				}
				report.SendErrors++
				n = max(n, 1) // skip the datagram that failed
			}
			report.Datagrams += int64(n)
			msgs = msgs[n:]
		}
		msgs = msgs[:0]
		return nil
	}
	firstSent := make([]time.Time, len(s.Attacks))
	for ctx.Err() == nil {
		at, dgs, ok := src.next()
		if !ok {
			break
		}
		if wait := time.Until(start.Add(at)); wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		} else if lag := float64(-wait) / 1e6; lag > report.MaxLagMS {
			report.MaxLagMS = lag
		}
		// A tick's datagrams go out in small bursts spread over the tick, as
		// an exporter's would, not in one 10 ms burst that only a large
		// socket buffer absorbs.
		for first := 0; first < len(dgs); first += pacingBurst {
			part := dgs[first:min(first+pacingBurst, len(dgs))]
			if first > 0 {
				due := start.Add(at + time.Duration(first)*tickLen/time.Duration(len(dgs)))
				if wait := time.Until(due); wait > 0 {
					time.Sleep(wait)
				}
			}
			for i := 0; i < len(part); {
				j := i + 1
				if gso != nil && gso.on {
					j = gsoRun(part, i)
				}
				if j-i >= 2 {
					if err := flush(); err != nil {
						return err
					}
					sent, err := gso.send(part[i:j])
					switch {
					case errors.Is(err, net.ErrClosed):
						return err
					case err != nil && sent == 0 && !gso.on:
						continue // the kernel refused GSO: the same run again, without it
					case err != nil:
						report.SendErrors++
					default:
						report.GSOSends++
					}
					report.Datagrams += int64(sent)
					for _, d := range part[i:j] {
						report.Bytes += int64(len(d))
					}
					i = j
					continue
				}
				msgs = append(msgs, ipv4.Message{Buffers: [][]byte{part[i]}, Addr: dst})
				report.Bytes += int64(len(part[i]))
				i++
			}
			if err := flush(); err != nil {
				return err
			}
		}
		now := time.Now()
		for i := range firstSent {
			if firstSent[i].IsZero() && src.firstSample[i] >= 0 {
				firstSent[i] = now
			}
		}
		if o.progress.due() {
			showSimulateProgress(o.progress, &s, to.String(), at, report.Datagrams, src.records())
		}
	}
	report.Records = src.records()
	report.Seconds = time.Since(start).Seconds()
	report.RPS = float64(report.Records) / report.Seconds
	fillAttacks(report, &s, src, start)
	for i := range report.Attacks {
		if !firstSent[i].IsZero() {
			report.Attacks[i].FirstSent = firstSent[i].UTC().Format(time.RFC3339Nano)
		}
	}
	return nil
}

// simulateToPCAP writes the scenario into a capture, timestamped from
// demo.CaptureStart, without waiting.
func simulateToPCAP(ctx context.Context, s demo.Scenario, o sendOptions, path string, report *simulateReport) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := fg.NewPCAPWriter(f)
	if err != nil {
		return err
	}
	gen, err := newSource(s, o, report)
	if err != nil {
		return err
	}
	port := uint16(6343)
	if s.Format != flow.FormatSFlow5 {
		port = 2055
	}
	src := netip.AddrPortFrom(s.Agent, 50000)
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	if s.Agent.Is6() {
		dst = netip.AddrPortFrom(netip.IPv6Loopback(), port)
	}
	begin := time.Now()
	for ctx.Err() == nil {
		at, dgs, ok := gen.next()
		if !ok {
			break
		}
		for i, d := range dgs {
			t := demo.CaptureStart.Add(at + time.Duration(i)*10*time.Millisecond/time.Duration(len(dgs)))
			if err := w.WritePacket(fg.Packet{Time: t, Src: src, Dst: dst, Payload: d}); err != nil {
				return err
			}
			report.Datagrams++
			report.Bytes += int64(len(d))
		}
		if o.progress.due() {
			showSimulateProgress(o.progress, &s, path, at, report.Datagrams, gen.records())
		}
	}
	report.Records = gen.records()
	report.Seconds = time.Since(begin).Seconds()
	report.RPS = float64(report.Records) / max(report.Seconds, 1e-9)
	fillAttacks(report, &s, gen, demo.CaptureStart)
	return f.Close()
}
