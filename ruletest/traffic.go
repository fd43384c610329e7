package ruletest

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/ingest/demo"
	"github.com/kapkan-io/kapkan/rules"
)

// TrafficItem is one scripted attack: a kind of the generator (the kinds of
// `kapkan simulate`), or packets described field by field from protocol.
type TrafficItem struct {
	Kind     string `yaml:"kind"`
	Target   string `yaml:"target"`
	PPS      int    `yaml:"pps"`
	Start    string `yaml:"start"`
	Duration string `yaml:"duration"`

	// Protocol is a name (tcp, udp, icmp, icmpv6, gre, esp, ah, sctp) or a
	// number 0-255; it describes the packets instead of a kind.
	Protocol yaml.Node `yaml:"protocol,omitempty"`
	// SrcPorts and DstPorts: a port, a range lo-hi, a list of those, or
	// random (the default).
	SrcPorts yaml.Node `yaml:"src_ports,omitempty"`
	DstPorts yaml.Node `yaml:"dst_ports,omitempty"`
	// Size is the packet length in bytes, or a range lo-hi (default 512).
	Size yaml.Node `yaml:"size,omitempty"`
	// TCPFlags: names joined by | (syn|ack), or a number.
	TCPFlags yaml.Node `yaml:"tcp_flags,omitempty"`
	// Fragment: first or non-first (IPv4 and IPv6 alike).
	Fragment yaml.Node `yaml:"fragment,omitempty"`
	// Sources: spoofed (the default) or reflectors.
	Sources yaml.Node `yaml:"sources,omitempty"`

	node *yaml.Node // the item as written, for positions
}

// trafficKeys are the keys an attack item may have.
var trafficKeys = []string{"kind", "target", "pps", "start", "duration", "protocol", "src_ports", "dst_ports",
	"size", "tcp_flags", "fragment", "sources"}

// shapeKeys describe packets, and need protocol.
var shapeKeys = []string{"src_ports", "dst_ports", "size", "tcp_flags", "fragment", "sources"}

// UnmarshalYAML keeps the item's node, so that its notation is checked
// later with positions; unknown keys are reported then too.
func (t *TrafficItem) UnmarshalYAML(n *yaml.Node) error {
	type plain TrafficItem
	var p plain
	if err := decodeKnown(n, trafficKeys, &p); err != nil {
		return err
	}
	*t = TrafficItem(p)
	t.node = n
	return nil
}

// UnmarshalYAML keeps the traffic's node, so that its notation is
// checked with positions; unknown keys are reported by check.
func (t *Traffic) UnmarshalYAML(n *yaml.Node) error {
	type plain Traffic
	var p plain
	if err := decodeKnown(n, trafficFileKeys, &p); err != nil {
		return err
	}
	*t = Traffic(p)
	t.node = n
	return nil
}

// decodeKnown decodes only the keys of mapping n named in keys into v:
// an unknown key is reported, with its position and the other problems,
// by check. A node that is not a mapping leaves v as it is.
func decodeKnown(n *yaml.Node, keys []string, v any) error {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	known := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if slices.Contains(keys, n.Content[i].Value) {
			known.Content = append(known.Content, n.Content[i], n.Content[i+1])
		}
	}
	return known.Decode(v)
}

// trafficFileKeys are the keys of a test's traffic, backgroundKeys those of
// its background.
var (
	trafficFileKeys = []string{"format", "sampling", "background", "attacks", "duration", "seed"}
	backgroundKeys  = []string{"hosts", "pps"}
)

// traffic checks what a test's traffic says besides its attacks.
func (c *notation) traffic(t *Traffic) {
	n := t.node
	if n == nil {
		return
	}
	if n.Kind != yaml.MappingNode {
		c.errorf(n, "traffic: found %s, want a mapping (format, sampling, background, attacks, duration, seed)", nodeKind(n))
		return
	}
	c.unknownKeys("traffic", n, trafficFileKeys)
	if bg := value(n, "background"); bg != nil && bg.Kind == yaml.MappingNode {
		c.unknownKeys("traffic.background", bg, backgroundKeys)
	}
	if t.Format != "" {
		if _, ok := flow.ParseFormat(t.Format); !ok {
			c.errorf(value(n, "format"), "traffic.format: found %q, want sflow5, netflow5, netflow9 or ipfix", t.Format)
		}
	}
	if t.Duration != "" {
		if d, err := time.ParseDuration(t.Duration); err != nil || d <= 0 {
			c.errorf(value(n, "duration"), "traffic.duration: found %q, want a duration above 0 (8s)", t.Duration)
		}
	}
	if t.Background.Hosts < 0 || t.Background.PPS < 0 {
		c.errorf(value(n, "background"), "traffic.background: found hosts %d and pps %d, want 0 or more", t.Background.Hosts, t.Background.PPS)
	}
}

func (c *notation) unknownKeys(where string, n *yaml.Node, known []string) {
	for j := 0; j+1 < len(n.Content); j += 2 {
		if k := n.Content[j]; !slices.Contains(known, k.Value) {
			c.errorf(k, "%s: unknown key %q (known keys: %s)", where, k.Value, strings.Join(known, ", "))
		}
	}
}

// protocols are the protocol names the notation knows.
var protocols = map[string]uint8{"icmp": 1, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51, "icmpv6": 58, "sctp": 132}

// tcpFlagBits are the TCP flag names the notation knows.
var tcpFlagBits = map[string]uint8{"fin": 0x01, "syn": 0x02, "rst": 0x04, "psh": 0x08, "ack": 0x10, "urg": 0x20, "ece": 0x40, "cwr": 0x80}

// notation collects positioned errors of one test file.
type notation struct {
	file string
	test string
	errs rules.Errors
}

func (c *notation) errorf(n *yaml.Node, format string, a ...any) {
	e := &rules.Error{File: c.file, Msg: fmt.Sprintf("test %q: ", c.test) + fmt.Sprintf(format, a...)}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	c.errs = append(c.errs, e)
}

// value finds key's value node in the item's mapping (nil when absent).
func value(item *yaml.Node, key string) *yaml.Node {
	if item == nil {
		return nil
	}
	for i := 0; i+1 < len(item.Content); i += 2 {
		if item.Content[i].Value == key {
			return item.Content[i+1]
		}
	}
	return nil
}

// attack checks item i of a test's traffic and builds its attack; every
// problem is recorded in c, with its position.
func (c *notation) attack(i int, t *TrafficItem) demo.Attack {
	where := fmt.Sprintf("attacks[%d]", i)
	at := t.node
	if at != nil && at.Kind != yaml.MappingNode {
		c.errorf(at, "%s: found %s, want a mapping (kind or protocol, target, pps, start, duration)", where, nodeKind(at))
		return demo.Attack{}
	}
	if at != nil {
		c.unknownKeys(where, at, trafficKeys)
	}
	a := demo.Attack{Kind: demo.Kind(t.Kind), PPS: t.PPS}
	var err error
	if a.Target, err = netip.ParseAddr(t.Target); err != nil {
		c.errorf(orItem(value(at, "target"), at), "%s.target: found %q, want an IPv4 or IPv6 address", where, t.Target)
	}
	if t.PPS <= 0 {
		c.errorf(orItem(value(at, "pps"), at), "%s.pps: found %d, want a packet rate above 0", where, t.PPS)
	}
	if a.Start, err = time.ParseDuration(t.Start); err != nil || a.Start < 0 {
		c.errorf(orItem(value(at, "start"), at), "%s.start: found %q, want a duration from the traffic's start (2s)", where, t.Start)
	}
	if a.Duration, err = time.ParseDuration(t.Duration); err != nil || a.Duration <= 0 {
		c.errorf(orItem(value(at, "duration"), at), "%s.duration: found %q, want a duration above 0 (5s)", where, t.Duration)
	}
	hasProto := t.Protocol.Kind != 0
	switch {
	case t.Kind != "" && hasProto:
		c.errorf(value(at, "protocol"), "%s: kind %q and protocol both given, want one: a kind, or packets described from protocol", where, t.Kind)
		return a
	case t.Kind != "":
		if !slices.Contains(demo.Kinds, demo.Kind(t.Kind)) {
			c.errorf(value(at, "kind"), "%s.kind: found %q, want one of %s (or protocol and the packets' fields)", where, t.Kind, kindNames())
		}
		for _, k := range shapeKeys {
			if v := value(at, k); v != nil {
				c.errorf(v, "%s.%s: describes packets, which kind %q already does; want protocol instead of kind", where, k, t.Kind)
			}
		}
		return a
	case !hasProto:
		c.errorf(at, "%s: no kind and no protocol, want one: a kind (%s) or protocol", where, kindNames())
		return a
	}
	sh := &demo.Shape{SizeMin: 512, SizeMax: 512}
	a.Shape = sh
	if p, ok := c.protocol(where, &t.Protocol); ok {
		sh.Proto = p
	}
	sh.SrcPorts = c.ports(where+".src_ports", &t.SrcPorts)
	sh.DstPorts = c.ports(where+".dst_ports", &t.DstPorts)
	if (len(sh.SrcPorts) > 0 || len(sh.DstPorts) > 0) && sh.Proto != 6 && sh.Proto != 17 {
		c.errorf(orItem(value(at, "src_ports"), value(at, "dst_ports")), "%s: ports given for protocol %d, want tcp or udp (only they have ports)", where, sh.Proto)
	}
	if t.Size.Kind != 0 {
		lo, hi, ok := parseRange(t.Size.Value, 1, 65535)
		if !ok || t.Size.Kind != yaml.ScalarNode {
			c.errorf(&t.Size, "%s.size: found %s, want a packet length in bytes (1-65535) or a range lo-hi (400-700)", where, show(&t.Size))
		}
		sh.SizeMin, sh.SizeMax = uint32(lo), uint32(hi)
	}
	if t.TCPFlags.Kind != 0 {
		sh.TCPFlags = c.flags(where, &t.TCPFlags)
		if sh.Proto != 6 {
			c.errorf(&t.TCPFlags, "%s.tcp_flags: given for protocol %d, want protocol tcp", where, sh.Proto)
		}
	}
	if t.Fragment.Kind != 0 {
		switch t.Fragment.Value {
		case "first":
			sh.Fragments = demo.FirstFragments
		case "non-first":
			sh.Fragments = demo.NonFirstFragments
		default:
			c.errorf(&t.Fragment, "%s.fragment: found %s, want first or non-first", where, show(&t.Fragment))
		}
		if sh.Fragments == demo.NonFirstFragments && (len(sh.SrcPorts) > 0 || len(sh.DstPorts) > 0) {
			c.errorf(&t.Fragment, "%s.fragment: non-first fragments carry no ports, want no src_ports and dst_ports with them", where)
		}
	}
	if t.Sources.Kind != 0 {
		switch t.Sources.Value {
		case "spoofed":
		case "reflectors":
			sh.Reflectors = true
		default:
			c.errorf(&t.Sources, "%s.sources: found %s, want spoofed or reflectors", where, show(&t.Sources))
		}
	}
	return a
}

func (c *notation) protocol(where string, n *yaml.Node) (uint8, bool) {
	if n.Kind == yaml.ScalarNode {
		if p, ok := protocols[strings.ToLower(n.Value)]; ok {
			return p, true
		}
		if v, err := strconv.ParseUint(n.Value, 10, 8); err == nil {
			return uint8(v), true
		}
	}
	c.errorf(n, "%s.protocol: found %s, want a name (%s) or a number 0-255", where, show(n), protocolNames())
	return 0, false
}

// ports reads a port notation: a port, a range, a list of them, or random
// (nil: random).
func (c *notation) ports(where string, n *yaml.Node) []demo.PortRange {
	if n.Kind == 0 {
		return nil
	}
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
		if len(items) == 0 {
			c.errorf(n, "%s: found an empty list, want ports (53, 1024-2047, [53, 5353]) or random", where)
		}
	}
	var out []demo.PortRange
	for _, it := range items {
		if it.Kind == yaml.ScalarNode && it.Value == "random" && n.Kind == yaml.ScalarNode {
			return nil
		}
		lo, hi, ok := parseRange(it.Value, 0, 65535)
		if !ok || it.Kind != yaml.ScalarNode {
			c.errorf(it, "%s: found %s, want a port 0-65535, a range lo-hi (1024-2047), a list of those, or random", where, show(it))
			continue
		}
		out = append(out, demo.PortRange{Lo: uint16(lo), Hi: uint16(hi)})
	}
	return out
}

func (c *notation) flags(where string, n *yaml.Node) uint8 {
	if v, err := strconv.ParseUint(n.Value, 0, 8); err == nil && n.Kind == yaml.ScalarNode {
		return uint8(v)
	}
	var out uint8
	for _, name := range strings.Split(n.Value, "|") {
		b, ok := tcpFlagBits[strings.ToLower(strings.TrimSpace(name))]
		if !ok || n.Kind != yaml.ScalarNode {
			c.errorf(n, "%s.tcp_flags: found %s, want flag names joined by | (syn|ack; fin syn rst psh ack urg ece cwr) or a number", where, show(n))
			return 0
		}
		out |= b
	}
	return out
}

// parseRange reads "n" or "lo-hi" within [min, max].
func parseRange(s string, lo, hi int) (int, int, bool) {
	a, b, isRange := strings.Cut(strings.TrimSpace(s), "-")
	x, err := strconv.Atoi(strings.TrimSpace(a))
	if err != nil {
		return 0, 0, false
	}
	y := x
	if isRange {
		if y, err = strconv.Atoi(strings.TrimSpace(b)); err != nil {
			return 0, 0, false
		}
	}
	if x < lo || y > hi || x > y {
		return 0, 0, false
	}
	return x, y, true
}

func orItem(n, item *yaml.Node) *yaml.Node {
	if n != nil {
		return n
	}
	return item
}

// show prints a node as it was written.
func show(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return strconv.Quote(n.Value)
	}
	return nodeKind(n)
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	return strconv.Quote(n.Value)
}

func kindNames() string {
	s := make([]string, len(demo.Kinds))
	for i, k := range demo.Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

func protocolNames() string {
	s := make([]string, 0, len(protocols))
	for n := range protocols {
		s = append(s, n)
	}
	slices.Sort(s)
	return strings.Join(s, ", ")
}
