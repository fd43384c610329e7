package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Accepted values of the log section.
var (
	LogLevels  = []string{"debug", "info", "warn", "error"}
	LogFormats = []string{"text", "json"}
)

// Bounds of detection.window.
const (
	MinWindow = time.Second
	MaxWindow = 300 * time.Second
)

var (
	hostgroupName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	hostName      = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$`)
)

// Validate checks the values of a decoded configuration and returns every
// problem as Errors, or nil. For a Config from Load or Parse the problems
// carry the position of the offending node (or of the nearest enclosing one
// the file has, for a value left to its default); for a Config built in code
// they carry only the key path.
func (c *Config) Validate() error {
	v := &validator{c: c}
	v.log()
	v.ingest()
	v.detection()
	v.hostgroups()
	v.rules()
	v.api()
	v.mitigation()
	v.notify()
	v.store()
	v.incidents()
	return v.errs.err()
}

type validator struct {
	c    *Config
	errs Errors
}

func (v *validator) errorf(path, format string, args ...any) {
	p := v.c.at(path)
	v.errs = append(v.errs, &Error{
		File: v.c.file, Line: p.line, Col: p.col, Path: path,
		Msg: fmt.Sprintf(format, args...),
	})
}

// at returns the position of path, or of its nearest ancestor the file has.
func (c *Config) at(path string) position {
	for {
		if p, ok := c.pos[path]; ok {
			return p
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			if path == "" {
				return position{}
			}
			path = ""
			continue
		}
		path = path[:i]
	}
}

// where describes the position of path for a message pointing elsewhere:
// "hostgroups[0].prefixes[0] (line 7)", or just the path without positions.
func (c *Config) where(path string) string {
	if p, ok := c.pos[path]; ok {
		return fmt.Sprintf("%s (line %d)", path, p.line)
	}
	return path
}

func (v *validator) log() {
	if !slices.Contains(LogLevels, v.c.Log.Level) {
		v.errorf("log.level", "%q is not a log level (want one of %s)", v.c.Log.Level, strings.Join(LogLevels, ", "))
	}
	if !slices.Contains(LogFormats, v.c.Log.Format) {
		v.errorf("log.format", "%q is not a log format (want one of %s)", v.c.Log.Format, strings.Join(LogFormats, ", "))
	}
}

func (v *validator) ingest() {
	in := &v.c.Ingest
	listeners := []struct {
		path, example string
		l             Listener
		ok            bool
	}{
		{path: "ingest.sflow", example: DefaultSFlowListen, l: in.SFlow},
		{path: "ingest.netflow", example: DefaultNetFlowListen, l: in.NetFlow},
	}
	for i := range listeners {
		li := &listeners[i]
		if li.l.Listen != "" {
			li.ok = v.hostPort(li.path+".listen", li.l.Listen, "UDP", li.example)
		}
		if li.l.Workers < 0 {
			v.errorf(li.path+".workers", "%d is negative (want 0 for one per CPU, or a positive count)", li.l.Workers)
		}
		if li.l.ReadBuffer < 0 {
			v.errorf(li.path+".read_buffer", "%d is negative (want a size in bytes, or 0 for the system default)", li.l.ReadBuffer)
		}
	}
	sf, nf := listeners[0], listeners[1]
	switch {
	case sf.l.Listen == "" && nf.l.Listen == "":
		v.errorf("ingest", "both listeners are disabled (want a listen address for sflow, netflow or both)")
	case sf.ok && nf.ok && listenOverlap(sf.l.Listen, nf.l.Listen):
		// Point at the address the file sets, the netflow one if it sets both.
		at, other := nf, sf
		_, nfSet := v.c.pos[nf.path+".listen"]
		_, sfSet := v.c.pos[sf.path+".listen"]
		if sfSet && !nfSet {
			at, other = sf, nf
		}
		v.errorf(at.path+".listen", "%q overlaps %s.listen %q: both would listen on UDP port %s (want another port, or addresses that do not overlap)",
			at.l.Listen, other.path, other.l.Listen, port(at.l.Listen))
	}

	if in.DefaultSamplingRate < 1 {
		v.errorf("ingest.default_sampling_rate", "%d is not a sampling rate (want 1 or more; 1 means unsampled)", in.DefaultSamplingRate)
	}

	for _, l := range []struct {
		key      string
		v, limit int
	}{
		{"ingest.max_exporters", in.MaxExporters, 1 << 24},
		{"ingest.max_templates", in.MaxTemplates, 1 << 24},
		{"ingest.max_pending_bytes", in.MaxPendingBytes, 1 << 34},
	} {
		if l.v < 1 || l.v > l.limit {
			v.errorf(l.key, "%d is out of range (want 1 to %d)", l.v, l.limit)
		}
	}

	addrs := make(map[netip.Addr]int)
	names := make(map[string]int)
	for i, e := range in.Exporters {
		path := fmt.Sprintf("ingest.exporters[%d]", i)
		switch {
		case !e.Address.IsValid():
			v.errorf(path+".address", "no address (want the exporter's address, like 192.0.2.1)")
		case e.Address.Zone() != "":
			v.errorf(path+".address", "%q has a zone (want the address without %%%s)", e.Address, e.Address.Zone())
		default:
			a := e.Address.Unmap()
			if j, dup := addrs[a]; dup {
				v.errorf(path+".address", "%s is already configured by %s", e.Address,
					v.c.where(fmt.Sprintf("ingest.exporters[%d]", j)))
			} else {
				addrs[a] = i
			}
		}
		_, setRate := v.c.pos[path+".sampling_rate"]
		switch {
		case e.SamplingRate == 0 && setRate:
			v.errorf(path+".sampling_rate", "0 is not a sampling rate (want 1 or more; leave the key out for no override)")
		case e.SamplingRate == 0 && e.Name == "":
			v.errorf(path, "sets neither sampling_rate nor name (want at least one)")
		}
		if e.Name != "" {
			if strings.TrimSpace(e.Name) != e.Name || strings.ContainsFunc(e.Name, unicode.IsControl) {
				v.errorf(path+".name", "%q has spaces around it or control characters (want a plain name like \"edge1\")", e.Name)
			}
			if j, dup := names[e.Name]; dup {
				v.errorf(path+".name", "%q is already the name of %s", e.Name,
					v.c.where(fmt.Sprintf("ingest.exporters[%d]", j)))
			} else {
				names[e.Name] = i
			}
		}
	}
}

func (v *validator) detection() {
	w := v.c.Detection.Window.Duration
	switch {
	case w < MinWindow || w > MaxWindow:
		v.errorf("detection.window", "%s is out of range (want %ds to %ds)", w, MinWindow/time.Second, MaxWindow/time.Second)
	case w%time.Second != 0:
		v.errorf("detection.window", "%s is not a whole number of seconds (want e.g. %s)", w, w.Truncate(time.Second))
	}
	d := v.c.Detection
	if c := d.Cooldown.Duration; c < time.Second || c > 24*time.Hour {
		v.errorf("detection.cooldown", "%s is out of range (want 1s to 24h)", c)
	}
	if d.HysteresisPercent > 90 {
		v.errorf("detection.hysteresis_percent", "%d is out of range (want 0 to 90)", d.HysteresisPercent)
	}
	if d.Shards < 0 || d.Shards > 256 {
		v.errorf("detection.shards", "%d is out of range (want 0 for one per CPU, up to 256)", d.Shards)
	}
	if d.QueueSize < 1 || d.QueueSize > 1<<20 {
		v.errorf("detection.queue_size", "%d is out of range (want 1 to 1048576)", d.QueueSize)
	}
	if d.SampleSize < 1 || d.SampleSize > 100000 {
		v.errorf("detection.sample_size", "%d is out of range (want 1 to 100000)", d.SampleSize)
	}
	if d.MaxHot < 1 || d.MaxHot > 1<<20 {
		v.errorf("detection.max_hot", "%d is out of range (want 1 to 1048576)", d.MaxHot)
	}
}

func (v *validator) hostgroups() {
	names := make(map[string]int)
	type seenPrefix struct {
		group int
		path  string
	}
	prefixes := make(map[netip.Prefix]seenPrefix)
	for i, hg := range v.c.Hostgroups {
		path := fmt.Sprintf("hostgroups[%d]", i)
		v.listName(names, "hostgroups", i, hg.Name, "", `a name like "customers"`, hostgroupName, validNameWant)
		v.ignoreSources(path, hg.IgnoreSources)
		if len(hg.Prefixes) == 0 {
			v.errorf(path+".prefixes", "no prefixes (want at least one, like [203.0.113.0/24])")
		}
		for j, p := range hg.Prefixes {
			ppath := fmt.Sprintf("%s.prefixes[%d]", path, j)
			if !p.IsValid() {
				v.errorf(ppath, "no prefix (want CIDR like 203.0.113.0/24)")
				continue
			}
			if m := p.Masked(); m != p {
				v.errorf(ppath, "%s has host bits set (want %s)", p, m)
			}
			key := p.Masked()
			first, dup := prefixes[key]
			switch {
			case !dup:
				prefixes[key] = seenPrefix{i, ppath}
			case first.group == i:
				v.errorf(ppath, "%s is already listed as %s", key, v.c.where(first.path))
			default:
				v.errorf(ppath, "%s is already in hostgroup %q as %s; a prefix belongs to one hostgroup only",
					key, v.c.Hostgroups[first.group].Name, v.c.where(first.path))
			}
		}
	}
}

// ignoreSources checks a hostgroup's ignore list.
func (v *validator) ignoreSources(path string, list []netip.Prefix) {
	for j, p := range list {
		ppath := fmt.Sprintf("%s.ignore_sources[%d]", path, j)
		switch {
		case !p.IsValid():
			v.errorf(ppath, "no prefix (want CIDR like 198.51.100.0/24)")
		case p.Masked() != p:
			v.errorf(ppath, "%s has host bits set (want %s)", p, p.Masked())
		}
	}
}

func (v *validator) rules() {
	v.ruleDirs("rules.dirs", v.c.Rules.Dirs)
	v.ruleDirs("rules.shadow_dirs", v.c.Rules.ShadowDirs)
	if p := v.c.Rules.PollInterval.Duration; p < 100*time.Millisecond || p > time.Hour {
		v.errorf("rules.poll_interval", "%s is out of range (want 100ms to 1h)", p)
	}
}

// ruleDirs checks a list of rule directories: no empty name, none twice.
func (v *validator) ruleDirs(key string, dirs []string) {
	seen := map[string]int{}
	for i, d := range dirs {
		path := fmt.Sprintf("%s[%d]", key, i)
		if strings.TrimSpace(d) == "" {
			v.errorf(path, "empty directory name")
			continue
		}
		if j, dup := seen[d]; dup {
			v.errorf(path, "%q is already listed as %s", d, v.c.where(fmt.Sprintf("%s[%d]", key, j)))
		}
		seen[d] = i
	}
}

func (v *validator) api() {
	if v.c.API.Listen == "" {
		v.errorf("api.listen", "no address (want host:port, like %q)", DefaultAPIListen)
		return
	}
	v.hostPort("api.listen", v.c.API.Listen, "TCP", DefaultAPIListen)
	v.apiTokens()
}

// tokenName is an API token's name (envName, the name of an environment
// variable, is in notify.go).
var tokenName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// apiTokens checks the token list; the secrets are read at start, by the
// API, never here (a check on another host has no access to them).
func (v *validator) apiTokens() {
	seen := map[string]int{}
	for i, tk := range v.c.API.Tokens {
		p := fmt.Sprintf("api.tokens[%d]", i)
		v.listName(seen, "api.tokens", i, tk.Name, ".name", "one for the logs, like noc", tokenName,
			"a token name (want letters, digits, '-', '_' or '.')")
		if tk.Scope != ScopeRead && tk.Scope != ScopeOperate {
			v.errorf(p+".scope", "%q is not a scope (want read or operate)", tk.Scope)
		}
		switch {
		case tk.TokenFile == "" && tk.TokenEnv == "":
			v.errorf(p, "no token_file or token_env (want one: the token itself is never written in the configuration)")
		case tk.TokenFile != "" && tk.TokenEnv != "":
			v.errorf(p+".token_env", "both token_file and token_env are set (want one of them)")
		case tk.TokenEnv != "" && !envName.MatchString(tk.TokenEnv):
			v.errorf(p+".token_env", "%q is not an environment variable name (want one like KAPKAN_TOKEN)", tk.TokenEnv)
		}
	}
}

// hostPort checks a listen address and reports whether it is usable.
func (v *validator) hostPort(path, s, network, example string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		v.errorf(path, "%q is not host:port (want an address like %q; use [ ] around an IPv6 address)", s, example)
		return false
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		v.errorf(path, "%q has port %q (want a %s port number from 0 to 65535)", s, port, network)
		return false
	}
	switch {
	case looksLikeIP(host):
		if _, err := netip.ParseAddr(host); err != nil {
			v.errorf(path, "%q has host %q, which is not an IP address (want one like 192.0.2.10, or nothing for every address)", s, host)
			return false
		}
	case host != "" && !hostName.MatchString(host):
		v.errorf(path, "%q has host %q, which is neither an IP address nor a host name (want one like 192.0.2.10, or nothing for every address)", s, host)
		return false
	}
	return true
}

// port returns the port of a valid host:port.
func port(hostport string) string {
	_, p, _ := net.SplitHostPort(hostport)
	return p
}

// looksLikeIP tells an attempted IP literal from a host name.
func looksLikeIP(h string) bool {
	if strings.Contains(h, ":") {
		return true
	}
	return h != "" && strings.Trim(h, "0123456789.") == ""
}

// listenOverlap reports whether two valid UDP listen addresses would claim the
// same socket: the same port, and hosts of which one covers the other. An
// empty host and "::" listen on every address (IPv4 included, as Linux does
// by default); "0.0.0.0" on every IPv4 address; host names are compared as
// written. Port 0 picks a free port and overlaps nothing.
func listenOverlap(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	na, _ := strconv.Atoi(pa)
	nb, _ := strconv.Atoi(pb)
	if na != nb || na == 0 {
		return false
	}
	return hostCovers(ha, hb) || hostCovers(hb, ha)
}

// hostCovers reports whether listening on host a includes host b.
func hostCovers(a, b string) bool {
	aa, aerr := netip.ParseAddr(a)
	ba, berr := netip.ParseAddr(b)
	switch {
	case a == "" || (aerr == nil && aa == netip.IPv6Unspecified()):
		return true
	case aerr == nil && aa == netip.IPv4Unspecified():
		return berr != nil || ba.Unmap().Is4()
	case aerr == nil && berr == nil:
		return aa.Unmap() == ba.Unmap()
	}
	return strings.EqualFold(a, b)
}

func (v *validator) mitigation() {
	m := v.c.Mitigation
	for i, p := range m.Allowlist {
		if p != p.Masked() {
			v.errorf(fmt.Sprintf("mitigation.allowlist[%d]", i), "%s has host bits set (want %s)", p, p.Masked())
		}
	}
	for _, c := range []struct {
		path string
		n    int
	}{{"mitigation.max_active_blackholes", m.MaxActiveBlackholes}, {"mitigation.max_active_flowspec", m.MaxActiveFlowSpec}, {"mitigation.max_new_per_minute", m.MaxNewPerMinute}} {
		if c.n < 0 || c.n > 1_000_000 {
			v.errorf(c.path, "%d is out of range (want 0 to 1000000; 0 allows none)", c.n)
		}
	}
	if m.TTL.Duration < time.Second {
		v.errorf("mitigation.ttl", "%s is too short (want at least 1s, like 10m)", m.TTL)
	}
	if m.MaxTTL.Duration < m.TTL.Duration {
		v.errorf("mitigation.max_ttl", "%s is shorter than mitigation.ttl %s (want at least as long)", m.MaxTTL, m.TTL)
	}
	if m.FlapWindow.Duration < 0 {
		v.errorf("mitigation.flap_window", "%s is negative (want 0 for no flap damping, or a duration like 1h)", m.FlapWindow)
	}
	if m.FlapMultiplier < 1 || m.FlapMultiplier > 100 {
		v.errorf("mitigation.flap_multiplier", "%d is out of range (want 1 to 100; 1 turns flap damping off)", m.FlapMultiplier)
	}
	b := m.BGP
	if b.ListenPort < -1 || b.ListenPort > 65535 {
		v.errorf("mitigation.bgp.listen_port", "%d is out of range (want -1 for no listener, or a TCP port)", b.ListenPort)
	}
	if !b.NextHopIPv4.Is4() {
		v.errorf("mitigation.bgp.next_hop_ipv4", "%s is not an IPv4 address (want one like 192.0.2.1)", b.NextHopIPv4)
	}
	if !b.NextHopIPv6.Is6() || b.NextHopIPv6.Is4In6() {
		v.errorf("mitigation.bgp.next_hop_ipv6", "%s is not an IPv6 address (want one like 100::1)", b.NextHopIPv6)
	}
	v.communities("mitigation.bgp.communities", b.Communities)
	if len(b.Peers) > 0 {
		if b.ASN == 0 {
			v.errorf("mitigation.bgp.asn", "no ASN (want Kapkan's AS number, like 65010)")
		}
		if !b.RouterID.Is4() {
			v.errorf("mitigation.bgp.router_id", "no IPv4 router id (want an address like 192.0.2.10)")
		}
	}
	seen := map[netip.Addr]int{}
	for i, p := range b.Peers {
		path := fmt.Sprintf("mitigation.bgp.peers[%d]", i)
		if !p.Address.IsValid() {
			v.errorf(path+".address", "no address (want the router's address, like 127.0.0.1)")
		} else if j, dup := seen[p.Address]; dup {
			v.errorf(path+".address", "%s is already the address of %s", p.Address, v.c.where(fmt.Sprintf("mitigation.bgp.peers[%d]", j)))
		} else {
			seen[p.Address] = i
		}
		if p.ASN == 0 {
			v.errorf(path+".asn", "no ASN (want the router's AS number, like 65000)")
		}
		for j, f := range p.Families {
			if !slices.Contains(BGPFamilies, f) {
				v.errorf(fmt.Sprintf("%s.families[%d]", path, j), "%q is not a family (want one of %s)", f, strings.Join(BGPFamilies, ", "))
			}
		}
		v.communities(path+".communities", p.Communities)
		if p.NextHopIPv4.IsValid() && !p.NextHopIPv4.Is4() {
			v.errorf(path+".next_hop_ipv4", "%s is not an IPv4 address", p.NextHopIPv4)
		}
		if p.NextHopIPv6.IsValid() && (!p.NextHopIPv6.Is6() || p.NextHopIPv6.Is4In6()) {
			v.errorf(path+".next_hop_ipv6", "%s is not an IPv6 address", p.NextHopIPv6)
		}
		v.fileKey(path+".password_file", p.PasswordFile)
		if t := p.GracefulRestartTime.Duration; t < time.Second || t > 4095*time.Second || t%time.Second != 0 {
			v.errorf(path+".graceful_restart_time", "%s is out of range (want whole seconds from 1s to 4095s, like 2m)", p.GracefulRestartTime)
		}
		if t := p.LongLivedStaleTime.Duration; t < 0 || t > 16777215*time.Second || t%time.Second != 0 {
			v.errorf(path+".long_lived_stale_time", "%s is out of range (want 0 for none, or whole seconds up to 16777215s, like 1h)", p.LongLivedStaleTime)
		} else if t > 0 && !p.GracefulRestart {
			v.errorf(path+".long_lived_stale_time", "%s is set with graceful_restart false (want graceful_restart true, or 0)", p.LongLivedStaleTime)
		}
	}
}

// MaxPasswordLen is the longest TCP-MD5 password Linux takes
// (TCP_MD5SIG_MAXKEYLEN).
const MaxPasswordLen = 80

// PeerPasswords reads the TCP-MD5 password of each BGP peer from its
// password_file ("" for a peer without one), whitespace around it
// trimmed. A file that is missing, unreadable, empty or too long is an
// error positioned at its key; no error carries the password.
func (c *Config) PeerPasswords() ([]string, error) {
	out := make([]string, len(c.Mitigation.BGP.Peers))
	var errs Errors
	for i, p := range c.Mitigation.BGP.Peers {
		if p.PasswordFile == "" {
			continue
		}
		path := fmt.Sprintf("mitigation.bgp.peers[%d].password_file", i)
		b, err := os.ReadFile(p.PasswordFile)
		if err != nil {
			errs = append(errs, c.ErrorAt(path, "%v (want a file kapkan can read, holding the session's TCP-MD5 password)", err))
			continue
		}
		pw := strings.TrimSpace(string(b))
		switch {
		case pw == "":
			errs = append(errs, c.ErrorAt(path, "%s is empty (want the session's TCP-MD5 password in it)", p.PasswordFile))
		case len(pw) > MaxPasswordLen:
			errs = append(errs, c.ErrorAt(path, "the password in %s is %d bytes long (want at most %d)", p.PasswordFile, len(pw), MaxPasswordLen))
		default:
			out[i] = pw
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

// Community names accepted besides ASN:VALUE.
var communityNames = map[string]uint32{
	"blackhole":    0xFFFF029A, // 65535:666, RFC 7999
	"no-export":    0xFFFFFF01,
	"no-advertise": 0xFFFFFF02,
}

// ParseCommunity reads a BGP community: ASN:VALUE (each 0-65535) or one of
// the names blackhole, no-export, no-advertise.
func ParseCommunity(s string) (uint32, error) {
	if c, ok := communityNames[s]; ok {
		return c, nil
	}
	a, b, ok := strings.Cut(s, ":")
	hi, err1 := strconv.ParseUint(a, 10, 16)
	lo, err2 := strconv.ParseUint(b, 10, 16)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%q is not a community (want ASN:VALUE with each part 0-65535, like 65535:666, or blackhole, no-export, no-advertise)", s)
	}
	return uint32(hi)<<16 | uint32(lo), nil
}

func (v *validator) communities(path string, list []string) {
	for i, c := range list {
		if _, err := ParseCommunity(c); err != nil {
			v.errorf(fmt.Sprintf("%s[%d]", path, i), "%s", err)
		}
	}
}

// MinStoreBytes is the smallest store.max_bytes: a bolt file holds a few
// pages even when empty.
const MinStoreBytes = 1 << 20

func (v *validator) store() {
	s := v.c.Store
	if s.Retention.Duration < 0 {
		v.errorf("store.retention", "%s is negative (want 0 to keep everything, or a duration like 90d)", s.Retention)
	}
	if s.MaxBytes != 0 && s.MaxBytes < MinStoreBytes {
		v.errorf("store.max_bytes", "%d is too small (want 0 for no bound, or at least %d)", s.MaxBytes, MinStoreBytes)
	}
	if dsn := s.ClickHouse.DSN; dsn != "" {
		u, err := url.Parse(dsn)
		switch {
		case err != nil:
			v.errorf("store.clickhouse.dsn", "the value does not parse as a URL (want clickhouse://host:port/database; not shown, it may hold a password)")
		case !slices.Contains([]string{"clickhouse", "tcp", "http", "https"}, u.Scheme) || u.Host == "":
			v.errorf("store.clickhouse.dsn", "scheme %q or host missing (want clickhouse://host:port/database)", u.Scheme)
		}
	}
}

// validNameWant is what a hostgroup or notifier name must be.
const validNameWant = `a valid name (want lower-case letters, digits, "_" and "-", starting with a letter or digit)`

// listName checks the name of item i of the list at path list: present
// (else "want" example), matching pattern (else "is not" invalid), and not
// the name of an earlier item (named by its path and suffix, e.g. ".name").
func (v *validator) listName(seen map[string]int, list string, i int, name, suffix, example string, pattern *regexp.Regexp, invalid string) {
	path := fmt.Sprintf("%s[%d].name", list, i)
	switch {
	case name == "":
		v.errorf(path, "no name (want %s)", example)
	case !pattern.MatchString(name):
		v.errorf(path, "%q is not %s", name, invalid)
	default:
		if j, dup := seen[name]; dup {
			v.errorf(path, "%q is already the name of %s", name, v.c.where(fmt.Sprintf("%s[%d]%s", list, j, suffix)))
		} else {
			seen[name] = i
		}
	}
}

// MinIncidentBytes is the smallest incidents.ring_bytes and
// incidents.max_bytes: room for a few dozen datagrams.
const MinIncidentBytes = 64 << 10

func (v *validator) incidents() {
	in := v.c.Incidents
	if in.RingBytes != 0 && in.RingBytes < MinIncidentBytes {
		v.errorf("incidents.ring_bytes", "%d is too small (want 0 to turn the flight recorder off, or at least %d)", in.RingBytes, MinIncidentBytes)
	}
	if in.Before.Duration < 0 {
		v.errorf("incidents.before", "%s is negative (want a duration like 10s)", in.Before)
	}
	if in.After.Duration < 0 {
		v.errorf("incidents.after", "%s is negative (want a duration like 60s)", in.After)
	}
	if in.MaxBytes < MinIncidentBytes {
		v.errorf("incidents.max_bytes", "%d is too small (want at least %d)", in.MaxBytes, MinIncidentBytes)
	}
	if in.Keep < 1 {
		v.errorf("incidents.keep", "%d (want at least 1)", in.Keep)
	}
}
