package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/kapkan-io/kapkan/ingest"
)

// sendSummary is the line `kapkan replay --send` prints at the end.
type sendSummary struct {
	Type   string  `json:"type"`
	Target string  `json:"target"`
	Speed  float64 `json:"speed"`
	// Datagrams and Bytes are the flow datagrams sent and their payload.
	Datagrams int   `json:"datagrams"`
	Bytes     int64 `json:"bytes"`
	// NonFlowUDP counts the UDP datagrams of the captures that were not
	// flow telemetry, and were not sent.
	NonFlowUDP int `json:"non_flow_udp"`
	// SendErrors counts the flow datagrams not sent, by reason in Errors.
	SendErrors int               `json:"send_errors"`
	Errors     ingest.SendErrors `json:"errors"`
	FirstError string            `json:"first_error,omitempty"`
	Exporters  []sendExporter    `json:"exporters"`
	Seconds    float64           `json:"seconds"`
}

// sendExporter is one exporter of the captures and the loopback address
// its datagrams were sent from.
type sendExporter struct {
	Exporter  string `json:"exporter"`
	Source    string `json:"source"`
	Datagrams int    `json:"datagrams"`
	Bytes     int64  `json:"bytes"`
	Errors    int    `json:"errors"`
}

// sendConflicts are the replay flags that decode the captures here, which
// --send does not do.
var sendConflicts = []string{"against", "config", "records", "rules"}

// runReplaySend is `kapkan replay --send`: it plays the flow datagrams of
// the captures, in turn, to the collector at target, paced by their
// timestamps divided by speed (0 or less: as fast as possible), each
// exporter from a loopback address of its own. fs is replay's flag set,
// parsed, to refuse the flags that only make sense when decoding.
//
// prog, when on, shows what was sent so far.
func runReplaySend(ctx context.Context, fs *flag.FlagSet, target string, speed float64, captures []string, prog *progress, stdout, stderr io.Writer) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "kapkan replay: "+format+"\n", a...)
		return 2
	}
	if target == "" {
		return fail("--speed paces --send; give --send HOST:PORT too")
	}
	var bad []string
	for _, c := range sendConflicts {
		if flagGiven(fs, c) {
			bad = append(bad, "--"+c)
		}
	}
	if len(bad) > 0 {
		return fail("--send plays the captures to a collector and decodes nothing here: it cannot be combined with %s", strings.Join(bad, ", "))
	}
	if math.IsNaN(speed) {
		return fail("--speed %v: want a number (1: the capture's pace, 0: as fast as possible)", speed)
	}
	ua, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return fail("--send %q: want HOST:PORT: %v", target, err)
	}
	ap := ua.AddrPort()
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if err := checkTarget(ap); err != nil {
		return fail("--send: %v", err)
	}
	var current string // the capture being sent
	show := func(st *ingest.SendStats) {
		if prog.due() {
			el := prog.elapsed()
			prog.draw(fmt.Sprintf("replay %s → %s: %s datagrams sent (%s a second), %s send errors, %s elapsed",
				current, ap, fmtCount(int64(st.Datagrams)), fmtCount(perSecond(int64(st.Datagrams), el)),
				fmtCount(int64(st.Errors.Total())), fmtElapsed(el)))
		}
	}
	s, err := ingest.NewSender(ingest.SendOptions{Target: ap, Speed: speed, Progress: show})
	if err != nil {
		return fail("--send: %v", err)
	}
	defer s.Close()

	status := 0
	began := time.Now()
	for i, path := range captures {
		current = filepath.Base(path)
		if len(captures) > 1 {
			current = fmt.Sprintf("%s (%d/%d)", current, i+1, len(captures))
		}
		prog.clear()
		fmt.Fprintf(stderr, "kapkan replay: sending the flow datagrams of %s to %s\n", path, ap)
		err := s.Send(ctx, path)
		prog.clear()
		if err != nil {
			status = 1
			if errors.Is(err, context.Canceled) {
				fmt.Fprintln(stderr, "kapkan replay: stopped")
				break
			}
			// A damaged capture: what was read was sent; go on.
			fmt.Fprintf(stderr, "kapkan replay: %v\n", err)
		}
	}
	st := s.Stats()
	sum := sendSummary{
		Type: "send_summary", Target: ap.String(), Speed: speed,
		Datagrams: st.Datagrams, Bytes: st.Bytes, NonFlowUDP: st.NonFlow,
		SendErrors: st.Errors.Total(), Errors: st.Errors,
		Exporters: []sendExporter{},
		Seconds:   math.Round(time.Since(began).Seconds()*1000) / 1000,
	}
	if st.FirstError != nil {
		sum.FirstError = st.FirstError.Error()
	}
	sources := map[netip.Addr]int{}
	for _, e := range st.Exporters {
		sum.Exporters = append(sum.Exporters, sendExporter{Exporter: e.Exporter.String(), Source: e.Source.String(),
			Datagrams: e.Datagrams, Bytes: e.Bytes, Errors: e.Errors})
		sources[e.Source]++
	}
	if n := sources[netip.IPv6Loopback()]; n > 1 {
		fmt.Fprintf(stderr, "kapkan replay: %d exporters were sent from ::1, the only IPv6 loopback address, and look like one exporter to the collector; send to an IPv4 address of the collector to keep them apart\n", n)
	}
	if st.Errors.Refused > 0 {
		fmt.Fprintf(stderr, "kapkan replay: %d sends refused: nothing listened on %s for part of the play (each refusal also stands for an earlier datagram lost)\n", st.Errors.Refused, ap)
	}
	if sum.SendErrors > 0 {
		status = 1
	}
	if err := newJSONEncoder(stdout).Encode(&sum); err != nil {
		fmt.Fprintf(stderr, "kapkan replay: %v\n", err)
		return 1
	}
	return status
}

// flagGiven reports whether the flag name was on the command line.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}
