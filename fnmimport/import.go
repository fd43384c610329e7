// Package fnmimport converts a FastNetMon Community configuration
// (fastnetmon.conf, with its networks_list and networks_whitelist) into a
// Kapkan configuration file. It owns that mapping and nothing else: every
// setting of the input ends up named in the output, either above the
// Kapkan key it became or in a closing list with the reason it has no
// equivalent. The output keeps dry_run: true whatever FastNetMon did, and
// is validated like any configuration (config.Parse, kapkan check).
package fnmimport

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kapkan-io/kapkan/config"
)

// Status is what became of one setting.
type Status int

const (
	// Mapped: written to the Kapkan keys of Setting.To.
	Mapped Status = iota + 1
	// Same: Kapkan behaves this way already; nothing to write.
	Same
	// Unmapped: no Kapkan equivalent, or inert in FastNetMon; Note says why.
	Unmapped
)

func (s Status) String() string {
	switch s {
	case Mapped:
		return "mapped"
	case Same:
		return "same"
	case Unmapped:
		return "unmapped"
	}
	return "unknown"
}

// Setting is one "key = value" line of the input and what became of it.
type Setting struct {
	File       string
	Line       int
	Key, Value string
	Status     Status
	// To are the Kapkan keys it was written to, like
	// hostgroups[global].thresholds.incoming.pps.
	To []string
	// Note says how it was mapped or why it was not.
	Note string
}

func (s *Setting) set(st Status, to []string, format string, args ...any) {
	s.Status, s.To, s.Note = st, to, fmt.Sprintf(format, args...)
}

// mention is how a setting is named in the output's comments; the tests
// look for it.
func (s *Setting) mention() string {
	return fmt.Sprintf("%s = %s (line %d)", safe(s.Key), safe(s.Value), s.Line)
}

// Options are where the import reads what fastnetmon.conf points to.
type Options struct {
	// NetworksList and Whitelist are the files to read instead of the
	// conf's networks_list_path and white_list_path.
	NetworksList, Whitelist string
	// ReadFile reads them; os.ReadFile when nil.
	ReadFile func(name string) ([]byte, error)
	// Executable reports whether the notify script exists and may be run;
	// a check of the file's mode bits when nil.
	Executable func(path string) bool
}

// Result is the Kapkan configuration and the fate of every setting.
type Result struct {
	// YAML is the Kapkan configuration file.
	YAML []byte
	// Settings are the key = value lines of the input, in order.
	Settings []*Setting
}

// FastNetMon's defaults for the paths its conf may leave out.
const (
	defaultNetworksList = "/etc/networks_list"
	defaultWhitelist    = "/etc/networks_whitelist"
)

// Import converts the fastnetmon.conf data, named name in messages. Input
// that cannot be read as FastNetMon's format returns config.Errors, each
// with the file and line of the problem.
func Import(name string, data []byte, opts Options) (*Result, error) {
	if opts.ReadFile == nil {
		opts.ReadFile = os.ReadFile
	}
	if opts.Executable == nil {
		opts.Executable = executable
	}
	im := &importer{c: parseConf(name, data), opts: opts, root: mapping("")}
	im.run()
	if errs := im.c.errs; len(errs) > 0 {
		// The conf's problems first, each file's in line order.
		slices.SortStableFunc(errs, func(a, b *config.Error) int {
			if (a.File == name) != (b.File == name) {
				if a.File == name {
					return -1
				}
				return 1
			}
			return cmp.Or(strings.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
		})
		return nil, errs
	}
	res := &Result{}
	for _, e := range im.c.entries {
		res.Settings = append(res.Settings, e.s)
	}
	body := render(im.root, nil)
	res.YAML = []byte(body + render(mapping(""), im.tail(res.Settings, body)))
	return res, nil
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

type importer struct {
	c    *conf
	opts Options
	root *ynode

	in, out   bool // directions FastNetMon processes
	listRead  bool // networks_list was read
	listed    map[netip.Prefix]bool
	allowlist []string // rendered prefixes for mitigation.allowlist
	allowHead []string
	v6        []string // IPv6 networks kept out of mitigation (enable_ban_ipv6 = off)
	v6Head    []string
}

func (im *importer) run() {
	c := im.c
	im.root.add(leaf("dry_run", "true",
		"Imported from "+safe(c.file)+" by kapkan import-fastnetmon.",
		"Every setting of that file is named in a comment: above the key it became,",
		"or at the end of this file with the reason it has no equivalent here.",
		"Check the result with: kapkan check --config kapkan.yaml",
		"",
		"dry_run stays true whatever FastNetMon did: Kapkan detects, classifies and",
		"logs the mitigations it would announce, and announces nothing. Turn it off",
		"once its detections look right: the checklist is docs/45-going-live.md."))
	im.logging()
	im.ingest()
	im.detection()
	im.hostgroups()
	im.mitigation()
	im.notify()
	im.leftovers()
}

func (im *importer) logging() {
	e := im.c.get("logging_level")
	if e == nil {
		return
	}
	switch e.value {
	case "debug", "info":
		e.s.set(Mapped, []string{"log.level"}, "same level names")
		im.root.child("log").add(leaf("level", e.value, e.s.mention()))
	default:
		e.s.set(Unmapped, nil, "FastNetMon knows info and debug; Kapkan's levels are debug, info, warn and error")
	}
}

// listen renders FastNetMon's host and port as a listen address.
func listen(host, port string) string {
	switch {
	case host == "":
		return ":" + port
	case strings.Contains(host, ":"):
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

func (im *importer) ingest() {
	c := im.c
	sflow, se := c.onOff("sflow", false)
	netflow, ne := c.onOff("netflow", false)
	ing := im.root.child("ingest")
	neither := !sflow && !netflow
	for _, l := range []struct {
		name, kapkan, def string
		on                bool
		sw                *entry
	}{
		{"sflow", "sflow", "6343", sflow, se},
		{"netflow", "netflow", "2055", netflow, ne},
	} {
		path := "ingest." + l.kapkan + ".listen"
		host, pe := c.get(l.name+"_host"), c.get(l.name+"_port")
		if !l.on && !neither {
			if l.sw != nil {
				l.sw.s.set(Mapped, []string{path}, "the listener is disabled")
			}
			for _, e := range []*entry{host, pe} {
				if e != nil {
					e.s.set(Unmapped, nil, "%s is off", l.name)
				}
			}
			why := l.name + " is off (FastNetMon's default): the listener is disabled"
			if l.sw != nil {
				why = l.sw.s.mention() + ": the listener is disabled"
			}
			ing.child(l.kapkan).add(leaf("listen", `""`, why))
			continue
		}
		var head []string
		if l.sw != nil {
			if l.on {
				l.sw.s.set(Mapped, []string{path}, "the listener is enabled")
			} else {
				l.sw.s.set(Unmapped, nil, "neither sflow nor netflow is on (FastNetMon captured from a port mirror); Kapkan takes flow telemetry only, so both listeners stay open for the routers to export to")
			}
			head = append(head, l.sw.s.mention())
		}
		hostV, portV := "", l.def
		if host != nil {
			if _, err := netip.ParseAddr(host.value); err != nil {
				c.errAt(host, "%q is not an IP address (want one like 0.0.0.0 or ::)", clip(host.value))
			}
			hostV = host.value
			host.s.set(Mapped, []string{path}, "the listen address")
			head = append(head, host.s.mention())
		}
		if pe != nil {
			ports := strings.Split(pe.value, ",")
			for _, p := range ports {
				if _, err := strconv.ParseUint(strings.TrimSpace(p), 10, 16); err != nil {
					c.errAt(pe, "%q is not a UDP port (want a port like %s, or ports separated by commas)", clip(strings.TrimSpace(p)), l.def)
				}
			}
			portV = strings.TrimSpace(ports[0])
			if len(ports) > 1 {
				pe.s.set(Mapped, []string{path}, "the first port only: Kapkan listens on one port per format (%s not mapped)", safe(strings.Join(ports[1:], ",")))
				head = append(head, pe.s.mention(), "Only the first port: Kapkan listens on one port per format; point the other exporters at it.")
			} else {
				pe.s.set(Mapped, []string{path}, "the listen port")
				head = append(head, pe.s.mention())
			}
		}
		if host == nil && pe == nil && !neither && l.sw != nil {
			head = append(head, "FastNetMon's default port")
		}
		if neither && l.sw == nil && host == nil && pe == nil {
			head = append(head, "Kapkan's default: FastNetMon captured no flow telemetry")
		}
		ing.child(l.kapkan).add(leaf("listen", quote(listen(hostV, portV)), head...))
	}
	if n, e, ok := c.number("netflow_sampling_ratio"); ok {
		switch {
		case !netflow && !neither:
			e.s.set(Unmapped, nil, "netflow is off")
		case n == 0:
			e.s.set(Unmapped, nil, "0 is no sampling rate; Kapkan's default_sampling_rate stays 1")
		case n == 1:
			e.s.set(Same, nil, "Kapkan takes telemetry without a sampling rate as unsampled (ingest.default_sampling_rate: 1)")
		case n > 1<<31:
			c.errAt(e, "%d is too large a sampling rate", n)
		default:
			e.s.set(Mapped, []string{"ingest.default_sampling_rate"}, "FastNetMon uses it for NetFlow v9 and IPFIX exporters that announce no rate; Kapkan for every exporter that announces none")
			ing.add(leaf("default_sampling_rate", strconv.FormatUint(n, 10), e.s.mention(),
				"Used for every record whose telemetry carries no rate. A router that announces a",
				"wrong one is better fixed with ingest.exporters[].sampling_rate."))
		}
	}
}

func (im *importer) detection() {
	n, e, ok := im.c.number("average_calculation_time")
	if !ok {
		return
	}
	w := min(max(n, 1), 300)
	note := "FastNetMon averages with an exponential moving average of this time constant; Kapkan over a sliding window of this length"
	if w != n {
		note += fmt.Sprintf(" (%d is outside Kapkan's 1 to 300 seconds: %d)", n, w)
	}
	e.s.set(Mapped, []string{"detection.window"}, "%s", note)
	im.root.child("detection").add(leaf("window", fmt.Sprintf("%ds", w), e.s.mention(), note+"."))
}

// metric pairs a FastNetMon switch and threshold with a Kapkan threshold.
type metric struct{ ban, threshold, field string }

var metrics = []metric{
	{"ban_for_pps", "threshold_pps", "pps"},
	{"ban_for_bandwidth", "threshold_mbps", "mbps"},
	{"ban_for_flows", "threshold_flows", "fps"},
	{"ban_for_tcp_pps", "threshold_tcp_pps", "tcp_pps"},
	{"ban_for_udp_pps", "threshold_udp_pps", "udp_pps"},
	{"ban_for_icmp_pps", "threshold_icmp_pps", "icmp_pps"},
	{"ban_for_tcp_syn_pps", "threshold_tcp_syn_pps", "syn_pps"},
	{"ban_for_ip_fragments_pps", "threshold_ip_fragments_pps", "frag_pps"},
	{"ban_for_tcp_bandwidth", "threshold_tcp_mbps", "tcp_mbps"},
	{"ban_for_udp_bandwidth", "threshold_udp_mbps", "udp_mbps"},
	{"ban_for_icmp_bandwidth", "threshold_icmp_mbps", "icmp_mbps"},
	{"ban_for_tcp_syn_bandwidth", "threshold_tcp_syn_mbps", "syn_mbps"},
	{"ban_for_ip_fragments_bandwidth", "threshold_ip_fragments_mbps", "frag_mbps"},
}

// groupSettings are the settings a hostgroup may have, after "NAME_".
var groupSettings = func() []string {
	out := []string{"enable_ban"}
	for _, m := range metrics {
		out = append(out, m.ban, m.threshold)
	}
	return out
}()

// group is one hostgroup to write.
type group struct {
	name      string // Kapkan's
	fnm       string // FastNetMon's, the prefix of its settings ("" for global)
	prefixes  []netip.Prefix
	head      []string // comments above the item
	prefHead  []string
	entry     *entry // the first hostgroup line
	commented bool
}

// thresholds maps the ban settings of a group (prefix "" for the global
// ones) into a thresholds node.
func (im *importer) thresholds(g *group) *ynode {
	c := im.c
	p := ""
	if g.fnm != "" {
		p = g.fnm + "_"
	}
	base := "hostgroups[" + g.name + "].thresholds"
	var dirs, to []string
	if im.in {
		dirs = append(dirs, "incoming")
	}
	if im.out {
		dirs = append(dirs, "outgoing")
	}
	var set []string
	var head []string
	for _, m := range metrics {
		ban, be := c.onOff(p+m.ban, false)
		n, te, ok := c.number(p + m.threshold)
		switch {
		case ban && ok && n > 0 && len(dirs) > 0:
			to = to[:0:0]
			for _, d := range dirs {
				to = append(to, base+"."+d+"."+m.field)
			}
			be.s.set(Mapped, to, "switches on %s", m.threshold)
			te.s.set(Mapped, to, "FastNetMon checks it in each direction it processes")
			set = append(set, fmt.Sprintf("%s: %d", m.field, n))
			head = append(head, be.s.mention()+", "+te.s.mention())
		case ban && len(dirs) == 0:
			for _, e := range []*entry{be, te} {
				if e != nil {
					e.s.set(Unmapped, nil, "process_incoming_traffic and process_outgoing_traffic are both off")
				}
			}
		case ban:
			be.s.set(Unmapped, nil, "on with no %s above 0: FastNetMon would ban on any traffic; left out", p+m.threshold)
			if te != nil {
				te.s.set(Unmapped, nil, "0: FastNetMon would ban on any traffic; left out")
			}
		default:
			if te != nil {
				te.s.set(Unmapped, nil, "%s is off or absent, so FastNetMon does not check it", p+m.ban)
			}
			if be != nil {
				be.s.set(Same, nil, "a Kapkan threshold left out is not checked (%s)", m.field)
			}
		}
	}
	th := mapping("thresholds")
	if len(set) > 0 {
		th.head = append([]string{"FastNetMon checks each threshold in both directions (in > threshold or out > threshold):"}, head...)
		for _, d := range dirs {
			th.add(leaf(d, "{"+strings.Join(set, ", ")+"}"))
		}
	}
	on, ee := c.onOff(p+"enable_ban", false)
	path := base + ".disabled"
	switch {
	case ee == nil:
		th.add(leaf("disabled", "true", fmt.Sprintf("no %senable_ban = on: FastNetMon acts on no attack in this group", p)))
	case !on:
		ee.s.set(Mapped, []string{path}, "FastNetMon acts on no attack in this group; Kapkan reports none")
		th.add(leaf("disabled", "true", ee.s.mention()))
	default:
		ee.s.set(Same, nil, "Kapkan acts on the attacks it detects (dry_run holds the actions back)")
	}
	if len(th.kids) == 0 {
		th.value, th.kids = "{}", nil
		th.head = append(th.head, "no threshold is switched on: nothing is detected in this group")
	}
	return th
}

func (im *importer) hostgroups() {
	c := im.c
	im.in, _ = c.onOff("process_incoming_traffic", true)
	im.out, _ = c.onOff("process_outgoing_traffic", true)
	for _, k := range []string{"process_incoming_traffic", "process_outgoing_traffic"} {
		if e := c.get(k); e != nil && e.s.Status == 0 {
			dir := strings.TrimSuffix(strings.TrimPrefix(k, "process_"), "_traffic")
			if e.value == "on" {
				e.s.set(Mapped, []string{"hostgroups[*].thresholds." + dir}, "the thresholds are written for %s traffic", dir)
			} else {
				e.s.set(Mapped, []string{"hostgroups[*].thresholds." + dir}, "no %s threshold is written", dir)
			}
		}
	}

	// The networks list.
	listPath, from := im.opts.NetworksList, "the command line"
	le := c.get("networks_list_path")
	if listPath == "" {
		listPath, from = defaultNetworksList, "FastNetMon's default"
		if le != nil {
			listPath, from = le.value, "networks_list_path"
		}
	}
	var nets []netLine
	var listNote string
	data, err := im.opts.ReadFile(listPath)
	switch {
	case err == nil:
		nets = parseNetworks(listPath, data, &c.errs)
		im.listRead = true
		listNote = fmt.Sprintf("read %s (%s): %s", safe(listPath), from, networks(len(nets)))
	case im.opts.NetworksList == "" && errors.Is(err, fs.ErrNotExist):
		listNote = fmt.Sprintf("%s (%s) does not exist here; give the networks list as the second argument", safe(listPath), from)
	default:
		c.errs = append(c.errs, &config.Error{File: listPath, Msg: fmt.Sprintf("read networks list: %v", err)})
		return
	}
	if le != nil {
		if im.opts.NetworksList != "" {
			le.s.set(Mapped, []string{"hostgroups[*].prefixes"}, "replaced by %s from the command line", safe(im.opts.NetworksList))
		} else {
			le.s.set(Mapped, []string{"hostgroups[*].prefixes"}, "%s", listNote)
		}
	}
	im.listed = map[netip.Prefix]bool{}
	for _, n := range nets {
		im.listed[n.prefix] = true
	}

	// The hostgroups, in the order of their first line.
	var groups []*group
	byName := map[string]*group{}
	owner := map[netip.Prefix]*group{}
	for _, e := range c.entries {
		if e.key != "hostgroup" {
			continue
		}
		name, list, ok := strings.Cut(e.value, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			c.errAt(e, "%q is not NAME:PREFIXES (want a hostgroup like my_hosts:10.10.10.0/24,10.10.20.0/24)", clip(e.value))
			continue
		}
		kname := strings.ToLower(name)
		if !validName(kname) {
			c.errAt(e, "%q cannot be a Kapkan hostgroup name (want letters, digits, \"_\" and \"-\", starting with a letter or digit)", clip(name))
			continue
		}
		if kname == "global" {
			c.errAt(e, "global is what FastNetMon and this import call the networks of networks_list outside every hostgroup (want another name)")
			continue
		}
		g := byName[kname]
		if g == nil {
			g = &group{name: kname, fnm: name, entry: e}
			byName[kname] = g
			groups = append(groups, g)
		} else if g.fnm != name {
			c.errAt(e, "%q and %q (line %d) are one Kapkan hostgroup name, %s (want names that differ in more than case)", clip(name), g.fnm, g.entry.line, kname)
			continue
		}
		e.s.set(Mapped, []string{"hostgroups[" + kname + "]"}, "a hostgroup of its own")
		g.head = append(g.head, e.s.mention())
		if kname != name {
			g.head = append(g.head, fmt.Sprintf("renamed %s: Kapkan's names are lower case; its settings still start with %s_", kname, safe(name)))
		}
		for _, ps := range strings.Split(list, ",") {
			ps = strings.TrimSpace(ps)
			if ps == "" {
				continue
			}
			p, err := netip.ParsePrefix(ps)
			if err != nil || p.Addr().Is4In6() {
				c.errAt(e, "%q is not a network (want CIDR like 10.10.10.0/24)", clip(ps))
				continue
			}
			if m := p.Masked(); m != p {
				g.prefHead = append(g.prefHead, fmt.Sprintf("%s has host bits set: read as %s", p, m))
				p = m
			}
			if prev, taken := owner[p]; taken {
				if prev == g {
					continue
				}
				// FastNetMon maps a network to one hostgroup: the last one read.
				prev.prefixes = slices.DeleteFunc(prev.prefixes, func(q netip.Prefix) bool { return q == p })
				prev.prefHead = append(prev.prefHead, fmt.Sprintf("%s is also in hostgroup %s (line %d), which FastNetMon applies to it, as Kapkan does", p, g.name, e.line))
			}
			owner[p] = g
			g.prefixes = append(g.prefixes, p)
			if im.listRead && !im.listed[p] {
				g.prefHead = append(g.prefHead, fmt.Sprintf("%s is not in networks_list: FastNetMon applied no hostgroup to it (it finds a host's group through its networks_list entry); Kapkan applies this one", p))
			}
		}
	}

	// What networks_list has outside every hostgroup is the global group.
	global := &group{name: "global"}
	var dropped []string
	seen := map[netip.Prefix]bool{}
	for _, n := range nets {
		if n.note != "" {
			global.prefHead = append(global.prefHead, fmt.Sprintf("%s line %d: %s", safe(listPath), n.line, n.note))
		}
		switch {
		case owner[n.prefix] != nil:
			dropped = append(dropped, fmt.Sprintf("%s (in hostgroup %s)", n.prefix, owner[n.prefix].name))
		case seen[n.prefix]:
			dropped = append(dropped, fmt.Sprintf("%s (listed again at line %d)", n.prefix, n.line))
		default:
			seen[n.prefix] = true
			global.prefixes = append(global.prefixes, n.prefix)
		}
	}
	global.head = append(global.head, "The networks of networks_list outside every hostgroup, with FastNetMon's global settings.")
	if le != nil {
		global.head = append(global.head, le.s.mention()+":")
	}
	global.head = append(global.head, listNote)
	if len(dropped) > 0 {
		global.head = append(global.head, "Not repeated here: "+strings.Join(dropped, ", "))
	}
	if len(global.prefixes) == 0 {
		global.commented = true
		global.prefixes = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
		global.prefHead = append(global.prefHead, "203.0.113.0/24 is an example: put your networks here")
	}

	hg := &ynode{key: "hostgroups", seq: true}
	for _, k := range []string{"process_incoming_traffic", "process_outgoing_traffic"} {
		if e := c.get(k); e != nil && e.s.Status == Mapped {
			hg.head = append(hg.head, e.s.mention())
		}
	}
	for _, g := range append([]*group{global}, groups...) {
		item := &ynode{head: g.head, commented: g.commented}
		item.add(leaf("name", g.name))
		var ps []string
		for _, p := range g.prefixes {
			ps = append(ps, p.String())
		}
		if len(ps) == 0 {
			item.commented = true
			ps = []string{"203.0.113.0/24"}
			g.prefHead = append(g.prefHead, "no network left in this hostgroup: 203.0.113.0/24 is an example")
		}
		item.add(&ynode{key: "prefixes", value: flowList(ps), head: g.prefHead})
		item.add(im.thresholds(g))
		hg.items = append(hg.items, item)
	}
	if global.commented {
		why := "networks_list names no network"
		if len(nets) > 0 {
			why = "every network of networks_list is in a hostgroup"
		}
		hg.head = append(hg.head, why+", so the global hostgroup below is a comment:",
			"put your networks in it, then remove its leading #s (and the [] after hostgroups:).")
	}
	im.root.add(hg)

	// enable_ban_ipv6 = off keeps IPv6 out of mitigation.
	if on, e := c.onOff("enable_ban_ipv6", true); e != nil {
		if on {
			e.s.set(Same, nil, "Kapkan detects and mitigates IPv6 as IPv4")
		} else {
			var v6 []string
			for _, n := range nets {
				if n.prefix.Addr().Is6() {
					v6 = append(v6, n.prefix.String())
				}
			}
			for _, g := range groups {
				for _, p := range g.prefixes {
					if p.Addr().Is6() && !im.listed[p] {
						v6 = append(v6, p.String())
					}
				}
			}
			if len(v6) == 0 {
				e.s.set(Same, nil, "no IPv6 network is protected")
			} else {
				e.s.set(Mapped, []string{"mitigation.allowlist"}, "the IPv6 networks are never mitigated (Kapkan still detects and reports their attacks)")
				im.v6Head = []string{e.s.mention() + ": the IPv6 networks are never mitigated, attacks on them still reported:",
					"  " + strings.Join(v6, ", ")}
				im.v6 = v6
			}
		}
	}
}

// networks counts networks in words.
func networks(n int) string {
	if n == 1 {
		return "1 network"
	}
	return fmt.Sprintf("%d networks", n)
}

func validName(s string) bool {
	if s == "" || !isAlnum(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && s[i] != '_' && s[i] != '-' {
			return false
		}
	}
	return true
}

func isAlnum(b byte) bool { return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' }

func (im *importer) mitigation() {
	c := im.c
	mit := im.root.child("mitigation")

	// The whitelist.
	wlPath, from := im.opts.Whitelist, "the command line"
	we := c.get("white_list_path")
	if wlPath == "" {
		wlPath, from = defaultWhitelist, "FastNetMon's default"
		if we != nil {
			wlPath, from = we.value, "white_list_path"
		}
	}
	data, err := im.opts.ReadFile(wlPath)
	var wlNote string
	switch {
	case err == nil:
		nets := parseNetworks(wlPath, data, &c.errs)
		for _, n := range nets {
			im.allowlist = append(im.allowlist, n.prefix.String())
		}
		wlNote = fmt.Sprintf("read %s (%s): %s, never mitigated; unlike FastNetMon, Kapkan still counts their traffic and reports their attacks", safe(wlPath), from, networks(len(nets)))
	case im.opts.Whitelist == "" && errors.Is(err, fs.ErrNotExist):
		wlNote = fmt.Sprintf("%s (%s) does not exist here; give the whitelist as the third argument", safe(wlPath), from)
	default:
		c.errs = append(c.errs, &config.Error{File: wlPath, Msg: fmt.Sprintf("read whitelist: %v", err)})
	}
	if we != nil {
		if im.opts.Whitelist != "" {
			we.s.set(Mapped, []string{"mitigation.allowlist"}, "replaced by %s from the command line", safe(im.opts.Whitelist))
		} else {
			we.s.set(Mapped, []string{"mitigation.allowlist"}, "%s", wlNote)
		}
	}
	if wlNote != "" {
		if we != nil {
			wlNote = we.s.mention() + ": " + wlNote
		}
		im.allowHead = append(im.allowHead, wlNote)
	}
	im.allowlist = append(im.allowlist, im.v6...)
	im.allowHead = append(im.allowHead, im.v6Head...)
	if len(im.allowlist) > 0 {
		mit.add(&ynode{key: "allowlist", list: im.allowlist, head: im.allowHead})
	} else if len(im.allowHead) > 0 {
		mit.add(&ynode{key: "allowlist", seq: true, head: im.allowHead})
	}

	// Ban time.
	if n, e, ok := c.number("ban_time"); ok {
		const day = 24 * 60 * 60
		switch {
		case n == 0:
			e.s.set(Mapped, []string{"mitigation.ttl"}, "0 never unbans in FastNetMon; Kapkan always withdraws in the end: 24h, the default max_ttl")
			mit.add(leaf("ttl", "24h", e.s.mention()+": FastNetMon never unbans; Kapkan withdraws at max_ttl at the latest"))
		case n > 365*day:
			c.errAt(e, "%d seconds is more than a year (want seconds, like 1900)", n)
		default:
			d := (time.Duration(n) * time.Second).String()
			e.s.set(Mapped, []string{"mitigation.ttl"}, "how long an action stays at least")
			mit.add(leaf("ttl", d, e.s.mention()))
			if n > day {
				e.s.To = append(e.s.To, "mitigation.max_ttl")
				mit.add(leaf("max_ttl", d, "longer than the default max_ttl (24h), which would cut it"))
			}
		}
	}
	if on, e := c.onOff("unban_only_if_attack_finished", true); e != nil {
		if on {
			e.s.set(Same, nil, "Kapkan withdraws an action only once its TTL has passed and its attack has ended")
		} else {
			e.s.set(Unmapped, nil, "Kapkan always waits for the attack's end before it withdraws: withdrawing under attack would let the attack back in")
		}
	}
	im.bgp(mit)
	if len(mit.kids) == 0 {
		im.root.kids = slices.DeleteFunc(im.root.kids, func(n *ynode) bool { return n == mit })
	}
}

// speaker is the settings of one FastNetMon BGP integration.
type speaker struct {
	name            string // gobgp or exabgp
	nextHop         string
	nextHop6        string
	community       []string // host communities
	community6      []string
	subnetCommunity []string // keys of subnet communities
	host, subnet    string   // announce switches
	host6, subnet6  string
	other           []string // keys with no equivalent, and why
}

var speakers = []speaker{
	{
		name: "gobgp", nextHop: "gobgp_next_hop", nextHop6: "gobgp_next_hop_ipv6",
		community: []string{"gobgp_community_host"}, community6: []string{"gobgp_community_host_ipv6"},
		subnetCommunity: []string{"gobgp_community_subnet", "gobgp_community_subnet_ipv6"},
		host:            "gobgp_announce_host", subnet: "gobgp_announce_whole_subnet",
		host6: "gobgp_announce_host_ipv6", subnet6: "gobgp_announce_whole_subnet_ipv6",
	},
	{
		name: "exabgp", nextHop: "exabgp_next_hop",
		community:       []string{"exabgp_community_host", "exabgp_community"},
		subnetCommunity: []string{"exabgp_community_subnet"},
		host:            "exabgp_announce_host", subnet: "exabgp_announce_whole_subnet",
		other: []string{"exabgp_command_pipe"},
	},
}

// keys returns every key of the integration.
func (s speaker) keys() []string {
	out := []string{s.name, s.nextHop, s.host, s.subnet}
	out = append(out, s.community...)
	out = append(out, s.subnetCommunity...)
	out = append(out, s.other...)
	if s.nextHop6 != "" {
		out = append(out, s.nextHop6, s.host6, s.subnet6)
		out = append(out, s.community6...)
	}
	return out
}

func (im *importer) bgp(mit *ynode) {
	c := im.c
	var active *speaker
	for i := range speakers {
		s := &speakers[i]
		on, e := c.onOff(s.name, false)
		if on && active == nil {
			active = s
			e.s.set(Unmapped, nil, "Kapkan speaks BGP itself (mitigation.bgp): the routers %s peered with go under mitigation.bgp.peers, with Kapkan's asn and router_id; the next hop and communities were mapped", s.name)
			continue
		}
		why := s.name + " is off"
		if on {
			why = active.name + " is on too; its settings were mapped"
		}
		for _, k := range s.keys() {
			if e := c.get(k); e != nil && e.s.Status == 0 {
				e.s.set(Unmapped, nil, "%s", why)
			}
		}
		if e != nil && !on {
			e.s.set(Same, nil, "Kapkan announces nothing until mitigation.bgp.peers lists a router and dry_run is false")
		}
	}
	if active == nil {
		return
	}
	s := active
	bgp := mapping("bgp")
	bgp.head = []string{
		c.get(s.name).s.mention() + ":",
		"Kapkan embeds its BGP speaker: add the routers " + s.name + " announced to (and asn,",
		"router_id), as in docs/30-configuration.md. Until then nothing is announced.",
	}
	nextHop := func(key, kkey string, want6 bool) {
		e := c.get(key)
		if e == nil {
			return
		}
		a, err := netip.ParseAddr(e.value)
		switch {
		case err != nil || a.Is6() != want6 || a.Zone() != "":
			fam, example := "IPv4", "192.0.2.1"
			if want6 {
				fam, example = "IPv6", "100::1"
			}
			c.errAt(e, "%q is not an %s address (want a next hop like %s)", clip(e.value), fam, example)
		case a.IsUnspecified():
			e.s.set(Unmapped, nil, "%s is no next hop for a blackhole route; Kapkan keeps its default, which the routers must route to a discard interface", a)
		default:
			e.s.set(Mapped, []string{"mitigation.bgp." + kkey}, "the next hop of blackhole routes")
			bgp.add(leaf(kkey, a.String(), e.s.mention()))
		}
	}
	nextHop(s.nextHop, "next_hop_ipv4", false)
	if s.nextHop6 != "" {
		nextHop(s.nextHop6, "next_hop_ipv6", true)
	}
	// The host communities: the first key present counts (exabgp's
	// community_host takes over from its community).
	var comms []string
	var ce *entry
	for _, k := range s.community {
		e := c.get(k)
		if e == nil {
			continue
		}
		if ce != nil {
			e.s.set(Unmapped, nil, "%s takes over for host announces", ce.key)
			continue
		}
		ce = e
		for _, f := range strings.Fields(strings.Trim(e.value, "[]")) {
			if _, err := config.ParseCommunity(f); err != nil {
				c.errAt(e, "%v", err)
			}
			comms = append(comms, quote(f))
		}
		e.s.set(Mapped, []string{"mitigation.bgp.communities"}, "the communities of blackhole routes (they replace Kapkan's default blackhole, no-export)")
	}
	if ce != nil && len(comms) > 0 {
		bgp.add(leaf("communities", flowList(comms), ce.s.mention(), "They replace Kapkan's default [blackhole, no-export]; per-peer communities can differ."))
	}
	for _, k := range s.community6 {
		if e := c.get(k); e != nil {
			if ce != nil && strings.Trim(e.value, "[] ") == strings.Trim(ce.value, "[] ") {
				e.s.set(Same, nil, "the same as %s: Kapkan has one list for both families", ce.key)
			} else {
				e.s.set(Unmapped, nil, "Kapkan has one community list for both families (mitigation.bgp.communities); a peer that wants others for IPv6 gets its own peers[].communities")
			}
		}
	}
	for _, k := range s.subnetCommunity {
		if e := c.get(k); e != nil {
			e.s.set(Unmapped, nil, "Kapkan announces no whole subnets, so no subnet community")
		}
	}
	for _, k := range []string{s.host, s.host6} {
		if on, e := c.onOff(k, true); e != nil {
			if on {
				e.s.set(Same, nil, "Kapkan announces the attacked address itself (/32, /128)")
			} else {
				e.s.set(Unmapped, nil, "Kapkan always announces the attacked address itself; to keep a family unannounced, leave it out of the peers' families")
			}
		}
	}
	for _, k := range []string{s.subnet, s.subnet6} {
		if on, e := c.onOff(k, false); e != nil {
			if on {
				e.s.set(Unmapped, nil, "Kapkan never blackholes a whole network for one attacked address: that would finish the attacker's job")
			} else {
				e.s.set(Same, nil, "Kapkan announces the attacked address, not its network")
			}
		}
	}
	for _, k := range s.other {
		if e := c.get(k); e != nil {
			e.s.set(Unmapped, nil, "Kapkan talks BGP to the routers itself, not through an ExaBGP pipe")
		}
	}
	if len(bgp.kids) > 0 {
		mit.add(bgp)
	}
}

func (im *importer) notify() {
	e := im.c.get("notify_script_path")
	if e == nil {
		return
	}
	item := &ynode{}
	item.add(leaf("name", "fastnetmon-script"), leaf("type", "exec"), leaf("command", quote(e.value)), leaf("mode", "fastnetmon"))
	head := []string{e.s.mention(),
		"Called as FastNetMon does (IP DIRECTION PPS ban|unban, details on stdin), only",
		"for real mitigations: not in dry-run, and never with attack_details (docs/75-notifications.md)."}
	if !strings.HasPrefix(e.value, "/") || !im.opts.Executable(e.value) {
		item.commented = true
		e.s.set(Unmapped, nil, "not an executable file here: FastNetMon skips a missing script, Kapkan refuses one at start, so the notifier is written as a comment")
		head = append(head, "Not an executable file here, so written as a comment: install the script,",
			"then remove the leading #s (and the [] after notify:).")
	} else {
		e.s.set(Mapped, []string{"notify[fastnetmon-script]"}, "an exec notifier in fastnetmon mode")
	}
	item.head = head
	im.root.add(&ynode{key: "notify", seq: true, items: []*ynode{item}})
}

// reasons for the settings that have no equivalent, by key.
var reasons = map[string]string{}

func init() {
	for _, r := range []struct {
		why  string
		keys []string
	}{
		{"port-mirror capture: Kapkan takes flow telemetry only (sFlow, NetFlow, IPFIX); export flows from the routers instead",
			[]string{"mirror_afpacket", "mirror_afxdp", "poll_mode_xdp", "xdp_set_promisc", "zero_copy_xdp", "force_native_mode_xdp",
				"xdp_read_packet_length_from_ip_header", "microcode_xdp_path", "mirror_af_packet_custom_sampling_rate",
				"mirror_af_packet_fanout_mode", "af_packet_read_packet_length_from_ip_header", "mirror_netmap",
				"netmap_sampling_ratio", "netmap_read_packet_length_from_ip_header", "pcap", "interfaces"}},
		{"Kapkan logs to stderr (log.format text or json); forwarding to syslog is the service manager's job (journald)",
			[]string{"logging_local_syslog_logging", "logging_remote_syslog_logging", "logging_remote_syslog_server", "logging_remote_syslog_port"}},
		{"Kapkan sends no usage reports: there is nothing to switch off", []string{"disable_usage_report"}},
		{"no traffic dump to a log file; kapkan replay --records prints the records of a capture", []string{"dump_all_traffic", "dump_other_traffic"}},
		{"Kapkan keeps detection.sample_size flow records (2000 by default) per attack for classification; 20 would be too few",
			[]string{"ban_details_records_count"}},
		{"a redraw period of fastnetmon_client; kapkan top redraws on its own", []string{"check_period"}},
		{"Kapkan counts flows per second with no switch", []string{"enable_connection_tracking"}},
		{"Kapkan counts in one-second buckets, always; detection.window is the averaging period", []string{"speed_calculation_delay"}},
		{"no such switch: Kapkan takes the length the telemetry reports", []string{"sflow_read_packet_length_from_ip_header"}},
		{"Kapkan writes no pcap of attacks; the attack's flow sample feeds classification", []string{"collect_attack_pcap_dumps"}},
		{"attack history: Kapkan keeps it in its own store (store.path, or store.clickhouse.dsn) and serves it on /api/v1/attacks",
			[]string{"redis_enabled", "redis_port", "redis_host", "redis_prefix", "mongodb_enabled", "mongodb_host", "mongodb_port", "mongodb_database_name"}},
		{"Kapkan exports Prometheus metrics on /metrics of api.listen (docs/71-metrics.md), nothing to InfluxDB or Graphite",
			[]string{"influxdb", "influxdb_host", "influxdb_port", "influxdb_database", "influxdb_auth", "influxdb_user", "influxdb_password",
				"influxdb_push_period", "graphite", "graphite_host", "graphite_port", "graphite_prefix", "graphite_push_period"}},
		{"Kapkan's metrics are on /metrics of api.listen (127.0.0.1:8080 by default), not on a port of their own; their names differ (docs/71-metrics.md)",
			[]string{"prometheus", "prometheus_host", "prometheus_port"}},
		{"Kapkan's API is HTTP and JSON on api.listen, always on (docs/70-api.md); there is no gRPC API", []string{"enable_api"}},
		{"no pid file: run Kapkan under systemd", []string{"pid_path"}},
		{"kapkan top reads the API, not a file", []string{"cli_stats_file_path", "cli_stats_ipv6_file_path"}},
		{"a setting of fastnetmon_client; kapkan top has its own flags (kapkan top -h)", []string{"sort_parameter", "max_ips_in_list"}},
		{"Kapkan exports no traffic to Kafka", []string{"kafka_traffic_export", "kafka_traffic_export_topic", "kafka_traffic_export_format", "kafka_traffic_export_brokers"}},
	} {
		for _, k := range r.keys {
			reasons[k] = r.why
		}
	}
}

// leftovers gives every setting not handled above its reason.
func (im *importer) leftovers() {
	for _, e := range im.c.entries {
		if e.s.Status != 0 {
			continue
		}
		if why, ok := reasons[e.key]; ok {
			e.s.set(Unmapped, nil, "%s", why)
			continue
		}
		switch e.key {
		case "monitor_local_ip_addresses", "monitor_openvz_vps_ip_addresses":
			if e.value == "off" {
				e.s.set(Same, nil, "Kapkan watches only the networks its hostgroups list")
			} else {
				e.s.set(Unmapped, nil, "Kapkan watches only the networks its hostgroups list: add this machine's addresses to one if they need watching")
			}
			continue
		}
		if g, ok := groupOf(e.key); ok {
			e.s.set(Unmapped, nil, "no hostgroup %s is declared (want hostgroup = %s:NETWORKS before its settings)", safe(g), safe(g))
			continue
		}
		e.s.set(Unmapped, nil, "not a setting of FastNetMon Community 1.2.4 (a typo, or a newer version's)")
	}
}

// groupOf returns the hostgroup a key would be a setting of.
func groupOf(key string) (string, bool) {
	for _, s := range groupSettings {
		if g, ok := strings.CutSuffix(key, "_"+s); ok && g != "" {
			return g, true
		}
	}
	return "", false
}

// tail is the closing comments: the settings Kapkan behaves like already,
// and those it has no equivalent for.
func (im *importer) tail(settings []*Setting, body string) []string {
	var mapped, elsewhere, same, un []string
	for _, s := range settings {
		switch s.Status {
		case Mapped:
			mapped = append(mapped, s.mention())
			if !strings.Contains(body, s.mention()) {
				elsewhere = append(elsewhere, "  "+s.mention()+": "+safe(strings.Join(s.To, ", "))+": "+safe(s.Note))
			}
		case Same:
			same = append(same, "  "+s.mention()+": "+safe(s.Note))
		case Unmapped:
			un = append(un, "  "+s.mention()+": "+safe(s.Note))
		}
	}
	out := []string{"", fmt.Sprintf("%d settings of %s: %d mapped (named above), %d already Kapkan's behaviour, %d not mapped.",
		len(settings), safe(im.c.file), len(mapped), len(same), len(un))}
	if len(elsewhere) > 0 {
		out = append(out, "", "Mapped, to the keys named:")
		out = append(out, elsewhere...)
	}
	if len(same) > 0 {
		out = append(out, "", "Already Kapkan's behaviour, nothing to write:")
		out = append(out, same...)
	}
	if len(un) > 0 {
		out = append(out, "", "Not mapped, and why:")
		out = append(out, un...)
	}
	return out
}
