package main

import (
	"io"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/daemon"
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
	cfg, err := config.Parse("t.yaml", []byte("ingest:\n  sflow: {listen: \"127.0.0.1:0\"}\n  netflow: {listen: \"127.0.0.1:0\"}\napi: {listen: \"127.0.0.1:0\"}\n"))
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
