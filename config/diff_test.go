package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const diffBase = `
dry_run: false
ingest:
  exporters:
    - address: 192.0.2.10
      sampling_rate: 1000
hostgroups:
  - name: customers
    prefixes: [203.0.113.0/24]
    thresholds:
      incoming: {pps: 100000}
rules:
  dirs: [/etc/kapkan/rules]
mitigation:
  allowlist: [203.0.113.53/32]
  bgp:
    asn: 64512
    router_id: 192.0.2.1
    peers:
      - address: 192.0.2.254
        asn: 64512
        families: [ipv4-unicast]
`

func parseBase(t *testing.T) *Config {
	t.Helper()
	c, err := Parse("base.yaml", []byte(diffBase))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDiff pins, key by key, what a reload applies and what needs a
// restart.
func TestDiff(t *testing.T) {
	tests := []struct {
		name          string
		change        func(c *Config)
		live, restart []string
	}{
		{name: "nothing", change: func(c *Config) {}},
		{name: "threshold lowered", change: func(c *Config) { c.Hostgroups[0].Thresholds.Incoming.PPS = 50000 },
			live: []string{"hostgroups"}},
		{name: "prefix added", change: func(c *Config) {
			c.Hostgroups[0].Prefixes = append(c.Hostgroups[0].Prefixes, netip.MustParsePrefix("198.18.0.0/24"))
		}, live: []string{"hostgroups"}},
		{name: "ignore list", change: func(c *Config) {
			c.Hostgroups[0].IgnoreSources = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
		}, live: []string{"hostgroups"}},
		{name: "cooldown and hysteresis", change: func(c *Config) {
			c.Detection.Cooldown.Duration = time.Minute
			c.Detection.HysteresisPercent = 20
		}, live: []string{"detection.cooldown", "detection.hysteresis_percent"}},
		{name: "engine sizes", change: func(c *Config) {
			c.Detection.Window.Duration = 10 * time.Second
			c.Detection.Shards = 7
			c.Detection.QueueSize = 9
			c.Detection.SampleSize = 11
			c.Detection.MaxHot = 13
		}, restart: []string{"detection.window", "detection.shards", "detection.queue_size", "detection.sample_size", "detection.max_hot"}},
		{name: "log", change: func(c *Config) { c.Log.Level, c.Log.Format = "debug", "json" },
			live: []string{"log.level"}, restart: []string{"log.format"}},
		{name: "dry_run", change: func(c *Config) { c.DryRun = true }, restart: []string{"dry_run"}},
		{name: "listeners", change: func(c *Config) {
			c.Ingest.SFlow.Listen = ":7343"
			c.Ingest.NetFlow.Workers = 3
			c.Ingest.NetFlow.ReadBuffer = 1 << 20
			c.API.Listen = "127.0.0.1:9090"
		}, restart: []string{"ingest.sflow.listen", "ingest.netflow.workers", "ingest.netflow.read_buffer", "api.listen"}},
		{name: "sampling", change: func(c *Config) {
			c.Ingest.DefaultSamplingRate = 512
			c.Ingest.Exporters[0].SamplingRate = 2048
		}, restart: []string{"ingest.default_sampling_rate", "ingest.exporters"}},
		{name: "rules", change: func(c *Config) {
			c.Rules.Dirs = append(c.Rules.Dirs, "/srv/rules")
			c.Rules.ShadowDirs = append(c.Rules.ShadowDirs, "/srv/rules-next")
			c.Rules.PollInterval.Duration = time.Minute
		}, live: []string{"rules.dirs", "rules.shadow_dirs", "rules.poll_interval"}},
		{name: "guard limits", change: func(c *Config) {
			c.Mitigation.Allowlist = nil
			c.Mitigation.MaxActiveBlackholes++
			c.Mitigation.MaxActiveFlowSpec++
			c.Mitigation.MaxNewPerMinute++
			c.Mitigation.TTL.Duration++
			c.Mitigation.MaxTTL.Duration++
			c.Mitigation.FlapWindow.Duration++
			c.Mitigation.FlapMultiplier++
		}, live: []string{"mitigation.allowlist", "mitigation.max_active_blackholes", "mitigation.max_active_flowspec",
			"mitigation.max_new_per_minute", "mitigation.ttl", "mitigation.max_ttl", "mitigation.flap_window", "mitigation.flap_multiplier"}},
		{name: "store needs a restart", change: func(c *Config) {
			c.Store.Path = ""
			c.Store.Retention.Duration = time.Hour
			c.Store.MaxBytes = 1 << 30
			c.Store.ClickHouse.DSN = "clickhouse://127.0.0.1:9000/kapkan"
		}, restart: []string{"store.path", "store.retention", "store.max_bytes", "store.clickhouse.dsn"}},
		{name: "state file", change: func(c *Config) { c.Mitigation.StateFile = "/tmp/state.json" },
			restart: []string{"mitigation.state_file"}},
		{name: "bgp identity and peers", change: func(c *Config) {
			c.Mitigation.BGP.ASN = 64513
			c.Mitigation.BGP.RouterID = netip.MustParseAddr("192.0.2.2")
			c.Mitigation.BGP.Peers[0].ASN = 64999
		}, restart: []string{"mitigation.bgp.asn", "mitigation.bgp.router_id", "mitigation.bgp.peers"}},
		{name: "bgp announcement", change: func(c *Config) {
			c.Mitigation.BGP.Communities = []string{"blackhole"}
			c.Mitigation.BGP.NextHopIPv4 = netip.MustParseAddr("192.0.2.66")
		}, restart: []string{"mitigation.bgp.next_hop_ipv4", "mitigation.bgp.communities"}},
		{name: "empty list and absent list are the same", change: func(c *Config) {
			c.Hostgroups[0].IgnoreSources = []netip.Prefix{}
			c.Mitigation.BGP.Peers[0].Communities = []string{}
		}},
		{name: "notifier added needs a restart", change: func(c *Config) {
			n := DefaultNotifier()
			n.Name, n.Type, n.URL = "siem", "webhook", "https://siem.example.net/kapkan"
			c.Notify = append(c.Notify, n)
		}, restart: []string{"notify"}},
		{name: "a mix", change: func(c *Config) {
			c.Hostgroups[0].Thresholds.Incoming.PPS = 1
			c.API.Listen = "127.0.0.1:1"
		}, live: []string{"hostgroups"}, restart: []string{"api.listen"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old, next := parseBase(t), parseBase(t)
			tc.change(next)
			ch := Diff(old, next)
			if !slices.Equal(ch.Live, tc.live) || !slices.Equal(ch.Restart, tc.restart) {
				t.Errorf("Diff:\n live    %v, want %v\n restart %v, want %v", ch.Live, tc.live, ch.Restart, tc.restart)
			}
			if ch.Empty() != (len(tc.live)+len(tc.restart) == 0) {
				t.Errorf("Empty() = %v for %+v", ch.Empty(), ch)
			}
			if back := Diff(next, old); !slices.Equal(back.Live, ch.Live) || !slices.Equal(back.Restart, ch.Restart) {
				t.Errorf("Diff is not symmetric: %+v and back %+v", ch, back)
			}
		})
	}
}

// leaves lists every setting Diff compares, with its value in c: the keys
// of each section, a list as one setting.
func leaves(v reflect.Value, path string, out map[string]reflect.Value) {
	if !isSection(v.Type()) {
		out[path] = v
		return
	}
	for i := range v.NumField() {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
		if _, ok := fieldsOf(v.Type()).index[name]; ok {
			leaves(v.Field(i), join(path, name), out)
		}
	}
}

// change sets v to another value of its type.
func change(t *testing.T, key string, v reflect.Value) {
	t.Helper()
	switch {
	case v.Type() == reflect.TypeFor[Duration]():
		v.Set(reflect.ValueOf(Duration{v.Interface().(Duration).Duration + time.Second}))
	case v.Type() == reflect.TypeFor[netip.Addr]():
		v.Set(reflect.ValueOf(netip.MustParseAddr("198.51.100.77")))
	case v.Kind() == reflect.Slice:
		v.Set(reflect.Append(v, reflect.Zero(v.Type().Elem())))
	case v.Kind() == reflect.String:
		v.SetString(v.String() + "x")
	case v.Kind() == reflect.Bool:
		v.SetBool(!v.Bool())
	case v.CanInt():
		v.SetInt(v.Int() + 1)
	case v.CanUint():
		v.SetUint(v.Uint() + 1)
	default:
		t.Fatalf("%s: no way to change a %s: teach this test", key, v.Type())
	}
}

// TestDiffEveryKey changes each setting of the schema alone: Diff must name
// it, and nothing else, as live exactly when IsLive says so. A key added to
// the schema is covered without touching this test, and is restart-only by
// default.
func TestDiffEveryKey(t *testing.T) {
	keys := map[string]reflect.Value{}
	leaves(reflect.ValueOf(parseBase(t)).Elem(), "", keys)
	if len(keys) < 30 {
		t.Fatalf("only %d settings found: the walk is broken", len(keys))
	}
	nLive := 0
	for key := range keys {
		t.Run(key, func(t *testing.T) {
			old, next := parseBase(t), parseBase(t)
			all := map[string]reflect.Value{}
			leaves(reflect.ValueOf(next).Elem(), "", all)
			change(t, key, all[key])
			ch := Diff(old, next)
			want := Changes{Restart: []string{key}}
			if IsLive(key) {
				want = Changes{Live: []string{key}}
				nLive++
			}
			if !slices.Equal(ch.Live, want.Live) || !slices.Equal(ch.Restart, want.Restart) {
				t.Errorf("changing %s: got %+v, want %+v", key, ch, want)
			}
		})
	}
	if nLive != len(liveKeys) {
		t.Errorf("%d live settings found, %d named in liveKeys: a live key is not in the schema", nLive, len(liveKeys))
	}
}

func TestIsLive(t *testing.T) {
	tests := []struct {
		key  string
		live bool
	}{
		{"hostgroups", true},
		{"hostgroups[0].thresholds", true},
		{"log.level", true},
		{"log.format", false},
		{"mitigation.ttl", true},
		{"mitigation.ttl_extra", false}, // a prefix of a name is not the key
		{"mitigation.bgp.peers", false},
		{"dry_run", false},
		{"notify", false},
		{"unknown.key", false},
	}
	for _, tc := range tests {
		if got := IsLive(tc.key); got != tc.live {
			t.Errorf("IsLive(%q) = %v, want %v", tc.key, got, tc.live)
		}
	}
}

// A reload of a broken file returns every problem with its position, and
// no configuration and no changes: the running one stays.
func TestReloadBrokenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kapkan.yaml")
	if err := os.WriteFile(path, []byte(diffBase), 0o600); err != nil {
		t.Fatal(err)
	}
	running, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}

	broken := strings.NewReplacer(
		"prefixes: [203.0.113.0/24]", "prefixes: [203.0.113.0/33]",
		"incoming: {pps: 100000}", "incoming: {pps: 100000, ppps: 1}",
		"asn: 64512\n    router_id", "asn: 64512\n    router_id: nope\n    colour",
	).Replace(diffBase)
	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	next, ch, err := Reload(running, path)
	var errs Errors
	if !errors.As(err, &errs) || next != nil || !ch.Empty() {
		t.Fatalf("Reload of a broken file: config %v, changes %+v, err %v; want Errors only", next, ch, err)
	}
	wantLines := []int{9, 11, 18, 19}
	var lines []int
	for _, e := range errs {
		if e.File != path || e.Line == 0 || e.Col == 0 {
			t.Errorf("error without a position: %q", e.Error())
		}
		lines = append(lines, e.Line)
	}
	if !slices.Equal(lines, wantLines) {
		t.Errorf("errors at lines %v, want %v:\n%v", lines, wantLines, err)
	}

	// Fixed: the reload goes through and names the change.
	fixed := strings.Replace(diffBase, "pps: 100000", "pps: 50000", 1)
	if err := os.WriteFile(path, []byte(fixed), 0o600); err != nil {
		t.Fatal(err)
	}
	next, ch, err = Reload(running, path)
	if err != nil || next == nil || !slices.Equal(ch.Live, []string{"hostgroups"}) || len(ch.Restart) != 0 {
		t.Fatalf("Reload: config %v, changes %+v, err %v", next != nil, ch, err)
	}
	if next.Hostgroups[0].Thresholds.Incoming.PPS != 50000 {
		t.Errorf("reloaded threshold %d", next.Hostgroups[0].Thresholds.Incoming.PPS)
	}
}
