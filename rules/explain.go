package rules

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
)

// operand is one top-level part of a rule's match: the rule matches when
// all of its parts hold (a chain of &&) or, for a rule whose whole match
// is a chain of ||, when one does.
type operand struct {
	text    string
	program *vm.Program
	// sides are the non-literal sides of its comparisons
	// (src_port_share(53) in src_port_share(53) > 0.5), to show the
	// values a failed part compared.
	sides []operand
	// left and right are the two sides when the part is one numeric
	// comparison (<, <=, >, >=), to measure how far it was from holding.
	left, right *vm.Program
	// evidence: the part asks for something to be present (a > or >=
	// comparison), where a < or <= one often holds by default.
	evidence bool
}

// explainer is what Compile keeps of an expr rule to explain a verdict:
// its match split into top-level operands, each compiled on its own, and
// the features it reads.
type explainer struct {
	operands []operand
	// any: the operands are joined by || (one holding is enough).
	any bool
	// reads are the feature names the match uses, sorted.
	reads []string
}

// newExplainer splits a match expression at its top-level && (or, when
// that gives one part, ||) and compiles each part. It returns nil when the
// expression cannot be split (it compiled as a whole, so this only
// happens for parts that do not stand alone).
func newExplainer(match string) *explainer {
	tree, err := parser.Parse(match)
	if err != nil {
		return nil
	}
	x := &explainer{reads: reads(tree.Node)}
	parts := split(tree.Node, "&&", "and")
	if len(parts) == 1 {
		if or := split(tree.Node, "||", "or"); len(or) > 1 {
			parts, x.any = or, true
		}
	}
	for _, n := range parts {
		text := n.String()
		p, err := expr.Compile(text, expr.Env(Env{}), expr.AsBool())
		if err != nil {
			return nil
		}
		o := operand{text: text, program: p}
		if b, ok := n.(*ast.BinaryNode); ok && slices.Contains([]string{"<", "<=", ">", ">="}, b.Operator) {
			l, lerr := expr.Compile(b.Left.String(), expr.Env(Env{}))
			r, rerr := expr.Compile(b.Right.String(), expr.Env(Env{}))
			if lerr == nil && rerr == nil {
				o.left, o.right = l, r
			}
			o.evidence = b.Operator == ">" || b.Operator == ">="
		}
		c := &comparisons{}
		ast.Walk(&n, c)
		for _, side := range c.sides {
			st := side.String()
			if slices.ContainsFunc(o.sides, func(s operand) bool { return s.text == st }) {
				continue
			}
			if sp, err := expr.Compile(st, expr.Env(Env{})); err == nil {
				o.sides = append(o.sides, operand{text: st, program: sp})
			}
		}
		x.operands = append(x.operands, o)
	}
	return x
}

// comparisons collects the sides of comparisons that are not constants.
type comparisons struct{ sides []ast.Node }

func (c *comparisons) Visit(node *ast.Node) {
	b, ok := (*node).(*ast.BinaryNode)
	if !ok {
		return
	}
	switch b.Operator {
	case "==", "!=", "<", "<=", ">", ">=":
		for _, side := range []ast.Node{b.Left, b.Right} {
			switch side.(type) {
			case *ast.IntegerNode, *ast.FloatNode, *ast.StringNode, *ast.BoolNode, *ast.NilNode, *ast.ConstantNode:
			default:
				c.sides = append(c.sides, side)
			}
		}
	}
}

// split flattens a chain of one boolean operator into its operands, left
// to right.
func split(n ast.Node, op, word string) []ast.Node {
	if b, ok := n.(*ast.BinaryNode); ok && (b.Operator == op || b.Operator == word) {
		return append(split(b.Left, op, word), split(b.Right, op, word)...)
	}
	return []ast.Node{n}
}

// featureFields maps a feature's expr name to its field index in Features.
var featureFields = func() map[string]int {
	m := map[string]int{}
	t := reflect.TypeFor[Features]()
	for i := range t.NumField() {
		if tag := t.Field(i).Tag.Get("expr"); tag != "" {
			m[tag] = i
		}
	}
	return m
}()

// reads lists the features an expression uses.
func reads(n ast.Node) []string {
	v := &identifiers{}
	ast.Walk(&n, v)
	sort.Strings(v.names)
	return slices.Compact(v.names)
}

type identifiers struct{ names []string }

func (v *identifiers) Visit(n *ast.Node) {
	if id, ok := (*n).(*ast.IdentifierNode); ok {
		if _, feature := featureFields[id.Value]; feature {
			v.names = append(v.names, id.Value)
		}
	}
}

// Trace says what decided a verdict: the features the deciding rule and
// the closest miss read, with their values, the rules that matched, and
// for the rule that came closest to matching without matching, which of
// its parts failed.
type Trace struct {
	// Seen are the features the decider and the closest miss read, by name.
	Seen []Seen `json:"seen,omitempty"`
	// Matched are the rules that matched, in evaluation order; Decider the
	// one that gave the vector.
	Matched []string `json:"matched,omitempty"`
	Decider string   `json:"decider,omitempty"`
	// Miss is the expr rule that came closest to matching: the fewest
	// parts failing, then the smallest distance of the failed parts from
	// holding (a failed numeric comparison is as far as its relative
	// gap, any other failed part counts as far as it can be), then the
	// most parts holding that ask for evidence (> and >= comparisons: a
	// "<= 0.7" holds for most traffic), then the first in evaluation
	// order; nil when every expr rule matched.
	Miss *Miss `json:"closest_miss,omitempty"`
}

// Seen is a feature and its value, formatted.
type Seen struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Miss is a rule that did not match and why.
type Miss struct {
	Rule string `json:"rule"`
	// Held of Parts top-level parts of its match held.
	Held  int `json:"held"`
	Parts int `json:"parts"`
	// Failed are the parts that did not hold, as written (normalised by
	// the expression printer).
	Failed []string `json:"failed"`
	// Values are what the failed parts compared, as "expression=value".
	Values []string `json:"values,omitempty"`
}

// Explain traces verdict v of features f: it evaluates the top-level parts
// of every expr rule that did not match to find the closest miss. It costs
// about one more evaluation of the rule set, so the verdict path calls it
// once per verdict, not per rule.
func (s *Set) Explain(f *Features, v *Verdict) Trace {
	t := Trace{Matched: slices.Clone(v.Rules), Decider: v.Decider}
	env := NewEnv(f)
	var machine vm.VM
	var best [3]float64 // failed parts, distance, -held evidence: smaller is closer
	var read []string
	for i := range s.rules {
		r := &s.rules[i]
		if r.explain == nil {
			continue
		}
		if r.Name == v.Decider {
			read = append(read, r.explain.reads...)
		}
		if slices.Contains(v.Rules, r.Name) {
			continue
		}
		m := Miss{Rule: r.Name, Parts: len(r.explain.operands)}
		distance, evidence := 0.0, 0
		for i := range r.explain.operands {
			o := &r.explain.operands[i]
			out, err := machine.Run(o.program, env)
			if err == nil && out == true {
				m.Held++
				if o.evidence {
					evidence++
				}
				continue
			}
			m.Failed = append(m.Failed, o.text)
			distance += gap(&machine, o, env)
		}
		if r.explain.any {
			// One part holding would have been enough: none did, and the
			// nearest decides how close the rule came.
			m.Held = 0
			distance /= float64(len(m.Failed))
		}
		score := [3]float64{float64(len(m.Failed)), distance, -float64(evidence)}
		if r.explain.any {
			score[0] = 1
		}
		if t.Miss == nil || less(score, best) {
			best = score
			mm := m
			t.Miss = &mm
		}
	}
	if t.Miss != nil {
		for i := range s.rules {
			if s.rules[i].Name != t.Miss.Rule {
				continue
			}
			x := s.rules[i].explain
			read = append(read, x.reads...)
			for _, o := range x.operands {
				if !slices.Contains(t.Miss.Failed, o.text) {
					continue
				}
				for _, side := range o.sides {
					val := "?"
					if out, err := machine.Run(side.program, env); err == nil {
						val = format(reflect.ValueOf(out))
					}
					if v := side.text + "=" + val; !slices.Contains(t.Miss.Values, v) {
						t.Miss.Values = append(t.Miss.Values, v)
					}
				}
			}
		}
	}
	sort.Strings(read)
	fv := reflect.ValueOf(f).Elem()
	for _, name := range slices.Compact(read) {
		t.Seen = append(t.Seen, Seen{Name: name, Value: format(fv.Field(featureFields[name]))})
	}
	return t
}

// less orders scores lexicographically.
func less(a, b [3]float64) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// gap is how far a failed part was from holding, from 0 to 1: the
// relative difference of the sides of a numeric comparison, 1 for any
// other part.
func gap(m *vm.VM, o *operand, env *Env) float64 {
	if o.left == nil {
		return 1
	}
	l, lerr := m.Run(o.left, env)
	r, rerr := m.Run(o.right, env)
	lf, lok := number(l)
	rf, rok := number(r)
	if lerr != nil || rerr != nil || !lok || !rok {
		return 1
	}
	scale := math.Max(math.Abs(lf), math.Abs(rf))
	if scale == 0 {
		return 0
	}
	return math.Min(1, math.Abs(lf-rf)/scale)
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	}
	return 0, false
}

// format writes a feature's value briefly: numbers to four decimals.
func format(v reflect.Value) string {
	switch v.Kind() {
	case reflect.Float64:
		return strconv.FormatFloat(round4(v.Float()), 'f', -1, 64)
	case reflect.Slice:
		out := "["
		for i := range v.Len() {
			if i > 0 {
				out += " "
			}
			if p, ok := v.Index(i).Interface().(PortShare); ok {
				out += fmt.Sprintf("%d:%s", p.Port, strconv.FormatFloat(round4(p.Share), 'f', -1, 64))
				continue
			}
			out += fmt.Sprint(v.Index(i).Interface())
		}
		return out + "]"
	}
	return fmt.Sprint(v.Interface())
}

func round4(x float64) float64 { return math.Round(x*10000) / 10000 }
