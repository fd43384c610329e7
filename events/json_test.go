package events

import (
	"bytes"
	"encoding/json"
	"math"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/flowspec"
)

var (
	t0     = time.Date(2025, 3, 1, 12, 0, 0, 250_000_000, time.UTC)
	target = netip.MustParsePrefix("203.0.113.5/32")
)

func synFlood() *Attack {
	return &Attack{
		ID: 7, Target: target, Scope: "address", Direction: "incoming", Hostgroup: "customers",
		Started: t0, Trigger: "pps", Rate: 52000, Threshold: 50000,
		Rates:         map[string]float64{"pps": 52000, "mbps": 26.6, "fps": 900, "tcp_pps": 52000},
		SampleRecords: 512, Labels: []string{"syn-flood"},
		Vector:  flowspec.Match{Protocol: "tcp", DstPorts: []string{"443"}, TCPFlags: "syn&!ack"},
		Rules:   []string{"syn-flood", "tcp-any"},
		Decider: "syn-flood",
	}
}

func TestJSON(t *testing.T) {
	for _, tc := range []struct {
		name   string
		e      Event
		want   []string // substrings of the line
		absent []string
	}{
		{
			name: "attack started",
			e:    Event{Seq: 3, Kind: AttackStarted, At: t0, Attack: synFlood()},
			want: []string{
				`{"seq":3,"kind":"attack_started","at":"2025-03-01T12:00:00.25Z","attack":{"id":7,"target":"203.0.113.5/32",`,
				`"vector":{"protocol":"tcp","dst_ports":["443"],"tcp_flags":"syn&!ack"}`,
				`"rates":{"fps":900,"mbps":26.6,"pps":52000,"tcp_pps":52000}`,
				`"started":"2025-03-01T12:00:00.25Z"`,
				`"decider":"syn-flood"`,
			},
			absent: []string{`\u0026`, `"ended"`, `"action"`, `"peak"`, `"mitigation"`, "\n"},
		},
		{
			name:   "attack without vector",
			e:      Event{Seq: 4, Kind: AttackEnded, At: t0, Attack: &Attack{ID: 8, Target: target, Ended: t0.Add(time.Minute)}},
			want:   []string{`"ended":"2025-03-01T12:01:00.25Z"`},
			absent: []string{`"vector"`},
		},
		{
			name: "mitigation refused",
			e: Event{Seq: 5, Kind: MitigationRefused, At: t0, Mitigation: &Mitigation{AttackID: 7, Target: target,
				Action: flowspec.Blackhole, Reason: "allowlisted", Err: "203.0.113.5/32 is allow-listed"}},
			want:   []string{`"mitigation":{"attack_id":7,"target":"203.0.113.5/32","action":"blackhole","reason":"allowlisted","error":"203.0.113.5/32 is allow-listed","dry_run":false}`},
			absent: []string{`"match"`, `"expires"`, `"attack":`},
		},
		{
			name: "reload failed",
			e: Event{Seq: 6, Kind: ConfigReloaded, At: t0, Reload: &Reload{What: "config", Err: "2 errors",
				Errors: []string{"kapkan.yaml:3:5: a <b> & c", "kapkan.yaml:9:1: x"}, Trigger: "SIGHUP"}},
			want: []string{`"reload":{"what":"config","ok":false,"error":"2 errors","errors":["kapkan.yaml:3:5: a <b> & c",`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			line := string(AppendJSON([]byte("prefix "), &tc.e))
			if !strings.HasPrefix(line, "prefix {") {
				t.Fatalf("AppendJSON did not append to dst: %s", line)
			}
			line = strings.TrimPrefix(line, "prefix ")
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("missing %s in\n%s", w, line)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(line, a) {
					t.Errorf("unexpected %q in\n%s", a, line)
				}
			}
			// The line is the event: it decodes back to the same value.
			var back Event
			if err := json.Unmarshal([]byte(line), &back); err != nil {
				t.Fatalf("decode %s: %v", line, err)
			}
			if !reflect.DeepEqual(back, tc.e) {
				t.Errorf("round trip changed the event:\n got %+v\nwant %+v", back, tc.e)
			}
			var buf bytes.Buffer
			if err := WriteJSON(&buf, &tc.e); err != nil || buf.String() != line+"\n" {
				t.Errorf("WriteJSON: %v %q, want the line and a newline", err, buf.String())
			}
		})
	}
}

// An event that cannot be encoded still gives one valid JSON object.
func TestJSONRenderError(t *testing.T) {
	e := Event{Seq: 9, Kind: AttackUpdated, At: t0, Attack: &Attack{Rates: map[string]float64{"pps": math.NaN()}}}
	line := AppendJSON(nil, &e)
	var got map[string]any
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	if got["seq"] != 9.0 || got["kind"] != "attack_updated" || got["at"] != "2025-03-01T12:00:00.25Z" ||
		!strings.Contains(got["render_error"].(string), "NaN") {
		t.Errorf("render error line: %s", line)
	}
}
