package api

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/store"
)

// fakeHistory answers from fixed attacks and records the last query.
type fakeHistory struct {
	last     store.AttackFilter
	lastStep time.Duration
}

var historyT0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func (h *fakeHistory) Attacks(_ context.Context, f store.AttackFilter) ([]store.Attack, error) {
	h.last = f
	return []store.Attack{{ID: 42, Target: netip.MustParsePrefix("203.0.113.5/32"), Direction: "incoming", Hostgroup: "customers",
		Started: historyT0, Ended: historyT0.Add(time.Minute), Trigger: "pps", Threshold: 50000,
		Peak: map[string]float64{"pps": 150000, "mbps": 1200.5}, Labels: []string{"amplification", "dns-amplification"},
		Vector: flowspec.Match{Protocol: "udp", SrcPorts: []string{"53"}}, Rules: []string{"dns-amplification"}, Decider: "dns-amplification"}}, nil
}

func (h *fakeHistory) Attack(_ context.Context, id uint64) (store.Attack, []store.Mitigation, error) {
	if id != 42 {
		return store.Attack{}, nil, store.ErrNotFound
	}
	as, _ := h.Attacks(context.Background(), store.AttackFilter{})
	return as[0], []store.Mitigation{{At: historyT0, Kind: "mitigation_announced", AttackID: 42, Target: as[0].Target, Action: flowspec.Discard, DryRun: true}}, nil
}

func (h *fakeHistory) Traffic(_ context.Context, hostgroup, direction string, from, to time.Time, step time.Duration) ([]store.TrafficPoint, error) {
	h.lastStep = step
	return []store.TrafficPoint{{At: from, Hostgroup: hostgroup, Direction: direction, PPS: 1000}}, nil
}

// TestHistoryRoutes: the history queries reach the store with the filter
// the query string says, an attack the live index no longer holds comes
// from the history, a hostgroup's series and an export too; bad input is a
// 400 that names the parameter; without a store, 503.
func TestHistoryRoutes(t *testing.T) {
	f := newFixture(t, nil)
	h := f.s.deps.History.(*fakeHistory)

	rec := f.do(t, "GET", "/api/v1/attacks?from=2026-12-01T00:00:00Z&to=2026-12-02T00:00:00Z&target=203.0.113.0/24&label=dns-amplification&hostgroup=customers&rule=dns-amplification&limit=5", readToken, "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"attacks":[{"id":42`) {
		t.Fatalf("history query: %d %s", rec.Code, rec.Body)
	}
	want := store.AttackFilter{From: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC),
		Target: netip.MustParsePrefix("203.0.113.0/24"), Label: "dns-amplification", Hostgroup: "customers", Rule: "dns-amplification", Limit: 5}
	if h.last != want {
		t.Errorf("filter %+v, want %+v", h.last, want)
	}
	// A duration is before now.
	f.do(t, "GET", "/api/v1/attacks?from=24h", readToken, "")
	if got := f.now.Sub(h.last.From); got != 24*time.Hour {
		t.Errorf("from=24h gave %v before now", got)
	}

	rec = f.do(t, "GET", "/api/v1/attacks/42", readToken, "")
	var a HistoryAttackView
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &a) != nil || a.ID != 42 || a.Active || len(a.Mitigations) != 1 {
		t.Fatalf("attack from the history: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(t, "GET", "/api/v1/attacks/43", readToken, ""); rec.Code != 404 {
		t.Errorf("unknown attack: %d %s", rec.Code, rec.Body)
	}

	rec = f.do(t, "GET", "/api/v1/traffic?hostgroup=customers&from=2h&step=1m", readToken, "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"incoming":[{"at"`) || !strings.Contains(rec.Body.String(), `"step_seconds":60`) || h.lastStep != time.Minute {
		t.Fatalf("traffic series: %d %s", rec.Code, rec.Body)
	}

	rec = f.do(t, "GET", "/api/v1/attacks/export?from=24h", readToken, "")
	lines := strings.Split(strings.TrimSpace(rec.Body.String()), "\n")
	if rec.Code != 200 || len(lines) != 2 || !strings.HasPrefix(lines[0], "id,target,") ||
		lines[1] != "42,203.0.113.5/32,incoming,customers,2026-12-01T10:00:00Z,2026-12-01T10:01:00Z,pps,50000,150000,1200.5,0,amplification dns-amplification,proto udp src-port 53,dns-amplification,dns-amplification" ||
		!strings.Contains(rec.Header().Get("Content-Disposition"), ".csv") {
		t.Fatalf("csv export: %d %q %v", rec.Code, lines, rec.Header())
	}
	rec = f.do(t, "GET", "/api/v1/attacks/export?from=24h&format=json", readToken, "")
	if rec.Code != 200 || !strings.HasPrefix(rec.Body.String(), `[{"id":42`) {
		t.Fatalf("json export: %d %s", rec.Code, rec.Body)
	}

	for _, bad := range []struct{ url, says string }{
		{"/api/v1/attacks?from=yesterday", "from"},
		{"/api/v1/attacks?from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z", "not before"},
		{"/api/v1/attacks?limit=0", "limit"},
		{"/api/v1/attacks?target=nonsense", "target"},
		{"/api/v1/attacks/export?format=xml", "format"},
		{"/api/v1/traffic?hostgroup=customers&step=10ms", "step"},
	} {
		rec := f.do(t, "GET", bad.url, readToken, "")
		if rec.Code != 400 || !strings.Contains(rec.Body.String(), bad.says) {
			t.Errorf("%s: %d %s, want a 400 naming %s", bad.url, rec.Code, rec.Body, bad.says)
		}
	}

	none := newFixture(t, func(_ *config.API, d *Deps) { d.History = nil })
	for _, url := range []string{"/api/v1/attacks?from=1h", "/api/v1/traffic?hostgroup=customers", "/api/v1/attacks/export"} {
		if rec := none.do(t, "GET", url, readToken, ""); rec.Code != 503 {
			t.Errorf("%s without a store: %d %s", url, rec.Code, rec.Body)
		}
	}
}
