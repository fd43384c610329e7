package fnmimport_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/fnmimport"
	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/fastnetmon")

const casesDir = "../testdata/fastnetmon"

// scripts are the notify scripts the cases treat as installed.
var scripts = map[string]bool{"/opt/fnm/notify.sh": true}

// importCase imports testdata/fastnetmon/NAME as the command would with
// the case's networks_list and networks_whitelist given as arguments.
func importCase(t *testing.T, name string) (*fnmimport.Result, []byte) {
	t.Helper()
	dir := filepath.Join(casesDir, name)
	in, err := os.ReadFile(filepath.Join(dir, "fastnetmon.conf"))
	if err != nil {
		t.Fatal(err)
	}
	opts := fnmimport.Options{
		// Nothing outside the case's directory is read: a path of the conf
		// (/etc/networks_list) does not exist for the test.
		ReadFile: func(p string) ([]byte, error) {
			if !strings.HasPrefix(p, dir) {
				return nil, fs.ErrNotExist
			}
			return os.ReadFile(p)
		},
		Executable: func(p string) bool { return scripts[p] },
	}
	for _, f := range []struct {
		file string
		opt  *string
	}{{"networks_list", &opts.NetworksList}, {"networks_whitelist", &opts.Whitelist}} {
		if _, err := os.Stat(filepath.Join(dir, f.file)); err == nil {
			*f.opt = filepath.Join(dir, f.file)
		}
	}
	res, err := fnmimport.Import(filepath.Join(dir, "fastnetmon.conf"), in, opts)
	if err != nil {
		t.Fatalf("import %s: %v", name, err)
	}
	return res, in
}

// golden compares got with the file, or rewrites it with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./fnmimport -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the import's output (go test ./fnmimport -update rewrites it; read the diff):\n%s", path, lineDiff(string(want), string(got)))
	}
}

// lineDiff shows the first lines that differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	n := 0
	for i := 0; i < max(len(w), len(g)) && n < 10; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  -%s\n  +%s\n", i+1, wl, gl)
			n++
		}
	}
	return b.String()
}

// keyLine finds the settings of a fastnetmon.conf independently of the
// importer's parser.
var keyLine = regexp.MustCompile(`^\s*([^#\s=][^=]*?)\s*=\s*(.*?)\s*$`)

// checkNothingDropped: every key = value line of the input is in the
// result, with a status and a reason or a target, and is named in the
// YAML's comments.
func checkNothingDropped(t *testing.T, in []byte, res *fnmimport.Result) {
	t.Helper()
	for _, p := range dropped(in, res) {
		t.Error(p)
	}
}

func dropped(in []byte, res *fnmimport.Result) []string {
	var problems []string
	byLine := map[int]*fnmimport.Setting{}
	for _, s := range res.Settings {
		byLine[s.Line] = s
	}
	out := string(res.YAML)
	n := 0
	for i, l := range strings.Split(string(in), "\n") {
		m := keyLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n++
		s := byLine[i+1]
		switch {
		case s == nil || s.Key != m[1]:
			problems = append(problems, fmt.Sprintf("line %d: %s is not in the result's settings", i+1, m[1]))
			continue
		case s.Status == 0:
			problems = append(problems, fmt.Sprintf("line %d: %s has no status", i+1, m[1]))
		case s.Status == fnmimport.Mapped && len(s.To) == 0:
			problems = append(problems, fmt.Sprintf("line %d: %s is mapped to no key", i+1, m[1]))
		case s.Status != fnmimport.Mapped && s.Note == "":
			problems = append(problems, fmt.Sprintf("line %d: %s is %s without a reason", i+1, m[1], s.Status))
		}
		if mention := fmt.Sprintf("%s = %s (line %d)", m[1], m[2], i+1); !strings.Contains(out, "# "+mention) && !strings.Contains(out, " "+mention) {
			problems = append(problems, fmt.Sprintf("line %d: the output names no %q", i+1, mention))
		}
	}
	if n != len(res.Settings) {
		problems = append(problems, fmt.Sprintf("the input has %d settings, the result %d", n, len(res.Settings)))
	}
	return problems
}

// checkKapkan: the output parses as a Kapkan configuration and keeps
// dry_run. What kapkan check runs beyond the file (daemon.Preflight) runs
// on the golden outputs in cmd/kapkan (TestImportedConfigsPassCheck), which
// keeps the daemon out of this package's test binary, and its fuzzing fast.
func checkKapkan(t *testing.T, out []byte) *config.Config {
	t.Helper()
	cfg, err := config.Parse("kapkan.yaml", out)
	if err != nil {
		t.Fatalf("the output is not a valid configuration:\n%v\n%s", err, out)
	}
	if !cfg.DryRun {
		t.Error("dry_run is false")
	}
	if !regexp.MustCompile(`(?m)^dry_run: true$`).Match(out) {
		t.Error("the output does not write dry_run: true")
	}
	return cfg
}

// TestDebianConf is the must-show of issue 18: the conf Debian ships
// imports into a configuration (that kapkan check accepts:
// cmd/kapkan's TestImportedConfigsPassCheck), and the fate of every one of
// its settings is pinned in mapping.golden.
func TestDebianConf(t *testing.T) {
	res, in := importCase(t, "debian")
	checkNothingDropped(t, in, res)
	cfg := checkKapkan(t, res.YAML)
	golden(t, filepath.Join(casesDir, "debian", "kapkan.yaml"), res.YAML)

	var b strings.Builder
	for _, s := range res.Settings {
		fmt.Fprintf(&b, "%d\t%s = %s\t%s", s.Line, s.Key, s.Value, s.Status)
		if len(s.To) > 0 {
			fmt.Fprintf(&b, "\t-> %s", strings.Join(s.To, ", "))
		}
		fmt.Fprintf(&b, "\t%s\n", s.Note)
	}
	golden(t, filepath.Join(casesDir, "debian", "mapping.golden"), []byte(b.String()))

	// What matters most, stated by hand as well as in the golden files.
	if len(res.Settings) < 100 {
		t.Errorf("only %d settings read from Debian's conf", len(res.Settings))
	}
	if len(cfg.Hostgroups) != 0 {
		t.Errorf("hostgroups %v from an empty networks_list", cfg.Hostgroups)
	}
	if got := cfg.Mitigation.TTL.Duration.String(); got != "31m40s" {
		t.Errorf("ttl = %s, want ban_time = 1900 s", got)
	}
	if cfg.Detection.Window.Seconds() != 5 {
		t.Errorf("window = %s, want average_calculation_time = 5 s", cfg.Detection.Window)
	}
	if cfg.Ingest.SFlow.Listen != "0.0.0.0:6343" || cfg.Ingest.NetFlow.Listen != "0.0.0.0:2055" {
		t.Errorf("listeners %q, %q", cfg.Ingest.SFlow.Listen, cfg.Ingest.NetFlow.Listen)
	}
	if len(cfg.Notify) != 0 {
		t.Errorf("a notifier for a script that does not exist: %+v", cfg.Notify)
	}
	for _, want := range []string{
		"#       incoming: {pps: 20000, mbps: 1000}",
		"#       outgoing: {pps: 20000, mbps: 1000}",
		"#   - name: fastnetmon-script",
	} {
		if !strings.Contains(string(res.YAML), want+"\n") {
			t.Errorf("the output lacks %q", want)
		}
	}

	// The blocks written as comments become configuration once their
	// leading "# "s go, as their comments say (with an executable script).
	body, _, _ := strings.Cut(string(res.YAML), "settings of ")
	var un strings.Builder
	for l := range strings.Lines(body) {
		switch {
		case strings.HasPrefix(l, "#  "):
			l = l[2:]
		case strings.HasSuffix(l, ": []\n"):
			l = strings.TrimSuffix(l, " []\n") + "\n"
		}
		un.WriteString(l)
	}
	cfg = checkKapkan(t, []byte(un.String()))
	if len(cfg.Hostgroups) != 1 || cfg.Hostgroups[0].Thresholds.Outgoing.Mbps != 1000 || len(cfg.Notify) != 1 {
		t.Errorf("uncommented: hostgroups %+v, notify %+v", cfg.Hostgroups, cfg.Notify)
	}
}

// TestNothingDroppedCheckFires proves the check above catches a setting
// missing from the result and one the output does not name.
func TestNothingDroppedCheckFires(t *testing.T) {
	res, in := importCase(t, "minimal")
	if p := dropped(in, res); len(p) != 0 {
		t.Fatalf("clean case: %v", p)
	}
	noSetting := *res
	noSetting.Settings = nil
	if p := dropped(in, &noSetting); len(p) != 2 { // not in the settings; counts differ
		t.Errorf("a setting missing from the result: %q", p)
	}
	unnamed := *res
	unnamed.YAML = []byte(strings.ReplaceAll(string(res.YAML), "threshold_pps = 20000 (line 1)", "threshold_pps"))
	if p := dropped(in, &unnamed); len(p) != 1 {
		t.Errorf("a setting the output does not name: %q", p)
	}
}

// TestVariations imports the variations and checks each against its
// golden output, the rules above, and what it is there to show.
func TestVariations(t *testing.T) {
	for _, tc := range []struct {
		name  string
		check func(t *testing.T, c *config.Config)
	}{
		{"hostgroups", func(t *testing.T, c *config.Config) {
			names := []string{}
			for _, hg := range c.Hostgroups {
				names = append(names, hg.Name)
			}
			if got := strings.Join(names, " "); got != "global web dns_servers lab" {
				t.Errorf("hostgroups %s", got)
			}
			g := c.Hostgroups[0]
			if fmt.Sprint(g.Prefixes) != "[198.51.100.0/24 203.0.113.0/24 2001:db8::/32 203.0.113.77/32]" {
				t.Errorf("global prefixes %v", g.Prefixes)
			}
			in := g.Thresholds.Incoming
			want := config.ThresholdSet{PPS: 50000, Mbps: 2000, FPS: 5000, TCPPPS: 40000, UDPPPS: 30000, ICMPPPS: 5000, SYNPPS: 20000, UDPMbps: 900, ICMPMbps: 50}
			if in != want {
				t.Errorf("global incoming %+v, want %+v", in, want)
			}
			if g.Thresholds.Outgoing != (config.ThresholdSet{}) {
				t.Errorf("outgoing thresholds with process_outgoing_traffic = off: %+v", g.Thresholds.Outgoing)
			}
			web := c.Hostgroups[1]
			if web.Thresholds.Incoming != (config.ThresholdSet{PPS: 200000, Mbps: 8000, UDPPPS: 100000}) || web.Thresholds.Disabled {
				t.Errorf("web thresholds %+v", web.Thresholds)
			}
			if lab := c.Hostgroups[3]; !lab.Thresholds.Disabled {
				t.Error("lab has no lab_enable_ban = on but is not disabled")
			}
			if fmt.Sprint(c.Mitigation.Allowlist) != "[203.0.113.53/32 2001:db8::53/128 2001:db8::/32 2001:db8:10::/48]" {
				t.Errorf("allowlist %v (whitelist, then IPv6 for enable_ban_ipv6 = off)", c.Mitigation.Allowlist)
			}
			if c.Log.Level != "debug" || c.Detection.Window.Seconds() != 10 || c.Ingest.NetFlow.Listen != "" {
				t.Errorf("log %s, window %s, netflow %q", c.Log.Level, c.Detection.Window, c.Ingest.NetFlow.Listen)
			}
		}},
		{"gobgp", func(t *testing.T, c *config.Config) {
			b := c.Mitigation.BGP
			if b.NextHopIPv4.String() != "192.0.2.66" || b.NextHopIPv6.String() != "2001:db8::66" || fmt.Sprint(b.Communities) != "[65001:666]" {
				t.Errorf("bgp %+v", b)
			}
			if c.Ingest.SFlow.Listen != "127.0.0.1:6343" || c.Ingest.NetFlow.Listen != "[::]:2055" || c.Ingest.DefaultSamplingRate != 1000 {
				t.Errorf("ingest %+v", c.Ingest)
			}
			if len(c.Notify) != 1 || c.Notify[0].Mode != "fastnetmon" || c.Notify[0].DryRun {
				t.Errorf("notify %+v", c.Notify)
			}
			if c.Mitigation.TTL.Hours() != 24 {
				t.Errorf("ttl %s for ban_time = 0", c.Mitigation.TTL)
			}
		}},
		{"exabgp", func(t *testing.T, c *config.Config) {
			b := c.Mitigation.BGP
			if b.NextHopIPv4.String() != "10.0.3.114" || fmt.Sprint(b.Communities) != "[65001:666 65001:777]" {
				t.Errorf("bgp %+v", b)
			}
			if c.Mitigation.TTL.Hours() != 48 || c.Mitigation.MaxTTL.Hours() != 48 {
				t.Errorf("ttl %s max %s for ban_time = 172800", c.Mitigation.TTL, c.Mitigation.MaxTTL)
			}
			if c.Ingest.SFlow.Listen != "" || c.Ingest.NetFlow.Listen != "0.0.0.0:9996" {
				t.Errorf("ingest %+v", c.Ingest)
			}
		}},
		{"minimal", func(t *testing.T, c *config.Config) {
			if len(c.Hostgroups) != 0 || c.Ingest.SFlow.Listen != ":6343" || c.Ingest.NetFlow.Listen != ":2055" {
				t.Errorf("hostgroups %v, ingest %+v", c.Hostgroups, c.Ingest)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, in := importCase(t, tc.name)
			checkNothingDropped(t, in, res)
			cfg := checkKapkan(t, res.YAML)
			golden(t, filepath.Join(casesDir, tc.name, "kapkan.yaml"), res.YAML)
			tc.check(t, cfg)
		})
	}
}

// TestImportErrors: input FastNetMon's format cannot mean gives every
// problem at once, each with its file and line.
func TestImportErrors(t *testing.T) {
	conf := strings.Join([]string{
		"# a comment",
		"threshold_pps 20000",              // 2: no =
		"ban_for_pps = yes",                // 3: not a switch
		"threshold_mbps = lots",            // 4: not a number
		"hostgroup = web",                  // 5: no prefixes
		"hostgroup = web:10.0.0.0/33",      // 6: bad prefix
		"hostgroup = Bad Name:10.1.0.0/16", // 7: not a name
		"sflow_port = 6343,http",           // 8: bad port
		"gobgp = on",
		"gobgp_next_hop = 2001:db8::1",   // 10: not IPv4
		"gobgp_community_host = 65536:1", // 11: not a community
		"= 1",                            // 12: no key
		"networks_list_path = /nets",
	}, "\n")
	nets := "10.0.0.0/8\nnot-a-net\n"
	_, err := fnmimport.Import("fnm.conf", []byte(conf), fnmimport.Options{
		ReadFile: func(p string) ([]byte, error) {
			if p == "/nets" {
				return []byte(nets), nil
			}
			return nil, fs.ErrNotExist
		},
	})
	var errs config.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("err = %v, want config.Errors", err)
	}
	var got []string
	for _, e := range errs {
		got = append(got, fmt.Sprintf("%s:%d", e.File, e.Line))
	}
	want := "fnm.conf:2 fnm.conf:3 fnm.conf:4 fnm.conf:5 fnm.conf:6 fnm.conf:7 fnm.conf:8 fnm.conf:10 fnm.conf:11 fnm.conf:12 /nets:2"
	if g := strings.Join(got, " "); g != want {
		t.Errorf("errors at %s\nwant        %s\n%v", g, want, err)
	}
	for _, e := range errs {
		if !strings.Contains(e.Msg, "want") {
			t.Errorf("%v: says nothing of what was expected", e)
		}
	}

	// A networks list named on the command line must be there.
	_, err = fnmimport.Import("fnm.conf", []byte("threshold_pps = 1\n"), fnmimport.Options{
		NetworksList: "/missing",
		ReadFile:     func(string) ([]byte, error) { return nil, fs.ErrNotExist },
	})
	if err == nil || !strings.Contains(err.Error(), "/missing") {
		t.Errorf("a missing networks list from the command line: %v", err)
	}
}

// FuzzImportFastNetMon: whatever the input, Import returns positioned
// errors or a YAML document that keeps dry_run and names every setting.
func FuzzImportFastNetMon(f *testing.F) {
	entries, err := os.ReadDir(casesDir)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if data, err := os.ReadFile(filepath.Join(casesDir, e.Name(), "fastnetmon.conf")); err == nil {
			nets, _ := os.ReadFile(filepath.Join(casesDir, e.Name(), "networks_list"))
			f.Add(data, nets)
		}
	}
	f.Fuzz(func(t *testing.T, conf, nets []byte) {
		res, err := fnmimport.Import("fnm.conf", conf, fnmimport.Options{
			NetworksList: "nets",
			Whitelist:    "white",
			ReadFile: func(p string) ([]byte, error) {
				if p == "nets" {
					return nets, nil
				}
				return nil, nil
			},
			Executable: func(string) bool { return true },
		})
		if err != nil {
			var errs config.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("not config.Errors: %v", err)
			}
			for _, e := range errs {
				if e.File == "" || (e.Line == 0 && e.File == "fnm.conf") {
					t.Fatalf("unpositioned error: %v", e)
				}
			}
			return
		}
		var doc map[string]any
		if err := yaml.Unmarshal(res.YAML, &doc); err != nil {
			t.Fatalf("the output is not YAML: %v\n%s", err, res.YAML)
		}
		if doc["dry_run"] != true {
			t.Fatalf("dry_run = %v", doc["dry_run"])
		}
		for _, s := range res.Settings {
			if s.Status == 0 {
				t.Fatalf("line %d: %s has no status", s.Line, s.Key)
			}
		}
	})
}
