package fnmimport

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/kapkan-io/kapkan/config"
)

// entry is one "key = value" line of a fastnetmon.conf.
type entry struct {
	key, value string
	line, col  int // col is the value's column
	s          *Setting
}

// conf is a parsed fastnetmon.conf. FastNetMon keeps its settings in a
// map, so a key given twice takes its last value; hostgroup lines add up.
type conf struct {
	file    string
	entries []*entry          // every line, in order
	last    map[string]*entry // the value that counts, per key
	errs    config.Errors
}

// maxLines bounds the lines read from any one input, so that a
// pathological file fails instead of exhausting memory.
const maxLines = 100_000

// parseConf reads FastNetMon's format: one "key = value" per line, lines
// starting with # are comments. FastNetMon ignores a line it cannot parse;
// the import reports it instead, with its line.
func parseConf(file string, data []byte) *conf {
	c := &conf{file: file, last: map[string]*entry{}}
	for i, raw := range strings.Split(string(data), "\n") {
		n := i + 1
		if n > maxLines {
			c.errorf(n, 1, "more than %d lines (want a fastnetmon.conf)", maxLines)
			break
		}
		line := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case !ok:
			c.errorf(n, 1, "%q has no \"=\" (want key = value, or # before a comment)", clip(line))
			continue
		case k == "":
			c.errorf(n, 1, "no key before \"=\" (want key = value)")
			continue
		case strings.ContainsAny(k, " \t"):
			c.errorf(n, 1, "key %q has a space in it (want one word, like threshold_pps)", clip(k))
			continue
		}
		col := strings.Index(raw, "=") + 2
		for col <= len(raw) && (raw[col-1] == ' ' || raw[col-1] == '\t') {
			col++
		}
		e := &entry{key: k, value: v, line: n, col: col}
		e.s = &Setting{File: file, Line: n, Key: k, Value: v}
		if prev, dup := c.last[k]; dup && k != "hostgroup" {
			prev.s.set(Unmapped, nil, "set again at line %d: the last value counts, as in FastNetMon", n)
		}
		c.entries = append(c.entries, e)
		c.last[k] = e
	}
	return c
}

func (c *conf) errorf(line, col int, format string, args ...any) {
	c.errs = append(c.errs, &config.Error{File: c.file, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
}

// errAt reports a bad value of e.
func (c *conf) errAt(e *entry, format string, args ...any) {
	c.errorf(e.line, e.col, "%s: %s", e.key, fmt.Sprintf(format, args...))
}

// get returns the entry that counts for key, or nil.
func (c *conf) get(key string) *entry { return c.last[key] }

// onOff reads a switch: FastNetMon compares with "on", so anything else is
// off; the import asks for on or off, so that a typo is not silently off.
func (c *conf) onOff(key string, def bool) (bool, *entry) {
	e := c.get(key)
	if e == nil {
		return def, nil
	}
	switch e.value {
	case "on":
		return true, e
	case "off":
		return false, e
	}
	c.errAt(e, "%q is not a switch (want on or off)", clip(e.value))
	e.s.set(Unmapped, nil, "not on or off")
	return def, nil
}

// number reads a non-negative integer.
func (c *conf) number(key string) (uint64, *entry, bool) {
	e := c.get(key)
	if e == nil {
		return 0, nil, false
	}
	n, err := strconv.ParseUint(e.value, 10, 64)
	if err != nil {
		c.errAt(e, "%q is not a number (want a whole number like 20000)", clip(e.value))
		e.s.set(Unmapped, nil, "not a number")
		return 0, nil, false
	}
	return n, e, true
}

// line of a networks file.
type netLine struct {
	prefix netip.Prefix
	line   int
	note   string // how it was read, when not as written
}

// parseNetworks reads a networks_list or networks_whitelist: one network
// per line in CIDR notation (a bare address is a host), # comments.
func parseNetworks(file string, data []byte, errs *config.Errors) []netLine {
	var out []netLine
	for i, raw := range strings.Split(string(data), "\n") {
		n := i + 1
		if n > maxLines {
			*errs = append(*errs, &config.Error{File: file, Line: n, Col: 1, Msg: fmt.Sprintf("more than %d lines (want a list of networks)", maxLines)})
			break
		}
		line := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
		if line == "" || line[0] == '#' {
			continue
		}
		col := strings.Index(raw, line) + 1
		var nl netLine
		nl.line = n
		if p, err := netip.ParsePrefix(line); err == nil {
			nl.prefix = p.Masked()
			if nl.prefix != p {
				nl.note = fmt.Sprintf("%s has host bits set, read as %s", p, nl.prefix)
			}
		} else if a, err := netip.ParseAddr(line); err == nil && a.Zone() == "" {
			nl.prefix = netip.PrefixFrom(a, a.BitLen())
		} else {
			*errs = append(*errs, &config.Error{File: file, Line: n, Col: col,
				Msg: fmt.Sprintf("%q is not a network (want CIDR like 203.0.113.0/24, one per line)", clip(line))})
			continue
		}
		if nl.prefix.Addr().Is4In6() {
			*errs = append(*errs, &config.Error{File: file, Line: n, Col: col,
				Msg: fmt.Sprintf("%q is an IPv4-mapped IPv6 network (want the IPv4 network)", clip(line))})
			continue
		}
		out = append(out, nl)
	}
	return out
}

// clip shortens user input quoted in a message.
func clip(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}
