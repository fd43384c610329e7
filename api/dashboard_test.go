package api

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/events"
)

// TestDashboardServed: the page and its files are served with a policy
// that forbids anything not from the daemon, gzipped on request,
// revalidated by ETag; an unknown file is 404.
func TestDashboardServed(t *testing.T) {
	f := newFixture(t, nil)
	w := f.do(t, "GET", "/", "", "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), "<title>Kapkan</title>") {
		t.Fatalf("GET /: %d %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("index Content-Type %q", ct)
	}
	csp := w.Header().Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "http") {
		t.Errorf("CSP %q allows inline code or another origin", csp)
	}

	req := httptest.NewRequest("GET", "/ui/app.js", nil)
	req.Header.Set("Accept-Encoding", "gzip, deflate")
	w = httptest.NewRecorder()
	f.s.Handler().ServeHTTP(w, req)
	if w.Code != 200 || w.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("gzip request: %d, encoding %q", w.Code, w.Header().Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(w.Body.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(zr)
	if string(body) != "console.log('kapkan')" {
		t.Errorf("gunzipped body %q", body)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("script Content-Type %q", ct)
	}
	etag := w.Header().Get("ETag")
	req = httptest.NewRequest("GET", "/ui/app.js", nil)
	req.Header.Set("If-None-Match", etag)
	w = httptest.NewRecorder()
	f.s.Handler().ServeHTTP(w, req)
	if etag == "" || w.Code != 304 {
		t.Errorf("revalidation with ETag %q: %d, want 304", etag, w.Code)
	}
	if w := f.do(t, "GET", "/ui/css/app.css", "", ""); w.Code != 200 || w.Body.String() != "body{margin:0}" {
		t.Errorf("nested file: %d %q", w.Code, w.Body)
	}
	for _, p := range []string{"/ui/nosuch.js", "/ui/../api.go", "/ui/"} {
		if w := f.do(t, "GET", p, "", ""); w.Code != 404 {
			t.Errorf("GET %s: %d, want 404", p, w.Code)
		}
	}
	// Without a dashboard, / is the API's not-found answer.
	f = newFixture(t, func(_ *config.API, d *Deps) { d.Dashboard = nil })
	if w := f.do(t, "GET", "/", "", ""); w.Code != 404 || errorOf(t, w).Code != "not_found" {
		t.Errorf("no dashboard: GET / %d %s", w.Code, w.Body)
	}
}

// TestStatus: the caller's scope, the daemon's identity and the ingest
// totals summed from the metrics.
func TestStatus(t *testing.T) {
	f := newFixture(t, func(_ *config.API, d *Deps) {
		dg := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kapkan_ingest_datagrams_total", Help: "h"}, []string{"exporter"})
		dg.WithLabelValues("192.0.2.1").Add(30)
		dg.WithLabelValues("192.0.2.2").Add(12)
		drops := prometheus.NewCounter(prometheus.CounterOpts{Name: "kapkan_ingest_socket_drops_total", Help: "h"})
		drops.Add(5)
		d.Registry.MustRegister(dg, drops)
	})
	for _, tc := range []struct{ token, scope, name string }{
		{readToken, "read", "noc"},
		{operateToken, "operate", "automation"},
	} {
		w := f.do(t, "GET", "/api/v1/status", tc.token, "")
		var v StatusView
		if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil || w.Code != 200 {
			t.Fatalf("%d %s (%v)", w.Code, w.Body, err)
		}
		if v.Access.Scope != tc.scope || v.Access.Token != tc.name {
			t.Errorf("access %+v, want %s as %s", v.Access, tc.scope, tc.name)
		}
		if v.Version != "v-test" || !v.Started.Equal(t0) || !v.DryRun || !v.History {
			t.Errorf("status %+v", v)
		}
		if v.Ingest.Datagrams != 42 || v.Ingest.SocketDrops != 5 || v.Ingest.Exporters != 1 {
			t.Errorf("ingest %+v, want 42 datagrams, 5 socket drops, 1 exporter", v.Ingest)
		}
	}
	f = newFixture(t, func(c *config.API, _ *Deps) { c.OpenRead = true })
	var v StatusView
	w := f.do(t, "GET", "/api/v1/status", "", "")
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil || v.Access.Scope != "open" || v.Access.Token != "" {
		t.Errorf("open read: %s", w.Body)
	}
}

// TestAttackSeries: an attack's rates over time come with the attack,
// thinned past the bound but spanning its whole life.
func TestAttackSeries(t *testing.T) {
	f := newFixture(t, nil)
	n := MaxAttackSeries + 10
	for i := range n {
		kind := events.AttackUpdated
		if i == 0 {
			kind = events.AttackStarted
		}
		f.s.attacks.add(events.Event{Seq: uint64(i + 1), Kind: kind, At: t0.Add(time.Duration(i) * time.Second),
			Attack: &events.Attack{ID: 9, Rates: map[string]float64{"pps": float64(i), "mbps": 2, "fps": 3}}})
	}
	w := f.do(t, "GET", "/api/v1/attacks/9", readToken, "")
	var v struct {
		Series []RatePoint `json:"series"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Series) == 0 || len(v.Series) > MaxAttackSeries {
		t.Fatalf("%d points, want 1 to %d", len(v.Series), MaxAttackSeries)
	}
	last := v.Series[len(v.Series)-1]
	if last.PPS != float64(n-1) || last.Mbps != 2 || last.FPS != 3 || !last.At.Equal(t0.Add(time.Duration(n-1)*time.Second)) {
		t.Errorf("last point %+v", last)
	}
	if first := v.Series[0]; first.At.After(t0.Add(2 * time.Second)) {
		t.Errorf("thinning lost the start: first point at %v", first.At)
	}
	for i := 1; i < len(v.Series); i++ {
		if !v.Series[i].At.After(v.Series[i-1].At) {
			t.Fatalf("points out of order at %d", i)
		}
	}
	// The list stays small: no series there.
	w = f.do(t, "GET", "/api/v1/attacks", readToken, "")
	if strings.Contains(w.Body.String(), `"series"`) {
		t.Error("the attack list carries series")
	}
}

// TestEscalationKeepsVerdict: an escalation event (the whole attack with
// its new step, as the pipeline publishes it) updates the step and rates
// and keeps the labels, rules and sample.
func TestEscalationKeepsVerdict(t *testing.T) {
	f := newFixture(t, nil)
	f.s.attacks.add(events.Event{Seq: 1, Kind: events.AttackStarted, At: t0, Attack: &events.Attack{ID: 4, Labels: []string{"dns-amplification"},
		Rules: []string{"dns-amplification"}, Sample: &events.SampleSummary{Sources: 3}, Ladder: "default", Step: 1, Rates: map[string]float64{"pps": 1}}})
	f.s.attacks.add(events.Event{Seq: 2, Kind: events.AttackEscalated, At: t0.Add(time.Minute), Attack: &events.Attack{ID: 4,
		Labels: []string{"dns-amplification"}, Rules: []string{"dns-amplification"}, Sample: &events.SampleSummary{Sources: 3},
		Ladder: "default", Step: 2, Reason: "still above after 60s", Rates: map[string]float64{"pps": 2}}})
	w := f.do(t, "GET", "/api/v1/attacks/4", readToken, "")
	var v struct {
		Labels []string              `json:"labels"`
		Rules  []string              `json:"rules"`
		Sample *events.SampleSummary `json:"sample"`
		Step   int                   `json:"step"`
		Reason string                `json:"reason"`
		Rates  map[string]float64    `json:"rates"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Labels) != 1 || len(v.Rules) != 1 || v.Sample == nil || v.Sample.Sources != 3 {
		t.Errorf("after an escalation the attack lost its verdict: %s", w.Body)
	}
	if v.Step != 2 || v.Reason != "still above after 60s" || v.Rates["pps"] != 2 {
		t.Errorf("the escalation did not take: %s", w.Body)
	}
}
