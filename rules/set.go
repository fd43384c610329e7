package rules

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"

	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/rules/wasm"
)

// compiled is one rule ready to run: an expr program or a WASM module.
type compiled struct {
	Rule
	file    string
	program *vm.Program
	module  *wasm.Module
	builtin bool
	// explain splits an expr rule's match for Set.Explain (nil for WASM).
	explain *explainer
}

// Set is a compiled, immutable rule set. It is shared by every goroutine;
// Classify allocates its own evaluation state, and WASM modules keep an
// instance per concurrent call.
type Set struct {
	rules    []compiled
	ladders  []Ladder
	disabled []string
	modules  []*wasm.Module
}

// Source is a directory of rule files (*.yaml, except *_test.yaml).
type Source struct {
	FS      fs.FS
	Name    string // shown in errors: "builtin" or the directory
	Builtin bool
}

// Dir is an operator's rule directory on disk.
func Dir(dir string) Source { return Source{FS: os.DirFS(dir), Name: dir} }

// Compile reads and compiles every rule file of the sources, in order:
// operator directories first, then the built-ins, so that an operator's
// rule is tried before a built-in one. A rule named in a `disable` list is
// left out wherever it comes from. Every problem of every file is
// returned at once; a Set is returned only when there is none. WASM
// modules are loaded by the process-wide wasm.Default host.
func Compile(sources ...Source) (*Set, error) {
	return CompileWith(wasm.Default(), sources...)
}

// CompileWith is Compile with the WASM modules loaded by host: each is
// compiled, its first instance built and its ABI checked, so a broken
// module fails the compilation.
func CompileWith(host *wasm.Host, sources ...Source) (*Set, error) {
	var errs Errors
	set := &Set{}
	var loaded []*wasm.Module
	closeAll := func() {
		for _, m := range loaded {
			_ = m.Close()
		}
	}
	names := map[string]string{}
	disabled := map[string]bool{}
	var disabledAt []*Error // where each name was first disabled, for the error if it names nothing
	var all []compiled
	var ladders []Ladder
	for _, src := range sources {
		files, err := fs.Glob(src.FS, "*.yaml")
		if err != nil {
			closeAll()
			return nil, err
		}
		sub, _ := fs.Glob(src.FS, "*/*.yaml")
		files = append(files, sub...)
		sort.Strings(files)
		for _, fname := range files {
			if strings.HasSuffix(fname, "_test.yaml") {
				continue
			}
			display := path.Join(src.Name, fname)
			if !src.Builtin {
				display = filepath.Join(src.Name, fname)
			}
			data, err := fs.ReadFile(src.FS, fname)
			if err != nil {
				errs = append(errs, &Error{File: display, Msg: err.Error()})
				continue
			}
			pf, ferrs := parseFile(display, data)
			errs = append(errs, ferrs...)
			if pf == nil {
				continue
			}
			for i, d := range pf.file.Disable {
				if !disabled[d] {
					e := &Error{File: display, Rule: d}
					if i < len(pf.disable) {
						e.Line, e.Col = line(pf.disable[i]), col(pf.disable[i])
					}
					disabledAt = append(disabledAt, e)
				}
				disabled[d] = true
			}
			for i, r := range pf.file.Rules {
				rn := pf.rules[i]
				if prev, dup := names[r.Name]; dup && r.Name != "" {
					errs = append(errs, &Error{File: display, Line: line(rn.name), Col: col(rn.name), Rule: r.Name,
						Msg: "name already used in " + prev})
					continue
				}
				names[r.Name] = display
				if r.WASM != "" {
					if len(checkModule(&r.Module)) > 0 {
						continue // reported by parseFile
					}
					m, err := loadModule(host, src, fname, r.Name, &r.Module, wasm.RoleClassify)
					if err != nil {
						n := or(mapValue(rn.rule, "wasm"), rn.rule)
						errs = append(errs, &Error{File: display, Line: line(n), Col: col(n), Rule: r.Name, Msg: "wasm: " + err.Error()})
						continue
					}
					loaded = append(loaded, m)
					all = append(all, compiled{Rule: r, file: display, module: m, builtin: src.Builtin})
					continue
				}
				if strings.TrimSpace(r.Match) == "" {
					continue
				}
				prog, err := expr.Compile(r.Match, expr.Env(Env{}), expr.AsBool())
				if err != nil {
					errs = append(errs, exprError(display, r.Name, rn.match, err))
					continue
				}
				all = append(all, compiled{Rule: r, file: display, program: prog, builtin: src.Builtin, explain: newExplainer(r.Match)})
			}
			for j, ls := range pf.file.Ladders {
				if prev, dup := names[ls.Name]; dup && ls.Name != "" {
					errs = append(errs, &Error{File: display, Rule: ls.Name, Msg: "name already used in " + prev})
					continue
				}
				names[ls.Name] = display
				if ls.WASM != "" {
					if len(checkModule(&ls.Module)) > 0 {
						continue // reported by parseFile
					}
					m, err := loadModule(host, src, fname, ls.Name, &ls.Module, wasm.RoleDecide)
					if err != nil {
						n := or(mapValue(pf.ladders[j], "wasm"), pf.ladders[j])
						errs = append(errs, &Error{File: display, Line: line(n), Col: col(n), Rule: ls.Name, Msg: "wasm: " + err.Error()})
						continue
					}
					loaded = append(loaded, m)
					ladders = append(ladders, Ladder{Name: ls.Name, File: display, Hostgroups: ls.Hostgroups, Labels: ls.Labels,
						Policy: &modulePolicy{m: m}})
					continue
				}
				l, lerrs := compileLadder(display, ls)
				errs = append(errs, lerrs...)
				ladders = append(ladders, l)
			}
		}
	}
	for _, e := range disabledAt {
		if _, ok := names[e.Rule]; !ok {
			e.Msg = "disable: no file defines a rule or ladder of this name"
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		closeAll()
		return nil, errs
	}
	for _, c := range all {
		if disabled[c.Name] {
			set.disabled = append(set.disabled, c.Name)
			if c.module != nil {
				_ = c.module.Close()
			}
			continue
		}
		set.rules = append(set.rules, c)
		if c.module != nil {
			set.modules = append(set.modules, c.module)
		}
	}
	for _, l := range ladders {
		if disabled[l.Name] {
			set.disabled = append(set.disabled, l.Name)
			if p, ok := l.Policy.(*modulePolicy); ok {
				_ = p.m.Close()
			}
			continue
		}
		set.ladders = append(set.ladders, l)
		if p, ok := l.Policy.(*modulePolicy); ok {
			set.modules = append(set.modules, p.m)
		}
	}
	sort.Strings(set.disabled)
	return set, nil
}

func line(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return n.Line
}

func col(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return n.Column
}

// exprError places an expr compile error in the file: the match node's
// position plus the error's position inside the expression.
func exprError(fileName, rule string, n *yaml.Node, err error) *Error {
	e := &Error{File: fileName, Rule: rule, Line: line(n), Col: col(n), Msg: "match: " + err.Error()}
	var fe *file.Error
	if errors.As(err, &fe) {
		e.Msg = "match: " + fe.Message
		if n != nil {
			switch n.Style {
			case yaml.LiteralStyle, yaml.FoldedStyle:
				e.Line = n.Line + fe.Line
				e.Col = fe.Column + 1
			case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
				e.Line, e.Col = n.Line+fe.Line-1, n.Column+fe.Column+1
			default:
				e.Line, e.Col = n.Line+fe.Line-1, n.Column+fe.Column
			}
		}
		if strings.Contains(fe.Message, "expected bool") {
			e.Msg = "match: " + fe.Message + " (a match must be a condition, true or false)"
		}
	}
	return e
}

// Rules returns the names of the rules in the set, in evaluation order.
func (s *Set) Rules() []string {
	out := make([]string, len(s.rules))
	for i, r := range s.rules {
		out[i] = r.Name
	}
	return out
}

// Match returns the match expression of a rule ("" for an unknown one).
func (s *Set) Match(name string) string {
	for _, r := range s.rules {
		if r.Name == name {
			return r.Match
		}
	}
	return ""
}

// Disabled returns the rules left out by `disable` lists.
func (s *Set) Disabled() []string { return s.disabled }

// Verdict is what classification says of an attack.
type Verdict struct {
	// Labels are the labels of every rule that matched, sorted.
	Labels []string `json:"labels"`
	// Vector is the first matching rule's vector, "top" ports resolved.
	Vector flowspec.Match `json:"vector"`
	// Rules are the names of the rules that matched, in evaluation order.
	Rules []string `json:"rules"`
	// Unanswered are the WASM rules that gave no answer, in evaluation
	// order: the verdict is what the other rules say.
	Unanswered []Unanswered `json:"unanswered,omitempty"`
	// Decider is the rule that gave the vector: the first matching rule
	// with one ("" when none did).
	Decider string `json:"decider,omitempty"`
}

// Unanswered is a WASM rule that gave no answer, and why.
type Unanswered struct {
	Rule string `json:"rule"`
	// Reason is NoAnswerSuspended, NoAnswerBudget, or the failed call's
	// result (wasm.ResultTimeout, wasm.ResultTrap, ...).
	Reason string `json:"reason"`
}

// Why a WASM rule was not asked (Unanswered.Reason).
const (
	// NoAnswerSuspended: the module is suspended after repeated failures.
	NoAnswerSuspended = wasm.SkipSuspended
	// NoAnswerBudget: the attack's classification budget was spent.
	NoAnswerBudget = wasm.SkipBudget
)

// Classify is ClassifyContext without a budget: each WASM rule is bounded
// by its module's timeout alone. For tests, replays and tools, where
// latency does not matter; the daemon's verdict path gives a budget.
func (s *Set) Classify(f *Features) (Verdict, error) {
	return s.ClassifyContext(context.Background(), f)
}

// ClassifyContext runs every rule against the features of an attack, in
// the set's order, expr and WASM rules alike. ctx's deadline is the
// attack's classification budget: each WASM call ends at the earlier of
// its module's timeout and the budget, and once the budget is spent the
// remaining WASM rules are not asked (counted by the host as skipped,
// reason budget), while every expr rule is still evaluated, so a verdict
// always comes back. A WASM rule whose call fails (counted and logged by
// its host) or whose module is suspended contributes nothing: the verdict
// is what the other rules say, and Unanswered names it.
func (s *Set) ClassifyContext(ctx context.Context, f *Features) (Verdict, error) {
	env := NewEnv(f)
	var v Verdict
	labels := map[string]bool{}
	vectorSet := false
	var payload *wasm.Payload
	for i := range s.rules {
		r := &s.rules[i]
		ruleVector := r.Vector
		if r.module != nil {
			if payload == nil {
				payload = newPayload(f)
			}
			res, vec, err := classifyModule(ctx, r.module, payload)
			if err != nil {
				v.Unanswered = append(v.Unanswered, Unanswered{Rule: r.Name, Reason: noAnswer(err)})
				continue
			}
			if !res.Match {
				continue
			}
			for _, l := range res.Labels {
				labels[l] = true
			}
			if vec != nil {
				ruleVector = *vec
			}
		} else {
			out, err := expr.Run(r.program, env)
			if err != nil {
				return v, fmt.Errorf("rule %q (%s): %w", r.Name, r.file, err)
			}
			if out != true {
				continue
			}
		}
		v.Rules = append(v.Rules, r.Name)
		for _, l := range r.Labels {
			labels[l] = true
		}
		if !vectorSet && !ruleVector.IsZero() {
			v.Vector = resolveVector(ruleVector, f)
			v.Decider = r.Name
			vectorSet = true
		}
	}
	for l := range labels {
		v.Labels = append(v.Labels, l)
	}
	sort.Strings(v.Labels)
	return v, nil
}

// noAnswer names why a module call gave no answer.
func noAnswer(err error) string {
	var ce *wasm.CallError
	switch {
	case errors.Is(err, wasm.ErrSuspended):
		return NoAnswerSuspended
	case errors.Is(err, wasm.ErrNoBudget):
		return NoAnswerBudget
	case errors.As(err, &ce):
		return ce.Result
	}
	return "error"
}

// resolveVector replaces "top" ports with the sample's most used port when
// it carries most packets, and drops them otherwise.
func resolveVector(v flowspec.Match, f *Features) flowspec.Match {
	resolve := func(ports []string, top []PortShare) []string {
		var out []string
		for _, p := range ports {
			if p != "top" {
				out = append(out, p)
				continue
			}
			if len(top) > 0 && top[0].Share > 0.5 {
				out = append(out, fmt.Sprint(top[0].Port))
			}
		}
		return out
	}
	if v.Protocol == "icmp" && f.IPv6 {
		v.Protocol = "icmpv6"
	}
	v.SrcPorts = resolve(v.SrcPorts, f.TopSrcPorts)
	v.DstPorts = resolve(v.DstPorts, f.TopDstPorts)
	return v
}
