package api

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kapkan-io/kapkan/events"
)

// sseEvent is one event read from a stream.
type sseEvent struct {
	id, kind, data string
}

// readEvents reads n events (comments skipped) from a stream.
func readEvents(t *testing.T, r *bufio.Reader, n int) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	for len(out) < n {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d events: %v", len(out), err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if cur != (sseEvent{}) {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			cur.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			cur.kind = line[7:]
		case strings.HasPrefix(line, "data: "):
			cur.data = line[6:]
		default:
			t.Fatalf("unexpected line %q", line)
		}
	}
	return out
}

func stream(t *testing.T, url string, header map[string]string) (*bufio.Reader, func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+readToken)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return bufio.NewReader(resp.Body), func() { cancel(); resp.Body.Close() }
}

func publish(ring *events.Ring, n int) {
	for i := range n {
		ring.Publish(events.Event{Kind: events.AttackUpdated, Attack: &events.Attack{ID: uint64(i + 1)}})
	}
}

// TestEventsKeepsUp: a subscriber that keeps up sees every event, in
// order, with its seq as id, and its kind.
func TestEventsKeepsUp(t *testing.T) {
	f := newFixture(t, nil)
	srv := httptest.NewServer(f.s.Handler())
	defer srv.Close()
	r, done := stream(t, srv.URL+"/api/v1/events", nil)
	defer done()
	// Published in bursts of less than the ring (64), each after the
	// last was read, so the subscriber keeps up by construction.
	next := 1
	for range 10 {
		publish(f.ring, 40)
		for _, e := range readEvents(t, r, 40) {
			if e.id != strconv.Itoa(next) || e.kind != "attack_updated" || !strings.HasPrefix(e.data, `{"seq":`+strconv.Itoa(next)+`,`) {
				t.Fatalf("event %d: %+v", next, e)
			}
			next++
		}
	}
}

// TestEventsResume: Last-Event-ID and ?since resume after that event; a
// resume from an event the ring lost is told so at once.
func TestEventsResume(t *testing.T) {
	f := newFixture(t, nil)
	srv := httptest.NewServer(f.s.Handler())
	defer srv.Close()
	publish(f.ring, 10)
	for _, tc := range []struct {
		url    string
		header map[string]string
	}{
		{"/api/v1/events", map[string]string{"Last-Event-ID": "4"}},
		{"/api/v1/events?since=4", nil},
	} {
		r, done := stream(t, srv.URL+tc.url, tc.header)
		got := readEvents(t, r, 6)
		done()
		for i, e := range got {
			if e.id != strconv.Itoa(5+i) {
				t.Errorf("%s %v: event %d has id %s, want %d", tc.url, tc.header, i, e.id, 5+i)
			}
		}
	}
	publish(f.ring, 100) // the ring keeps 64: events 47 to 110
	r, done := stream(t, srv.URL+"/api/v1/events", map[string]string{"Last-Event-ID": "20"})
	defer done()
	got := readEvents(t, r, 1)
	if want := (sseEvent{id: "46", kind: "lost", data: `{"lost":26}`}); got[0] != want {
		t.Errorf("resume from a lost event: %+v, want %+v", got[0], want)
	}
	if _, err := r.ReadString('\n'); err == nil {
		t.Error("the stream goes on after lost")
	}
}

// blockedWriter is a response writer whose writes wait until released:
// a client that stopped reading.
type blockedWriter struct {
	httptest.ResponseRecorder
	mu      sync.Mutex
	release chan struct{}
	once    sync.Once
	writing chan struct{}
}

func (w *blockedWriter) Write(b []byte) (int, error) {
	w.once.Do(func() { close(w.writing) })
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ResponseRecorder.Write(b)
}

func (w *blockedWriter) body() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.Body.String()
}

// TestEventsLaggingCutOff: a subscriber stuck while the ring goes round
// is told how many events it lost and cut off; the writer never waited.
func TestEventsLaggingCutOff(t *testing.T) {
	f := newFixture(t, nil)
	w := &blockedWriter{ResponseRecorder: *httptest.NewRecorder(), release: make(chan struct{}), writing: make(chan struct{})}
	req := httptest.NewRequest("GET", "/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+readToken)
	done := make(chan struct{})
	go func() { f.s.Handler().ServeHTTP(w, req); close(done) }()
	<-w.writing // the stream's first write: the subscriber stalls
	start := time.Now()
	publish(f.ring, 200)
	if d := time.Since(start); d > time.Second {
		t.Errorf("publishing 200 events took %s with a stalled subscriber", d)
	}
	close(w.release)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the lagging stream was not cut off")
	}
	got := readEvents(t, bufio.NewReader(strings.NewReader(w.body())), 1)
	// 200 published, the ring keeps 64 (137 to 200): 136 lost.
	if want := (sseEvent{id: "136", kind: "lost", data: `{"lost":136}`}); len(got) != 1 || got[0] != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if strings.Contains(w.body(), "attack_updated") {
		t.Errorf("events after the loss were sent:\n%s", w.body())
	}
}

// TestEventsSubscriberCap: one more subscriber than the cap is a 503.
func TestEventsSubscriberCap(t *testing.T) {
	f := newFixture(t, nil)
	for range MaxSubscribers {
		f.s.subs <- struct{}{}
	}
	if w := f.do(t, "GET", "/api/v1/events", readToken, ""); w.Code != 503 || errorOf(t, w).Code != "unavailable" {
		t.Errorf("%d %s, want 503", w.Code, w.Body)
	}
}

// TestEventsKeepalive: an idle stream gets a keepalive comment.
func TestEventsKeepalive(t *testing.T) {
	f := newFixture(t, nil)
	f.s.keepalive = 10 * time.Millisecond
	srv := httptest.NewServer(f.s.Handler())
	defer srv.Close()
	r, done := stream(t, srv.URL+"/api/v1/events", nil)
	defer done()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == ": keepalive\n" {
			return
		}
	}
}

// TestOpenAPIMatchesRoutes: every route is in the document and every
// path and method of the document is a route.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                    `yaml:"openapi"`
		Paths   map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi: %q, want 3.x", doc.OpenAPI)
	}
	var documented, registered []string
	for p, methods := range doc.Paths {
		for m := range methods {
			switch m {
			case "get", "post", "put", "delete", "patch":
				documented = append(documented, strings.ToUpper(m)+" "+p)
			}
		}
	}
	f := newFixture(t, nil)
	for _, r := range f.s.engine.Routes() {
		p := r.Path
		for _, seg := range strings.Split(p, "/") {
			if strings.HasPrefix(seg, ":") || strings.HasPrefix(seg, "*") {
				p = strings.Replace(p, seg, "{"+seg[1:]+"}", 1)
			}
		}
		registered = append(registered, r.Method+" "+p)
	}
	slices.Sort(documented)
	slices.Sort(registered)
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not in openapi.yaml", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(registered, d) {
			t.Errorf("openapi.yaml documents %s, which is not a route", d)
		}
	}
	if w := f.do(t, "GET", "/api/v1/openapi.yaml", "", ""); w.Body.String() != string(openAPI) {
		t.Error("the served document is not the embedded one")
	}
}

// TestAttackIndex: Run feeds the index from the ring: an attack with its
// mitigations, active then ended; recent keeps the last RecentAttacks.
func TestAttackIndex(t *testing.T) {
	f := newFixture(t, nil)
	f.ring = events.NewRing(1024, nil)
	f.s.deps.Events = f.ring
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	wait := func() {
		deadline := time.Now().Add(5 * time.Second)
		for f.s.attacks.seen() != f.ring.Last() {
			if time.Now().After(deadline) {
				t.Fatal("the index did not catch up")
			}
			time.Sleep(time.Millisecond)
		}
	}
	a1 := &events.Attack{ID: 1, Target: mustPrefix("203.0.113.5/32"), Started: t0, Rates: map[string]float64{"pps": 1}}
	f.ring.Publish(events.Event{Kind: events.AttackStarted, At: t0, Attack: a1})
	f.ring.Publish(events.Event{Kind: events.MitigationAnnounced, At: t0, Mitigation: &events.Mitigation{AttackID: 1, Target: a1.Target, DryRun: true}})
	f.ring.Publish(events.Event{Kind: events.MitigationAnnounced, At: t0, Mitigation: &events.Mitigation{Target: a1.Target}}) // manual
	wait()
	w := f.do(t, "GET", "/api/v1/attacks/1", readToken, "")
	want := `{"id":1,"target":"203.0.113.5/32","scope":"","direction":"","hostgroup":"","started":"2025-03-01T12:00:00Z","trigger":"","rate":0,"threshold":0,"rates":{"pps":1},"sample_records":0,"active":true,"mitigations":[{"kind":"mitigation_announced","at":"2025-03-01T12:00:00Z","attack_id":1,"target":"203.0.113.5/32","action":"","dry_run":true}],"series":[{"at":"2025-03-01T12:00:00Z","pps":1,"mbps":0,"fps":0}]}`
	if got := strings.TrimSpace(w.Body.String()); got != want {
		t.Errorf("attack 1:\n got %s\nwant %s", got, want)
	}
	for i := range RecentAttacks + 5 {
		id := uint64(i + 1)
		f.ring.Publish(events.Event{Kind: events.AttackEnded, Attack: &events.Attack{ID: id, Started: t0, Ended: t0.Add(time.Minute)}})
	}
	wait()
	active, recent := f.s.attacks.list()
	if len(active) != 0 || len(recent) != RecentAttacks || recent[0].ID != RecentAttacks+5 || recent[RecentAttacks-1].ID != 6 {
		t.Errorf("active %d, recent %d (first %d)", len(active), len(recent), recent[0].ID)
	}
	if w := f.do(t, "GET", "/api/v1/attacks/1", readToken, ""); w.Code != 404 {
		t.Errorf("attack 1 is past the recent bound: %d", w.Code)
	}
	if w := f.do(t, "GET", fmt.Sprintf("/api/v1/attacks/%d", RecentAttacks+5), readToken, ""); w.Code != 200 || !strings.Contains(w.Body.String(), `"active":false`) {
		t.Errorf("newest ended attack: %d %s", w.Code, w.Body)
	}
}
