package notify

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flowspec"
)

func TestRender(t *testing.T) {
	ended := attackEvent(events.AttackEnded, 42)
	ended.Attack.Ended = t0.Add(90 * time.Second)
	ended.Attack.Peak = map[string]float64{"pps": 2.5e6}
	carpet := attackEvent(events.AttackStarted, 43)
	carpet.Attack.Target = netip.MustParsePrefix("203.0.113.0/24")
	refused := mitigationEvent(events.MitigationRefused, 42, flowspec.Blackhole, false)
	refused.Mitigation.Reason, refused.Mitigation.Err = "allowlisted", "203.0.113.7 is in the allow-list"
	withdrawn := mitigationEvent(events.MitigationWithdrawn, 42, flowspec.Discard, true)
	for _, tc := range []struct {
		name       string
		e          events.Event
		title      string
		has, hasNo []string
	}{
		{"ended", ended, "Attack ended on 203.0.113.7 (incoming)",
			[]string{"duration: 1m30s\n", "peak: pps 2500000\n", "labels: syn-flood\n"}, []string{"rates:", "trigger:"}},
		{"prefix", carpet, "Attack started on 203.0.113.0/24 (incoming)", []string{"target: 203.0.113.0/24\n"}, nil},
		{"refused", refused, "Mitigation refused: blackhole on 203.0.113.7",
			[]string{"reason: allowlisted\n", "error: 203.0.113.7 is in the allow-list\n", "ttl: 10m0s"}, []string{"match:", "DRY-RUN", "dry-run"}},
		{"withdrawn dry-run", withdrawn, DryRunMark + "Mitigation withdrawn: flowspec-discard on 203.0.113.7",
			[]string{"dry-run: yes", "match: proto udp src-port 53\n", "ladder: default, step 1\n"}, []string{"ttl:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := render(&tc.e)
			if m.Title != tc.title {
				t.Errorf("title %q, want %q", m.Title, tc.title)
			}
			for _, s := range tc.has {
				if !strings.Contains(m.Body, s) {
					t.Errorf("body lacks %q:\n%s", s, m.Body)
				}
			}
			for _, s := range tc.hasNo {
				if strings.Contains(m.Body, s) {
					t.Errorf("body has %q:\n%s", s, m.Body)
				}
			}
		})
	}
}
