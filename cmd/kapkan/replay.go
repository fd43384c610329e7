package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/ingest"
)

// replaySummary is the last line replay prints.
type replaySummary struct {
	Type         string         `json:"type"`
	Datagrams    int            `json:"datagrams"`
	Records      int            `json:"records"`
	DecodeErrors int            `json:"decode_errors"`
	Formats      map[string]int `json:"formats"`
	// NonFlowUDP counts UDP datagrams in the captures that were not flow
	// telemetry (other traffic captured alongside).
	NonFlowUDP int `json:"non_flow_udp"`
	// Attacks counts the attacks detected.
	Attacks int `json:"attacks"`
}

// recordJSON is how --records prints one flow record.
type recordJSON struct {
	Type         string `json:"type"`
	Time         string `json:"time"`
	Exporter     string `json:"exporter"`
	Format       string `json:"format"`
	Src          string `json:"src,omitempty"`
	Dst          string `json:"dst,omitempty"`
	SrcPort      uint16 `json:"src_port"`
	DstPort      uint16 `json:"dst_port"`
	Proto        uint8  `json:"proto"`
	TCPFlags     uint8  `json:"tcp_flags"`
	Fragment     bool   `json:"fragment,omitempty"`
	Bytes        uint64 `json:"bytes"`
	Packets      uint64 `json:"packets"`
	SamplingRate uint32 `json:"sampling_rate"`
	Sampling     string `json:"sampling_source"`
	Start        string `json:"start,omitempty"`
	End          string `json:"end,omitempty"`
}

func nsTime(ns int64) string {
	if ns == 0 {
		return ""
	}
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

func cmdReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (defaults apply when omitted)")
	printRecords := fs.Bool("records", false, "print every decoded flow record as a JSON line")
	verbose := fs.Bool("v", false, "log decode errors to stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kapkan replay [--config FILE] [--records] CAPTURE.pcap|.pcapng...")
		fs.PrintDefaults()
	}
	captures, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	if len(captures) == 0 {
		fs.Usage()
		return 2
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "kapkan replay: %v\n", err)
		return 1
	}
	log := newLogger(stderr, "warn", "text")
	dec := ingest.New(ingestOptionsFrom(cfg), ingest.Deps{Logger: log})
	// The engine runs inline on one shard, clocked by the capture's
	// timestamps: the same capture always gives the same output.
	ecfg := engineConfigFrom(cfg)
	ecfg.Shards = 1
	eng, err := engine.NewSync(ecfg, engine.Deps{Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "kapkan replay: %v\n", err)
		return 1
	}
	clock := replayClock{eng: eng, window: int64(ecfg.Window / time.Second), cooldown: int64(cfg.Detection.Cooldown.Duration / time.Second)}

	out := bufio.NewWriter(stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	sum := replaySummary{Type: "summary", Formats: map[string]int{}}
	printCandidates := func() {
		for _, c := range eng.Drain() {
			switch c.Kind {
			case engine.AttackStarted:
				sum.Attacks++
			case engine.AttackEnded:
			default:
				continue
			}
			j := newAttackJSON(&c)
			_ = enc.Encode(&j)
		}
	}
	sink := flow.SinkFunc(func(b *flow.Batch) {
		defer func() {
			eng.Consume(b) // takes the batch
			printCandidates()
		}()
		if !*printRecords {
			return
		}
		for i := range b.Valid() {
			r := &b.Records[i]
			j := recordJSON{
				Type: "record", Time: nsTime(r.Received), Exporter: r.ExporterAddr().String(),
				Format: r.Format.String(), SrcPort: r.SrcPort, DstPort: r.DstPort, Proto: r.Proto,
				TCPFlags: r.TCPFlags, Fragment: r.IsFragment(), Bytes: r.Bytes, Packets: r.Packets,
				SamplingRate: r.SamplingRate, Sampling: r.Sampling.String(),
				Start: nsTime(r.Start), End: nsTime(r.End),
			}
			if a := r.SrcAddr(); a.IsValid() {
				j.Src = a.String()
			}
			if a := r.DstAddr(); a.IsValid() {
				j.Dst = a.String()
			}
			_ = enc.Encode(&j)
		}
	})
	batcher := ingest.NewBatcher(flow.DefaultPool, sink)
	for _, f := range flow.Formats {
		sum.Formats[f.String()] = 0
	}
	status := 0
	for _, path := range captures {
		_, err := ingest.ReadCapture(path, func(d ingest.Datagram) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if ingest.DetectFormat(d.Payload) == flow.FormatUnknown {
				sum.NonFlowUDP++
				return nil
			}
			if clock.advance(d.Time, batcher) {
				printCandidates()
			}
			res, err := dec.Decode(d.Payload, d.Src.Addr(), d.Time, batcher)
			sum.Datagrams++
			sum.Formats[res.Format.String()]++
			sum.Records += res.Records
			if err != nil {
				sum.DecodeErrors++
				if *verbose {
					log.Warn("decode error", "capture", path, "err", err)
				}
			}
			return nil
		})
		if err != nil {
			if errors.Is(err, context.Canceled) {
				status = 1
				break
			}
			// A damaged capture: report it, keep what was read, go on.
			fmt.Fprintf(stderr, "kapkan replay: %v\n", err)
			status = 1
		}
	}
	batcher.Flush()
	printCandidates()
	_ = enc.Encode(&sum)
	return status
}

// replayClock ticks a synchronous engine once per second of capture time,
// so that attacks end in replay as they would live.
type replayClock struct {
	eng              *engine.Engine
	sec              int64
	window, cooldown int64
}

// advance flushes pending records and ticks every second from the last one
// up to t's. After a long silence it ticks the seconds needed for attacks to
// end, then jumps. It reports whether it ticked.
func (c *replayClock) advance(t time.Time, b *ingest.Batcher) bool {
	sec := t.Unix()
	if c.sec == 0 {
		c.sec = sec
		return false
	}
	if sec <= c.sec {
		return false
	}
	b.Flush()
	limit := c.window + c.cooldown + 2
	for n := int64(0); c.sec < sec; n++ {
		if n == limit {
			c.sec = sec - 1
		}
		c.sec++
		c.eng.Tick(time.Unix(c.sec, 0))
	}
	return true
}
