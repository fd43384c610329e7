// Package packaging holds the files of the Debian package (nfpm.yaml, the
// systemd unit, the configuration it installs, its maintainer scripts) and
// the Grafana dashboard, with their tests. The package test that installs
// the .deb with dpkg is behind the deb build tag (make test-deb).
package packaging_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/daemon"
)

const (
	unitFile      = "kapkan.service"
	configFile    = "kapkan.yaml"
	dashboardFile = "grafana/kapkan.json"
	metricsDoc    = "../docs/71-metrics.md"
)

// unit is a systemd unit file: section → key → values, in file order (a
// key may be given several times, as SystemCallFilter is).
type unit map[string]map[string][]string

func parseUnit(text string) (unit, error) {
	u := unit{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		case section == "":
			return nil, fmt.Errorf("line %d: %q before any section", n, line)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				return nil, fmt.Errorf("line %d: %q is not key=value", n, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u, sc.Err()
}

// hardeningProblems lists how a unit falls short of running Kapkan
// unprivileged and confined: its own user, no capability but binding low
// ports, a read-only system but for the state directory, only the address
// families of a network daemon, a system call filter, SIGHUP to reload.
func hardeningProblems(u unit) []string {
	s := u["Service"]
	if s == nil {
		return []string{"no [Service] section"}
	}
	var out []string
	exactly := func(key string, want ...string) {
		if got := s[key]; !slices.Equal(got, want) {
			out = append(out, fmt.Sprintf("%s=%q, want %q", key, got, want))
		}
	}
	exactly("User", "kapkan")
	exactly("Group", "kapkan")
	exactly("AmbientCapabilities", "CAP_NET_BIND_SERVICE")
	exactly("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE")
	exactly("NoNewPrivileges", "yes")
	exactly("ProtectSystem", "strict")
	exactly("ProtectHome", "yes")
	exactly("PrivateTmp", "yes")
	exactly("PrivateDevices", "yes")
	exactly("ReadWritePaths", "/var/lib/kapkan")
	exactly("StateDirectory", "kapkan")
	exactly("RestrictSUIDSGID", "yes")
	exactly("ExecStart", "/usr/bin/kapkan run --config /etc/kapkan/kapkan.yaml")
	exactly("ExecReload", "/bin/kill -HUP $MAINPID")
	exactly("Restart", "on-failure")
	if len(s["SystemCallFilter"]) == 0 || s["SystemCallFilter"][0] != "@system-service" {
		out = append(out, fmt.Sprintf("SystemCallFilter=%q, want @system-service first", s["SystemCallFilter"]))
	}
	families := strings.Fields(strings.Join(s["RestrictAddressFamilies"], " "))
	for _, f := range families {
		if !slices.Contains([]string{"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"}, f) {
			out = append(out, "RestrictAddressFamilies allows "+f)
		}
	}
	for _, f := range []string{"AF_INET", "AF_INET6"} {
		if !slices.Contains(families, f) {
			out = append(out, "RestrictAddressFamilies lacks "+f+" (TCP for BGP, UDP for flows)")
		}
	}
	// What would hand privileges back: a command run as root ("+", "!"),
	// root-only start steps, a unit without its own user.
	for k, vs := range s {
		for _, v := range vs {
			if strings.HasPrefix(k, "Exec") && strings.TrimLeft(v, "-@:") != strings.TrimLeft(v, "-@:+!") {
				out = append(out, fmt.Sprintf("%s=%s runs with full privileges", k, v))
			}
		}
	}
	for _, k := range []string{"PermissionsStartOnly", "DynamicUser", "SupplementaryGroups"} {
		if _, ok := s[k]; ok {
			out = append(out, k+" is set")
		}
	}
	return out
}

func readUnit(t *testing.T) unit {
	t.Helper()
	text, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	u, err := parseUnit(string(text))
	if err != nil {
		t.Fatalf("%s: %v", unitFile, err)
	}
	return u
}

// TestUnitHardening: the unit runs Kapkan as its own user with no
// capability but CAP_NET_BIND_SERVICE, confined, reloading on SIGHUP.
func TestUnitHardening(t *testing.T) {
	for _, p := range hardeningProblems(readUnit(t)) {
		t.Error(p)
	}
}

// TestUnitHardeningCheckFires proves the check catches each way back to
// privileges.
func TestUnitHardeningCheckFires(t *testing.T) {
	text, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"root", "User=kapkan", "User=root", "User="},
		{"more capabilities", "AmbientCapabilities=CAP_NET_BIND_SERVICE", "AmbientCapabilities=CAP_NET_BIND_SERVICE CAP_NET_ADMIN", "AmbientCapabilities="},
		{"no bounding set", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n", "", "CapabilityBoundingSet="},
		{"privileged start", "ExecStart=/usr/bin", "ExecStart=+/usr/bin", "full privileges"},
		{"privileged step", "ExecReload=", "ExecStartPre=!/bin/true\nExecReload=", "full privileges"},
		{"packet sockets", "RestrictAddressFamilies=AF_INET", "RestrictAddressFamilies=AF_PACKET AF_INET", "AF_PACKET"},
		{"writable system", "ProtectSystem=strict", "ProtectSystem=full", "ProtectSystem="},
		{"no reload", "ExecReload=/bin/kill -HUP $MAINPID\n", "", "ExecReload="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(string(text), tc.from, tc.to, 1)
			if bad == string(text) {
				t.Fatalf("%q is not in %s", tc.from, unitFile)
			}
			u, err := parseUnit(bad)
			if err != nil {
				t.Fatal(err)
			}
			got := hardeningProblems(u)
			if !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("problems %q, want one about %q", got, tc.want)
			}
		})
	}
}

// TestUnitVerify runs systemd-analyze verify on the unit, with its binary
// path pointed at an executable that exists here (the package test
// verifies the installed unit as it is); a warning is a failure. Then
// systemd-analyze security rates the unit's exposure, which must stay at
// most 2.0 of 10 (1.5 when this was written).
func TestUnitVerify(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kapkan.service")
	verifyUnit(t, path, exe)
	out, err := exec.Command("systemd-analyze", "security", "--offline=yes", "--threshold=20", path).CombinedOutput()
	last := strings.TrimSpace(string(out))
	last = last[strings.LastIndex(last, "\n")+1:]
	if err != nil {
		t.Errorf("systemd-analyze security: %v: %s (want at most 2.0)\n%s", err, last, out)
	}
	t.Log(last)
}

// verifyUnit writes the unit to path with /usr/bin/kapkan replaced by
// binary ("" keeps it) and runs systemd-analyze verify on it.
func verifyUnit(t *testing.T, path, binary string) {
	t.Helper()
	text, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	if binary != "" {
		text = bytes.ReplaceAll(text, []byte("/usr/bin/kapkan"), []byte(binary))
	}
	if err := os.WriteFile(path, text, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", path, err, out)
	}
}

// TestDefaultConfig: the configuration the package installs loads, is in
// dry-run, keeps the API on loopback, and writes only where the unit lets
// the daemon write; with those paths moved to a temporary directory it
// passes every check `kapkan check` makes.
func TestDefaultConfig(t *testing.T) {
	cfg, err := config.Load(configFile)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.DryRun {
		t.Error("dry_run is false: the package must install a configuration that announces nothing")
	}
	if !strings.HasPrefix(cfg.API.Listen, "127.0.0.1:") {
		t.Errorf("api.listen %q is not on loopback", cfg.API.Listen)
	}
	rw := readUnit(t)["Service"]["ReadWritePaths"]
	for key, path := range map[string]string{
		"mitigation.state_file": filepath.Dir(cfg.Mitigation.StateFile),
		"store.path":            cfg.Store.Path,
	} {
		if !slices.ContainsFunc(rw, func(dir string) bool { return path == dir || strings.HasPrefix(path, dir+"/") }) {
			t.Errorf("%s %q is outside the unit's ReadWritePaths %q: the daemon could not write it", key, path, rw)
		}
	}

	text, err := os.ReadFile(configFile)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "kapkan.yaml")
	if err := os.WriteFile(tmp, bytes.ReplaceAll(text, []byte("/var/lib/kapkan"), []byte(t.TempDir())), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err = config.Load(tmp)
	if err != nil {
		t.Fatal(err)
	}
	warnings, err := daemon.Preflight(cfg)
	if err != nil {
		t.Fatalf("kapkan check would refuse it: %v", err)
	}
	if len(warnings) > 0 {
		t.Errorf("kapkan check warns: %v", warnings)
	}
}

// promSeries matches a metric name in a PromQL expression.
var promSeries = regexp.MustCompile(`\bkapkan_[a-z0-9_]+\b`)

// dashboardQueries returns every PromQL expression of a Grafana dashboard:
// panel targets (rows nest panels) and templating queries.
func dashboardQueries(raw []byte) ([]string, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "definition" || k == "query") {
					out = append(out, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	return out, nil
}

// documentedMetrics reads the metric names and types of the generated
// metrics reference.
func documentedMetrics(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(metricsDoc)
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(kapkan_[a-z0-9_]+)` \\| ([a-z]+) \\|")
	out := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(raw), -1) {
		out[m[1]] = m[2]
	}
	if len(out) < 20 {
		t.Fatalf("%s: found %d metrics, want more (did its table change shape?)", metricsDoc, len(out))
	}
	return out
}

// undocumented returns the metric names the queries use that the
// reference does not list; a histogram's _bucket, _sum and _count series
// count as the histogram.
func undocumented(queries []string, documented map[string]string) []string {
	var out []string
	for _, q := range queries {
		for _, name := range promSeries.FindAllString(q, -1) {
			if _, ok := documented[name]; ok {
				continue
			}
			found := false
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(name, suffix); ok && documented[base] == "histogram" {
					found = true
				}
			}
			if !found && !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	return out
}

// TestDashboardMetrics: every metric the Grafana dashboard queries is one
// the daemon registers (docs/71-metrics.md is generated from its registry
// and kept equal to it by cmd/kapkan's TestMetricsDoc), so a renamed
// metric breaks this test rather than a panel.
func TestDashboardMetrics(t *testing.T) {
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	queries, err := dashboardQueries(raw)
	if err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	documented := documentedMetrics(t)
	used := map[string]bool{}
	for _, q := range queries {
		for _, name := range promSeries.FindAllString(q, -1) {
			used[name] = true
		}
	}
	if len(used) < 30 {
		t.Errorf("%s queries %d metrics, want most of the %d documented ones", dashboardFile, len(used), len(documented))
	}
	for _, name := range undocumented(queries, documented) {
		t.Errorf("%s queries %s, which %s does not list", dashboardFile, name, metricsDoc)
	}
}

// TestDashboardMetricsCheckFires proves the check catches a renamed metric,
// a histogram suffix on a counter, and reads nested panels.
func TestDashboardMetricsCheckFires(t *testing.T) {
	raw := []byte(`{"panels": [{"type": "row", "panels": [{"targets": [
		{"expr": "rate(kapkan_ingest_record_total[1m])"},
		{"expr": "rate(kapkan_ingest_records_total_count[1m])"},
		{"expr": "histogram_quantile(0.9, rate(kapkan_pipeline_classify_seconds_bucket[1m]))"}]}]}]}`)
	queries, err := dashboardQueries(raw)
	if err != nil {
		t.Fatal(err)
	}
	got := undocumented(queries, documentedMetrics(t))
	want := []string{"kapkan_ingest_record_total", "kapkan_ingest_records_total_count"}
	if !slices.Equal(got, want) {
		t.Errorf("undocumented: %q, want %q", got, want)
	}
}
