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
	opts, err := ingestOptions(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "kapkan replay: %v\n", err)
		return 1
	}
	log := newLogger(stderr, "warn", "text")
	dec := ingest.New(opts, ingest.Deps{Logger: log})

	out := bufio.NewWriter(stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	sink := flow.SinkFunc(func(b *flow.Batch) {
		defer flow.DefaultPool.Put(b)
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

	sum := replaySummary{Type: "summary", Formats: map[string]int{}}
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
	_ = enc.Encode(&sum)
	return status
}
