package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/mitigate"
)

const (
	readToken    = "read-0123456789abcdef"
	operateToken = "operate-fedcba9876543210"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// syncBuffer is a log output safe for the handlers' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fakeTraffic struct {
	limit int
	by    string
}

func (f *fakeTraffic) Traffic(limit int, by string) TrafficView {
	f.limit, f.by = limit, by
	return TrafficView{At: t0, WindowSeconds: 5, Top: TopView{Incoming: []TargetView{{Target: "203.0.113.5", Hostgroup: "customers", PPS: 1000}}}}
}

type fakeExporters struct{}

func (fakeExporters) Exporters() []ExporterView {
	return []ExporterView{{Address: "192.0.2.1", Formats: []string{"sflow5"}, Sampling: []SamplingView{{Rate: 1000, Source: "sample"}}}}
}

type fakeBGP struct{}

func (fakeBGP) Sessions() []SessionView {
	return []SessionView{{Peer: "192.0.2.2", State: "established", Since: t0, RoutesSent: 1}}
}

type fakeRules struct{ err error }

func (f *fakeRules) RulesView() RulesView {
	return RulesView{Version: "1.0.0", Rules: []string{"dns-amplification"}, LastReload: ReloadView{OK: f.err == nil, At: t0, Trigger: "start"}}
}
func (f *fakeRules) ReloadRules(string) error { return f.err }

type fakeConfig struct{ err error }

func (f *fakeConfig) Redacted() any             { return map[string]any{"dry_run": true} }
func (f *fakeConfig) ReloadConfig(string) error { return f.err }

// fixture is a server over a real mitigation manager (dry-run) and a real
// event ring, with fakes for the rest.
type fixture struct {
	s    *Server
	mgr  *mitigate.Manager
	dry  *mitigate.DryRun
	ring *events.Ring
	log  *syncBuffer
	now  time.Time
}

func tokenFile(t testing.TB, secret string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte("  "+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newFixture(t testing.TB, mod func(*config.API, *Deps)) *fixture {
	t.Helper()
	f := &fixture{dry: mitigate.NewDryRun(), ring: events.NewRing(64, nil), log: &syncBuffer{}, now: t0}
	mgr, err := mitigate.NewManager(mitigate.ManagerConfig{Announcer: f.dry, Safety: mitigate.Config{DryRun: true,
		Protected:     []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
		Allowlist:     []netip.Prefix{netip.MustParsePrefix("203.0.113.250/32")},
		MaxBlackholes: 10, MaxFlowSpec: 10, MaxNewPerMinute: 100, TTL: 10 * time.Minute, MaxTTL: time.Hour,
		PenaltyWindow: time.Hour, PenaltyFactor: 2}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Close)
	f.mgr = mgr
	cfg := config.API{Listen: "127.0.0.1:0", Tokens: []config.APIToken{
		{Name: "noc", Scope: config.ScopeRead, TokenFile: tokenFile(t, readToken)},
		{Name: "automation", Scope: config.ScopeOperate, TokenFile: tokenFile(t, operateToken)},
	}}
	deps := Deps{
		Log:         slog.New(slog.NewJSONHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registry:    prometheus.NewRegistry(),
		Events:      f.ring,
		Mitigations: mgr,
		DryRun:      true,
		CheckMatch: func(_ netip.Prefix, m flowspec.Match) error {
			if m.Protocol == "bogus" {
				return errors.New(`protocol "bogus" is not tcp, udp, icmp or a number`)
			}
			return nil
		},
		Traffic:   &fakeTraffic{},
		Exporters: fakeExporters{},
		BGP:       fakeBGP{},
		Rules:     &fakeRules{},
		Config:    &fakeConfig{},
		Dashboard: fstest.MapFS{
			"index.html":  {Data: []byte("<!doctype html><title>Kapkan</title><script type=module src=/ui/app.js></script>")},
			"app.js":      {Data: []byte("console.log('kapkan')")},
			"css/app.css": {Data: []byte("body{margin:0}")},
		},
		Version: "v-test",
		Started: t0,
		History: &fakeHistory{},
		Ready:   func() ReadyView { return ReadyView{Ready: true, Checks: map[string]string{"listeners": "ok"}} },
		Now:     func() time.Time { return f.now },
	}
	if mod != nil {
		mod(&cfg, &deps)
	}
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	f.s = s
	return f
}

// do serves one request; token "" sends none.
func (f *fixture) do(t testing.TB, method, path, token, body string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if path == "/api/v1/events" {
		// The stream ends at once: its context is already over.
		ctx, cancel := context.WithCancel(req.Context())
		cancel()
		req = req.WithContext(ctx)
	}
	w := httptest.NewRecorder()
	f.s.Handler().ServeHTTP(w, req)
	return w
}

func (f *fixture) ban(t *testing.T, target string) string {
	t.Helper()
	a, err := f.mgr.Ban(mitigate.Request{Kind: flowspec.Blackhole, Target: netip.MustParsePrefix(target)}, flowspec.Match{}, f.now)
	if err != nil {
		t.Fatal(err)
	}
	return mitigate.ActionID(a.Kind, a.Target)
}

// errorOf decodes an error response.
func errorOf(t *testing.T, w *httptest.ResponseRecorder) apiError {
	t.Helper()
	var b errorBody
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || b.Error.Code == "" {
		t.Fatalf("not an error body (%v): %s", err, w.Body)
	}
	return b.Error
}

// routeCase is one route of the server with a request that succeeds.
type routeCase struct {
	method, path string // path as gin registers it
	url, body    string // the request
	need         access
	status       int
	setup        func(t *testing.T, f *fixture)
}

var routeCases = []routeCase{
	{method: "GET", path: "/healthz", need: open, status: 200},
	{method: "GET", path: "/readyz", need: open, status: 200},
	{method: "GET", path: "/metrics", need: read, status: 200},
	{method: "GET", path: "/api/v1/openapi.yaml", need: open, status: 200},
	{method: "GET", path: "/", need: open, status: 200},
	{method: "GET", path: "/ui/*file", url: "/ui/app.js", need: open, status: 200},
	{method: "GET", path: "/api/v1/status", need: read, status: 200},
	{method: "GET", path: "/api/v1/traffic", url: "/api/v1/traffic?limit=5&by=mbps", need: read, status: 200},
	{method: "GET", path: "/api/v1/attacks", need: read, status: 200},
	{method: "GET", path: "/api/v1/attacks/:id", url: "/api/v1/attacks/7", need: read, status: 200,
		setup: func(t *testing.T, f *fixture) {
			f.s.attacks.add(events.Event{Seq: 1, Kind: events.AttackStarted, Attack: &events.Attack{ID: 7}})
		}},
	{method: "GET", path: "/api/v1/attacks/:id/incident", url: "/api/v1/attacks/7/incident", need: read, status: 200,
		setup: func(t *testing.T, f *fixture) { f.s.deps.Incidents = fakeIncidents{7: []byte("tar")} }},
	{method: "GET", path: "/api/v1/attacks/export", url: "/api/v1/attacks/export?from=24h", need: read, status: 200},
	{method: "GET", path: "/api/v1/mitigations", need: read, status: 200},
	{method: "POST", path: "/api/v1/mitigations", body: `{"target": "203.0.113.9", "action": "blackhole", "ttl": "10m"}`, need: operate, status: 201},
	{method: "DELETE", path: "/api/v1/mitigations", url: "/api/v1/mitigations?target=203.0.113.0/24", need: operate, status: 200,
		setup: func(t *testing.T, f *fixture) { f.ban(t, "203.0.113.9/32") }},
	{method: "DELETE", path: "/api/v1/mitigations/:id", url: "/api/v1/mitigations/blackhole_203.0.113.9_32", need: operate, status: 200,
		setup: func(t *testing.T, f *fixture) { f.ban(t, "203.0.113.9/32") }},
	{method: "GET", path: "/api/v1/exporters", need: read, status: 200},
	{method: "GET", path: "/api/v1/bgp", need: read, status: 200},
	{method: "GET", path: "/api/v1/rules", need: read, status: 200},
	{method: "POST", path: "/api/v1/rules/reload", need: operate, status: 200},
	{method: "GET", path: "/api/v1/config", need: read, status: 200},
	{method: "POST", path: "/api/v1/config/reload", need: operate, status: 200},
	{method: "GET", path: "/api/v1/events", need: read, status: 200},
}

// TestRoutesAuth: for every route, no token is 401 (unless the route is
// open), a read token on a write route is 403, and the right token works.
// Every route the server registers must have a case.
func TestRoutesAuth(t *testing.T) {
	have := map[string]bool{}
	for _, rc := range routeCases {
		have[rc.method+" "+rc.path] = true
	}
	for _, r := range newFixture(t, nil).s.engine.Routes() {
		if !have[r.Method+" "+r.Path] {
			t.Errorf("route %s %s has no case in routeCases", r.Method, r.Path)
		}
	}
	for _, rc := range routeCases {
		t.Run(rc.method+" "+rc.path, func(t *testing.T) {
			url := rc.url
			if url == "" {
				url = rc.path
			}
			run := func(token string) *httptest.ResponseRecorder {
				f := newFixture(t, nil)
				if rc.setup != nil {
					rc.setup(t, f)
				}
				return f.do(t, rc.method, url, token, rc.body)
			}
			if rc.need != open {
				w := run("")
				if w.Code != 401 || errorOf(t, w).Code != "unauthorized" {
					t.Errorf("no token: %d %s, want 401 unauthorized", w.Code, w.Body)
				}
				if w.Header().Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				if w := run("not-a-token"); w.Code != 401 {
					t.Errorf("unknown token: %d %s, want 401", w.Code, w.Body)
				}
			}
			if rc.need == operate {
				if w := run(readToken); w.Code != 403 || errorOf(t, w).Code != "forbidden" {
					t.Errorf("read token: %d %s, want 403 forbidden", w.Code, w.Body)
				}
			}
			good := readToken
			switch rc.need {
			case open:
				good = ""
			case operate:
				good = operateToken
			}
			if w := run(good); w.Code != rc.status {
				t.Errorf("good token: %d %s, want %d", w.Code, w.Body, rc.status)
			}
			if rc.need == read {
				if w := run(operateToken); w.Code != rc.status {
					t.Errorf("operate token on a read route: %d %s, want %d", w.Code, w.Body, rc.status)
				}
			}
		})
	}
}

// TestOpenRead: open_read lets reads through without a token, never
// writes, and a wrong token is still refused.
func TestOpenRead(t *testing.T) {
	f := newFixture(t, func(c *config.API, _ *Deps) { c.OpenRead = true })
	for _, rc := range routeCases {
		if rc.setup != nil {
			rc.setup(t, f)
		}
		url := rc.url
		if url == "" {
			url = rc.path
		}
		w := f.do(t, rc.method, url, "", rc.body)
		switch {
		case rc.need == operate && w.Code != 401:
			t.Errorf("%s %s without a token: %d, want 401 (writes are never open)", rc.method, url, w.Code)
		case rc.need != operate && w.Code != rc.status:
			t.Errorf("%s %s without a token: %d %s, want %d", rc.method, url, w.Code, w.Body, rc.status)
		}
	}
	if w := f.do(t, "GET", "/api/v1/mitigations", "wrong", ""); w.Code != 401 {
		t.Errorf("a wrong token with open_read: %d, want 401", w.Code)
	}
}

// TestTokenNeverShown: neither a wrong token nor a good one appears in a
// response or in the log (at debug level, with every request logged).
func TestTokenNeverShown(t *testing.T) {
	f := newFixture(t, nil)
	const guess = "sup3r-s3cret-guess-42"
	for _, tc := range []struct{ method, url, token, body string }{
		{"GET", "/api/v1/mitigations", guess, ""},
		{"POST", "/api/v1/mitigations", guess, `{"target": "203.0.113.9"}`},
		{"POST", "/api/v1/mitigations", readToken, `{"target": "203.0.113.9"}`},
		{"POST", "/api/v1/mitigations", operateToken, `{"target": "203.0.113.9"}`},
		{"GET", "/api/v1/mitigations", readToken, ""},
	} {
		w := f.do(t, tc.method, tc.url, tc.token, tc.body)
		if strings.Contains(w.Body.String(), tc.token) || strings.Contains(w.Header().Get("WWW-Authenticate"), tc.token) {
			t.Errorf("%s %s: the token is in the response: %s", tc.method, tc.url, w.Body)
		}
	}
	log := f.log.String()
	if !strings.Contains(log, "api request refused") || !strings.Contains(log, `"token_name":"noc"`) {
		t.Fatalf("the log does not show the requests (so this test proves nothing):\n%s", log)
	}
	for _, secret := range []string{guess, readToken, operateToken} {
		if strings.Contains(log, secret) {
			t.Errorf("the log holds a token:\n%s", log)
		}
	}
}

// TestBanBadInput: each bad request is a 400 (or 413) with a clear
// message, and nothing is in force or announced afterwards.
func TestBanBadInput(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		status     int
		msg        string
	}{
		{"invalid target", `{"target": "203.0.113.999"}`, 400, `target "203.0.113.999" is neither an address nor a prefix`},
		{"no target", `{"action": "blackhole"}`, 400, "no target"},
		{"negative ttl", `{"target": "203.0.113.9", "ttl": "-5m"}`, 400, `ttl "-5m" is not a positive duration`},
		{"unknown action", `{"target": "203.0.113.9", "action": "nuke"}`, 400, `action "nuke"`},
		{"unknown field", `{"target": "203.0.113.9", "tll": "5m"}`, 400, `unknown field "tll"`},
		{"blackhole with a match", `{"target": "203.0.113.9", "match": {"protocol": "udp"}}`, 400, "a blackhole takes no match"},
		{"bad match", `{"target": "203.0.113.9", "action": "flowspec-discard", "match": {"protocol": "bogus"}}`, 400, `match: protocol "bogus"`},
		{"rate limit without rate", `{"target": "203.0.113.9", "action": "flowspec-ratelimit"}`, 400, "needs rate_mbps"},
		{"not JSON", `target=203.0.113.9`, 400, "body: "},
		{"two values", `{"target": "203.0.113.9"} {}`, 400, "more than one JSON value"},
		{"empty", ``, 400, "no body"},
		{"too large", `{"target": "203.0.113.9", "reason": "` + strings.Repeat("x", MaxBody) + `"}`, 413, "request body over 65536 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			w := f.do(t, "POST", "/api/v1/mitigations", operateToken, tc.body)
			e := errorOf(t, w)
			if w.Code != tc.status || !strings.Contains(e.Message, tc.msg) {
				t.Errorf("%d %+v, want %d with %q", w.Code, e, tc.status, tc.msg)
			}
			f.mgr.Flush()
			if a := f.mgr.Active(); len(a) != 0 || len(f.dry.Ops()) != 0 {
				t.Errorf("something changed: active %v, announced %v", a, f.dry.Ops())
			}
		})
	}
}

// TestBodyTooLargeUndeclared: a body over the limit without a declared
// length is cut while read, still a 413.
func TestBodyTooLargeUndeclared(t *testing.T) {
	f := newFixture(t, nil)
	body := `{"target": "203.0.113.9", "reason": "` + strings.Repeat("x", MaxBody) + `"}`
	req := httptest.NewRequest("POST", "/api/v1/mitigations", io.MultiReader(strings.NewReader(body)))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+operateToken)
	w := httptest.NewRecorder()
	f.s.Handler().ServeHTTP(w, req)
	if w.Code != 413 || errorOf(t, w).Code != "too_large" {
		t.Errorf("%d %s, want 413 too_large", w.Code, w.Body)
	}
}

// TestBanRefusedByGuard: a manual ban outside the protected prefixes or
// inside the allow-list is a 422 with the guard's reason.
func TestBanRefusedByGuard(t *testing.T) {
	for _, tc := range []struct{ target, reason, msg string }{
		{"198.51.100.7", "not_protected", "198.51.100.7/32: target is outside the protected prefixes"},
		{"203.0.113.250", "allowlisted", "203.0.113.250/32: target is in the allow-list"},
	} {
		f := newFixture(t, nil)
		w := f.do(t, "POST", "/api/v1/mitigations", operateToken, `{"target": "`+tc.target+`"}`)
		e := errorOf(t, w)
		if w.Code != 422 || e.Code != "refused" || e.Reason != tc.reason || e.Message != tc.msg {
			t.Errorf("ban %s: %d %+v, want 422 refused %s %q", tc.target, w.Code, e, tc.reason, tc.msg)
		}
		f.mgr.Flush()
		if a := f.mgr.Active(); len(a) != 0 || len(f.dry.Ops()) != 0 {
			t.Errorf("ban %s refused but in force: %v %v", tc.target, a, f.dry.Ops())
		}
	}
}

// TestBanListUnban: a ban shows with its id and TTL left, is withdrawn by
// id, and a second withdrawal finds nothing.
func TestBanListUnban(t *testing.T) {
	f := newFixture(t, nil)
	w := f.do(t, "POST", "/api/v1/mitigations", operateToken,
		`{"target": "203.0.113.0/25", "action": "flowspec-ratelimit", "rate_mbps": 50, "match": {"protocol": "udp", "src_ports": ["53"]}, "ttl": "20m", "reason": "ticket 42"}`)
	if w.Code != 201 {
		t.Fatalf("ban: %d %s", w.Code, w.Body)
	}
	var a struct {
		ID      string  `json:"id"`
		Kind    string  `json:"kind"`
		Target  string  `json:"target"`
		Rate    float64 `json:"rate_mbps"`
		Left    int64   `json:"ttl_left_seconds"`
		Reason  string  `json:"reason"`
		DryRun  bool    `json:"dry_run"`
		Expires string  `json:"expires"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
		t.Fatal(err)
	}
	if a.ID != "flowspec-ratelimit_203.0.113.0_25" || a.Kind != "flowspec-ratelimit" || a.Target != "203.0.113.0/25" || a.Rate != 50 ||
		a.Left != 1200 || a.Reason != "ticket 42" || !a.DryRun || a.Expires != "2025-03-01T12:20:00Z" {
		t.Errorf("ban answer: %+v", a)
	}
	f.now = t0.Add(5 * time.Minute)
	w = f.do(t, "GET", "/api/v1/mitigations", readToken, "")
	var list struct {
		DryRun      bool `json:"dry_run"`
		Mitigations []struct {
			ID   string `json:"id"`
			Left int64  `json:"ttl_left_seconds"`
		} `json:"mitigations"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil {
		t.Fatal(err)
	}
	if !list.DryRun || len(list.Mitigations) != 1 || list.Mitigations[0].ID != a.ID || list.Mitigations[0].Left != 900 {
		t.Errorf("list: %s", w.Body)
	}
	if w := f.do(t, "DELETE", "/api/v1/mitigations/"+a.ID, operateToken, ""); w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"withdrawn":1}` {
		t.Errorf("unban by id: %d %s", w.Code, w.Body)
	}
	if w := f.do(t, "DELETE", "/api/v1/mitigations/"+a.ID, operateToken, ""); w.Code != 404 || errorOf(t, w).Code != "not_found" {
		t.Errorf("second unban by id: %d %s, want 404", w.Code, w.Body)
	}
	if w := f.do(t, "DELETE", "/api/v1/mitigations/blackhole_203.0.113.9", operateToken, ""); w.Code != 400 {
		t.Errorf("malformed id: %d %s, want 400", w.Code, w.Body)
	}
	if w := f.do(t, "DELETE", "/api/v1/mitigations?target=203.0.113.0/24", operateToken, ""); w.Code != 404 {
		t.Errorf("unban of a target with nothing in force: %d %s, want 404", w.Code, w.Body)
	}
	if w := f.do(t, "DELETE", "/api/v1/mitigations?target=nope", operateToken, ""); w.Code != 400 {
		t.Errorf("unban of a bad target: %d %s, want 400", w.Code, w.Body)
	}
	f.mgr.Flush()
	if ops := f.dry.Ops(); len(ops) != 2 {
		t.Errorf("dry-run announcer saw %v, want an announce and a withdraw", ops)
	}
}

// TestBadQueries: the read routes check their parameters.
func TestBadQueries(t *testing.T) {
	f := newFixture(t, nil)
	for _, url := range []string{"/api/v1/traffic?limit=0", "/api/v1/traffic?limit=x", "/api/v1/traffic?by=bps",
		"/api/v1/attacks/x", "/api/v1/events?since=x"} {
		if w := f.do(t, "GET", url, readToken, ""); w.Code != 400 || errorOf(t, w).Code != "bad_request" {
			t.Errorf("%s: %d %s, want 400", url, w.Code, w.Body)
		}
	}
	if w := f.do(t, "GET", "/api/v1/attacks/99", readToken, ""); w.Code != 404 {
		t.Errorf("unknown attack: %d %s", w.Code, w.Body)
	}
	if w := f.do(t, "GET", "/api/v1/nothing", readToken, ""); w.Code != 404 || errorOf(t, w).Code != "not_found" {
		t.Errorf("unknown route: %d %s", w.Code, w.Body)
	}
}

// TestUnavailable: a part the daemon does not provide answers 503.
func TestUnavailable(t *testing.T) {
	f := newFixture(t, func(_ *config.API, d *Deps) {
		*d = Deps{Log: d.Log}
	})
	for _, rc := range routeCases {
		url := rc.url
		if url == "" {
			url = rc.path
		}
		switch rc.path {
		case "/healthz", "/api/v1/openapi.yaml", "/api/v1/status":
			continue // need nothing of the daemon
		case "/", "/ui/*file":
			if w := f.do(t, rc.method, url, "", ""); w.Code != 404 {
				t.Errorf("%s without a dashboard: %d, want 404", url, w.Code)
			}
			continue
		}
		token := readToken
		if rc.need == operate {
			token = operateToken
		}
		w := f.do(t, rc.method, url, token, rc.body)
		if w.Code != 503 || errorOf(t, w).Code != "unavailable" {
			t.Errorf("%s %s: %d %s, want 503 unavailable", rc.method, url, w.Code, w.Body)
		}
	}
}

// TestReloadRefused: a reload with errors is a 422 listing them.
func TestReloadRefused(t *testing.T) {
	errs := config.Errors{{File: "kapkan.yaml", Line: 3, Col: 5, Path: "detection.window", Msg: "0s is out of range"},
		{File: "kapkan.yaml", Line: 9, Col: 1, Path: "api.tokens[0].scope", Msg: `"x" is not a scope`}}
	f := newFixture(t, func(_ *config.API, d *Deps) {
		d.Config = &fakeConfig{err: errs}
		d.Rules = &fakeRules{err: errors.New("builtin.yaml:4:9: rule x: match: unknown name y")}
	})
	w := f.do(t, "POST", "/api/v1/config/reload", operateToken, "")
	e := errorOf(t, w)
	if w.Code != 422 || e.Code != "refused" || len(e.Errors) != 2 || e.Errors[0] != errs[0].Error() {
		t.Errorf("config reload: %d %+v", w.Code, e)
	}
	w = f.do(t, "POST", "/api/v1/rules/reload", operateToken, "")
	if e := errorOf(t, w); w.Code != 422 || len(e.Errors) != 1 || !strings.Contains(e.Message, "unknown name y") {
		t.Errorf("rules reload: %d %+v", w.Code, e)
	}
}

// TestNewTokenErrors: a token that cannot be read stops the start, and
// the error says where it was looked for.
func TestNewTokenErrors(t *testing.T) {
	empty := tokenFile(t, "")
	for _, tc := range []struct {
		tok config.APIToken
		msg string
	}{
		{config.APIToken{Name: "a", Scope: "read", TokenFile: "/nonexistent/token"}, "api.tokens[0] (a): read token_file: open /nonexistent/token"},
		{config.APIToken{Name: "b", Scope: "read", TokenFile: empty}, "is empty"},
		{config.APIToken{Name: "c", Scope: "read", TokenEnv: "KAPKAN_TEST_TOKEN_UNSET_XYZ"}, "KAPKAN_TEST_TOKEN_UNSET_XYZ (token_env) is unset or empty"},
	} {
		_, err := New(config.API{Tokens: []config.APIToken{tc.tok}}, Deps{})
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%+v: %v, want %q", tc.tok, err, tc.msg)
		}
	}
	t.Setenv("KAPKAN_TEST_TOKEN", " from-env ")
	s, err := New(config.API{Tokens: []config.APIToken{{Name: "e", Scope: "operate", TokenEnv: "KAPKAN_TEST_TOKEN"}}}, Deps{})
	if err != nil || s.match("from-env") == nil || s.match("from-env2") != nil {
		t.Errorf("token from the environment: %v", err)
	}
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
