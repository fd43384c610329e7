// Package ruletest runs rule tests: *_test.yaml files next to rule files
// that describe traffic (a generated scenario in a compact notation, or a
// capture) and the verdicts expected of the rules. `kapkan test` and the
// built-in rule set's own test run it, and it checks that every rule has at
// least one positive and one negative case.
package ruletest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net/netip"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"gopkg.in/yaml.v3"

	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/ingest"
	"github.com/kapkan-io/kapkan/ingest/demo"
	"github.com/kapkan-io/kapkan/pipeline"
	"github.com/kapkan-io/kapkan/rules"
)

// File is one *_test.yaml file.
type File struct {
	KapkanRuleTests int    `yaml:"kapkan_rule_tests"`
	Tests           []Test `yaml:"tests"`
}

// Test is one case: traffic, and what the rules must say of it.
type Test struct {
	Name    string   `yaml:"name"`
	Traffic *Traffic `yaml:"traffic"`
	// Capture is a pcap/pcapng file, relative to the test file.
	Capture string `yaml:"capture"`
	// Prefixes are protected (default 203.0.113.0/24 and 2001:db8:1::/48).
	Prefixes []string `yaml:"prefixes"`
	// Thresholds are the incoming thresholds (default pps 50000, mbps 500).
	Thresholds *Thresholds `yaml:"thresholds"`
	Expect     []Expect    `yaml:"expect"`
	// NoAttack asserts that nothing is detected.
	NoAttack bool `yaml:"no_attack"`
	// Hostgroup names the test's hostgroup (default "test"): ladders that
	// apply to some hostgroups only see it (an exported incident sets it).
	Hostgroup string `yaml:"hostgroup"`
	// Window is the detection window (default 5s), as in detection.window.
	Window string `yaml:"window"`
}

// Traffic is generated traffic in a compact notation.
type Traffic struct {
	Format     string        `yaml:"format"` // sflow5 (default), netflow5, netflow9, ipfix
	Sampling   uint32        `yaml:"sampling"`
	Background Background    `yaml:"background"`
	Attacks    []TrafficItem `yaml:"attacks"`
	Duration   string        `yaml:"duration"`
	Seed       uint64        `yaml:"seed"`

	attacks []demo.Attack // Attacks, checked when the file was read
	node    *yaml.Node    // as written, for positions
}

// Background is benign traffic spread over hosts of the protected prefixes.
type Background struct {
	Hosts int `yaml:"hosts"`
	PPS   int `yaml:"pps"`
}

// Thresholds are the incoming thresholds of the test's hostgroup.
type Thresholds struct {
	PPS  uint64 `yaml:"pps"`
	Mbps uint64 `yaml:"mbps"`
}

// Expect is what must be said of the attack on one target.
type Expect struct {
	Target    string          `yaml:"target"`
	Labels    []string        `yaml:"labels"`
	NotLabels []string        `yaml:"not_labels"`
	Vector    *flowspec.Match `yaml:"vector"`
	// Action is the first ladder step's action.
	Action string `yaml:"action"`
}

// Result is the outcome of one test.
type Result struct {
	File, Name string
	Failures   []string
	Verdicts   map[string]rules.Verdict // by target
	Explain    []string
}

// Passed reports whether the test passed.
func (r *Result) Passed() bool { return len(r.Failures) == 0 }

// Report is the outcome of a run.
type Report struct {
	Results []Result
	// Uncovered lists rules without a positive or a negative case.
	Uncovered []string
}

// Failed reports whether any test failed or any rule lacks coverage.
func (r *Report) Failed() bool {
	for i := range r.Results {
		if !r.Results[i].Passed() {
			return true
		}
	}
	return len(r.Uncovered) > 0
}

// Options tune a run.
type Options struct {
	// Explain records, for each attack, how each rule's conditions
	// evaluated.
	Explain bool
	// Covered names the rules that must each have a positive and a
	// negative case (nil: every rule of the set).
	Covered []string
}

// Run runs every *_test.yaml of fsys (recursively) against set.
func Run(fsys fs.FS, set *rules.Set, opts Options) (*Report, error) {
	var files []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, "_test.yaml") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, errors.New("no *_test.yaml file")
	}
	sort.Strings(files)
	rep := &Report{}
	positive, negative := map[string]int{}, map[string]int{}
	parsed := make([]File, len(files))
	var bad rules.Errors
	for i, name := range files {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		tf, err := Parse(name, data)
		if err != nil {
			var notationErrs rules.Errors
			if !errors.As(err, &notationErrs) {
				return nil, err
			}
			bad = append(bad, notationErrs...)
			continue
		}
		parsed[i] = *tf
	}
	if len(bad) > 0 {
		return nil, bad
	}
	for i, name := range files {
		for _, t := range parsed[i].Tests {
			res := runTest(fsys, name, &t, set, opts)
			for _, v := range res.Verdicts {
				for _, r := range set.Rules() {
					if slices.Contains(v.Rules, r) {
						positive[r]++
					} else {
						negative[r]++
					}
				}
			}
			rep.Results = append(rep.Results, res)
		}
	}
	covered := opts.Covered
	if covered == nil {
		covered = set.Rules()
	}
	for _, r := range covered {
		switch {
		case positive[r] == 0 && negative[r] == 0:
			rep.Uncovered = append(rep.Uncovered, r+": no test case")
		case positive[r] == 0:
			rep.Uncovered = append(rep.Uncovered, r+": no positive case (no test attack it matches)")
		case negative[r] == 0:
			rep.Uncovered = append(rep.Uncovered, r+": no negative case (it matches every test attack)")
		}
	}
	return rep, nil
}

// Parse decodes one test file strictly (an unknown key is an error),
// checks its format version and the notation of its generated traffic.
// Notation errors are all returned at once, positioned, as rules.Errors;
// the traffic's bounds are checked when a test runs.
func Parse(name string, data []byte) (*File, error) {
	var tf File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&tf); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if tf.KapkanRuleTests != 1 {
		return nil, fmt.Errorf("%s: kapkan_rule_tests is %d (want 1)", name, tf.KapkanRuleTests)
	}
	var bad rules.Errors
	for j := range tf.Tests {
		t := &tf.Tests[j]
		if t.Traffic == nil {
			continue
		}
		c := notation{file: name, test: t.Name}
		c.traffic(t.Traffic)
		for k := range t.Traffic.Attacks {
			t.Traffic.attacks = append(t.Traffic.attacks, c.attack(k, &t.Traffic.Attacks[k]))
		}
		bad = append(bad, c.errs...)
	}
	if len(bad) > 0 {
		return nil, bad
	}
	return &tf, nil
}

// Bounds of generated traffic: a test replays it in memory, so a typo
// (duration: 10000h) must fail the test, not exhaust the machine.
const (
	maxDuration = time.Hour
	maxHosts    = 1 << 16
	// maxSampled bounds the sampled records a scenario makes: its rates
	// times its duration over the sampling rate.
	maxSampled = 2_000_000
)

func runTest(fsys fs.FS, file string, t *Test, set *rules.Set, opts Options) Result {
	res := Result{File: file, Name: t.Name, Verdicts: map[string]rules.Verdict{}}
	fail := func(format string, a ...any) { res.Failures = append(res.Failures, fmt.Sprintf(format, a...)) }
	started, actions, err := detect(fsys, file, t, set)
	if err != nil {
		fail("%v", err)
		return res
	}
	for _, a := range started {
		res.Verdicts[a.c.Target.Addr().String()] = a.v
		if opts.Explain {
			f := rules.Compute(&a.c)
			res.Explain = append(res.Explain, explain(set, &f, a.c.Target.String())...)
		}
	}
	if t.NoAttack && len(started) > 0 {
		fail("want no attack, %d detected", len(started))
	}
	for _, e := range t.Expect {
		v, ok := res.Verdicts[e.Target]
		if !ok {
			fail("%s: no attack detected", e.Target)
			continue
		}
		for _, l := range e.Labels {
			if !slices.Contains(v.Labels, l) {
				fail("%s: labels %v lack %s", e.Target, v.Labels, l)
			}
		}
		for _, l := range e.NotLabels {
			if slices.Contains(v.Labels, l) {
				fail("%s: labels %v include %s", e.Target, v.Labels, l)
			}
		}
		if e.Vector != nil && fmt.Sprint(*e.Vector) != fmt.Sprint(v.Vector) {
			fail("%s: vector %+v, want %+v", e.Target, v.Vector, *e.Vector)
		}
		if e.Action != "" && actions[e.Target] != e.Action {
			fail("%s: first ladder action %q, want %q", e.Target, actions[e.Target], e.Action)
		}
	}
	return res
}

// detected is an attack the test's traffic started, with the verdict the
// pipeline gave it (the last, when it was classified again).
type detected struct {
	c engine.Candidate
	v rules.Verdict
}

// recorder keeps what the pipeline decided: the verdicts of the attacks and
// each target's first ladder action.
type recorder struct {
	started []detected
	index   map[uint64]int
	actions map[string]string
	errs    []string
}

func (r *recorder) Apply(d flowspec.Decision) error {
	if k := d.Target.Addr().String(); !d.Withdraw && r.actions[k] == "" {
		r.actions[k] = d.Action.String()
	}
	return nil
}

// Enabled, Handle, WithAttrs and WithGroup make the recorder the
// pipeline's log: its errors fail the test.
func (r *recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	msg := rec.Message
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" || a.Key == "target" {
			msg += " " + a.Key + "=" + a.Value.String()
		}
		return true
	})
	r.errs = append(r.errs, msg)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// detect replays the test's traffic through ingest, a synchronous engine
// and the verdict path (pipeline) the daemon runs. It returns the attacks
// started with their verdicts and, per target, the first ladder action.
func detect(fsys fs.FS, file string, t *Test, set *rules.Set) ([]detected, map[string]string, error) {
	prefixes := t.Prefixes
	if len(prefixes) == 0 {
		prefixes = []string{"203.0.113.0/24", "2001:db8:1::/48"}
	}
	hg := engine.Hostgroup{Name: "test", Incoming: engine.Thresholds{PPS: 50_000, Mbps: 500}}
	if t.Hostgroup != "" {
		hg.Name = t.Hostgroup
	}
	if t.Thresholds != nil {
		hg.Incoming = engine.Thresholds{PPS: t.Thresholds.PPS, Mbps: t.Thresholds.Mbps}
	}
	for _, p := range prefixes {
		pp, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, nil, fmt.Errorf("prefix %q: %w", p, err)
		}
		hg.Prefixes = append(hg.Prefixes, pp)
	}
	cfg := engine.DefaultConfig()
	cfg.Shards = 1
	cfg.Hostgroups = []engine.Hostgroup{hg}
	if t.Window != "" {
		w, err := time.ParseDuration(t.Window)
		if err != nil || w < time.Second {
			return nil, nil, fmt.Errorf("window %q: want a duration of at least 1s", t.Window)
		}
		cfg.Window = w
	}
	eng, err := engine.NewSync(cfg, engine.Deps{})
	if err != nil {
		return nil, nil, err
	}
	dec := ingest.New(ingest.Options{}, ingest.Deps{})
	b := ingest.NewBatcher(nil, eng)
	rec := &recorder{index: map[uint64]int{}, actions: map[string]string{}}
	pub := eventsFunc(func(e events.Event) {
		if e.Attack == nil || (e.Kind != events.AttackStarted && e.Kind != events.AttackUpdated) {
			return
		}
		v := rules.Verdict{Labels: e.Attack.Labels, Vector: e.Attack.Vector, Rules: e.Attack.Rules, Decider: e.Attack.Decider}
		if i, ok := rec.index[e.Attack.ID]; ok {
			rec.started[i].v = v
		}
	})
	pl, err := pipeline.New(pipeline.Config{Workers: 1, Budget: pipeline.OfflineBudget}, pipeline.Deps{Rules: func() *rules.Set { return set },
		Mitigator: rec, Events: pub, Log: slog.New(rec)})
	if err != nil {
		return nil, nil, err
	}
	collect := func() {
		for _, c := range eng.Drain() {
			if c.Kind == engine.AttackStarted {
				rec.index[c.ID] = len(rec.started)
				rec.started = append(rec.started, detected{c: c})
			}
			pl.Handle(context.Background(), &c)
		}
	}
	clock := ingest.ReplayClock{Tick: eng.Tick, Batcher: b}
	feed := func(payload []byte, from netip.Addr, at time.Time) {
		if clock.Advance(at) {
			collect()
		}
		_, _ = dec.Decode(payload, from, at, b)
	}
	switch {
	case t.Traffic != nil && t.Capture != "":
		return nil, nil, errors.New("give traffic or capture, not both")
	case t.Traffic != nil:
		s, err := scenario(t.Traffic, hg.Prefixes)
		if err != nil {
			return nil, nil, err
		}
		dgs, err := s.Generate()
		if err != nil {
			return nil, nil, err
		}
		for _, dg := range dgs {
			feed(dg.Payload, s.Agent, demo.CaptureStart.Add(dg.At))
		}
	case t.Capture != "":
		data, err := fs.ReadFile(fsys, path.Join(path.Dir(file), t.Capture))
		if err != nil {
			return nil, nil, err
		}
		if _, err := ingest.ReadCaptureFrom(bytes.NewReader(data), func(d ingest.Datagram) error {
			if ingest.DetectFormat(d.Payload) != flow.FormatUnknown {
				feed(d.Payload, d.Src.Addr(), d.Time)
			}
			return nil
		}); err != nil {
			return nil, nil, fmt.Errorf("capture %s: %w", t.Capture, err)
		}
	default:
		return nil, nil, errors.New("no traffic and no capture")
	}
	b.Flush()
	collect()
	if len(rec.errs) > 0 {
		return rec.started, rec.actions, errors.New(strings.Join(rec.errs, "; "))
	}
	return rec.started, rec.actions, nil
}

// eventsFunc is a pipeline.Publisher that calls a function.
type eventsFunc func(events.Event)

func (f eventsFunc) Publish(e events.Event) uint64 {
	f(e)
	return 0
}

func scenario(t *Traffic, prefixes []netip.Prefix) (demo.Scenario, error) {
	s := demo.Scenario{Format: flow.FormatSFlow5, SamplingRate: 512, Prefixes: prefixes, Hosts: t.Background.Hosts,
		BackgroundPPS: t.Background.PPS, Agent: netip.MustParseAddr("192.0.2.1"), Seed: t.Seed + 1, Duration: 10 * time.Second}
	if t.Format != "" {
		f, ok := flow.ParseFormat(t.Format)
		if !ok {
			return s, fmt.Errorf("format %q (want sflow5, netflow5, netflow9 or ipfix)", t.Format)
		}
		s.Format = f
	}
	if t.Sampling > 0 {
		s.SamplingRate = t.Sampling
	}
	var err error
	if t.Duration != "" {
		if s.Duration, err = time.ParseDuration(t.Duration); err != nil {
			return s, err
		}
	}
	s.Attacks = t.attacks
	if s.Duration <= 0 || s.Duration > maxDuration {
		return s, fmt.Errorf("duration %s (want more than 0, at most %s)", s.Duration, maxDuration)
	}
	if s.Hosts < 0 || s.Hosts > maxHosts || s.BackgroundPPS < 0 {
		return s, fmt.Errorf("background of %d hosts at %d pps (want 0 to %d hosts, a rate of 0 or more)", s.Hosts, s.BackgroundPPS, maxHosts)
	}
	sampled := float64(s.BackgroundPPS) * s.Duration.Seconds()
	for i, a := range s.Attacks {
		if a.Start < 0 || a.Duration <= 0 || a.Duration > maxDuration || a.PPS <= 0 {
			return s, fmt.Errorf("attack %d: start %s, duration %s, pps %d (want a start of 0 or more, a duration up to %s, a positive rate)",
				i+1, a.Start, a.Duration, a.PPS, maxDuration)
		}
		sampled += float64(a.PPS) * a.Duration.Seconds()
	}
	if sampled/float64(s.SamplingRate) > maxSampled {
		return s, fmt.Errorf("the traffic makes %.0f sampled records (at most %d: lower the rates or the duration, or raise sampling)",
			sampled/float64(s.SamplingRate), maxSampled)
	}
	if s.Hosts > 0 && len(s.Prefixes) > 1 {
		s.Prefixes = s.Prefixes[:1] // background over the first (IPv4) prefix
	}
	return s, nil
}

// explain evaluates each top-level condition (joined by &&) of every rule
// on f, so an author sees which one decided, and shows the values that were
// compared (`true  udp_share > 0.8   [udp_share = 0.98]`).
func explain(set *rules.Set, f *rules.Features, target string) []string {
	var out []string
	env := rules.NewEnv(f)
	verdict, _ := set.Classify(f) // for rules that are WASM modules
	for _, r := range set.Rules() {
		match := set.Match(r)
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s:", target, r)
		if match == "" { // a WASM module: no conditions to show, only its answer
			v := "no match"
			if slices.Contains(verdict.Rules, r) {
				v = "MATCH"
			}
			out = append(out, b.String()+"\n    (wasm module)\n    => "+v)
			continue
		}
		all := true
		for _, p := range splitAnd(match) {
			prog, err := expr.Compile(p, expr.Env(rules.Env{}), expr.AsBool())
			val := "?"
			all = all && err == nil // a condition that does not compile decides nothing
			if err == nil {
				if v, err := expr.Run(prog, env); err == nil {
					val = fmt.Sprint(v)
					if v != true {
						all = false
					}
				}
			}
			line := fmt.Sprintf("%-5s %s", val, strings.TrimSpace(p))
			if ops := operands(p, env); ops != "" {
				line += "   [" + ops + "]"
			}
			b.WriteString("\n    " + line)
		}
		verdict := "no match"
		if all {
			verdict = "MATCH"
		}
		out = append(out, b.String()+"\n    => "+verdict)
	}
	return out
}

// operands evaluates, on env, the sides of every comparison in condition
// that are not literals, and returns them as "name = value" pairs in the
// order they appear: what an author needs to see why a condition held or
// not (`udp_share = 0.98`, `src_port_share(27015) = 0.01`). A side that does
// not evaluate shows "?".
func operands(condition string, env *rules.Env) string {
	tree, err := parser.Parse(condition)
	if err != nil {
		return ""
	}
	c := &comparisons{}
	ast.Walk(&tree.Node, c)
	var out []string
	seen := map[string]bool{}
	for _, n := range c.sides {
		text := n.String()
		if seen[text] {
			continue
		}
		seen[text] = true
		val := "?"
		if prog, err := expr.Compile(text, expr.Env(rules.Env{})); err == nil {
			if v, err := expr.Run(prog, env); err == nil {
				val = formatValue(v)
			}
		}
		out = append(out, text+" = "+val)
	}
	return strings.Join(out, ", ")
}

// comparisons collects the non-literal sides of comparison operators.
type comparisons struct{ sides []ast.Node }

func (c *comparisons) Visit(node *ast.Node) {
	n, ok := (*node).(*ast.BinaryNode)
	if !ok {
		return
	}
	switch n.Operator {
	case "==", "!=", "<", "<=", ">", ">=", "in":
	default:
		return
	}
	for _, side := range []ast.Node{n.Left, n.Right} {
		c.add(side)
	}
}

// add collects side and, when it is arithmetic, the terms it adds up
// (`src_port_share(53) + fragment_share` shows both terms too).
func (c *comparisons) add(side ast.Node) {
	if literal(side) {
		return
	}
	c.sides = append(c.sides, side)
	if b, ok := side.(*ast.BinaryNode); ok {
		switch b.Operator {
		case "+", "-", "*", "/":
			c.add(b.Left)
			c.add(b.Right)
		}
	}
}

// literal reports whether n is a constant written in the condition (its
// value is already on the line).
func literal(n ast.Node) bool {
	switch n := n.(type) {
	case *ast.IntegerNode, *ast.FloatNode, *ast.StringNode, *ast.BoolNode, *ast.NilNode, *ast.ConstantNode:
		return true
	case *ast.UnaryNode:
		return literal(n.Node)
	case *ast.ArrayNode:
		for _, e := range n.Nodes {
			if !literal(e) {
				return false
			}
		}
		return true
	}
	return false
}

// formatValue prints a value short enough to read: shares with four
// significant digits, large rates without a fraction.
func formatValue(v any) string {
	f, ok := v.(float64)
	switch {
	case !ok:
		return fmt.Sprint(v)
	case math.Abs(f) >= 1000 || f == math.Trunc(f):
		return strconv.FormatFloat(f, 'f', 0, 64)
	default:
		return strconv.FormatFloat(f, 'g', 4, 64)
	}
}

// splitAnd splits an expression on && outside parentheses and brackets.
func splitAnd(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(', '[':
			depth++
		case ')', ']':
			depth--
		case '&':
			if depth == 0 && i+1 < len(s) && s[i+1] == '&' {
				out = append(out, s[start:i])
				start = i + 2
				i++
			}
		}
	}
	return append(out, s[start:])
}
