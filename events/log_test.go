package events

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kapkan-io/kapkan/flowspec"
)

// testLogger logs without time, at DEBUG, to buf, as text or JSON.
func testLogger(buf *bytes.Buffer, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(buf, opts))
	}
	return slog.New(slog.NewTextHandler(buf, opts))
}

func TestLog(t *testing.T) {
	ended := synFlood()
	ended.Ended = t0.Add(90*time.Second + 400*time.Millisecond)
	ended.Peak = map[string]float64{"pps": 61000, "mbps": 31.2}
	escalated := synFlood()
	escalated.Ladder, escalated.Step, escalated.Action, escalated.Reason = "default", 2, flowspec.Discard, "still above threshold after 60s"
	for _, tc := range []struct {
		name       string
		e          Event
		level, msg string
		text       []string // substrings of the text line
		json       []string // and of the JSON line
	}{
		{
			name: "attack started", e: Event{Kind: AttackStarted, Attack: synFlood()},
			level: "INFO", msg: "attack detected",
			text: []string{`id=7 target=203.0.113.5/32 scope=address direction=incoming hostgroup=customers trigger=pps rate=52000 threshold=50000`,
				`rates.fps=900 rates.mbps=26.6 rates.pps=52000 rates.tcp_pps=52000 sample_records=512 labels=[syn-flood]`,
				`vector.protocol=tcp vector.dst_ports=[443] vector.tcp_flags=syn&!ack rules="[syn-flood tcp-any]" decider=syn-flood`},
			json: []string{`"vector":{"protocol":"tcp","dst_ports":["443"],"tcp_flags":"syn&!ack"}`,
				`"rates":{"fps":900,"mbps":26.6,"pps":52000,"tcp_pps":52000}`, `"labels":["syn-flood"]`},
		},
		{
			name: "attack updated", e: Event{Kind: AttackUpdated, Attack: synFlood()},
			level: "DEBUG", msg: "attack updated",
			text: []string{`id=7 target=203.0.113.5/32 direction=incoming hostgroup=customers rates.fps=900`},
		},
		{
			name: "attack escalated", e: Event{Kind: AttackEscalated, Attack: escalated},
			level: "INFO", msg: "attack escalated",
			text: []string{`hostgroup=customers labels=[syn-flood] ladder=default step=2 action=flowspec-discard reason="still above threshold after 60s"`},
		},
		{
			name: "attack ended", e: Event{Kind: AttackEnded, Attack: ended},
			level: "INFO", msg: "attack ended",
			text: []string{`id=7 target=203.0.113.5/32 direction=incoming hostgroup=customers duration=1m30s peak.mbps=31.2 peak.pps=61000 labels=[syn-flood]`},
			json: []string{`"duration":"1m30s","peak":{"mbps":31.2,"pps":61000}`},
		},
		{
			name: "unclassified attack shows no labels", e: Event{Kind: AttackStarted, Attack: &Attack{ID: 1, Target: target}},
			level: "INFO", msg: "attack detected",
			text: []string{`labels=[]`}, json: []string{`"labels":[]`},
		},
		{
			name: "mitigation announced",
			e: Event{Kind: MitigationAnnounced, Mitigation: &Mitigation{AttackID: 7, Target: target, Action: flowspec.RateLimit,
				Match: flowspec.Match{Protocol: "udp", SrcPorts: []string{"53"}}, RateMbps: 10, Ladder: "default", Step: 1,
				Expires: t0.Add(10 * time.Minute), Reason: "first step", DryRun: true}},
			level: "INFO", msg: "mitigation announced",
			text: []string{`attack=7 target=203.0.113.5/32 action=flowspec-ratelimit match.protocol=udp match.src_ports=[53] rate_mbps=10 ladder=default step=1 expires=2025-03-01T12:10:00Z reason="first step" dry_run=true`},
			json: []string{`"match":{"protocol":"udp","src_ports":["53"]}`},
		},
		{
			name:  "blackhole withdrawn has no match nor expiry",
			e:     Event{Kind: MitigationWithdrawn, Mitigation: &Mitigation{Target: target, Action: flowspec.Blackhole, Match: flowspec.Match{Protocol: "udp"}, Expires: t0}},
			level: "INFO", msg: "mitigation withdrawn",
			text: []string{`msg="mitigation withdrawn" target=203.0.113.5/32 action=blackhole dry_run=false`},
		},
		{
			name: "mitigation refused",
			e: Event{Kind: MitigationRefused, Mitigation: &Mitigation{AttackID: 7, Target: target, Action: flowspec.Blackhole,
				Reason: "allowlisted", Err: "203.0.113.5/32 is allow-listed"}},
			level: "WARN", msg: "mitigation refused",
			text: []string{`reason=allowlisted err="203.0.113.5/32 is allow-listed"`},
		},
		{
			name:  "mitigation failed",
			e:     Event{Kind: MitigationFailed, Mitigation: &Mitigation{Target: target, Action: flowspec.Blackhole, Err: "no established session"}},
			level: "ERROR", msg: "mitigation failed",
			text: []string{`err="no established session"`},
		},
		{
			name:  "no mitigation with the attack",
			e:     Event{Kind: MitigationNone, Attack: &Attack{ID: 7, Target: target, Hostgroup: "lab", Reason: "hostgroup has no ladder"}},
			level: "INFO", msg: "no mitigation",
			text: []string{`id=7 target=203.0.113.5/32 hostgroup=lab labels=[] reason="hostgroup has no ladder"`},
		},
		{
			name:  "bgp session down",
			e:     Event{Kind: BGPSessionDown, BGP: &BGPSession{Peer: "192.0.2.1", State: "active", Err: "hold timer expired"}},
			level: "WARN", msg: "bgp session down",
			text: []string{`peer=192.0.2.1 state=active err="hold timer expired"`},
		},
		{
			name:  "bgp session up",
			e:     Event{Kind: BGPSessionUp, BGP: &BGPSession{Peer: "192.0.2.1", State: "established"}},
			level: "INFO", msg: "bgp session up",
		},
		{
			name:  "rules reloaded",
			e:     Event{Kind: RulesReloaded, Reload: &Reload{What: "rules", OK: true, Trigger: "file change", Rules: 40, WASMModules: 1}},
			level: "INFO", msg: "rules reloaded",
			text: []string{`trigger="file change" rules=40 wasm_modules=1 disabled=0`},
		},
		{
			name: "rules reload failed",
			e: Event{Kind: RulesReloaded, Reload: &Reload{What: "rules", Trigger: "SIGHUP", Err: "1 error",
				Errors: []string{"rules/x.yaml:3:9: unknown field"}}},
			level: "ERROR", msg: "rules reload failed, keeping the running rules",
			text: []string{`trigger=SIGHUP err="1 error" errors="[rules/x.yaml:3:9: unknown field]"`},
			json: []string{`"errors":["rules/x.yaml:3:9: unknown field"]`},
		},
		{
			name:  "config reload needing a restart",
			e:     Event{Kind: ConfigReloaded, Reload: &Reload{What: "config", OK: true, Applied: []string{"thresholds"}, NeedsRestart: []string{"listen"}}},
			level: "WARN", msg: "config reloaded",
			text: []string{`applied=[thresholds] needs_restart=[listen]`},
		},
		{
			name:  "config reload failed",
			e:     Event{Kind: ConfigReloaded, Reload: &Reload{What: "config", Err: "bad"}},
			level: "ERROR", msg: "config reload failed, keeping the running config",
		},
		{
			name:  "unknown kind",
			e:     Event{Kind: "mystery", BGP: &BGPSession{Peer: "p"}},
			level: "INFO", msg: "event mystery",
			text: []string{`peer=p`},
		},
		{
			name:  "payload missing",
			e:     Event{Kind: AttackStarted},
			level: "INFO", msg: "attack detected",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var text, js bytes.Buffer
			Log(testLogger(&text, "text"), &tc.e)
			Log(testLogger(&js, "json"), &tc.e)
			tl := text.String()
			if want := "level=" + tc.level + " msg="; !strings.HasPrefix(tl, want) || !strings.Contains(tl, tc.msg) || strings.Count(tl, "\n") != 1 {
				t.Errorf("text line %q, want one line with level %s and message %q", tl, tc.level, tc.msg)
			}
			for _, w := range tc.text {
				if !strings.Contains(tl, w) {
					t.Errorf("text line lacks %s:\n%s", w, tl)
				}
			}
			var rec map[string]any
			if err := json.Unmarshal(js.Bytes(), &rec); err != nil {
				t.Fatalf("JSON line %s: %v", js.String(), err)
			}
			if rec["level"] != tc.level || rec["msg"] != tc.msg {
				t.Errorf("JSON line level %v msg %v, want %s %q", rec["level"], rec["msg"], tc.level, tc.msg)
			}
			for _, w := range tc.json {
				if !strings.Contains(js.String(), w) {
					t.Errorf("JSON line lacks %s:\n%s", w, js.String())
				}
			}
			if strings.Contains(js.String(), `\u0026`) {
				t.Errorf("JSON line escapes &: %s", js.String())
			}
		})
	}
}

// A logger above DEBUG writes no attack updates, and builds nothing for them.
func TestLogLevelFilter(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	Log(logger, &Event{Kind: AttackUpdated, Attack: synFlood()})
	if buf.Len() != 0 {
		t.Errorf("attack update logged at INFO: %s", buf.String())
	}
	e := Event{Kind: AttackUpdated, Attack: synFlood()}
	if n := testing.AllocsPerRun(100, func() { Log(logger, &e) }); n > 0 {
		t.Errorf("a filtered event costs %v allocations", n)
	}
}

// lockedBuffer is a buffer RunLog's goroutine writes and the test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestRunLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := NewRing(2, nil)
		rd := r.NewReader("log", 1)
		var out lockedBuffer
		logger := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
		// Five events before the log reads: the ring keeps two.
		for i := range 5 {
			r.Publish(Event{Kind: BGPSessionDown, BGP: &BGPSession{Peer: "192.0.2." + string(rune('1'+i))}})
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- RunLog(ctx, rd, logger) }()
		synctest.Wait()
		want := `level=WARN msg="event log fell behind, events lost" reader=log lost=3 lost_total=3
level=WARN msg="bgp session down" peer=192.0.2.4 state=""
level=WARN msg="bgp session down" peer=192.0.2.5 state=""
`
		if got := out.String(); got != want {
			t.Errorf("log:\n%s\nwant:\n%s", got, want)
		}
		// An event published as the daemon stops is still logged.
		r.Publish(Event{Kind: AttackEnded, Attack: &Attack{ID: 1, Target: target}})
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunLog returned %v", err)
		}
		if got := out.String(); !strings.Contains(got, `msg="attack ended" id=1`) {
			t.Errorf("event published at shutdown not logged:\n%s", got)
		}

		// A closed reader ends RunLog too.
		rd2 := r.NewReader("log", r.Last()+1)
		go func() { done <- RunLog(context.Background(), rd2, logger) }()
		synctest.Wait()
		rd2.Close()
		if err := <-done; err != nil {
			t.Errorf("RunLog on a closed reader returned %v", err)
		}
	})
}
