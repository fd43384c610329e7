package api

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kapkan-io/kapkan/config"
)

// countingRules and countingConfig count the reloads that got through.
type countingRules struct {
	fakeRules
	n atomic.Int32
}

func (c *countingRules) ReloadRules(trigger string) error {
	c.n.Add(1)
	return c.fakeRules.ReloadRules(trigger)
}

type countingConfig struct {
	fakeConfig
	n atomic.Int32
}

func (c *countingConfig) ReloadConfig(trigger string) error {
	c.n.Add(1)
	return c.fakeConfig.ReloadConfig(trigger)
}

// isWrite reports whether a method changes something: every method but
// GET, HEAD and OPTIONS.
func isWrite(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}

// routeURL turns a registered path into a URL, its parameters filled.
func routeURL(path, param string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") || strings.HasPrefix(p, "*") {
			parts[i] = url.PathEscape(param)
		}
	}
	return strings.Join(parts, "/")
}

func newRequest(method, u, body string) *http.Request {
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		panic(err) // the callers build valid URLs
	}
	return req
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

// TestWritesRefuseBadTokens: every write route the server registers —
// taken from the router, not from a list a new route could be left out
// of — refuses a request without a token, with a wrong token (in many
// shapes) and with a read token, with and without open_read; and the
// refused requests change nothing.
func TestWritesRefuseBadTokens(t *testing.T) {
	wrong := []struct{ name, header string }{
		{"unknown", "Bearer not-a-token"},
		{"operate token plus a byte", "Bearer " + operateToken + "x"},
		{"operate token less a byte", "Bearer " + operateToken[:len(operateToken)-1]},
		{"operate token upper case", "Bearer " + strings.ToUpper(operateToken)},
		{"token name", "Bearer automation"},
		{"empty bearer", "Bearer "},
		{"no scheme", operateToken},
		{"basic", "Basic " + base64.StdEncoding.EncodeToString([]byte("automation:"+operateToken))},
		{"two tokens", "Bearer " + readToken + " " + operateToken},
		{"read then operate", "Bearer " + readToken + operateToken},
		{"nul inside", "Bearer " + operateToken + "\x00"},
	}
	for _, openRead := range []bool{false, true} {
		rules, cfg := &countingRules{}, &countingConfig{}
		f := newFixture(t, func(c *config.API, d *Deps) {
			c.OpenRead = openRead
			d.Rules, d.Config = rules, cfg
		})
		f.ban(t, "203.0.113.9/32") // something an unban could withdraw
		var writes int
		for _, r := range f.s.engine.Routes() {
			if !isWrite(r.Method) {
				continue
			}
			writes++
			u := routeURL(r.Path, "blackhole_203.0.113.9_32")
			if r.Method == http.MethodDelete && !strings.Contains(r.Path, ":") {
				u += "?target=203.0.113.0/24"
			}
			body := `{"target": "203.0.113.10", "action": "blackhole", "ttl": "10m"}`
			try := func(what, header string, want int, code string) {
				t.Helper()
				req, w := newRequest(r.Method, u, body), newRecorder()
				if header != "" {
					req.Header["Authorization"] = []string{header}
				}
				f.s.Handler().ServeHTTP(w, req)
				if w.Code != want || errorOf(t, w).Code != code {
					t.Errorf("open_read %v, %s %s, %s: %d %s, want %d %s", openRead, r.Method, r.Path, what, w.Code, w.Body, want, code)
				}
			}
			try("no token", "", 401, "unauthorized")
			for _, wt := range wrong {
				try(wt.name+" token", wt.header, 401, "unauthorized")
			}
			try("read token", "Bearer "+readToken, 403, "forbidden")
		}
		if writes < 5 {
			t.Fatalf("%d write routes found: the route list is not what this test reads", writes)
		}
		f.mgr.Flush()
		active := f.mgr.Active()
		if len(active) != 1 || active[0].Target != netip.MustParsePrefix("203.0.113.9/32") || rules.n.Load() != 0 || cfg.n.Load() != 0 {
			t.Errorf("open_read %v: refused writes changed something: active %v, rule reloads %d, config reloads %d",
				openRead, active, rules.n.Load(), cfg.n.Load())
		}
	}
}

// FuzzWriteRequest sends any body, path parameter and query to every write
// route with an operate token: no request panics or fails inside (500),
// every answer but a redirect is JSON, and a ban that is accepted is inside the
// protected prefixes and outside the allow-list.
func FuzzWriteRequest(f *testing.F) {
	for _, s := range []struct {
		route        uint8
		param, query string
		body         string
	}{
		{0, "", "", `{"target": "203.0.113.9", "action": "blackhole", "ttl": "10m", "reason": "r"}`},
		{0, "", "", `{"target": "203.0.113.0/28", "action": "flowspec-ratelimit", "rate_mbps": 10, "match": {"protocol": "udp", "src_ports": ["53"], "packet_length": ">512"}}`},
		{0, "", "", `{"target": "203.0.113.9", "action": "flowspec-discard", "match": {"protocol": "tcp", "tcp_flags": "syn&!ack", "dst_ports": ["80-90"]}}`},
		{0, "", "", `{"target": "2001:db8::1", "ttl": "-5m"}`},
		{0, "", "", `{"target": "0.0.0.0/0"}`},
		{0, "", "", `{"target": "203.0.113.250"}`},
		{1, "", "target=203.0.113.0/24", ""},
		{1, "", "target=::/0", ""},
		{2, "blackhole_203.0.113.9_32", "", ""},
		{2, "flowspec-discard_203.0.113.9_32_x", "", ""},
		{3, "", "", "{}"},
		{4, "", "", ""},
	} {
		f.Add(s.route, s.param, s.query, []byte(s.body))
	}
	fx := newFixture(f, nil)
	protected := netip.MustParsePrefix("203.0.113.0/24")
	allowed := netip.MustParsePrefix("203.0.113.250/32")
	var writes []string // method and path
	for _, r := range fx.s.engine.Routes() {
		if isWrite(r.Method) {
			writes = append(writes, r.Method+" "+r.Path)
		}
	}
	f.Fuzz(func(t *testing.T, route uint8, param, query string, body []byte) {
		method, path, _ := strings.Cut(writes[int(route)%len(writes)], " ")
		u := routeURL(path, param)
		if query != "" {
			u += "?" + url.PathEscape(query)
		}
		req, w := newRequest(method, u, string(body)), newRecorder()
		req.Header.Set("Authorization", "Bearer "+operateToken)
		fx.s.Handler().ServeHTTP(w, req)
		if w.Code >= 500 && w.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s with %q: %d %s", method, u, body, w.Code, w.Body)
		}
		if w.Code/100 != 3 && !json.Valid(w.Body.Bytes()) { // a redirect (empty parameter: trailing slash) has no body
			t.Fatalf("%s %s with %q: %d, not JSON: %q", method, u, body, w.Code, w.Body)
		}
		if strings.Contains(fx.log.String(), "panicked") {
			t.Fatalf("a handler panicked:\n%s", fx.log.String())
		}
		if w.Code == http.StatusCreated {
			var a struct {
				Target string `json:"target"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
				t.Fatal(err)
			}
			p, err := ParseTarget(a.Target)
			if err != nil || !protected.Contains(p.Addr()) || p.Bits() < protected.Bits() || p.Overlaps(allowed) {
				t.Fatalf("ban of %q accepted for %q", a.Target, body)
			}
		}
	})
}
