package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/rules/wasm"
)

// FormatVersion is the rule-file format this runtime reads.
const FormatVersion = 1

// File is one rule file.
type File struct {
	// KapkanRules is the file-format version; it must be 1.
	KapkanRules int `yaml:"kapkan_rules"`
	// Rules are classifiers.
	Rules []Rule `yaml:"rules"`
	// Ladders are escalation policies.
	Ladders []LadderSpec `yaml:"ladders"`
	// Disable names rules or ladders (built-in or from other files) to
	// switch off.
	Disable []string `yaml:"disable"`
}

// LadderSpec is an escalation ladder as written: for the attacks of the
// given hostgroups and labels (empty: any), ordered steps.
type LadderSpec struct {
	Name        string     `yaml:"name"`
	Description string     `yaml:"description"`
	Hostgroups  []string   `yaml:"hostgroups"`
	Labels      []string   `yaml:"labels"`
	Steps       []StepSpec `yaml:"steps"`
	// Module, instead of Steps, names a WASM policy module.
	Module `yaml:",inline"`
}

// StepSpec is one ladder step as written.
type StepSpec struct {
	// Action is flowspec-ratelimit, flowspec-discard or blackhole.
	Action string `yaml:"action"`
	// RateMbps is the rate limit of flowspec-ratelimit, in Mbps.
	RateMbps float64 `yaml:"rate_mbps,omitempty"`
	// Hold is how long the step stays before the next one may follow
	// ("30s"); the last step holds until the attack ends.
	Hold string `yaml:"hold,omitempty"`
	// When is an optional expr condition on the live attack that must hold
	// (with Hold passed) to step up to this step.
	When string `yaml:"when,omitempty"`
}

// Rule is one classifier: an expr condition (Match) or a WASM module.
type Rule struct {
	Name        string         `yaml:"name"`
	Description string         `yaml:"description"`
	Match       string         `yaml:"match"`
	Labels      []string       `yaml:"labels"`
	Vector      flowspec.Match `yaml:"vector"`
	Module      `yaml:",inline"`
}

// Module is the part of a rule or ladder that names a WASM module
// (wasm-sdk/ABI.md).
type Module struct {
	// WASM is the module's file, relative to the rule file's directory.
	WASM string `yaml:"wasm,omitempty"`
	// SHA256, when set, pins the module's hex digest: another file fails
	// the load.
	SHA256 string `yaml:"sha256,omitempty"`
	// Limits bound the module's memory, call time and instances.
	Limits LimitsSpec `yaml:"limits,omitempty"`
	// Config is passed to the module in every call (ABI field config).
	Config map[string]any `yaml:"config,omitempty"`
}

// LimitsSpec is a module's limits as written; zero means the default.
type LimitsSpec struct {
	MemoryMB  int    `yaml:"memory_mb,omitempty"`
	Timeout   string `yaml:"timeout,omitempty"`
	Instances int    `yaml:"instances,omitempty"`
}

// Error is a problem in a rule file, with its position.
type Error struct {
	File      string
	Line, Col int
	Rule      string
	Msg       string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Col)
	}
	if e.Rule != "" {
		fmt.Fprintf(&b, ": rule %q", e.Rule)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Errors are all the problems of a rule set.
type Errors []*Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

var (
	ruleName  = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	labelName = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	portSpec  = regexp.MustCompile(`^(top|\d{1,5}(-\d{1,5})?)$`)
	lenSpec   = regexp.MustCompile(`^(>=|<=|>|<)?\d{1,5}(-\d{1,5})?$`)
	flagSpec  = regexp.MustCompile(`^!?(fin|syn|rst|psh|ack|urg|ece|cwr)([&|]!?(fin|syn|rst|psh|ack|urg|ece|cwr))*$`)
)

// parsedFile is a decoded file with the positions of what needs them.
type parsedFile struct {
	name  string
	file  File
	rules []ruleNodes
	// ladders are the ladders' nodes, for positions (nil when unknown).
	ladders []*yaml.Node
	// disable are the nodes of the disable list's items.
	disable []*yaml.Node
}

// ruleNodes are the nodes of one rule, for positions.
type ruleNodes struct {
	rule, name, match, vector *yaml.Node
}

// parseFile decodes one rule file strictly and checks what can be checked
// without compiling. It returns every problem found.
func parseFile(name string, data []byte) (*parsedFile, Errors) {
	var errs Errors
	add := func(n *yaml.Node, rule, format string, a ...any) {
		e := &Error{File: name, Rule: rule, Msg: fmt.Sprintf(format, a...)}
		if n != nil {
			e.Line, e.Col = n.Line, n.Column
		}
		errs = append(errs, e)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Errors{yamlError(name, err)}
	}
	pf := &parsedFile{name: name}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&pf.file); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, m := range te.Errors {
				errs = append(errs, yamlLineError(name, m))
			}
		} else {
			errs = append(errs, yamlError(name, err))
		}
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	if pf.file.KapkanRules != FormatVersion {
		add(mapValue(doc, "kapkan_rules"), "", "kapkan_rules is %d (want %d: the file-format version this Kapkan reads)", pf.file.KapkanRules, FormatVersion)
	}
	rulesNode := mapValue(doc, "rules")
	for i := range pf.file.Rules {
		r := &pf.file.Rules[i]
		var rn ruleNodes
		if rulesNode != nil && rulesNode.Kind == yaml.SequenceNode && i < len(rulesNode.Content) {
			rn.rule = rulesNode.Content[i]
			rn.name, rn.match, rn.vector = mapValue(rn.rule, "name"), mapValue(rn.rule, "match"), mapValue(rn.rule, "vector")
		}
		pf.rules = append(pf.rules, rn)
		if !ruleName.MatchString(r.Name) {
			add(or(rn.name, rn.rule), r.Name, "name %q is not kebab-case (want lower-case words joined by -, like dns-amplification)", r.Name)
		}
		switch {
		case r.WASM != "" && strings.TrimSpace(r.Match) != "":
			add(or(rn.match, rn.rule), r.Name, "a rule has a match expression or a wasm module, not both")
		case r.WASM == "" && strings.TrimSpace(r.Match) == "":
			add(or(rn.match, rn.rule), r.Name, "no match expression (or wasm module)")
		}
		for _, m := range checkModule(&r.Module) {
			add(or(mapValue(rn.rule, m.key), rn.rule), r.Name, "%s", m.msg)
		}
		for _, l := range r.Labels {
			if !labelName.MatchString(l) {
				add(or(mapValue(rn.rule, "labels"), rn.rule), r.Name, "label %q is not kebab-case", l)
			}
		}
		for _, m := range checkVector(&r.Vector) {
			add(or(rn.vector, rn.rule), r.Name, "vector: %s", m)
		}
	}
	if dn := mapValue(doc, "disable"); dn != nil && dn.Kind == yaml.SequenceNode {
		pf.disable = dn.Content
	}
	laddersNode := mapValue(doc, "ladders")
	for i := range pf.file.Ladders {
		l := &pf.file.Ladders[i]
		var ln *yaml.Node
		if laddersNode != nil && laddersNode.Kind == yaml.SequenceNode && i < len(laddersNode.Content) {
			ln = laddersNode.Content[i]
		}
		pf.ladders = append(pf.ladders, ln)
		if !ruleName.MatchString(l.Name) {
			add(or(mapValue(ln, "name"), ln), l.Name, "ladder name %q is not kebab-case", l.Name)
		}
		switch {
		case l.WASM != "" && len(l.Steps) > 0:
			add(or(mapValue(ln, "steps"), ln), l.Name, "a ladder has steps or a wasm policy module, not both")
		case l.WASM == "" && len(l.Steps) == 0:
			add(ln, l.Name, "ladder has no steps (or wasm policy module)")
		}
		for _, m := range checkModule(&l.Module) {
			add(or(mapValue(ln, m.key), ln), l.Name, "%s", m.msg)
		}
		stepsNode := mapValue(ln, "steps")
		for j, st := range l.Steps {
			var sn *yaml.Node
			if stepsNode != nil && j < len(stepsNode.Content) {
				sn = stepsNode.Content[j]
			}
			if _, err := parseAction(st.Action, st.RateMbps, false); err != nil {
				at := mapValue(sn, "rate_mbps") // a rate problem, unless the action is the problem
				if _, badName := err.(*errActionName); at == nil || badName {
					at = mapValue(sn, "action")
				}
				add(or(at, sn), l.Name, "step %d: %v", j+1, err)
			}
			if st.Hold != "" {
				if d, err := time.ParseDuration(st.Hold); err != nil || d < 0 {
					add(or(mapValue(sn, "hold"), sn), l.Name, "step %d: hold %q is not a duration (want e.g. 30s)", j+1, st.Hold)
				}
			}
		}
	}
	return pf, errs
}

var sha256Spec = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

type keyMsg struct{ key, msg string }

// checkModule returns what is wrong with the module part of a rule or
// ladder, with the key it is about.
func checkModule(m *Module) []keyMsg {
	var out []keyMsg
	if m.WASM == "" {
		for key, set := range map[string]bool{"sha256": m.SHA256 != "", "limits": m.Limits != (LimitsSpec{}), "config": m.Config != nil} {
			if set {
				out = append(out, keyMsg{key, key + " applies to a wasm module only"})
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
		return out
	}
	if !strings.HasSuffix(m.WASM, ".wasm") {
		out = append(out, keyMsg{"wasm", fmt.Sprintf("wasm %q (want a path to a .wasm file, relative to this file)", m.WASM)})
	}
	if m.SHA256 != "" && !sha256Spec.MatchString(m.SHA256) {
		out = append(out, keyMsg{"sha256", fmt.Sprintf("sha256 %q (want 64 hex digits, as sha256sum prints them)", m.SHA256)})
	}
	if _, err := m.Limits.limits(); err != nil {
		out = append(out, keyMsg{"limits", "limits: " + err.Error()})
	}
	return out
}

// limits converts and checks the limits as written.
func (l LimitsSpec) limits() (wasm.Limits, error) {
	out := wasm.Limits{MemoryMB: l.MemoryMB, Instances: l.Instances}
	if l.Timeout != "" {
		d, err := time.ParseDuration(l.Timeout)
		if err != nil || d <= 0 {
			return out, fmt.Errorf("timeout %q is not a duration (want e.g. 250ms)", l.Timeout)
		}
		out.Timeout = d
	}
	return out, out.Check()
}

// checkVector returns what is wrong with a vector.
func checkVector(v *flowspec.Match) []string {
	var out []string
	switch v.Protocol {
	case "", "tcp", "udp", "icmp", "icmpv6":
	default:
		if n, err := strconv.Atoi(v.Protocol); err != nil || n < 0 || n > 255 {
			out = append(out, fmt.Sprintf("protocol %q (want tcp, udp, icmp, icmpv6 or a number 0-255)", v.Protocol))
		}
	}
	for _, ports := range [][]string{v.SrcPorts, v.DstPorts} {
		for _, p := range ports {
			if !portSpec.MatchString(p) || !rangeOK(p, 65535) {
				out = append(out, fmt.Sprintf("port %q (want a port, a range like 1024-65535, or top)", p))
			}
		}
	}
	if v.PacketLength != "" && (!lenSpec.MatchString(v.PacketLength) || !rangeOK(strings.TrimLeft(v.PacketLength, "<>="), 65535)) {
		out = append(out, fmt.Sprintf("packet_length %q (want a length, a range like 512-1500, or >=512)", v.PacketLength))
	}
	if v.TCPFlags != "" && !flagSpec.MatchString(v.TCPFlags) {
		out = append(out, fmt.Sprintf("tcp_flags %q (want flags joined by & or |, ! for not set, like syn&!ack)", v.TCPFlags))
	}
	switch v.Fragment {
	case "", "is-fragment", "first-fragment", "last-fragment", "dont-fragment":
	default:
		out = append(out, fmt.Sprintf("fragment %q (want is-fragment, first-fragment, last-fragment or dont-fragment)", v.Fragment))
	}
	return out
}

func rangeOK(s string, hi int) bool {
	if s == "top" {
		return true
	}
	a, b, isRange := strings.Cut(s, "-")
	x, err1 := strconv.Atoi(a)
	if !isRange {
		return err1 == nil && x <= hi
	}
	y, err2 := strconv.Atoi(b)
	return err1 == nil && err2 == nil && x <= y && y <= hi
}

func or(a, b *yaml.Node) *yaml.Node {
	if a != nil {
		return a
	}
	return b
}

// mapValue returns the value node of key in mapping n, or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlLineError turns a yaml.v3 "line N: msg" into a positioned error.
func yamlLineError(file, msg string) *Error {
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: file, Line: line, Col: 1, Msg: m[2]}
	}
	return &Error{File: file, Msg: msg}
}

func yamlError(file string, err error) *Error {
	return yamlLineError(file, strings.TrimPrefix(err.Error(), "yaml: "))
}
