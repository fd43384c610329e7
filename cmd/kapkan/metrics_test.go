package main

import (
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/daemon"
	"github.com/kapkan-io/kapkan/daemon/daemontest"
	"github.com/kapkan-io/kapkan/ingest"
	"github.com/kapkan-io/kapkan/store/clickhouse"
)

// lint runs promlint over a registry, ignoring the Go and process
// collectors, and returns the problems with Kapkan's own metrics, whose
// names must also start with kapkan_.
func lint(t *testing.T, g prometheus.Gatherer) []string {
	t.Helper()
	problems, err := promlint.NewWithMetricFamilies(mustGather(t, g)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "go_") || strings.HasPrefix(p.Metric, "process_") {
			continue
		}
		out = append(out, p.Metric+": "+p.Text)
	}
	for _, mf := range mustGather(t, g) {
		n := mf.GetName()
		if !strings.HasPrefix(n, "kapkan_") && !strings.HasPrefix(n, "go_") && !strings.HasPrefix(n, "process_") &&
			!strings.HasPrefix(n, "promhttp_") {
			out = append(out, n+": not in the kapkan_ namespace")
		}
	}
	return out
}

func mustGather(t *testing.T, g prometheus.Gatherer) []*dto.MetricFamily {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// TestMetricNames lints every metric the daemon registers.
func TestMetricNames(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte("ingest:\n  sflow: {listen: \"127.0.0.1:0\"}\n  netflow: {listen: \"127.0.0.1:0\"}\napi: {listen: \"127.0.0.1:0\"}\nstore: {path: \"\"}\nmitigation: {state_file: \"\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.New(cfg, daemon.Deps{Logger: newLogger(io.Discard, "error", "text")})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if p := lint(t, d.Registry()); len(p) > 0 {
		t.Errorf("metric problems:\n%s", strings.Join(p, "\n"))
	}
}

// TestMetricLintFires proves the lint catches a badly named metric.
func TestMetricLintFires(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "kapkan_bad_Count", Help: "badly named"})
	reg.MustRegister(c)
	c.Inc()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "unprefixed_gauge", Help: "outside the namespace"})
	reg.MustRegister(g)
	if p := lint(t, reg); len(p) < 2 {
		t.Errorf("lint found %v, want the counter without _total and the unprefixed gauge", p)
	}
}

var updateMetricsDoc = flag.Bool("update-metrics-doc", false, "rewrite docs/71-metrics.md from the daemon's registry")

// metricsDoc renders the metrics reference: every metric a running daemon
// registers (with a BGP peer and a notifier, and after one sFlow and one NetFlow exporter
// sent, so that theirs exist), with its type, labels and help.
// unobserved are the types of the metrics the documentation test cannot
// make appear (vectors with no child yet: a WASM module's calls, a data set
// before its template, ...): the registry describes their name, help and
// labels but not their type. A metric described and neither gathered nor
// listed here fails the test; one gathered and listed with another type
// too.
var unobserved = map[string]string{
	"kapkan_ingest_decode_errors_total":             "counter",
	"kapkan_ingest_pending_sets_total":              "counter",
	"kapkan_ingest_exporter_active_timeout_seconds": "gauge",
	"kapkan_mitigation_events_total":                "counter",
	"kapkan_wasm_calls_total":                       "counter",
	"kapkan_wasm_call_duration_seconds":             "histogram",
	"kapkan_wasm_module_suspended":                  "gauge",
	"kapkan_wasm_suspensions_total":                 "counter",
	"kapkan_wasm_skipped_calls_total":               "counter",
	"kapkan_store_clickhouse_rows_total":            "counter",
}

// descMetric is what a registry's description says of a metric.
type descMetric struct {
	name, help string
	labels     []string
}

var descRE = regexp.MustCompile(`^Desc\{fqName: "([^"]*)", help: "((?:[^"\\]|\\.)*)", unit: "[^"]*", constLabels: \{([^}]*)\}, variableLabels: \{([^}]*)\}\}$`)

// describe lists the registry's metrics from their descriptions.
func describe(t *testing.T, r *prometheus.Registry) map[string]descMetric {
	t.Helper()
	ch := make(chan *prometheus.Desc, 64)
	go func() { r.Describe(ch); close(ch) }()
	out := map[string]descMetric{}
	for d := range ch {
		m := descRE.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read the description %s", d)
		}
		dm := descMetric{name: m[1], help: strings.ReplaceAll(m[2], `\"`, `"`)}
		for _, l := range strings.Split(m[3], ",") {
			if k, _, ok := strings.Cut(l, "="); ok {
				dm.labels = append(dm.labels, k)
			}
		}
		for _, l := range strings.Split(m[4], ",") {
			if l != "" {
				dm.labels = append(dm.labels, l)
			}
		}
		if prev, ok := out[dm.name]; ok {
			dm.labels = append(dm.labels, prev.labels...)
		}
		slices.Sort(dm.labels)
		dm.labels = slices.Compact(dm.labels)
		out[dm.name] = dm
	}
	return out
}

// metricsDoc writes the reference: every kapkan_ metric gathered, with its
// type and labels, and every one described but not gathered, with its type
// from unobserved.
func metricsDoc(mfs []*dto.MetricFamily, described map[string]descMetric) (string, []string) {
	var problems []string
	rows := map[string]string{}
	for _, mf := range mfs {
		n := mf.GetName()
		if !strings.HasPrefix(n, "kapkan_") {
			continue
		}
		labels := map[string]bool{}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = true
			}
		}
		for _, l := range described[n].labels {
			labels[l] = true
		}
		names := make([]string, 0, len(labels))
		for l := range labels {
			names = append(names, "`"+l+"`")
		}
		sort.Strings(names)
		typ := strings.ToLower(mf.GetType().String())
		if u, ok := unobserved[n]; ok && u != typ {
			problems = append(problems, fmt.Sprintf("%s is a %s, not the %s unobserved says", n, typ, u))
		}
		help := strings.ReplaceAll(mf.GetHelp(), "|", "\\|")
		rows[n] = fmt.Sprintf("| `%s` | %s | %s | %s |\n", n, typ, strings.Join(names, ", "), help)
	}
	for n, d := range described {
		if _, ok := rows[n]; ok || !strings.HasPrefix(n, "kapkan_") {
			continue
		}
		typ, ok := unobserved[n]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s is registered but has no value in the test: add its type to unobserved", n))
			typ = "?"
		}
		names := make([]string, 0, len(d.labels))
		for _, l := range d.labels {
			names = append(names, "`"+l+"`")
		}
		rows[n] = fmt.Sprintf("| `%s` | %s | %s | %s |\n", n, typ, strings.Join(names, ", "), strings.ReplaceAll(d.help, "|", "\\|"))
	}
	order := make([]string, 0, len(rows))
	for n := range rows {
		order = append(order, n)
	}
	sort.Strings(order)
	var b strings.Builder
	b.WriteString("# Metrics reference\n\n")
	b.WriteString("Generated from the daemon's registry by `go test ./cmd/kapkan -run TestMetricsDoc -update-metrics-doc`;\n")
	b.WriteString("a test fails when this file and the code disagree. The Go runtime's `go_*` and `process_*`\n")
	b.WriteString("metrics are left out. Label values come only from bounded sets (configuration, reasons).\n\n")
	b.WriteString("| metric | type | labels | what it counts |\n|---|---|---|---|\n")
	for _, n := range order {
		b.WriteString(rows[n])
	}
	return b.String(), problems
}

// TestMetricsDoc keeps docs/71-metrics.md equal to what the daemon
// registers.
func TestMetricsDoc(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(strings.Replace(`ingest:
  sflow: {listen: "127.0.0.1:0"}
  netflow: {listen: "127.0.0.1:0"}
api: {listen: "127.0.0.1:0"}
mitigation:
  state_file: ""
  bgp:
    asn: 65010
    router_id: 192.0.2.10
    peers:
      - {address: 127.0.0.1, port: 1, asn: 65000}
notify:
  - {name: siem, type: webhook, url: "http://127.0.0.1:1/kapkan"}
store: {path: STORE}
`, "STORE", filepath.Join(t.TempDir(), "history"), 1)))
	if err != nil {
		t.Fatal(err)
	}
	d, _ := daemontest.Start(t, cfg, "")
	// Metrics labelled per exporter exist once one has sent: play a few
	// datagrams of each capture (sFlow and NetFlow v9) to the listeners.
	for i, c := range []string{"sflow-udp-flood", "netflow9-dns-amplification"} {
		conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(d.FlowAddrs()[i]))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		pcaps, _ := filepath.Glob(filepath.Join("../../testdata/captures", c, "*.pcap*"))
		n := 0
		_, err = ingest.ReadCapture(pcaps[0], func(dg ingest.Datagram) error {
			if n++; n <= 20 {
				_, err := conn.Write(dg.Payload)
				return err
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		n := 0
		for _, mf := range mustGather(t, d.Registry()) {
			if mf.GetName() == "kapkan_ingest_records_total" {
				n = len(mf.GetMetric())
			}
		}
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The ClickHouse store registers its metrics when it opens, before it
	// connects: an Open that cannot connect leaves them in chReg.
	chReg := prometheus.NewRegistry()
	if _, err := clickhouse.Open(t.Context(), "clickhouse://127.0.0.1:1/kapkan", clickhouse.Deps{Registry: chReg}); err == nil {
		t.Fatal("a ClickHouse store opened on a port where nothing listens")
	}
	described := describe(t, d.Registry())
	maps.Copy(described, describe(t, chReg))
	got, problems := metricsDoc(append(mustGather(t, d.Registry()), mustGather(t, chReg)...), described)
	for _, p := range problems {
		t.Error(p)
	}
	const path = "../../docs/71-metrics.md"
	if *updateMetricsDoc {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (generate it with -update-metrics-doc)", err)
	}
	if string(want) != got {
		t.Errorf("docs/71-metrics.md is not what the daemon registers; run go test ./cmd/kapkan -run TestMetricsDoc -update-metrics-doc and read the diff")
	}
}
