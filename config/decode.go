package config

import (
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// position is where a node starts in the file, 1-based.
type position struct{ line, col int }

// maxNodes bounds the nodes decoded, aliases expanded, so that a file of
// nested aliases (a "billion laughs") fails instead of exhausting memory.
const maxNodes = 1 << 20

// decoder decodes a yaml.Node tree into the config structs, strictly, and
// collects every problem with its position instead of stopping at the first.
// yaml.v3's own decoder stops at the first unknown key and reports type
// errors with a line only.
type decoder struct {
	file  string
	errs  Errors
	pos   map[string]position
	nodes int
}

func newDecoder(file string) *decoder {
	return &decoder{file: file, pos: make(map[string]position)}
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{
		File: d.file, Line: n.Line, Col: n.Column, Path: path,
		Msg: fmt.Sprintf(format, args...),
	})
}

var (
	durationType = reflect.TypeFor[Duration]()
	addrType     = reflect.TypeFor[netip.Addr]()
	prefixType   = reflect.TypeFor[netip.Prefix]()
)

// decode decodes n into v, which holds the defaults; keys the file does not
// set keep them.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n, ok := d.resolve(n, path)
	if !ok {
		return
	}
	d.pos[path] = position{n.Line, n.Column}

	switch v.Kind() {
	case reflect.Struct:
		if t := v.Type(); t != durationType && t != addrType && t != prefixType {
			d.mapping(n, v, path)
			return
		}
	case reflect.Slice:
		d.sequence(n, v, path)
		return
	}

	want := wantOf(v.Type())
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		d.errorf(n, path, "found %s, want %s", describe(n), want)
		return
	}
	if msg := setScalar(n, v); msg != "" {
		d.errorf(n, path, "%s", msg)
	}
}

// resolve follows an alias to its anchored node and counts nodes against
// maxNodes.
func (d *decoder) resolve(n *yaml.Node, path string) (*yaml.Node, bool) {
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.errorf(n, path, "alias *%s refers to no anchor", n.Value)
			return nil, false
		}
		n = n.Alias
	}
	d.nodes++
	if d.nodes == maxNodes {
		d.errorf(n, path, "too many nodes (more than %d once aliases are expanded)", maxNodes)
	}
	return n, d.nodes < maxNodes
}

// mapping decodes a mapping node into the struct v.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	fields := fieldsOf(v.Type())
	if n.Kind != yaml.MappingNode {
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
			return // a section with nothing under it keeps its defaults
		}
		d.errorf(n, path, "found %s, want a mapping with the keys %s", describe(n), fields.list)
		return
	}
	for _, kv := range d.pairs(n, path, 0) {
		key := join(path, kv.key)
		i, ok := fields.index[kv.key]
		if !ok {
			d.errorf(kv.keyNode, key, "unknown key (known keys: %s)", fields.list)
			continue
		}
		d.decode(kv.value, v.Field(i), key)
	}
}

type pair struct {
	key            string
	keyNode, value *yaml.Node
}

// pairs lists the key/value pairs of a mapping node, with the keys merged in
// by "<<" (YAML merge keys) after the mapping's own, which win. A key given
// twice in one mapping is an error.
func (d *decoder) pairs(n *yaml.Node, path string, depth int) []pair {
	var (
		out    []pair
		seen   = make(map[string]*yaml.Node)
		merges []*yaml.Node
	)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.AliasNode && k.Alias != nil {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "found %s as a key, want a string", describe(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			merges = append(merges, val)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k, join(path, k.Value), "duplicate key (first at line %d)", first.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, pair{k.Value, k, val})
	}
	if len(merges) > 0 && depth > 32 {
		d.errorf(n, path, "merge keys (<<) nested too deep")
		return out
	}
	add := func(m *yaml.Node) {
		m, ok := d.resolve(m, path)
		if !ok {
			return
		}
		if m.Kind != yaml.MappingNode {
			d.errorf(m, path, "found %s after <<, want a mapping to merge", describe(m))
			return
		}
		for _, kv := range d.pairs(m, path, depth+1) {
			if _, dup := seen[kv.key]; !dup {
				seen[kv.key] = kv.keyNode
				out = append(out, kv)
			}
		}
	}
	for _, m := range merges {
		if m.Kind == yaml.AliasNode && m.Alias != nil {
			m = m.Alias
		}
		if m.Kind != yaml.SequenceNode {
			add(m)
			continue
		}
		for _, item := range m.Content {
			add(item) // earlier mappings win over later ones
		}
	}
	return out
}

// sequence decodes a sequence node into the slice v, replacing its default.
func (d *decoder) sequence(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		d.errorf(n, path, "found %s, want a list of %s (as [a, b] or as lines starting with \"- \")",
			describe(n), plural(wantOf(v.Type().Elem())))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		if dv, ok := s.Index(i).Addr().Interface().(defaulter); ok {
			dv.setDefaults()
		}
		d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
	}
	v.Set(s)
}

// defaulter is a list item with defaults of its own (a notify item), set
// before the file's keys are decoded into it.
type defaulter interface{ setDefaults() }

// setScalar decodes the non-null scalar n into v, or says why it cannot.
func setScalar(n *yaml.Node, v reflect.Value) string {
	tag := n.ShortTag()
	found := describe(n)
	switch v.Type() {
	case durationType:
		dur, err := parseDuration(n)
		if err != nil {
			return err.Error()
		}
		v.Set(reflect.ValueOf(Duration{dur}))
		return ""
	case addrType:
		if strings.TrimSpace(n.Value) == "" && tag == "!!str" {
			v.Set(reflect.ValueOf(netip.Addr{})) // "": not set
			return ""
		}
		a, err := netip.ParseAddr(strings.TrimSpace(n.Value))
		if err != nil {
			if _, perr := netip.ParsePrefix(strings.TrimSpace(n.Value)); perr == nil {
				return found + " is a prefix, not an IP address (want one address, like 192.0.2.1)"
			}
			return found + " is not an IP address (want one like 192.0.2.1 or 2001:db8::1)"
		}
		v.Set(reflect.ValueOf(a))
		return ""
	case prefixType:
		p, err := netip.ParsePrefix(strings.TrimSpace(n.Value))
		if err != nil {
			if a, aerr := netip.ParseAddr(strings.TrimSpace(n.Value)); aerr == nil {
				return fmt.Sprintf("%s is an address, not a prefix (want %s for this address alone)",
					found, netip.PrefixFrom(a, a.BitLen()))
			}
			return found + " is not a prefix (want CIDR like 203.0.113.0/24)"
		}
		v.Set(reflect.ValueOf(p))
		return ""
	}

	switch v.Kind() {
	case reflect.String:
		v.SetString(n.Value)
		return ""
	case reflect.Bool:
		if tag == "!!bool" {
			var b bool
			if err := n.Decode(&b); err == nil {
				v.SetBool(b)
				return ""
			}
		}
		if tag == "!!str" {
			if b, ok := boolWord(n.Value); ok {
				hint := ""
				if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
					hint = ", without quotes"
				}
				return fmt.Sprintf("%s is a string, not a boolean (want the YAML boolean %t%s)", found, b, hint)
			}
		}
		return found + " is not a boolean (want true or false)"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if tag == "!!int" && !isPlainDecimal(n.Value) {
			return notPlainDecimal(n)
		}
		if tag == "!!int" {
			var i int64
			if err := n.Decode(&i); err == nil && !v.OverflowInt(i) {
				v.SetInt(i)
				return ""
			}
			return fmt.Sprintf("%s is out of range (want an integer from %d to %d)",
				found, int64(-1)<<(v.Type().Bits()-1), int64(uint64(1)<<(v.Type().Bits()-1)-1))
		}
		if tag == "!!float" && isDigits(n.Value) {
			return fmt.Sprintf("%s is out of range (want an integer from %d to %d)",
				found, int64(-1)<<(v.Type().Bits()-1), int64(uint64(1)<<(v.Type().Bits()-1)-1))
		}
		return found + " is not an integer" + quotedNumberHint(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if tag == "!!int" && !isPlainDecimal(n.Value) {
			return notPlainDecimal(n)
		}
		if tag == "!!int" {
			if strings.HasPrefix(strings.TrimSpace(n.Value), "-") {
				return found + " is not a non-negative integer"
			}
			var u uint64
			if err := n.Decode(&u); err == nil && !v.OverflowUint(u) {
				v.SetUint(u)
				return ""
			}
			return fmt.Sprintf("%s is too large (want at most %d)", found, uint64(math.MaxUint64)>>(64-v.Type().Bits()))
		}
		if tag == "!!float" && isDigits(n.Value) && !strings.HasPrefix(strings.TrimSpace(n.Value), "-") {
			return fmt.Sprintf("%s is too large (want at most %d)", found, uint64(math.MaxUint64)>>(64-v.Type().Bits()))
		}
		return found + " is not a non-negative integer" + quotedNumberHint(n)
	}
	return fmt.Sprintf("cannot decode into %s", v.Type()) // a schema type this decoder lacks
}

// isDigits reports whether s is an integer too long for yaml.v3 to resolve
// as one (it resolves those as floats).
func isDigits(s string) bool {
	s = strings.TrimLeft(strings.TrimSpace(s), "+-")
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// isPlainDecimal reports whether s is an integer written in decimal digits
// without a leading zero or underscores. yaml.v3 also reads 20_000, 0x10,
// 0o17, 0b101 and 010 (octal, 8) as integers; the documentation promises
// plain integers, and a leading zero that silently means octal is a trap.
func isPlainDecimal(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return false
	}
	return s == "0" || s[0] != '0'
}

// notPlainDecimal refuses an integer in another notation, saying which
// decimal number yaml.v3 would have read.
func notPlainDecimal(n *yaml.Node) string {
	const want = "want decimal digits only, without underscores, a base prefix or a leading zero"
	var i int64
	if err := n.Decode(&i); err == nil {
		return fmt.Sprintf("%s is not a plain decimal integer (YAML reads it as %d; %s)", n.Value, i, want)
	}
	var u uint64
	if err := n.Decode(&u); err == nil {
		return fmt.Sprintf("%s is not a plain decimal integer (YAML reads it as %d; %s)", n.Value, u, want)
	}
	return fmt.Sprintf("%s is not a plain decimal integer (%s)", n.Value, want)
}

// quotedNumberHint explains a quoted number where a number is wanted.
func quotedNumberHint(n *yaml.Node) string {
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 {
		return ""
	}
	plain := yaml.Node{Kind: yaml.ScalarNode, Value: n.Value}
	if plain.ShortTag() != "!!int" {
		return ""
	}
	return fmt.Sprintf(" (it is quoted: want %s, without quotes)", n.Value)
}

// boolWord recognises the words YAML 1.1 read as booleans, which YAML 1.2
// (and yaml.v3) read as strings.
func boolWord(s string) (value, ok bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "y", "on":
		return true, true
	case "false", "no", "n", "off":
		return false, true
	}
	return false, false
}

// wantOf describes the values a leaf type accepts.
func wantOf(t reflect.Type) string {
	switch t {
	case durationType:
		return `a duration like "5s"`
	case addrType:
		return "an IP address like 192.0.2.1"
	case prefixType:
		return "a prefix like 203.0.113.0/24"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Struct:
		return "a mapping"
	case reflect.Slice:
		return "a list"
	}
	return t.String()
}

// plural turns "a prefix like 203.0.113.0/24" into "prefixes like …" for
// list messages, well enough for the schema's element types.
func plural(want string) string {
	switch {
	case want == "a mapping":
		return "mappings"
	case strings.HasPrefix(want, "a prefix"):
		return "prefixes" + strings.TrimPrefix(want, "a prefix")
	case strings.HasPrefix(want, "an IP address"):
		return "IP addresses" + strings.TrimPrefix(want, "an IP address")
	}
	return want
}

// describe says what a node is, for "found X" messages: strings quoted,
// other scalars as written, collections by kind.
func describe(n *yaml.Node) string {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "no value"
		case "!!str":
			s := n.Value
			if utf8.RuneCountInString(s) > 64 {
				s = string([]rune(s)[:64]) + "…"
			}
			return strconv.Quote(s)
		}
		return n.Value
	}
	return "nothing"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fields is the YAML view of a struct type.
type fields struct {
	index map[string]int // key → field index
	list  string         // keys in declaration order, for messages
}

var fieldCache sync.Map // reflect.Type → *fields

func fieldsOf(t reflect.Type) *fields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*fields)
	}
	f := &fields{index: make(map[string]int)}
	var names []string
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if !sf.IsExported() || name == "" || name == "-" {
			continue
		}
		f.index[name] = i
		names = append(names, name)
	}
	f.list = strings.Join(names, ", ")
	fieldCache.Store(t, f)
	return f
}
