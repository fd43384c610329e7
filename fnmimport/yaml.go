package fnmimport

import (
	"strconv"
	"strings"
	"unicode"
)

// ynode is a node of the YAML written out: a key with a scalar value, a
// mapping (kids) or a sequence of mappings (items), and the comment lines
// above it. yaml.v3's encoder can carry comments too, but placing foot and
// head comments through it is fiddly; this writer is small and its output
// is checked by parsing it back (config.Parse) in the tests.
type ynode struct {
	key       string
	head      []string
	value     string   // rendered scalar, when a leaf
	kids      []*ynode // mapping
	items     []*ynode // sequence of mappings; each item's kids are its keys
	list      []string // block sequence of rendered scalars
	seq       bool     // render items even when empty ([])
	commented bool     // render the subtree as comments, for the operator to complete
}

func leaf(key, value string, head ...string) *ynode {
	return &ynode{key: key, value: value, head: head}
}

func mapping(key string, kids ...*ynode) *ynode {
	return &ynode{key: key, kids: kids}
}

func (n *ynode) add(kids ...*ynode) { n.kids = append(n.kids, kids...) }

// child returns the mapping child named key, made if missing.
func (n *ynode) child(key string) *ynode {
	for _, k := range n.kids {
		if k.key == key {
			return k
		}
	}
	c := mapping(key)
	n.kids = append(n.kids, c)
	return c
}

// render writes the children of the root mapping, then tail as comments.
func render(root *ynode, tail []string) string {
	var b strings.Builder
	for _, k := range root.kids {
		writeNode(&b, k, 0, "", false)
	}
	for _, t := range tail {
		if t == "" {
			b.WriteString("#\n")
			continue
		}
		b.WriteString("# " + t + "\n")
	}
	return b.String()
}

// writeNode writes n at indent. dash is "- " for the first key of a
// sequence item. Inside a commented subtree every line starts with "# ".
func writeNode(b *strings.Builder, n *ynode, indent int, dash string, commented bool) {
	pad := strings.Repeat(" ", indent)
	// Inside a commented subtree each line starts with "# " and keeps its
	// indentation after it, so that removing the leading "# "s gives YAML.
	cpad := pad
	if commented {
		cpad = "# " + pad
	}
	for _, h := range n.head {
		b.WriteString(cpad)
		if h == "" {
			b.WriteString("#\n")
			continue
		}
		b.WriteString("# ")
		b.WriteString(h)
		b.WriteByte('\n')
	}
	commented = commented || n.commented
	lead := pad
	if commented {
		lead = "# " + pad
	}
	switch {
	case n.kids != nil:
		b.WriteString(lead + dash + n.key + ":\n")
		for _, k := range n.kids {
			writeNode(b, k, indent+len(dash)+2, "", commented)
		}
	case n.list != nil:
		b.WriteString(lead + dash + n.key + ":\n")
		for _, v := range n.list {
			b.WriteString(lead + strings.Repeat(" ", len(dash)+2) + "- " + v + "\n")
		}
	case n.items != nil || n.seq:
		live := false
		for _, it := range n.items {
			live = live || !it.commented
		}
		if live || commented {
			b.WriteString(lead + dash + n.key + ":\n")
		} else {
			// Only commented items: the key must still parse as a list.
			b.WriteString(lead + dash + n.key + ": []\n")
		}
		for _, it := range n.items {
			in := indent + len(dash) + 2
			ipad := strings.Repeat(" ", in)
			if commented || it.commented {
				ipad = "# " + ipad
			}
			for _, h := range it.head {
				b.WriteString(ipad + "# " + h + "\n")
			}
			for j, k := range it.kids {
				if j == 0 {
					writeNode(b, k, in, "- ", commented || it.commented)
				} else {
					writeNode(b, k, in+2, "", commented || it.commented)
				}
			}
		}
	default:
		b.WriteString(lead + dash + n.key + ": " + n.value + "\n")
	}
}

// quote renders a string as a YAML double-quoted scalar (Go's escapes are
// a subset of YAML's).
func quote(s string) string { return strconv.Quote(s) }

// flowList renders a flow sequence of already rendered scalars.
func flowList(vs []string) string { return "[" + strings.Join(vs, ", ") + "]" }

// safe makes user input fit on one comment line: no control characters,
// no line or paragraph separators (YAML parsers may break lines there), no
// invalid UTF-8 (a YAML document must be valid UTF-8).
func safe(s string) string {
	return strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) || r == unicode.ReplacementChar {
			return ' '
		}
		return r
	}, s)
}
