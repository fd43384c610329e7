package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/daemon"
	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/ingest"
	"github.com/kapkan-io/kapkan/pipeline"
	"github.com/kapkan-io/kapkan/rules"
	"github.com/kapkan-io/kapkan/rules/wasm"
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
	explain := fs.Bool("explain", false, "print, for each attack, what decided its verdict and action (the counters, the deciding rule, the closest rule that did not match and which of its parts failed, the ladder step) instead of JSON lines")
	var ruleDirs, againstDirs listFlag
	fs.Var(&ruleDirs, "rules", "operator rule directory, used with the built-in rules (repeatable)")
	fs.Var(&againstDirs, "against", "second rule directory: replay under both rule sets and print only the verdicts that differ (exit 1 when some do)")
	send := fs.String("send", "", "instead of decoding, play the captures' flow datagrams to the collector at HOST:PORT, each exporter from a loopback address")
	speed := fs.Float64("speed", 1, "with --send: how many times faster than the capture to play (0: as fast as possible)")
	progressMode := progressFlag(fs)
	exportDir := fs.String("export-incidents", "", "write, for every attack found, a `DIR`/attack-ID-TARGET folder with its capture and a rule test expecting the verdict as observed (run by kapkan test DIR)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kapkan replay [--config FILE] [--rules DIR] [--against DIR] [--records | --explain] CAPTURE.pcap|.pcapng...")
		fmt.Fprintln(stderr, "       kapkan replay --send HOST:PORT [--speed F] CAPTURE.pcap|.pcapng...")
		fs.PrintDefaults()
	}
	captures, err := parseArgs(fs, args)
	if err != nil {
		return flagStatus(err)
	}
	if len(captures) == 0 {
		fs.Usage()
		return 2
	}
	prog, err := newProgress(*progressMode, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "kapkan replay: %v\n", err)
		return 2
	}
	if *send != "" || flagGiven(fs, "speed") {
		return runReplaySend(ctx, fs, *send, *speed, captures, prog, stdout, stderr)
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "kapkan replay: %v\n", err)
		return 1
	}
	warnNothingProtected(cfg, *configPath, "replay", stderr)
	rlog := newLogger(stderr, "warn", "text")
	set, err := compileRules(ruleDirs, rlog)
	if err != nil {
		fmt.Fprintf(stderr, "kapkan replay: rules:\n%v\n", err)
		return 1
	}
	defer set.Close()
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	enc := newJSONEncoder(out)
	if len(againstDirs) > 0 {
		other, err := compileRules(againstDirs, rlog)
		if err != nil {
			fmt.Fprintf(stderr, "kapkan replay: --against rules:\n%v\n", err)
			return 1
		}
		defer other.Close()
		var a, b []attackJSON
		if _, st := replayOnce(ctx, cfg, captures, set, false, *verbose, prog, func(v any) { collectAttacks(&a, v) }, stderr); st != 0 {
			return st
		}
		if _, st := replayOnce(ctx, cfg, captures, other, false, *verbose, prog, func(v any) { collectAttacks(&b, v) }, stderr); st != 0 {
			return st
		}
		diffs := diffVerdicts(a, b)
		for _, d := range diffs {
			fmt.Fprintln(out, d)
		}
		if len(diffs) > 0 {
			fmt.Fprintf(out, "%d verdict(s) differ between %s and %s\n", len(diffs), strings.Join(ruleDirs, ","), strings.Join(againstDirs, ","))
			return 1
		}
		fmt.Fprintf(out, "no verdict differs (%d attack lines)\n", len(a))
		return 0
	}
	if *explain {
		n := 0
		shown := map[uint64]string{}
		sum, status := replayOnce(ctx, cfg, captures, set, false, *verbose, prog, func(v any) {
			if x, ok := v.(attackExplain); ok {
				// At detection, and at the end when the verdict or the
				// step changed since.
				key := x.key()
				if x.kind == events.AttackEnded && shown[x.a.ID] == key {
					return
				}
				shown[x.a.ID] = key
				x.write(out, x.body())
				n++
			}
		}, stderr)
		fmt.Fprintf(out, "%d attack(s) explained, %d detected\n", n, sum.Attacks)
		return status
	}
	fr, err := newReplayRecorder(cfg, *exportDir)
	if err != nil {
		fmt.Fprintf(stderr, "kapkan replay: %v\n", err)
		return 1
	}
	_, status := replayOnce(ctx, cfg, captures, set, *printRecords, *verbose, prog, func(v any) {
		if _, ok := v.(attackExplain); !ok {
			_ = enc.Encode(v)
		}
	}, stderr, fr)
	if st := fr.export(stderr); st != 0 {
		status = st
	}
	return status
}

// noPeers is cfg without BGP peers: replay never talks to routers.
func noPeers(cfg *config.Config) *config.Config {
	c := *cfg
	c.Mitigation.BGP.Peers = nil
	return &c
}

// compileRules compiles the built-in rules with the operator directories.
// WASM modules log through log (the guest's output and failures); Close
// the set when done.
func compileRules(dirs []string, log *slog.Logger) (*rules.Set, error) {
	srcs, err := daemon.RuleSources(dirs)
	if err != nil {
		return nil, err
	}
	return rules.CompileWith(wasm.NewHost(log), srcs...)
}

func collectAttacks(list *[]attackJSON, v any) {
	if a, ok := v.(*attackJSON); ok {
		*list = append(*list, *a)
	}
}

// diffVerdicts compares the attack lines of two replays of the same
// captures (the engine is deterministic, so attacks match by id and type).
func diffVerdicts(a, b []attackJSON) []string {
	type key struct {
		id  uint64
		typ string
	}
	idx := map[key]attackJSON{}
	for _, x := range b {
		idx[key{x.ID, x.Type}] = x
	}
	var out []string
	for _, x := range a {
		y, ok := idx[key{x.ID, x.Type}]
		if !ok {
			out = append(out, fmt.Sprintf("%s %d %s: only in the first run", x.Type, x.ID, x.Target))
			continue
		}
		delete(idx, key{x.ID, x.Type})
		var parts []string
		if fmt.Sprint(x.Labels) != fmt.Sprint(y.Labels) {
			parts = append(parts, fmt.Sprintf("labels %v → %v", x.Labels, y.Labels))
		}
		vx, _ := json.Marshal(x.Vector)
		vy, _ := json.Marshal(y.Vector)
		if string(vx) != string(vy) {
			parts = append(parts, fmt.Sprintf("vector %s → %s", vx, vy))
		}
		if len(parts) > 0 {
			out = append(out, fmt.Sprintf("%s %d %s (detected %s): %s", x.Type, x.ID, x.Target, x.DetectedAt, strings.Join(parts, "; ")))
		}
	}
	for k, y := range idx {
		out = append(out, fmt.Sprintf("%s %d %s: only in the second run", k.typ, k.id, y.Target))
	}
	return out
}

// renderReplay renders an event as replay's JSON line, or nil for the events
// replay does not print (rate updates, escalations: the mitigation lines
// show those).
func renderReplay(e *events.Event) any {
	switch {
	case e.Attack != nil && (e.Kind == events.AttackStarted || e.Kind == events.AttackEnded):
		j := newAttackJSON(e.Kind, e.Attack)
		return &j
	case e.Mitigation != nil:
		j := newMitigationJSON(e)
		return &j
	}
	return nil
}

// countingHandler counts the errors the verdict path logs, for replay's
// exit status, and passes every record on.
type countingHandler struct {
	slog.Handler
	n *int
}

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		*h.n++
	}
	return h.Handler.Handle(ctx, r)
}

func (h countingHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return countingHandler{h.Handler.WithAttrs(a), h.n}
}

func (h countingHandler) WithGroup(g string) slog.Handler {
	return countingHandler{h.Handler.WithGroup(g), h.n}
}

// replayOnce decodes the captures through the engine, classifies every
// attack with set and hands each output line to emit. It returns the
// summary (also emitted last) and the exit status.
//
// prog, when on, shows on stderr how far the replay has got.
func replayOnce(ctx context.Context, cfg *config.Config, captures []string, set *rules.Set, printRecords, verbose bool,
	prog *progress, emit func(any), stderr io.Writer, rec ...*replayRecorder) (replaySummary, int) {
	var fr *replayRecorder // the flight recorder of --export-incidents
	if len(rec) > 0 {
		fr = rec[0]
	}
	log := newLogger(stderr, "warn", "text")
	dec := ingest.New(daemon.IngestOptions(cfg), ingest.Deps{Logger: log})
	// The engine runs inline on one shard, clocked by the capture's
	// timestamps: the same capture always gives the same output.
	ecfg := daemon.EngineConfig(cfg)
	ecfg.Shards = 1
	sum := replaySummary{Type: "summary", Formats: map[string]int{}}
	eng, err := engine.NewSync(ecfg, engine.Deps{Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "kapkan replay: %v\n", err)
		return sum, 1
	}
	status := 0
	// The daemon's verdict path, clocked by the capture: the same policy and
	// safety model, with no speaker and no state file. What it decides is
	// published into an event ring; replay's lines are rendered from it.
	ring := events.NewRing(1<<14, nil)
	rd := ring.NewReader("replay", ring.Last()+1)
	mit, err := daemon.NewMitigation(noPeers(cfg), "", slog.New(slog.DiscardHandler), nil, ring)
	if err != nil {
		fmt.Fprintf(stderr, "kapkan replay: %v\n", err)
		return sum, 1
	}
	defer mit.Close()
	var nerrs int
	pc := daemon.PipelineConfig(cfg, 1)
	pc.Budget = pipeline.OfflineBudget
	pl, err := pipeline.New(pc, pipeline.Deps{Rules: func() *rules.Set { return set },
		Mitigator: mit.Manager(), Events: ring, Log: slog.New(countingHandler{log.Handler(), &nerrs})})
	if err != nil {
		fmt.Fprintf(stderr, "kapkan replay: %v\n", err)
		return sum, 1
	}
	drain := func() {
		for {
			e, ok := rd.TryNext()
			if !ok {
				return
			}
			if line := renderReplay(&e); line != nil {
				emit(line)
			}
			if (e.Kind == events.AttackStarted || e.Kind == events.AttackEnded) && e.Attack != nil {
				emit(attackExplain{e.Kind, e.Attack}) // for --explain
			}
			fr.observe(&e)
		}
	}
	printCandidates := func() {
		for _, c := range eng.Drain() {
			if c.Kind == engine.AttackStarted {
				sum.Attacks++
			}
			pl.Handle(ctx, &c)
			drain()
		}
		if nerrs > 0 {
			status = 1
		}
	}
	sink := flow.SinkFunc(func(b *flow.Batch) {
		defer func() {
			eng.Consume(b) // takes the batch
			printCandidates()
		}()
		if !printRecords {
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
			emit(&j)
		}
	})
	batcher := ingest.NewBatcher(flow.DefaultPool, sink)
	// After a long silence, tick just enough for attacks to end, then jump.
	tick := func(now time.Time) {
		eng.Tick(now)
		mit.Manager().Tick(now)
		drain()
		fr.tick(now)
	}
	clock := ingest.ReplayClock{Tick: tick, Batcher: batcher,
		MaxTicks: int64((ecfg.Window+cfg.Detection.Cooldown.Duration)/time.Second) + 2}
	for _, f := range flow.Formats {
		sum.Formats[f.String()] = 0
	}
	defer prog.clear()
	for i, path := range captures {
		_, err := ingest.ReadCapture(path, func(d ingest.Datagram) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if sum.Datagrams%256 == 0 && prog.due() {
				showReplayProgress(prog, i, captures, &sum)
			}
			if ingest.DetectFormat(d.Payload) == flow.FormatUnknown {
				sum.NonFlowUDP++
				return nil
			}
			fr.add(d)
			if clock.Advance(d.Time) {
				printCandidates()
			}
			res, err := dec.Decode(d.Payload, d.Src.Addr(), d.Time, batcher)
			sum.Datagrams++
			sum.Formats[res.Format.String()]++
			sum.Records += res.Records
			if err != nil {
				sum.DecodeErrors++
				if verbose {
					prog.clear()
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
			prog.clear()
			fmt.Fprintf(stderr, "kapkan replay: %v\n", err)
			status = 1
		}
	}
	batcher.Flush()
	printCandidates()
	// Show when the actions of ended attacks would be withdrawn: at their
	// TTL, after the capture.
	mit.ExpireIdle()
	drain()
	emit(&sum)
	return sum, status
}

// showReplayProgress draws where replay is: which capture, how many
// datagrams and records so far, at what rate, for how long.
func showReplayProgress(p *progress, i int, captures []string, sum *replaySummary) {
	el := p.elapsed()
	file := filepath.Base(captures[i])
	if len(captures) > 1 {
		file = fmt.Sprintf("%s (%d/%d)", file, i+1, len(captures))
	}
	p.draw(fmt.Sprintf("replay %s: %s datagrams, %s records, %s records/s, %d attacks, %s elapsed",
		file, fmtCount(int64(sum.Datagrams)), fmtCount(int64(sum.Records)),
		fmtCount(perSecond(int64(sum.Records), el)), sum.Attacks, fmtElapsed(el)))
}
