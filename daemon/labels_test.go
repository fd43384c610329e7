package daemon_test

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/daemon/daemontest"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/ingest/demo"
)

// TestUnnamedAttackIsAnIPFlood: a flood no built-in rule describes (GRE,
// protocol 47) reaches the operator as an ip-flood with its protocol as
// the vector, in the API and in the log.
func TestUnnamedAttackIsAnIPFlood(t *testing.T) {
	d, logs := daemontest.Start(t, daemontest.Config(t, ""), "")
	api := "http://" + d.APIAddr().String()
	victim := netip.MustParseAddr("203.0.113.47")
	daemontest.SendScenario(t, d.FlowAddrs()[0], demo.Scenario{Format: flow.FormatSFlow5, SamplingRate: 100,
		Attacks: []demo.Attack{{Target: victim, PPS: 100_000, Duration: 3 * time.Second,
			Shape: &demo.Shape{Proto: 47, SizeMin: 1400, SizeMax: 1400}}},
		Duration: 3 * time.Second, Agent: netip.MustParseAddr("127.0.0.1"), Seed: 47})

	var attacks struct {
		Active []struct {
			Target  string         `json:"target"`
			Labels  []string       `json:"labels"`
			Vector  map[string]any `json:"vector"`
			Decider string         `json:"decider"`
		} `json:"active"`
	}
	waitFor(t, 5*time.Second, func() bool {
		getJSON(t, api+"/api/v1/attacks", &attacks)
		return len(attacks.Active) == 1
	}, func() string { return "no active attack; log:\n" + logs.All() })
	a := attacks.Active[0]
	if a.Target != "203.0.113.47/32" || !slices.Equal(a.Labels, []string{"ip-flood"}) || a.Vector["protocol"] != "47" {
		t.Errorf("API attack: %+v, want labels [ip-flood] and vector protocol 47", a)
	}
	var logged bool
	for _, line := range strings.Split(logs.All(), "\n") {
		var rec struct {
			Msg    string   `json:"msg"`
			Target string   `json:"target"`
			Labels []string `json:"labels"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "attack detected" && rec.Target == "203.0.113.47/32" {
			logged = slices.Equal(rec.Labels, []string{"ip-flood"})
		}
	}
	if !logged {
		t.Errorf("no \"attack detected\" line with labels [ip-flood]; log:\n%s", logs.All())
	}
}
